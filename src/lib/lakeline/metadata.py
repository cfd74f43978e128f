"""The dataset metadata: one YAML file per dataset, loaded into typed models.

Layout of a metadata folder::

    datasets/<id>.yml   one dataset each (source, load type, columns, keys, owner, tags)
    gold/<name>.sql     one gold table each; refer to other tables as {{ silver.orders }}
                        or {{ gold.dim_customer }}; dependencies come from those references

Every problem in every file is collected and raised together as one ``MetadataError``
naming the file, the dataset and the field.
"""

from __future__ import annotations

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

from lakeline.datatypes import parse_type
from lakeline.errors import MetadataError, Problem
from lakeline.identifiers import IDENTIFIER_PATTERN, check_identifier, is_identifier

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
        if self.type is LoadType.full and self.watermark_column is not None:
            raise ValueError("'watermark_column' only applies to incremental loads")
        return self


class Column(_Model):
    """A silver column: its name, type and where it comes from."""

    name: Identifier
    type: TypeName
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
        if self.sequence_column and self.sequence_column not in names:
            found.append(
                ("sequence_column", f"column '{self.sequence_column}' is not among the columns")
            )
        wm = self.load.watermark_column
        if wm and wm not in names:
            found.append(("load.watermark_column", f"column '{wm}' is not among the columns"))
        return found

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
    try:
        dataset = Dataset.model_validate(raw, context={"defer_cross_checks": True})
    except ValidationError as err:
        return None, dataset_id, _problems_from(err, rel, dataset_id)
    found = [Problem(rel, dataset_id, f, m) for f, m in dataset.cross_field_problems()]
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
