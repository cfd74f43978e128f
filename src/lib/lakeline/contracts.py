"""Data contracts: one ODCS v3 YAML file per dataset, the single source of its silver shape.

A contract (``src/metadata/contracts/<dataset>.yml``) is validated against the Open Data
Contract Standard's JSON Schema and parsed with its pydantic model
(``open-data-contract-standard``). Its schema object named after the dataset defines the
silver columns: name, ``physicalType`` (a lakeline type such as ``bigint`` or
``decimal(12,2)``) with a matching ``logicalType``, ``required``, ``primaryKey`` /
``primaryKeyPosition``, ``unique``, ``classification`` (PII), and the constraints
``logicalTypeOptions`` (minimum / maximum / exclusive bounds, minLength / maxLength,
pattern) and ``enum``. It also carries quality rules (``quality`` entries, see
``compile_quality``), relationships (referential integrity), the owner (``team.name``) and
the freshness SLA (``slaProperties`` ``latency`` on ``<dataset>.<column>``).

Also here: the breaking-change comparison between two versions of the contracts (used by
``lakeline contracts-check`` in pull requests) and the live schema-drift check between a
contract and the silver table it describes.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pyspark.sql import types as T

from lakeline.datatypes import parse_type
from lakeline.errors import DataError, LakelineError, Problem
from lakeline.identifiers import is_identifier
from lakeline.quality import Action, Check, Rule, duration_seconds

CONTRACTS_DIR = "contracts"

# ODCS logical types and the lakeline (Spark) types each may be stored as.
_LOGICAL: dict[str, tuple[type, ...]] = {
    "string": (T.StringType,),
    "integer": (T.ByteType, T.ShortType, T.IntegerType, T.LongType),
    "number": (T.FloatType, T.DoubleType, T.DecimalType),
    "boolean": (T.BooleanType,),
    "date": (T.DateType,),
    "timestamp": (T.TimestampType,),
}
_SEVERITY = {
    "info": Action.warn,
    "warn": Action.warn,
    "warning": Action.warn,
    "quarantine": Action.quarantine,
    "error": Action.fail,
    "fail": Action.fail,
    "critical": Action.fail,
}
_UNITS = {
    "s": "s",
    "sec": "s",
    "second": "s",
    "seconds": "s",
    "m": "m",
    "min": "m",
    "minute": "m",
    "minutes": "m",
    "h": "h",
    "hour": "h",
    "hours": "h",
    "d": "d",
    "day": "d",
    "days": "d",
    "w": "w",
    "week": "w",
    "weeks": "w",
}
# Classification levels, lowest first; PII is anything above public.
_LEVELS = {"public": 0, "internal": 1, "confidential": 2, "sensitive": 2, "restricted": 3, "pii": 3}


class ContractColumn(BaseModel):
    """One silver column as the contract states it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: str
    logical_type: str
    required: bool = False
    primary_key_position: int | None = None
    unique: bool = False
    classification: str | None = None
    tags: list[str] = Field(default_factory=list)
    description: str = ""

    @property
    def pii(self) -> bool:
        level = _LEVELS.get(
            (self.classification or "").lower(), 0 if not self.classification else 2
        )
        return level > 0 or "pii" in {t.lower() for t in self.tags}


class Contract(BaseModel):
    """A dataset's contract, compiled: its silver columns, key, rules, owner and version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    id: str
    name: str | None = None
    version: str
    status: str | None = None
    owner: str | None = None
    columns: list[ContractColumn]
    primary_key: list[str]
    rules: list[Rule] = Field(default_factory=list)

    def column(self, name: str) -> ContractColumn | None:
        return next((c for c in self.columns if c.name == name), None)


# --------------------------------------------------------------------------- loading


def _json_schema() -> dict:
    text = resources.files("open_data_contract_standard").joinpath("schema.json").read_text()
    return json.loads(text)


def _schema_problems(raw: dict, file: str, dataset: str | None) -> list[Problem]:
    """Problems the ODCS JSON Schema finds, each located by its path in the file."""
    try:
        from jsonschema import Draft201909Validator
    except ImportError:  # pragma: no cover - jsonschema is a dependency
        return []
    validator = Draft201909Validator(_json_schema())
    problems = []
    for error in sorted(validator.iter_errors(raw), key=lambda e: list(map(str, e.path))):
        where = ".".join(str(p) for p in error.absolute_path) or None
        message = error.message
        if error.validator == "unevaluatedProperties":
            message = f"unknown key in ODCS v3: {message}"
        problems.append(Problem(file, dataset, where, message))
    return problems


def read_contract_file(path: Path, rel: str, dataset: str | None) -> tuple[Any, list[Problem]]:
    """Parse and validate one ODCS file; returns (OpenDataContractStandard or None, problems)."""
    from open_data_contract_standard.model import OpenDataContractStandard

    if not path.is_file():
        return None, [Problem(rel, dataset, None, "contract file not found")]
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        return None, [Problem(rel, dataset, None, f"not valid YAML: {exc}")]
    if not isinstance(raw, dict):
        return None, [Problem(rel, dataset, None, "expected an ODCS v3 data contract mapping")]
    problems = _schema_problems(raw, rel, dataset)
    if problems:
        return None, problems
    if not str(raw.get("apiVersion", "")).startswith("v3."):
        return None, [Problem(rel, dataset, "apiVersion", "lakeline reads ODCS v3 contracts")]
    try:
        return OpenDataContractStandard.model_validate(raw), []
    except ValidationError as err:
        return None, [
            Problem(rel, dataset, ".".join(map(str, e["loc"])) or None, e["msg"])
            for e in err.errors()
        ]


def load_contract(path: Path, rel: str, dataset_id: str) -> tuple[Contract | None, list[Problem]]:
    """Load the contract of ``dataset_id`` from ``path`` and compile it."""
    odcs, problems = read_contract_file(path, rel, dataset_id)
    if odcs is None:
        return None, problems
    return compile_contract(odcs, rel, dataset_id)


def _object(odcs, dataset_id: str):
    objects = odcs.schema_ or []
    for index, obj in enumerate(objects):
        if obj.name == dataset_id:
            return index, obj
    return None, None


def compile_contract(odcs, file: str, dataset_id: str) -> tuple[Contract | None, list[Problem]]:
    """Turn a parsed ODCS document into the lakeline Contract of one dataset."""
    problems: list[Problem] = []

    def problem(field: str | None, message: str) -> None:
        problems.append(Problem(file, dataset_id, field, message))

    index, obj = _object(odcs, dataset_id)
    if obj is None:
        names = ", ".join(repr(o.name) for o in odcs.schema_ or []) or "none"
        problem("schema", f"no schema object named '{dataset_id}' (found: {names})")
        return None, problems
    base = f"schema.{index}"
    columns: list[ContractColumn] = []
    rules: list[Rule] = []
    for i, prop in enumerate(obj.properties or []):
        at = f"{base}.properties.{i}"
        if not is_identifier(prop.name or ""):
            problem(f"{at}.name", f"{prop.name!r} is not a plain identifier")
            continue
        column = _column(prop, at, problem)
        if column is None:
            continue
        columns.append(column)
        rules += _constraint_rules(prop, column, at, problem)
        for j, entry in enumerate(prop.quality or []):
            rule = compile_quality(entry, dataset_id, column.name, f"{at}.quality.{j}", problem)
            if rule is not None:
                rules.append(rule)
        for j, rel in enumerate(prop.relationships or []):
            rule = _relationship_rule(rel, column.name, f"{at}.relationships.{j}", problem)
            if rule is not None:
                rules.append(rule)
    if not columns and not problems:
        problem(f"{base}.properties", "the schema object has no properties (columns)")
    for j, entry in enumerate(obj.quality or []):
        rule = compile_quality(entry, dataset_id, None, f"{base}.quality.{j}", problem)
        if rule is not None:
            rules.append(rule)
    for j, sla in enumerate(odcs.slaProperties or []):
        rule = _sla_rule(sla, dataset_id, f"slaProperties.{j}", problem)
        if rule is not None:
            rules.append(rule)
    keyed = [c for c in columns if c.primary_key_position is not None]
    primary_key = [c.name for c in sorted(keyed, key=lambda c: c.primary_key_position or 0)]
    if not primary_key and columns:
        problem(f"{base}.properties", "no property has primaryKey: true")
    if problems:
        return None, problems
    owner = None
    team = odcs.team
    if team is not None and not isinstance(team, list):
        owner = team.name
    return (
        Contract(
            file=file,
            id=odcs.id or "",
            name=odcs.name,
            version=odcs.version or "",
            status=odcs.status,
            owner=owner,
            columns=columns,
            primary_key=primary_key,
            rules=rules,
        ),
        [],
    )


def _column(prop, at: str, problem) -> ContractColumn | None:
    if not prop.physicalType:
        problem(f"{at}.physicalType", "give the column's type, e.g. bigint or decimal(12,2)")
        return None
    try:
        kind = parse_type(prop.physicalType)
    except ValueError as exc:
        problem(f"{at}.physicalType", str(exc))
        return None
    logical = prop.logicalType
    if logical is None:
        logical = next((k for k, kinds in _LOGICAL.items() if isinstance(kind, kinds)), None)
    elif logical not in _LOGICAL or not isinstance(kind, _LOGICAL[logical]):
        problem(
            f"{at}.logicalType",
            f"logicalType {logical!r} does not match physicalType {prop.physicalType!r}",
        )
        return None
    position = None
    if prop.primaryKey:
        position = prop.primaryKeyPosition if (prop.primaryKeyPosition or -1) > 0 else 10_000
    return ContractColumn(
        name=prop.name,
        type=prop.physicalType.strip().lower(),
        logical_type=logical or "",
        required=bool(prop.required) or bool(prop.primaryKey),
        primary_key_position=position,
        unique=bool(prop.unique),
        classification=prop.classification,
        tags=list(prop.tags or []),
        description=prop.description or "",
    )


def _constraint_rules(prop, column: ContractColumn, at: str, problem) -> list[Rule]:
    """Row rules from logicalTypeOptions and enum; a dataset rule from ``unique``."""
    options = prop.logicalTypeOptions or {}
    rules = []

    def add(field: str, **kwargs) -> None:
        try:
            rules.append(Rule(**kwargs))
        except ValidationError as err:
            problem(field, "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors()))

    bounds: dict[str, Any] = {}
    if "minimum" in options or "exclusiveMinimum" in options:
        bounds["min"] = options.get("exclusiveMinimum", options.get("minimum"))
        bounds["min_exclusive"] = "exclusiveMinimum" in options
    if "maximum" in options or "exclusiveMaximum" in options:
        bounds["max"] = options.get("exclusiveMaximum", options.get("maximum"))
        bounds["max_exclusive"] = "exclusiveMaximum" in options
    name = column.name
    if bounds:
        add(
            f"{at}.logicalTypeOptions",
            name=f"{name}.range",
            check=Check.range,
            column=name,
            **bounds,
        )
    lengths = {
        k: options[o]
        for k, o in (("min_length", "minLength"), ("max_length", "maxLength"))
        if o in options
    }
    if lengths:
        add(
            f"{at}.logicalTypeOptions",
            name=f"{name}.length",
            check=Check.length,
            column=name,
            **lengths,
        )
    if "pattern" in options:
        add(
            f"{at}.logicalTypeOptions.pattern",
            name=f"{name}.pattern",
            check=Check.regex,
            column=name,
            pattern=options["pattern"],
        )
    if prop.enum:
        add(
            f"{at}.enum",
            name=f"{name}.enum",
            check=Check.enum,
            column=name,
            values=[e.value for e in prop.enum],
        )
    if prop.unique and not prop.primaryKey:
        add(f"{at}.unique", name=f"{name}.unique", check=Check.unique, column=name)
    return rules


def _action(entry, at: str, problem) -> Action | None:
    if entry.severity is None:
        return None
    action = _SEVERITY.get(entry.severity.lower())
    if action is None:
        problem(
            f"{at}.severity",
            f"unknown severity {entry.severity!r}; use warning (warn), quarantine or error (fail)",
        )
    return action


def _threshold_rows(entry, at: str, problem) -> float | None:
    """The largest failing count (or percent) an ODCS operator allows."""
    if entry.mustBe is not None:
        return float(entry.mustBe)
    if entry.mustBeLessOrEqualTo is not None:
        return float(entry.mustBeLessOrEqualTo)
    if entry.mustBeLessThan is not None:
        unit = (entry.unit or "rows").lower()
        return float(entry.mustBeLessThan) - (1 if unit == "rows" else 1e-9)
    problem(at, "use mustBe, mustBeLessThan or mustBeLessOrEqualTo for this metric")
    return None


def compile_quality(entry, dataset_id: str, column: str | None, at: str, problem) -> Rule | None:
    """One ODCS quality entry as a lakeline rule (None for documentation-only entries).

    Supported: library metrics ``nullValues``, ``duplicateValues``, ``rowCount`` and
    ``invalidValues`` (``validValues`` or ``pattern``, with ``mustBe: 0``), and
    ``type: custom`` with ``engine: lakeline`` whose ``implementation`` is a lakeline rule
    (any check, e.g. ``{check: sql, expression: "quantity > 0"}``). ``severity`` gives the
    action: warning → warn, quarantine → quarantine, error → fail. ``type: text`` and other
    engines' custom rules are left to their tools.
    """
    kind = (entry.type or ("library" if (entry.metric or entry.rule) else "text")).lower()
    action = _action(entry, at, problem)
    scope = column or dataset_id
    name = entry.name or entry.id
    if kind == "text" or (kind == "custom" and (entry.engine or "").lower() != "lakeline"):
        return None
    spec: dict[str, Any]
    if kind == "custom":
        if not isinstance(entry.implementation, dict):
            problem(f"{at}.implementation", "give the lakeline rule as a mapping")
            return None
        spec = dict(entry.implementation)
        spec.setdefault("name", name or f"{scope}.{spec.get('check', 'custom')}")
        if column and "column" not in spec and spec.get("check") not in ("sql", "row_count"):
            spec["column"] = column
    elif kind == "library":
        metric = entry.metric or entry.rule
        unit = (entry.unit or "rows").lower()
        spec = {"name": name or f"{scope}.{metric}"}
        if metric == "rowCount":
            low, high = None, None
            if entry.mustBeBetween:
                low, high = entry.mustBeBetween
            if entry.mustBeGreaterThan is not None:
                low = entry.mustBeGreaterThan + 1
            if entry.mustBeGreaterOrEqualTo is not None:
                low = entry.mustBeGreaterOrEqualTo
            if entry.mustBeLessThan is not None:
                high = entry.mustBeLessThan - 1
            if entry.mustBeLessOrEqualTo is not None:
                high = entry.mustBeLessOrEqualTo
            if entry.mustBe is not None:
                low = high = entry.mustBe
            spec.update(check="row_count", min=_int(low), max=_int(high))
            spec = {k: v for k, v in spec.items() if v is not None}
        elif metric == "nullValues":
            if column is None:
                problem(at, "nullValues is a property-level metric")
                return None
            limit = _threshold_rows(entry, at, problem)
            if limit is None:
                return None
            key = "max_percent" if unit == "percent" else "max_rows"
            spec.update(
                check="null_percentage",
                column=column,
                **{key: limit if unit == "percent" else int(limit)},
            )
        elif metric == "duplicateValues":
            limit = _threshold_rows(entry, at, problem)
            if limit is None:
                return None
            if unit == "percent":
                problem(f"{at}.unit", "duplicateValues is checked in rows")
                return None
            props = (entry.arguments or {}).get("properties")
            keys = {"columns": list(props)} if props else {"column": column}
            if keys.get("column") is None and not props:
                problem(at, "a schema-level duplicateValues needs arguments.properties")
                return None
            spec.update(check="unique", max_rows=int(limit), **keys)
        elif metric == "invalidValues":
            if column is None:
                problem(at, "invalidValues is a property-level metric")
                return None
            if entry.mustBe not in (0, None) or _threshold_rows(entry, at, problem) != 0:
                problem(at, "lakeline checks invalidValues per row: use mustBe: 0")
                return None
            args = entry.arguments or {}
            if "validValues" in args:
                spec.update(check="enum", column=column, values=list(args["validValues"]))
            elif "pattern" in args:
                spec.update(check="regex", column=column, pattern=args["pattern"])
            else:
                problem(f"{at}.arguments", "give validValues or pattern")
                return None
        else:
            problem(
                f"{at}.metric",
                f"metric {metric!r} is not supported by lakeline (supported: nullValues, "
                "duplicateValues, rowCount, invalidValues; or type custom, engine lakeline)",
            )
            return None
    else:
        problem(
            f"{at}.type",
            f"quality type {kind!r} is not run by lakeline; write it as type: custom, "
            "engine: lakeline with a rule as implementation",
        )
        return None
    if action is not None:
        spec.setdefault("action", action.value)
    if entry.description and "description" not in spec:
        spec["description"] = entry.description
    try:
        return Rule.model_validate(spec)
    except ValidationError as err:
        for e in err.errors():
            loc = ".".join(map(str, e["loc"]))
            problem(f"{at}{'.' + loc if loc else ''}", e["msg"].removeprefix("Value error, "))
        return None


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _relationship_rule(rel, column: str, at: str, problem) -> Rule | None:
    target = rel.to
    if isinstance(target, list) or not isinstance(target, str) or target.count(".") != 1:
        problem(f"{at}.to", "lakeline checks relationships to one <dataset>.<column>")
        return None
    return Rule(
        name=rel.id or f"{column}.references",
        check=Check.references,
        column=column,
        references=target,
        action=Action.warn,
        description=f"{column} refers to {target}",
    )


def _sla_rule(sla, dataset_id: str, at: str, problem) -> Rule | None:
    if (sla.property or "").lower() not in ("latency", "freshness"):
        return None
    element = sla.element or ""
    if "." not in element:
        problem(f"{at}.element", "give the column the SLA is measured on as <dataset>.<column>")
        return None
    table, column = element.split(".", 1)
    if table != dataset_id:
        return None
    unit = _UNITS.get((sla.unit or "d").lower())
    if unit is None or not isinstance(sla.value, int | float):
        problem(at, "give latency as a number with a unit (s, m, h, d or w)")
        return None
    return Rule(
        name=f"{column}.freshness",
        check=Check.freshness,
        column=column,
        max_age=f"{sla.value}{unit}",
        action=Action.warn,
        description=f"SLA {sla.property}: data at most {sla.value}{unit} old",
    )


# --------------------------------------------------------------------------- breaking changes


@dataclass(frozen=True)
class Change:
    """One difference between the base and the new version of a contract."""

    dataset: str
    column: str | None
    breaking: bool
    reason: str

    @property
    def where(self) -> str:
        return f"{self.dataset}.{self.column}" if self.column else self.dataset


def _view(raw: dict) -> dict[str, dict]:
    """Per schema object: version, primary key and a normalised view of each column."""
    out = {}
    for obj in raw.get("schema") or []:
        if not isinstance(obj, dict) or not obj.get("name"):
            continue
        columns = {}
        keyed = []
        for prop in obj.get("properties") or []:
            if not isinstance(prop, dict) or not prop.get("name"):
                continue
            options = prop.get("logicalTypeOptions") or {}
            enum = prop.get("enum")
            columns[prop["name"]] = {
                "type": str(prop.get("physicalType") or prop.get("logicalType") or "").lower(),
                "required": bool(prop.get("required")) or bool(prop.get("primaryKey")),
                "unique": bool(prop.get("unique")),
                "classification": prop.get("classification"),
                "pii_tag": "pii" in {str(t).lower() for t in prop.get("tags") or []},
                "options": options,
                "enum": None if enum is None else [e.get("value") for e in enum],
                "quality": prop.get("quality"),
            }
            if prop.get("primaryKey"):
                keyed.append((prop.get("primaryKeyPosition") or 10_000, prop["name"]))
        out[obj["name"]] = {
            "version": str(raw.get("version") or ""),
            "columns": columns,
            "primary_key": [n for _, n in sorted(keyed)],
            "quality": obj.get("quality"),
            "rules": _rules_view(obj),
            "sla": raw.get("slaProperties"),
        }
    return out


def _rules_view(obj: dict) -> dict[str, tuple[str | None, Rule]]:
    """Rule name → (column it is declared on, compiled rule) for an object's quality entries.

    Entries lakeline does not run (text, other engines) or cannot compile are left out:
    validating the contract reports the latter.
    """
    from open_data_contract_standard.model import DataQuality

    found: list[tuple[str | None, Any]] = []
    for prop in obj.get("properties") or []:
        if isinstance(prop, dict) and prop.get("name"):
            found += [(str(prop["name"]), e) for e in prop.get("quality") or []]
    found += [(None, e) for e in obj.get("quality") or []]
    rules: dict[str, tuple[str | None, Rule]] = {}
    for column, entry in found:
        if not isinstance(entry, dict):
            continue
        try:
            parsed = DataQuality.model_validate(entry)
        except ValidationError:
            continue
        problems: list[str] = []
        rule = compile_quality(
            parsed, str(obj["name"]), column, "", lambda f, m, sink=problems: sink.append(m)
        )
        if rule is not None and not problems:
            rules[rule.name] = (column or rule.column, rule)
    return rules


def widens(old: str, new: str) -> bool:
    """True when Delta type widening turns ``old`` into ``new`` without rewriting data."""
    try:
        a, b = parse_type(old), parse_type(new)
    except ValueError:
        return False
    if a == b:
        return True
    order = [T.ByteType, T.ShortType, T.IntegerType, T.LongType]
    integral = next((i for i, k in enumerate(order) if isinstance(a, k)), None)
    if integral is not None:
        if integral < 3 and any(isinstance(b, k) for k in order[integral + 1 :]):
            return True
        if integral < 3 and isinstance(b, T.DoubleType):
            return True
        if isinstance(b, T.DecimalType):
            needed = 20 if integral == 3 else 10
            return b.precision - b.scale >= needed
        return False
    if isinstance(a, T.FloatType):
        return isinstance(b, T.DoubleType)
    if isinstance(a, T.DecimalType) and isinstance(b, T.DecimalType):
        grow_p, grow_s = b.precision - a.precision, b.scale - a.scale
        return grow_p >= grow_s >= 0
    return False


def _number(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _level(classification: str | None) -> int | None:
    if classification is None:
        return None
    return _LEVELS.get(classification.lower())


def _compare_column(dataset: str, name: str, old: dict, new: dict) -> list[Change]:
    changes = []

    def add(breaking: bool, reason: str) -> None:
        changes.append(Change(dataset, name, breaking, reason))

    if old["type"] != new["type"]:
        if widens(old["type"], new["type"]):
            add(False, f"type widened from {old['type']} to {new['type']} (Delta type widening)")
        else:
            add(True, f"type changed from {old['type']} to {new['type']}, which is not a widening")
    if not old["required"] and new["required"]:
        add(True, "optional → required: rows with no value become invalid")
    elif old["required"] and not new["required"]:
        add(False, "required → optional")
    if not old["unique"] and new["unique"]:
        add(True, "unique added")
    elif old["unique"] and not new["unique"]:
        add(False, "unique removed")
    o, n = old["options"], new["options"]
    for key, higher_is_tighter in (
        ("minimum", True),
        ("exclusiveMinimum", True),
        ("maximum", False),
        ("exclusiveMaximum", False),
        ("minLength", True),
        ("maxLength", False),
    ):
        before, after = o.get(key), n.get(key)
        if before == after:
            continue
        if before is None:
            add(True, f"{key} {after} added")
        elif after is None:
            add(False, f"{key} {before} removed")
        else:
            tighter = (_number(after) > _number(before)) == higher_is_tighter
            verb = "raised" if _number(after) > _number(before) else "lowered"
            add(tighter, f"{key} {verb} from {before} to {after}")
    if o.get("pattern") != n.get("pattern"):
        if n.get("pattern") is None:
            add(False, f"pattern {o.get('pattern')!r} removed")
        else:
            add(True, f"pattern changed from {o.get('pattern')!r} to {n.get('pattern')!r}")
    if old["enum"] != new["enum"]:
        if new["enum"] is None:
            add(False, "enum constraint removed")
        elif old["enum"] is None:
            add(True, f"enum constraint added: {new['enum']}")
        else:
            removed = [v for v in old["enum"] if v not in new["enum"]]
            added = [v for v in new["enum"] if v not in old["enum"]]
            if removed:
                add(True, f"enum value(s) removed: {removed}")
            if added:
                add(False, f"enum value(s) added: {added}")
    before, after = old["classification"], new["classification"]
    if before != after:
        if after is None:
            add(True, f"PII classification {before!r} removed")
        elif before is None:
            add(False, f"classification {after!r} added")
        else:
            lo, hi = _level(before), _level(after)
            if lo is not None and hi is not None and hi >= lo:
                add(False, f"classification raised from {before!r} to {after!r}")
            else:
                add(True, f"classification lowered from {before!r} to {after!r}")
    if old["pii_tag"] and not new["pii_tag"]:
        add(True, "tag 'pii' removed")
    return changes


_STRICTNESS = {Action.warn: 0, Action.quarantine: 1, Action.fail: 2}
_STOPS = {
    Action.quarantine: "rows that reached silver may now be quarantined",
    Action.fail: "batches that were written may now stop the dataset",
}


def _order(a: Any, b: Any) -> int | None:
    """-1, 0 or 1 comparing two rule bounds (numbers, or ISO dates as text); None if not."""
    x, y = _number(a), _number(b)
    if type(x) is not type(y):
        return None
    return (x > y) - (x < y)


def _bound(key: str, before: Any, after: Any, lower_is_tighter: bool) -> tuple[bool, str] | None:
    """(tighter, reason) for one threshold of a rule; None when it did not change."""
    if before == after:
        return None
    if before is None:
        return True, f"{key} {after} added"
    if after is None:
        return False, f"{key} {before} removed"
    order = _order(after, before)
    if order is None:
        return True, f"{key} changed from {before} to {after}"
    verb = "raised" if order > 0 else "lowered"
    return (order < 0) == lower_is_tighter, f"{key} {verb} from {before} to {after}"


def _threshold_changes(old: Rule, new: Rule) -> list[tuple[bool, str]]:
    """(tighter, reason) for each threshold of a rule that changed between two versions.

    Tighter means a row or batch that passed before may fail now. A change whose effect
    cannot be told (another check, pattern, expression, reference) counts as tighter.
    """
    if old.check is not new.check:
        return [(True, f"check changed from {old.check.value} to {new.check.value}")]
    found: list[tuple[bool, str] | None] = []
    check = new.check
    if check in (Check.range, Check.row_count):
        found.append(_bound("min", old.min, new.min, lower_is_tighter=False))
        found.append(_bound("max", old.max, new.max, lower_is_tighter=True))
        for side, before, after in (
            ("min", old.min_exclusive, new.min_exclusive),
            ("max", old.max_exclusive, new.max_exclusive),
        ):
            if before != after and getattr(old, side) == getattr(new, side):
                found.append((after, f"{side} made {'exclusive' if after else 'inclusive'}"))
    elif check is Check.length:
        found.append(_bound("min_length", old.min_length, new.min_length, False))
        found.append(_bound("max_length", old.max_length, new.max_length, True))
    elif check is Check.null_percentage:
        found.append(_bound("max_percent", old.max_percent, new.max_percent, True))
        found.append(_bound("max_rows", old.max_rows, new.max_rows, True))
    elif check is Check.unique:
        found.append(_bound("max_rows", old.max_rows or 0, new.max_rows or 0, True))
        before, after = set(old.key_columns), set(new.key_columns)
        if before != after:
            tighter = not before < after  # more columns together: fewer duplicates
            found.append((tighter, f"unique on {sorted(after)} instead of {sorted(before)}"))
    elif check is Check.enum:
        removed = [v for v in old.values if v not in new.values]
        added = [v for v in new.values if v not in old.values]
        if removed:
            found.append((True, f"value(s) removed: {removed}"))
        if added:
            found.append((False, f"value(s) added: {added}"))
    elif check is Check.freshness:
        before = duration_seconds(old.max_age or "")
        after = duration_seconds(new.max_age or "")
        if before != after:
            verb = "lowered" if after < before else "raised"
            found.append((after < before, f"max_age {verb} from {old.max_age} to {new.max_age}"))
    for key in ("pattern", "expression", "references"):
        if getattr(old, key) != getattr(new, key):
            found.append(
                (True, f"{key} changed from {getattr(old, key)!r} to {getattr(new, key)!r}")
            )
    return [f for f in found if f is not None]


def _compare_rules(dataset: str, old: dict, new: dict) -> list[Change]:
    """Quality rules added, removed, tightened or loosened between two contract views.

    Breaking: a rule whose action is quarantine or fail made stricter (a threshold tightened,
    its action raised from warn to quarantine or fail), or added on an existing column or
    the dataset. Loosened, removed and warn-only rules are information.
    """
    changes: list[Change] = []
    before, after = old.get("rules", {}), new.get("rules", {})
    for name, (column, rule) in after.items():
        action = rule.effective_action
        prefix = f"quality rule '{name}'"
        if name not in before:
            if action is Action.warn:
                changes.append(Change(dataset, column, False, f"{prefix} added (warn only)"))
            elif column is not None and column not in old["columns"]:
                changes.append(Change(dataset, column, False, f"{prefix} added on a new column"))
            else:
                reason = f"{prefix} added with action {action.value}: {_STOPS[action]}"
                changes.append(Change(dataset, column, True, reason))
            continue
        was = before[name][1]
        if was.effective_action is not action:
            stricter = _STRICTNESS[action] > _STRICTNESS[was.effective_action]
            reason = f"{prefix}: action {was.effective_action.value} → {action.value}"
            if stricter:
                reason += f": {_STOPS[action]}"
            changes.append(Change(dataset, column, stricter, reason))
        for tighter, what in _threshold_changes(was, rule):
            if tighter and action is Action.warn:
                changes.append(Change(dataset, column, False, f"{prefix}: {what} (warn only)"))
            else:
                changes.append(Change(dataset, column, tighter, f"{prefix}: {what}"))
    for name, (column, _rule) in before.items():
        if name not in after:
            changes.append(Change(dataset, column, False, f"quality rule '{name}' removed"))
    if not changes and (
        old["quality"] != new["quality"]
        or any(
            o.get("quality") != new["columns"].get(c, {}).get("quality")
            for c, o in old["columns"].items()
            if c in new["columns"]
        )
    ):
        changes.append(Change(dataset, None, False, "quality entries changed (no rule changed)"))
    return changes


def compare_contracts(old: dict | None, new: dict | None) -> list[Change]:
    """Every change between two versions of one contract file (raw ODCS mappings)."""
    return compare_views(_view(old or {}), _view(new or {}))


def compare_views(before: dict[str, dict], after: dict[str, dict]) -> list[Change]:
    """Every change between two sets of datasets' contract views (see ``_view``)."""
    changes: list[Change] = []
    for dataset in sorted(set(before) | set(after)):
        if dataset not in after:
            changes.append(Change(dataset, None, True, "dataset removed from the contracts"))
            continue
        if dataset not in before:
            changes.append(Change(dataset, None, False, "dataset added"))
            continue
        o, n = before[dataset], after[dataset]
        for name in o["columns"]:
            if name not in n["columns"]:
                changes.append(
                    Change(dataset, name, True, "column removed (a rename is a remove plus an add)")
                )
        for name, column in n["columns"].items():
            if name not in o["columns"]:
                if column["required"]:
                    reason = "column added as required: rows written before it have no value"
                    changes.append(Change(dataset, name, True, reason))
                else:
                    changes.append(Change(dataset, name, False, "column added (optional)"))
                continue
            changes += _compare_column(dataset, name, o["columns"][name], column)
        if o["primary_key"] != n["primary_key"]:
            changes.append(
                Change(
                    dataset,
                    None,
                    True,
                    f"primary key changed from {o['primary_key']} to {n['primary_key']}",
                )
            )
        changes += _compare_rules(dataset, o, n)
        if o["sla"] != n["sla"]:
            changes.append(Change(dataset, None, False, "SLA changed"))
    return changes


def _major(version: str) -> int | None:
    match = re.match(r"^\D*(\d+)", version or "")
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class DatasetReport:
    """The changes to one dataset's contract and whether its version bump allows them."""

    dataset: str
    path: str
    old_version: str | None
    new_version: str | None
    changes: list[Change]

    @property
    def major_bump(self) -> bool:
        a, b = _major(self.old_version or ""), _major(self.new_version or "")
        return a is not None and b is not None and b > a

    @property
    def blocking(self) -> list[Change]:
        if self.major_bump:
            return []
        return [c for c in self.changes if c.breaking]


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise LakelineError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _load_yaml(text: str) -> dict | None:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return raw if isinstance(raw, dict) else None


def _views_at(root: Path, ref: str, folder: str) -> dict[str, tuple[str, dict]]:
    """Dataset → (file, view) for the contracts under ``folder`` at git ``ref``."""
    listing = _git(root, "ls-tree", "-r", "--name-only", ref, "--", folder)
    out = {}
    for path in listing.splitlines():
        if path.endswith((".yml", ".yaml")):
            raw = _load_yaml(_git(root, "show", f"{ref}:{path}")) or {}
            out.update({name: (path, view) for name, view in _view(raw).items()})
    return out


def _views_here(root: Path, folder: str) -> dict[str, tuple[str, dict]]:
    """Dataset → (file, view) for the contracts under ``folder`` in the working tree."""
    out = {}
    base = root / folder
    for path in sorted(base.glob("*.y*ml")) if base.is_dir() else []:
        rel = str(path.relative_to(root))
        raw = _load_yaml(path.read_text())
        if raw is None:
            raise LakelineError(f"{rel}: not a YAML mapping (an ODCS v3 data contract)")
        out.update({name: (rel, view) for name, view in _view(raw).items()})
    return out


def breaking_changes(root: Path, base_ref: str, folder: str) -> list[DatasetReport]:
    """Compare every dataset's contract under ``folder`` at ``base_ref`` with the working tree.

    Contracts are matched by the dataset (schema object) they describe, so moving a
    contract to another file is not a change; a dataset that disappears is.
    """
    top = Path(_git(root.resolve(), "rev-parse", "--show-toplevel").strip())
    rel_folder = str((root / folder).resolve().relative_to(top))
    before, after = _views_at(top, base_ref, rel_folder), _views_here(top, rel_folder)
    reports = []
    for dataset in sorted(set(before) | set(after)):
        old, new = before.get(dataset), after.get(dataset)
        changes = compare_views({dataset: old[1]} if old else {}, {dataset: new[1]} if new else {})
        if changes:
            reports.append(
                DatasetReport(
                    dataset,
                    (new or old)[0],
                    old[1]["version"] if old else None,
                    new[1]["version"] if new else None,
                    changes,
                )
            )
    return reports


def format_reports(reports: list[DatasetReport], base_ref: str) -> tuple[str, int]:
    """The report a data engineer reads in CI, and the number of blocking changes."""
    lines = [f"contracts-check: contracts in the working tree against {base_ref}"]
    blocking = 0
    if not reports:
        lines.append("  no contract changes")
    for report in reports:
        bump = f"version {report.old_version or '-'} → {report.new_version or '-'}"
        lines.append(f"\n{report.dataset} ({report.path}, {bump})")
        for change in report.changes:
            if change.breaking and not report.major_bump:
                label = "BREAKING"
                blocking += 1
            elif change.breaking:
                label = "breaking, allowed by the major version bump"
            else:
                label = "info"
            lines.append(f"  {label:<9} {change.where}: {change.reason}")
    if blocking:
        lines.append(
            f"\n{blocking} breaking change(s). Consumers of these datasets would break. Either "
            "keep the contract compatible (add columns as optional, widen types, loosen "
            "constraints) or bump the contract's major version and tell its consumers."
        )
    return "\n".join(lines), blocking


# --------------------------------------------------------------------------- live schema check


@dataclass(frozen=True)
class Drift:
    """One way the silver table differs from the schema its contract (or metadata) states."""

    column: str
    kind: str  # "missing in table", "not in contract", "type"
    expected: str | None
    actual: str | None

    def __str__(self) -> str:
        if self.kind == "missing in table":
            return f"column '{self.column}' ({self.expected}) is not in the silver table"
        if self.kind == "not in contract":
            return f"silver column '{self.column}' ({self.actual}) is not in the contract"
        return (
            f"column '{self.column}' is {self.actual} in silver but {self.expected} in the contract"
        )


def schema_drift(expected: T.StructType, actual: T.StructType) -> list[Drift]:
    """Differences between the schema silver should have and the table's (by column name)."""
    have = {f.name: f.dataType for f in actual.fields}
    want = {f.name: f.dataType for f in expected.fields}
    drift = []
    for name, kind in want.items():
        if name not in have:
            drift.append(Drift(name, "missing in table", kind.simpleString(), None))
        elif have[name] != kind:
            drift.append(Drift(name, "type", kind.simpleString(), have[name].simpleString()))
    for name, kind in have.items():
        if name not in want:
            drift.append(Drift(name, "not in contract", None, kind.simpleString()))
    return drift


class SchemaDriftError(DataError):
    """The silver table no longer matches its contract, and the policy says stop."""
