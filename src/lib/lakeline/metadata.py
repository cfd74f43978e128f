"""The dataset metadata: one YAML file per dataset, loaded into typed models.

Layout of a metadata folder::

    datasets/<id>.yml   one dataset each (source, load type, columns, keys, owner, tags)
    contracts/<id>.yml  the dataset's ODCS v3 data contract (silver schema, rules, owner, SLA),
                        referred to by the dataset's ``contract:``; see contracts.py
    gold/<name>.sql     one gold table each; refer to other tables as {{ silver.orders }}
                        or {{ gold.dim_customer }}; dependencies come from those references

Every problem in every file is collected and raised together as one ``MetadataError``
naming the file, the dataset and the field.
"""

from __future__ import annotations

import os
import re
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from lakeline.contracts import Contract, load_contract
from lakeline.datatypes import parse_type
from lakeline.errors import MetadataError, Problem
from lakeline.identifiers import IDENTIFIER_PATTERN, check_identifier, is_identifier
from lakeline.quality import Check, Rule, rule_problems

GOLD = "gold table"

# Columns lakeline adds to bronze and silver; a dataset may not declare them.
RESERVED_COLUMNS = ("_run_id", "_source_file", "_ingested_at")


def _identifier(value: str) -> str:
    return check_identifier(value, "name")


def _type(value: str) -> str:
    parse_type(value)
    return value.strip().lower()


Identifier = Annotated[
    str,
    Field(pattern=IDENTIFIER_PATTERN, description="A plain SQL identifier."),
    AfterValidator(_identifier),
]
TypeName = Annotated[
    str,
    Field(description="string, boolean, int, bigint, double, date, timestamp, decimal(p,s), ..."),
    AfterValidator(_type),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class SourceFormat(str, Enum):
    csv = "csv"
    json = "json"
    parquet = "parquet"
    delta = "delta"


class Source(_Model):
    """Where the raw data comes from."""

    format: SourceFormat
    path: str | None = Field(
        default=None,
        description="Folder of files (or a Delta table path), relative to the target's landing "
        "root unless absolute or a URI.",
    )
    table: str | None = Field(
        default=None,
        description="An existing Delta table as schema.table (in the target's catalog) or "
        "catalog.schema.table; for format delta only.",
    )
    options: dict[str, str] = Field(
        default_factory=dict, description="Reader options, passed to Spark as they are."
    )

    @model_validator(mode="after")
    def _one_location(self) -> Source:
        if (self.path is None) == (self.table is None):
            raise ValueError("give exactly one of 'path' or 'table'")
        if self.table is not None:
            if self.format is not SourceFormat.delta:
                raise ValueError("'table' is only for format 'delta'; files take 'path'")
            parts = self.table.split(".")
            if len(parts) not in (2, 3):
                raise ValueError("'table' must be schema.table or catalog.schema.table")
            for part in parts:
                check_identifier(part, "table name part")
        return self


class LoadType(str, Enum):
    full = "full"
    incremental = "incremental"
    cdc = "cdc"
    snapshot = "snapshot"


class Load(_Model):
    """How much of the source each run reads."""

    type: LoadType = LoadType.full
    watermark_column: Identifier | None = Field(
        default=None,
        description="For incremental loads: a column that only grows; a run reads rows past "
        "the last value seen (Delta sources) and records it as the watermark.",
    )

    @model_validator(mode="after")
    def _watermark(self) -> Load:
        if self.type is LoadType.incremental and self.watermark_column is None:
            raise ValueError("an incremental load needs 'watermark_column'")
        if self.type in (LoadType.full, LoadType.snapshot) and self.watermark_column is not None:
            raise ValueError("'watermark_column' only applies to incremental and cdc loads")
        return self


class DeleteMode(str, Enum):
    hard = "hard"
    soft = "soft"


class Cdc(_Model):
    """How to read a change feed (load type ``cdc``) and apply deletes (cdc and snapshot)."""

    operation_column: Identifier | None = Field(
        default=None,
        description="The source column naming each change's operation; required for load type "
        "cdc. It does not reach silver.",
    )
    insert_values: list[str] = Field(default_factory=lambda: ["insert", "I", "c"])
    update_values: list[str] = Field(default_factory=lambda: ["update", "U", "u"])
    delete_values: list[str] = Field(default_factory=lambda: ["delete", "D", "d"])
    sequence_by: list[Identifier] = Field(
        default_factory=list,
        description="Columns that order the changes of one key, most significant first; the "
        "latest wins. SCD2 validity is the first one's value (event time, not processing "
        "time). Required for load type cdc; snapshots use the snapshot's ingestion time.",
    )
    delete_mode: DeleteMode = Field(
        default=DeleteMode.hard,
        description="hard: delete the silver row; soft: keep it with deleted_column = true.",
    )
    deleted_column: Identifier = Field(
        default="_is_deleted", description="The soft-delete flag column (delete_mode soft)."
    )
    ignore_null_updates: bool = Field(
        default=False,
        description="Updates leave a column as it is when the change carries null for it.",
    )


class Scd(_Model):
    """Slowly changing dimension type of the silver table, and its validity column names."""

    type: Annotated[int, Field(ge=1, le=2)] = 1
    valid_from_column: Identifier = "_valid_from"
    valid_to_column: Identifier = "_valid_to"
    current_column: Identifier = "_is_current"
    track_history: list[Identifier] | None = Field(
        default=None,
        description="SCD2: only a change to one of these columns opens a new version; a "
        "change to other columns updates the version it falls in (DLT's "
        "track_history_column_list). Default: every change opens a new version.",
    )
    track_history_except: list[Identifier] | None = Field(
        default=None,
        description="SCD2: every column except these (and the key and sequence columns) opens "
        "a new version when it changes; a change to these updates the version in place "
        "(DLT's track_history_except_column_list).",
    )


class SchemaEvolution(str, Enum):
    """What file ingestion does with columns the stored schema lacks (Auto Loader's modes)."""

    addNewColumns = "addNewColumns"
    rescue = "rescue"
    failOnNewColumns = "failOnNewColumns"
    none = "none"


class Column(_Model):
    """A silver column: its name, type and where it comes from."""

    name: Identifier
    type: TypeName | None = Field(
        default=None,
        description="The silver type. May be left out when the dataset has a contract, which "
        "then gives it; when both give it they must agree.",
    )
    source: Identifier | None = Field(
        default=None, description="The column's name in the source, when it differs."
    )
    nullable: bool = True
    format: str | None = Field(
        default=None, description="Parse pattern for date / timestamp columns, e.g. dd/MM/yyyy."
    )
    description: str = ""

    @property
    def source_name(self) -> str:
        return self.source or self.name


class SchemaDriftPolicy(str, Enum):
    fail = "fail"
    evolve = "evolve"


class Dataset(_Model):
    """One dataset, described once: the source, how it loads, and its silver shape."""

    id: Identifier
    description: str = ""
    owner: str = Field(min_length=1, description="Team or person accountable for the data.")
    tags: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    source: Source
    load: Load = Field(default_factory=Load)
    columns: list[Column] = Field(min_length=1)
    primary_key: list[Identifier] = Field(min_length=1)
    sequence_column: Identifier | None = Field(
        default=None,
        description="Orders versions of one key: the latest wins in dedup and merge.",
    )
    contract: str | None = Field(
        default=None,
        description="The dataset's ODCS v3 data contract, relative to the metadata folder "
        "(e.g. contracts/orders.yml): the source of its silver schema and quality rules.",
    )
    on_schema_drift: SchemaDriftPolicy = Field(
        default=SchemaDriftPolicy.fail,
        description="When the silver table no longer matches the contract: fail (stop before "
        "writing) or evolve (add the columns the contract added; anything else still fails).",
    )
    quality: list[Rule] = Field(
        default_factory=list,
        description="Quality rules beyond the contract's, evaluated on every silver batch.",
    )
    cdc: Cdc | None = Field(
        default=None,
        description="Change feed settings: required for load type cdc, optional for snapshot.",
    )
    scd: Scd = Field(default_factory=Scd, description="SCD type 1 (default) or 2 in silver.")
    schema_evolution: SchemaEvolution = Field(
        default=SchemaEvolution.none,
        description="File sources: addNewColumns, rescue (unknown fields and values that do "
        "not fit go to _rescued_data), failOnNewColumns or none (new columns are ignored).",
    )
    deletion_vectors: bool = Field(
        default=True,
        description="Create silver with Delta deletion vectors: a MERGE marks the rows it "
        "replaces instead of rewriting every file they sit in (Databricks' default for new "
        "tables). Readers need Delta Lake 2.3+ / Databricks Runtime 12.2+; set false for "
        "older ones. Applies when the silver table is created.",
    )
    # Filled in by load_project from `contract`; travels with the dataset to the control table.
    compiled_contract: SkipJsonSchema[Contract | None] = None

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Dataset:
        if not (info.context or {}).get("defer_cross_checks"):
            found = self.cross_field_problems()
            if found:
                raise ValueError("; ".join(f"{field}: {message}" for field, message in found))
        return self

    def cross_field_problems(self) -> list[tuple[str, str]]:
        """Checks that span several fields, as (field, message) pairs."""
        found: list[tuple[str, str]] = []
        names = [c.name for c in self.columns]
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name.lower() in seen:
                found.append((f"columns.{i}.name", f"column '{name}' is declared twice"))
            seen.add(name.lower())
            if name in RESERVED_COLUMNS:
                found.append((f"columns.{i}.name", f"'{name}' is reserved for lineage columns"))
        for i, key in enumerate(self.primary_key):
            if key not in names:
                found.append((f"primary_key.{i}", f"column '{key}' is not among the columns"))
        untyped = [i for i, c in enumerate(self.columns) if c.type is None]
        if untyped and self.contract is None:
            for i in untyped:
                found.append((f"columns.{i}.type", "give the type (or a contract that gives it)"))
        if not untyped:
            index = {r.name: i for i, r in enumerate(self.quality)}
            for rule, message in rule_problems(self, self.quality):
                found.append((f"quality.{index.get(rule, 0)}", message))
        if self.sequence_column and self.sequence_column not in names:
            found.append(
                ("sequence_column", f"column '{self.sequence_column}' is not among the columns")
            )
        wm = self.load.watermark_column
        if wm and wm not in names:
            found.append(("load.watermark_column", f"column '{wm}' is not among the columns"))
        found += self._change_problems(names)
        return found

    def _change_problems(self, names: list[str]) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        cdc = self.cdc
        if self.load.type is LoadType.cdc:
            if cdc is None or cdc.operation_column is None:
                found.append(("cdc.operation_column", "a cdc load needs the operation column"))
            if cdc is None or not cdc.sequence_by:
                found.append(("cdc.sequence_by", "a cdc load needs at least one sequence column"))
        elif cdc is not None and self.load.type is not LoadType.snapshot:
            found.append(("cdc", "only applies to load types cdc and snapshot"))
        if cdc is not None:
            for i, column in enumerate(cdc.sequence_by):
                if column not in names:
                    found.append((f"cdc.sequence_by.{i}", f"column '{column}' is not a column"))
            if cdc.operation_column in names:
                found.append(("cdc.operation_column", "the operation column cannot reach silver"))
            values = [*cdc.insert_values, *cdc.update_values, *cdc.delete_values]
            if len(values) != len(set(values)):
                found.append(("cdc", "an operation value is listed for two operations"))
        if self.scd.type == 2 and self.load.type not in (LoadType.cdc, LoadType.snapshot):
            found.append(("scd.type", "SCD type 2 needs load type cdc or snapshot"))
        if self.scd.type == 2 and cdc is not None and cdc.delete_mode is DeleteMode.soft:
            found.append(
                (
                    "cdc.delete_mode",
                    "SCD2 closes the current version on a delete; soft deletes are for SCD1",
                )
            )
        found += self._tracking_problems(names)
        added = list(self.added_silver_columns())
        lowered = {n.lower() for n in names}
        for name in added:
            if name.lower() in lowered:
                found.append(("scd", f"'{name}' clashes with a column; rename it in scd/cdc"))
        if len({n.lower() for n in added}) != len(added):
            found.append(("scd", "the validity and flag column names must differ"))
        return found

    def _tracking_problems(self, names: list[str]) -> list[tuple[str, str]]:
        scd = self.scd
        found: list[tuple[str, str]] = []
        given = [
            (field, listed)
            for field, listed in (
                ("track_history", scd.track_history),
                ("track_history_except", scd.track_history_except),
            )
            if listed is not None
        ]
        if len(given) == 2:
            found.append(("scd", "give either 'track_history' or 'track_history_except'"))
        sequence = set(self.cdc.sequence_by) if self.cdc else set()
        for field, listed in given:
            if scd.type != 2:
                found.append((f"scd.{field}", "only applies to SCD type 2"))
            if field == "track_history" and not listed:
                found.append((f"scd.{field}", "list at least one column (or leave it out)"))
            for i, column in enumerate(listed):
                where = f"scd.{field}.{i}"
                if column not in names:
                    found.append((where, f"column '{column}' is not among the columns"))
                elif column in self.primary_key:
                    found.append((where, f"'{column}' is a key column; keys are never tracked"))
                elif column in sequence:
                    found.append(
                        (where, f"'{column}' is a sequence column; it changes with every event")
                    )
        return found

    def tracked_columns(self) -> list[str] | None:
        """SCD2 columns whose change opens a new version; None when every change does."""
        scd = self.scd
        if scd.track_history is not None:
            return list(scd.track_history)
        if scd.track_history_except is None:
            return None
        skipped = {*self.primary_key, *scd.track_history_except}
        skipped |= set(self.cdc.sequence_by) if self.cdc else set()
        return [c.name for c in self.columns if c.name not in skipped]

    def added_silver_columns(self) -> dict[str, str]:
        """Columns lakeline adds to silver for SCD2 validity and soft deletes: name -> type."""
        added: dict[str, str] = {}
        if self.scd.type == 2:
            from_type = "timestamp"
            if self.load.type is LoadType.cdc and self.cdc and self.cdc.sequence_by:
                first = self.cdc.sequence_by[0]
                from_type = next((c.type for c in self.columns if c.name == first), None) or ""
            added[self.scd.valid_from_column] = from_type
            added[self.scd.valid_to_column] = from_type
            added[self.scd.current_column] = "boolean"
        if self.cdc is not None and self.cdc.delete_mode is DeleteMode.soft:
            added[self.cdc.deleted_column] = "boolean"
        return added

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


_REF = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_REF_BODY = re.compile(r"^(bronze|silver|gold)\.([A-Za-z_][A-Za-z0-9_]*)$")


class GoldTable(BaseModel):
    """A gold table defined by a SQL SELECT over other tables."""

    model_config = ConfigDict(frozen=True)

    name: str
    file: str
    sql: str
    refs: tuple[tuple[str, str], ...]  # (layer, name) in order of appearance

    @property
    def depends_on(self) -> list[str]:
        return sorted({name for layer, name in self.refs if layer == "gold"})


class Project(BaseModel):
    """Everything in one metadata folder, validated as a whole."""

    model_config = ConfigDict(frozen=True)

    root: str
    datasets: dict[str, Dataset]
    dataset_files: dict[str, str]
    gold: dict[str, GoldTable]

    def gold_order(self) -> list[GoldTable]:
        """Gold tables in dependency order (dependencies first, then by name)."""
        done: list[str] = []
        pending = dict(self.gold)
        while pending:
            ready = sorted(n for n, g in pending.items() if all(d in done for d in g.depends_on))
            if not ready:  # pragma: no cover - cycles are rejected at load time
                raise MetadataError([Problem(self.root, None, None, "gold dependency cycle")])
            for name in ready:
                done.append(name)
                del pending[name]
        return [self.gold[n] for n in done]


_FRIENDLY = {
    "extra_forbidden": "unknown key; check the spelling against the dataset JSON Schema",
    "missing": "required field is missing",
}


def _problems_from(err: ValidationError, file: str, dataset: str | None) -> list[Problem]:
    problems = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or None
        kind = e["type"]
        if kind in _FRIENDLY:
            message = _FRIENDLY[kind]
        elif kind == "string_pattern_mismatch":
            message = (
                f"{e.get('input')!r} is not a plain identifier (letters, digits and '_', "
                "starting with a letter or '_'); names reach SQL and must be plain"
            )
        elif kind == "enum":
            expected = e.get("ctx", {}).get("expected", "")
            message = f"unknown value {e.get('input')!r}; expected {expected}"
        else:
            message = e["msg"].removeprefix("Value error, ")
        problems.append(Problem(file, dataset, field, message))
    return problems


def _with_contract(dataset: Dataset, root: Path, rel: str) -> tuple[Dataset | None, list[Problem]]:
    """The dataset with its contract compiled in: silver columns and types from the contract.

    A conflict between the two (a column, type, nullability, key or owner that differ) is
    a problem naming both files.
    """
    contract_path = root / (dataset.contract or "")
    contract_rel = os.path.relpath(contract_path, root.parent)
    contract, problems = load_contract(contract_path, contract_rel, dataset.id)
    if contract is None:
        if problems and problems[0].message == "contract file not found":
            problems = [Problem(rel, dataset.id, "contract", f"{contract_rel} does not exist")]
        return None, problems
    found: list[Problem] = []

    def conflict(field: str, message: str) -> None:
        found.append(Problem(rel, dataset.id, field, f"{message} (contract {contract_rel})"))

    declared = {c.name: c for c in dataset.columns}
    for i, column in enumerate(dataset.columns):
        agreed = contract.column(column.name)
        if agreed is None:
            conflict(f"columns.{i}.name", f"column '{column.name}' is not in the contract")
            continue
        if column.type is not None and parse_type(column.type) != parse_type(agreed.type):
            conflict(
                f"columns.{i}.type",
                f"type {column.type} differs from the contract's physicalType {agreed.type}",
            )
        if "nullable" in column.model_fields_set and column.nullable == agreed.required:
            conflict(
                f"columns.{i}.nullable",
                f"nullable: {str(column.nullable).lower()} contradicts the contract's "
                f"required: {str(agreed.required).lower()}",
            )
    if list(dataset.primary_key) != contract.primary_key:
        conflict(
            "primary_key",
            f"primary key {dataset.primary_key} differs from the contract's {contract.primary_key}",
        )
    if contract.owner and contract.owner != dataset.owner:
        conflict(
            "owner", f"owner '{dataset.owner}' differs from the contract's team '{contract.owner}'"
        )
    if found:
        return None, found
    columns = []
    for agreed in contract.columns:
        column = declared.get(agreed.name)
        spec = column.model_dump(exclude_unset=True) if column else {"name": agreed.name}
        spec.update(type=agreed.type, nullable=not agreed.required)
        if not spec.get("description") and agreed.description:
            spec["description"] = agreed.description
        columns.append(spec)
    spec = dataset.model_dump(exclude_unset=True)
    spec.update(columns=columns, compiled_contract=contract)
    try:
        return Dataset.model_validate(spec, context={"defer_cross_checks": True}), []
    except ValidationError as err:
        return None, _problems_from(err, rel, dataset.id)


def _load_dataset(path: Path, rel: str) -> tuple[Dataset | None, str | None, list[Problem]]:
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        return None, None, [Problem(rel, None, None, f"not valid YAML: {exc}")]
    if not isinstance(raw, dict):
        return None, None, [Problem(rel, None, None, "expected a mapping of dataset fields")]
    dataset_id = raw.get("id")
    if not (isinstance(dataset_id, str) and is_identifier(dataset_id)):
        dataset_id = path.stem
    if "compiled_contract" in raw:
        problem = "set by lakeline from 'contract'; refer to the contract file instead"
        return None, dataset_id, [Problem(rel, dataset_id, "compiled_contract", problem)]
    try:
        dataset = Dataset.model_validate(raw, context={"defer_cross_checks": True})
    except ValidationError as err:
        return None, dataset_id, _problems_from(err, rel, dataset_id)
    if dataset.contract is not None:
        dataset, found = _with_contract(dataset, path.parent.parent, rel)
        if dataset is None:
            return None, dataset_id, found
    found = [Problem(rel, dataset_id, f, m) for f, m in dataset.cross_field_problems()]
    contract = dataset.compiled_contract
    if contract is not None and not any(c.type is None for c in dataset.columns):
        for name, message in rule_problems(dataset, contract.rules):
            found.append(Problem(contract.file, dataset_id, f"rule {name}", message))
    return (None if found else dataset), dataset_id, found


def _load_gold(path: Path, rel: str) -> tuple[GoldTable | None, list[Problem]]:
    name = path.stem
    problems = []
    try:
        check_identifier(name, "gold table name (from the file name)")
    except ValueError as exc:
        problems.append(Problem(rel, name, "name", str(exc), GOLD))
    sql = path.read_text()
    refs = []
    for match in _REF.finditer(sql):
        body = _REF_BODY.match(match.group(1))
        if body is None:
            problems.append(
                Problem(
                    rel,
                    name,
                    "sql",
                    f"cannot resolve reference {match.group(0)!r}; write "
                    "{{ silver.<dataset> }}, {{ bronze.<dataset> }} or {{ gold.<table> }}",
                    GOLD,
                )
            )
        else:
            refs.append((body.group(1), body.group(2)))
    if not sql.strip():
        problems.append(Problem(rel, name, "sql", "the file is empty", GOLD))
    if problems:
        return None, problems
    return GoldTable(name=name, file=rel, sql=sql, refs=tuple(refs)), []


def _reference_problems(datasets: dict[str, Dataset], files: dict[str, str]) -> list[Problem]:
    """Referential-integrity rules must point at a column of another known dataset."""
    problems = []
    for dataset in datasets.values():
        contract_rules = dataset.compiled_contract.rules if dataset.compiled_contract else []
        for rule in [*contract_rules, *dataset.quality]:
            if rule.check is not Check.references:
                continue
            target, column = (rule.references or ".").split(".")
            other = datasets.get(target)
            if other is None or column not in {c.name for c in other.columns}:
                problems.append(
                    Problem(
                        files[dataset.id],
                        dataset.id,
                        f"rule {rule.name}",
                        f"refers to {rule.references}, which is not a column of a known dataset",
                    )
                )
    return problems


def _find_cycle(gold: dict[str, GoldTable]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in gold[node].depends_on:
            if dep not in gold:
                continue
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for name in sorted(gold):
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


def _display_path(path: Path, root: Path) -> str:
    """The path as the user knows it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.relative_to(root.parent))


def load_project(root: str | Path) -> Project:
    """Load and validate every dataset and gold table under ``root``.

    Raises MetadataError listing every problem in every file at once.
    """
    root = Path(root)
    problems: list[Problem] = []
    datasets: dict[str, Dataset] = {}
    files: dict[str, str] = {}
    if not (root / "datasets").is_dir():
        raise MetadataError([Problem(str(root), None, None, "no 'datasets' folder here")])

    for path in sorted((root / "datasets").glob("*.y*ml")):
        rel = _display_path(path, root)
        dataset, dataset_id, found = _load_dataset(path, rel)
        problems.extend(found)
        if dataset is None:
            continue
        if dataset.id in datasets:
            problems.append(
                Problem(
                    rel,
                    dataset.id,
                    "id",
                    f"duplicate dataset id; also defined in {files[dataset.id]}",
                )
            )
            continue
        datasets[dataset.id] = dataset
        files[dataset.id] = rel

    problems += _reference_problems(datasets, files)

    gold: dict[str, GoldTable] = {}
    for path in sorted((root / "gold").glob("*.sql")) if (root / "gold").is_dir() else []:
        rel = _display_path(path, root)
        table, found = _load_gold(path, rel)
        problems.extend(found)
        if table is not None:
            gold[table.name] = table

    for table in gold.values():
        for layer, name in table.refs:
            known = gold if layer == "gold" else datasets
            if name not in known:
                what = "gold table" if layer == "gold" else "dataset"
                problems.append(
                    Problem(
                        table.file,
                        table.name,
                        "sql",
                        f"refers to {{{{ {layer}.{name} }}}} but no {what} '{name}' exists",
                        GOLD,
                    )
                )
    cycle = _find_cycle(gold)
    if cycle:
        problems.append(
            Problem(
                gold[cycle[0]].file,
                cycle[0],
                "sql",
                "gold tables depend on each other in a cycle: " + " -> ".join(cycle),
                GOLD,
            )
        )
    if problems:
        raise MetadataError(problems)
    return Project(root=str(root), datasets=datasets, dataset_files=files, gold=gold)


def dataset_json_schema() -> dict[str, Any]:
    """JSON Schema of a dataset YAML file, for editors (committed under docs/schema/)."""
    schema = Dataset.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "lakeline dataset"
    return schema
