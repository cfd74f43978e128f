"""The quality engine: rules, evaluated in one pass per batch, with warn / quarantine / fail.

Rules come from three places, in this order:

1. built in, from the dataset's columns: a primary-key column is never null, a required
   column is never null, a value fits its declared type;
2. the dataset's contract (``contracts.py``): ``required``, min / max, enum, pattern and
   length constraints, ``unique``, quality entries, the freshness SLA, relationships;
3. the dataset metadata's own ``quality:`` list.

Every rule is written as the condition a *valid* row meets. A row fails a rule when the
condition is false **or NULL**: NULL never passes silently. Constraint rules (range, enum,
regex, length) accept a NULL value, because whether a value may be missing is the job of
``not_null`` / ``required``; a custom SQL predicate gets no such help.

Row-level rules are compiled into boolean columns and evaluated in one ``select`` over the
batch; a row's failures are gathered into arrays (``_reasons`` for the messages of the
quarantine rules it failed, ``_failed_rules`` for their names), so a row failing several
rules carries all of them. Dataset-level rules (row count, null percentage, uniqueness,
freshness, referential integrity) and the per-rule counters come from one aggregation over
that same (uncached) frame.

Actions: ``warn`` keeps the row and counts it; ``quarantine`` (row rules only) sends the row
to the quarantine table; ``fail`` stops the dataset before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pyspark.sql import DataFrame, Observation, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeline.datatypes import parse_type
from lakeline.environment import columns_ddl
from lakeline.errors import DataError, LakelineError
from lakeline.identifiers import IDENTIFIER_PATTERN, quote
from lakeline.overlap import alongside

if TYPE_CHECKING:
    from lakeline.environment import Environment
    from lakeline.metadata import Column, Dataset

METRICS_TABLE = "dq_metrics"
RULE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$"

# Columns of the frame ``evaluate`` returns, besides the typed silver columns.
RAW = "__raw"
REASONS = "_reasons"
FAILED_RULES = "_failed_rules"
QUARANTINED = "__quarantined"
WARNED = "__warned"
RANK = "__rank"
LINEAGE = ("_source_file", "_ingested_at")


class QualityError(DataError):
    """A rule whose action is ``fail`` failed: nothing of the batch was written."""


class Action(str, Enum):
    warn = "warn"
    quarantine = "quarantine"
    fail = "fail"


class Check(str, Enum):
    # row level
    not_null = "not_null"
    range = "range"
    enum = "enum"
    regex = "regex"
    length = "length"
    cast = "cast"
    sql = "sql"
    # dataset level
    row_count = "row_count"
    null_percentage = "null_percentage"
    unique = "unique"
    freshness = "freshness"
    references = "references"


ROW_CHECKS = frozenset(
    {Check.not_null, Check.range, Check.enum, Check.regex, Check.length, Check.cast, Check.sql}
)

# Which optional fields each kind of rule takes, and which of them it needs.
_FIELDS: dict[Check, tuple[set[str], list[set[str]]]] = {
    Check.not_null: ({"column"}, [{"column"}]),
    Check.cast: ({"column"}, [{"column"}]),
    Check.range: (
        {"column", "min", "max", "min_exclusive", "max_exclusive"},
        [{"column"}, {"min", "max"}],
    ),
    Check.enum: ({"column", "values"}, [{"column"}, {"values"}]),
    Check.regex: ({"column", "pattern"}, [{"column"}, {"pattern"}]),
    Check.length: (
        {"column", "min_length", "max_length"},
        [{"column"}, {"min_length", "max_length"}],
    ),
    Check.sql: ({"expression"}, [{"expression"}]),
    Check.row_count: ({"min", "max"}, [{"min", "max"}]),
    Check.null_percentage: (
        {"column", "max_percent", "max_rows"},
        [{"column"}, {"max_percent", "max_rows"}],
    ),
    Check.unique: ({"column", "columns", "max_rows"}, [{"column", "columns"}]),
    Check.freshness: ({"column", "max_age"}, [{"column"}, {"max_age"}]),
    Check.references: ({"column", "references"}, [{"column"}, {"references"}]),
}
_OPTIONAL = (
    "column",
    "columns",
    "min",
    "max",
    "min_exclusive",
    "max_exclusive",
    "values",
    "pattern",
    "min_length",
    "max_length",
    "expression",
    "max_percent",
    "max_rows",
    "max_age",
    "references",
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_REFERENCE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)$")

Scalar = str | bool | int | float
Bound = int | float | str


def duration_seconds(text: str) -> float:
    """Seconds in a duration such as ``90m``, ``26h`` or ``7d``; raises ValueError."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 90m, 26h or 7d")
    return float(match.group(1)) * _SECONDS[match.group(2)]


class Rule(BaseModel):
    """One quality rule: what a valid row (or batch) looks like, and what to do if not."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    name: Annotated[
        str,
        Field(
            pattern=RULE_NAME_PATTERN,
            description="Unique within the dataset; recorded in quarantine and metrics.",
        ),
    ]
    check: Check = Field(
        description="Row level: not_null, range, enum, regex, length, sql (a predicate a valid "
        "row satisfies). Dataset level: row_count, null_percentage, unique, freshness, "
        "references."
    )
    action: Action | None = Field(
        default=None,
        description="warn, quarantine (row rules only) or fail. Default: quarantine for row "
        "rules, fail for dataset rules.",
    )
    description: str = ""
    column: Annotated[str, Field(pattern=IDENTIFIER_PATTERN)] | None = None
    columns: list[Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]] = Field(
        default_factory=list, description="unique: several columns that together are unique."
    )
    min: Bound | None = Field(default=None, description="range: lowest valid value; row_count.")
    max: Bound | None = Field(default=None, description="range: highest valid value; row_count.")
    min_exclusive: bool = False
    max_exclusive: bool = False
    values: list[Scalar] = Field(default_factory=list, description="enum: the valid values.")
    pattern: str | None = Field(default=None, description="regex: Java regular expression.")
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=0)
    expression: str | None = Field(
        default=None,
        description="sql: a Spark SQL boolean expression over the silver columns, true for a "
        "valid row; NULL counts as a failure.",
    )
    max_percent: float | None = Field(default=None, ge=0, le=100)
    max_rows: int | None = Field(default=None, ge=0)
    max_age: str | None = Field(
        default=None, description="freshness: newest value at most this old, e.g. 26h or 7d."
    )
    references: str | None = Field(
        default=None, description="references: <dataset>.<column> that every value must exist in."
    )
    message: str | None = Field(
        default=None,
        description="Text recorded as the quarantine reason; generated when absent.",
    )

    @model_validator(mode="after")
    def _fields_fit_the_check(self) -> Rule:
        allowed, needed = _FIELDS[self.check]
        given = {f for f in _OPTIONAL if f in self.model_fields_set and _is_set(getattr(self, f))}
        extra = sorted(given - allowed)
        if extra:
            raise ValueError(
                f"{', '.join(repr(e) for e in extra)} does not apply to a {self.check.value} rule"
            )
        for group in needed:
            if not group & given:
                raise ValueError(
                    f"a {self.check.value} rule needs "
                    + " or ".join(repr(g) for g in sorted(group))
                )
        if self.check is Check.unique and self.column and self.columns:
            raise ValueError("give 'column' or 'columns', not both")
        if self.action is Action.quarantine and not self.row_level:
            raise ValueError(
                f"a {self.check.value} rule is checked on the whole batch; its action is warn "
                "or fail (only row rules quarantine)"
            )
        if self.check is Check.freshness:
            duration_seconds(self.max_age or "")
        if self.check is Check.references and not _REFERENCE.match(self.references or ""):
            raise ValueError(f"references {self.references!r} is not <dataset>.<column>")
        if self.check is Check.row_count:
            for bound in (self.min, self.max):
                if bound is not None and not isinstance(bound, int):
                    raise ValueError("row_count bounds are whole numbers of rows")
        if self.check is Check.regex:
            try:
                re.compile(self.pattern or "")
            except re.error as exc:
                raise ValueError(
                    f"pattern {self.pattern!r} is not a regular expression: {exc}"
                ) from None
        return self

    @property
    def row_level(self) -> bool:
        return self.check in ROW_CHECKS

    @property
    def effective_action(self) -> Action:
        if self.action is not None:
            return self.action
        return Action.quarantine if self.row_level else Action.fail

    @property
    def key_columns(self) -> list[str]:
        return list(self.columns) or ([self.column] if self.column else [])

    def reason(self) -> str:
        """The human-readable reason recorded for a row that fails this rule."""
        return self.message or f"rule '{self.name}' failed: {self.describe()}"

    def describe(self) -> str:
        c = self.column
        if self.check is Check.not_null:
            return f"{c} is not null"
        if self.check is Check.cast:
            return f"{c} fits its declared type"
        if self.check is Check.range:
            parts = []
            if self.min is not None:
                parts.append(f"{c} {'>' if self.min_exclusive else '>='} {self.min}")
            if self.max is not None:
                parts.append(f"{c} {'<' if self.max_exclusive else '<='} {self.max}")
            return " and ".join(parts)
        if self.check is Check.enum:
            return f"{c} in ({', '.join(map(str, self.values))})"
        if self.check is Check.regex:
            return f"{c} matches {self.pattern}"
        if self.check is Check.length:
            return f"length of {c} in [{self.min_length or 0}, {self.max_length or '∞'}]"
        if self.check is Check.sql:
            return str(self.expression)
        if self.check is Check.row_count:
            return f"row count in [{self.min if self.min is not None else 0}, {self.max or '∞'}]"
        if self.check is Check.null_percentage:
            limits = []
            if self.max_percent is not None:
                limits.append(f"at most {self.max_percent}% null")
            if self.max_rows is not None:
                limits.append(f"at most {self.max_rows} null rows")
            return f"{c}: {' and '.join(limits)}"
        if self.check is Check.unique:
            return f"({', '.join(self.key_columns)}) unique"
        if self.check is Check.freshness:
            return f"newest {c} at most {self.max_age} old"
        return f"every {c} exists in {self.references}"


def _is_set(value: Any) -> bool:
    if value is None or value is False:
        return False
    return not (isinstance(value, list | str) and not value)


# --------------------------------------------------------------------------- rule sets


def builtin_rules(dataset: Dataset) -> list[Rule]:
    """Rules every dataset has: keys and required columns present, values fit their type.

    Their messages are the quarantine reasons lakeline has always written.
    """
    rules = []
    for column in dataset.columns:
        if column.name in dataset.primary_key:
            rules.append(
                Rule(
                    name=f"{column.name}.primary_key_not_null",
                    check=Check.not_null,
                    column=column.name,
                    message=f"primary key column '{column.name}' is null",
                )
            )
        elif not column.nullable:
            rules.append(
                Rule(
                    name=f"{column.name}.required",
                    check=Check.not_null,
                    column=column.name,
                    message=f"required column '{column.name}' is null",
                )
            )
        rules.append(
            Rule(
                name=f"{column.name}.type",
                check=Check.cast,
                column=column.name,
                message=f"column '{column.name}': value does not fit type {column.type}",
            )
        )
    return rules


def dataset_rules(dataset: Dataset) -> list[Rule]:
    """Every rule of a dataset: built in, then from its contract, then from its metadata."""
    contract = getattr(dataset, "compiled_contract", None)
    from_contract = list(contract.rules) if contract is not None else []
    return [*builtin_rules(dataset), *from_contract, *getattr(dataset, "quality", [])]


def rule_problems(dataset: Dataset, rules: Iterable[Rule]) -> list[tuple[str, str]]:
    """(rule name, message) for rules that do not fit the dataset's columns."""
    names = {c.name: c for c in dataset.columns}
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            found.append((rule.name, f"rule name '{rule.name}' is used twice"))
        seen.add(rule.name)
        for col in rule.key_columns:
            if col not in names:
                found.append((rule.name, f"column '{col}' is not among the dataset's columns"))
        if rule.check is Check.range and rule.column in names:
            for bound in (rule.min, rule.max):
                problem = literal_problem(bound, names[rule.column].type)
                if problem:
                    found.append((rule.name, problem))
        if rule.check is Check.enum and rule.column in names:
            for value in rule.values:
                problem = literal_problem(value, names[rule.column].type)
                if problem:
                    found.append((rule.name, problem))
        if rule.check is Check.freshness and rule.column in names:
            kind = parse_type(names[rule.column].type)
            if not isinstance(kind, T.DateType | T.TimestampType):
                found.append((rule.name, f"freshness needs a date or timestamp column, not {kind}"))
    return found


def literal_problem(value: Any, type_name: str) -> str | None:
    """Why ``value`` cannot be a value of ``type_name``, or None when it can."""
    if value is None:
        return None
    kind = parse_type(type_name)
    try:
        if isinstance(kind, T.DecimalType | T.FloatType | T.DoubleType | T.IntegralType):
            if isinstance(value, bool):
                raise ValueError
            number = Decimal(str(value))
            if isinstance(kind, T.IntegralType) and number != number.to_integral_value():
                raise ValueError
        elif isinstance(kind, T.TimestampType):
            datetime.fromisoformat(str(value))
        elif isinstance(kind, T.DateType):
            date.fromisoformat(str(value))
        elif isinstance(kind, T.BooleanType) and not isinstance(value, bool):
            raise ValueError
    except (ValueError, InvalidOperation):
        return f"{value!r} is not a valid {type_name} value"
    return None


def _literal(value: Any, kind: T.DataType) -> F.Column:
    """A typed literal: a value from metadata never becomes SQL text."""
    if isinstance(kind, T.DecimalType) and not isinstance(value, bool):
        value = Decimal(str(value))
    return F.lit(value).cast(kind)


# --------------------------------------------------------------------------- evaluation


def _typed(column: Column) -> F.Column:
    """The declared type of a raw column; null when the value does not fit."""
    raw = F.col(quote(column.source_name))
    kind = parse_type(column.type)
    if column.format and isinstance(kind, T.DateType | T.TimestampType):
        parsed = F.try_to_timestamp(raw.cast("string"), F.lit(column.format))
        return parsed.cast(kind)
    if isinstance(kind, T.StringType):
        return raw.cast(kind)
    # try_cast: null instead of an error (or a silent wrap) for values that do not fit.
    return F.expr(f"try_cast({quote(column.source_name)} AS {kind.simpleString()})")


def _valid(rule: Rule, dataset: Dataset) -> F.Column:
    """The condition a valid row meets (may be NULL; the caller treats NULL as failure)."""
    if rule.check is Check.sql:
        return F.expr(rule.expression or "")
    column = dataset.column(rule.column or "")
    typed = F.col(quote(column.name))
    raw = F.col(RAW).getField(column.source_name)
    kind = parse_type(column.type)
    if rule.check is Check.not_null:
        return raw.isNotNull()
    if rule.check is Check.cast:
        return raw.isNull() | typed.isNotNull()
    if rule.check is Check.range:
        conditions = []
        if rule.min is not None:
            low = _literal(rule.min, kind)
            conditions.append(typed > low if rule.min_exclusive else typed >= low)
        if rule.max is not None:
            high = _literal(rule.max, kind)
            conditions.append(typed < high if rule.max_exclusive else typed <= high)
        condition = conditions[0]
        for more in conditions[1:]:
            condition = condition & more
        return typed.isNull() | condition
    if rule.check is Check.enum:
        return typed.isNull() | typed.isin(*[_literal(v, kind) for v in rule.values])
    if rule.check is Check.regex:
        return typed.isNull() | typed.cast("string").rlike(rule.pattern or "")
    if rule.check is Check.length:
        length = F.length(typed.cast("string"))
        condition = F.lit(True)
        if rule.min_length is not None:
            condition = condition & (length >= rule.min_length)
        if rule.max_length is not None:
            condition = condition & (length <= rule.max_length)
        return typed.isNull() | condition
    raise LakelineError(f"rule '{rule.name}': {rule.check.value} is not a row rule")


def flag_column(index: int) -> str:
    """The column ``RuleSet.evaluate`` gives the ``index``-th rule: true = the row failed it."""
    return f"__failed_{index}"


@dataclass(frozen=True)
class RuleSet:
    """A dataset's rules, compiled for evaluation on bronze batches."""

    dataset: Dataset
    rules: tuple[Rule, ...]

    @classmethod
    def of(cls, dataset: Dataset, rules: Iterable[Rule] | None = None) -> RuleSet:
        chosen = tuple(dataset_rules(dataset) if rules is None else rules)
        problems = rule_problems(dataset, chosen)
        if problems:
            raise LakelineError(
                f"dataset '{dataset.id}': "
                + "; ".join(f"rule '{name}': {message}" for name, message in problems)
            )
        return cls(dataset, chosen)

    @property
    def row_rules(self) -> list[tuple[int, Rule]]:
        return [(i, r) for i, r in enumerate(self.rules) if r.row_level]

    @property
    def batch_rules(self) -> list[Rule]:
        return [r for r in self.rules if not r.row_level]

    def evaluate(self, frame: DataFrame) -> DataFrame:
        """Type the raw batch and evaluate every row rule in one pass.

        Returns the typed silver columns (by their silver names), the raw row as the struct
        ``__raw``, the lineage columns, one boolean per row rule (true = failed), the arrays
        ``_reasons`` / ``_failed_rules`` of the quarantine rules the row failed, and the flags
        ``__quarantined`` / ``__warned``. No window: deduplication is the caller's.
        """
        dataset = self.dataset
        staged = frame.select(
            F.struct(*[frame[c] for c in frame.columns]).alias(RAW),
            *[_typed(c).alias(c.name) for c in dataset.columns],
            *[frame[c] for c in LINEAGE],
        )
        flags = []
        for index, rule in self.row_rules:
            try:
                valid = _valid(rule, dataset)
                if rule.check is Check.sql:
                    staged.select(valid)  # analyse now, to name the rule in the error
            except Exception as exc:  # a Spark parse / analysis error in a SQL rule
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise LakelineError(
                    f"dataset '{dataset.id}': rule '{rule.name}': the expression "
                    f"{rule.expression!r} cannot be evaluated: {first}"
                ) from None
            flags.append((~F.coalesce(valid, F.lit(False))).alias(flag_column(index)))
        flagged = staged.select("*", *flags)

        def failed(action: Action, label) -> F.Column:
            items = [
                F.when(F.col(flag_column(i)), F.lit(label(r)))
                for i, r in self.row_rules
                if r.effective_action is action
            ]
            if not items:
                return F.array().cast(T.ArrayType(T.StringType()))
            return F.filter(F.array(*items), lambda x: x.isNotNull())

        def any_failed(action: Action) -> F.Column:
            result = F.lit(False)
            for i, r in self.row_rules:
                if r.effective_action is action:
                    result = result | F.col(flag_column(i))
            return result

        # The arrays are built only for the rows that need them: a passing row gets an
        # empty array without evaluating the (interpreted) array filter.
        quarantined = any_failed(Action.quarantine)
        empty = F.array().cast(T.ArrayType(T.StringType()))
        marked = flagged.select(
            "*",
            F.when(quarantined, failed(Action.quarantine, Rule.reason))
            .otherwise(empty)
            .alias(REASONS),
            F.when(quarantined, failed(Action.quarantine, lambda r: r.name))
            .otherwise(empty)
            .alias(FAILED_RULES),
            quarantined.alias(QUARANTINED),
            any_failed(Action.warn).alias(WARNED),
        )
        return marked

    def with_rank(self, checked: DataFrame, within: F.Column | None = None) -> DataFrame:
        """``checked`` with ``__rank``: 1 for the row that would reach silver for its key
        (the latest by sequence among the rows not quarantined, and among the rows
        ``within`` selects when given). A window over the whole batch, so only added where a
        rule needs it (uniqueness after deduplication)."""
        dataset = self.dataset
        order = []
        if dataset.sequence_column:
            order.append(F.col(quote(dataset.sequence_column)).desc_nulls_last())
        order += [F.col("_ingested_at").desc(), F.col("_source_file").desc()]
        groups = [F.col(QUARANTINED), *[F.col(quote(k)) for k in dataset.primary_key]]
        if within is not None:
            groups.insert(0, within)
        window = Window.partitionBy(*groups).orderBy(*order)
        return checked.withColumn(RANK, F.row_number().over(window))

    def _beyond_key(self, rule: Rule) -> bool:
        """A ``unique`` rule that deduplication by primary key does not already satisfy."""
        return rule.check is Check.unique and not set(self.dataset.primary_key) <= set(
            rule.key_columns
        )

    @property
    def observable(self) -> bool:
        """Whether every counter can be observed while the batch is written, with no pass of
        its own: no rule can stop the batch before the write (``fail``) or needs more than
        the batch's rows (``references``, ``unique`` beyond the primary key)."""
        return not any(
            r.effective_action is Action.fail or r.check is Check.references or self._beyond_key(r)
            for r in self.rules
        )

    def observed_columns(self) -> list[str]:
        """The columns of ``evaluate``'s frame that ``observe`` reads, besides the typed ones."""
        return [QUARANTINED, WARNED, *[flag_column(i) for i, _ in self.row_rules]]

    def observe(self, frame: DataFrame, name: str) -> tuple[DataFrame, Observation]:
        """``frame`` (typed columns and ``observed_columns``) with every counter observed as
        it is computed: ``measures_of`` the Observation once an action has run.

        Only for an ``observable`` rule set, on a classic session (Spark Connect 3.5 has no
        ``Observation``). Observe a narrow frame: Spark does not prune columns below an
        observation, so a wide one (the raw row, the reason arrays) would be computed in full.
        """
        observation = Observation(name)
        return frame.observe(observation, *self._counters(F.lit(True))), observation

    def measures_of(self, observation: Observation) -> BatchMeasures:
        return BatchMeasures(self, dict(observation.get))

    def _counters(self, scope: F.Column) -> list[F.Column]:
        """The aggregates every rule set counts, over the rows ``scope`` selects: rows,
        quarantined and warned rows, failures per row rule, and the dataset-level values
        that need nothing but the batch's rows (``__m_<index>``)."""
        silver_bound = scope & ~F.col(QUARANTINED)
        exprs = [
            F.count(F.when(scope, 1)).alias("total"),
            F.count(F.when(scope & F.col(QUARANTINED), 1)).alias("quarantined"),
            F.count(F.when(scope & F.col(WARNED), 1)).alias("warned"),
        ]
        for index, _ in self.row_rules:
            failed = scope & F.col(flag_column(index))
            exprs.append(F.count(F.when(failed, 1)).alias(flag_column(index)))
        for index, rule in enumerate(self.rules):
            out = f"__m_{index}"
            if rule.check is Check.null_percentage:
                nulls = scope & F.col(quote(rule.column)).isNull()
                exprs.append(F.count(F.when(nulls, 1)).alias(out))
            elif rule.check is Check.unique and not self._beyond_key(rule):
                # Columns that include the primary key are unique after deduplication.
                exprs.append(F.lit(0).alias(out))
            elif rule.check is Check.freshness:
                newest = F.max(F.when(silver_bound, F.col(quote(rule.column)).cast("timestamp")))
                age = F.unix_timestamp(F.current_timestamp()) - F.unix_timestamp(newest)
                exprs.append(age.alias(out))
        return exprs

    def measure(
        self,
        spark,
        env: Environment,
        checked: DataFrame,
        within: F.Column | None = None,
        extra: dict[str, F.Column] | None = None,
    ) -> BatchMeasures:
        """Counters of every rule, and the dataset-level values, in one aggregation.

        ``within``, a boolean column of ``checked``, limits the rules to the rows where it is
        true (a change feed's deletes are checked by other rules); the other rows are only
        seen by ``extra``: aggregates over all of ``checked`` computed in the same pass, by
        name, in ``BatchMeasures.row``.
        """
        scope = F.lit(True) if within is None else F.coalesce(within, F.lit(False))
        silver_bound = scope & ~F.col(QUARANTINED)
        latest = silver_bound & (F.col(RANK) == 1)
        exprs = self._counters(scope)
        exprs += [value.alias(name) for name, value in (extra or {}).items()]
        needs_rank = any(self._beyond_key(r) for r in self.rules)
        frame = self.with_rank(checked, within) if needs_rank else checked
        for index, rule in enumerate(self.rules):
            out = f"__m_{index}"
            if rule.check is Check.unique and self._beyond_key(rule):
                keys = [F.col(quote(k)) for k in rule.key_columns]
                present = latest
                for key in keys:
                    present = present & key.isNotNull()
                value = keys[0] if len(keys) == 1 else F.struct(*keys)
                exprs.append(
                    (F.count(F.when(present, 1)) - F.count_distinct(F.when(present, value))).alias(
                        out
                    )
                )
            elif rule.check is Check.references:
                ref_dataset, ref_column = (rule.references or ".").split(".")
                key, found = f"__key_{index}", f"__found_{index}"
                if env.exists(spark, "silver", ref_dataset):
                    keys = (
                        spark.table(env.table("silver", ref_dataset))
                        .select(F.col(quote(ref_column)).alias(key))
                        .where(F.col(key).isNotNull())
                        .distinct()
                        .withColumn(found, F.lit(True))
                    )
                    on = F.col(quote(rule.column or "")) == F.col(key)
                    frame = frame.join(F.broadcast(keys), on, "left").drop(key)
                else:  # nothing to refer to yet: every value is missing
                    frame = frame.withColumn(found, F.lit(None).cast("boolean"))
                missing = silver_bound & F.col(quote(rule.column or "")).isNotNull()
                exprs.append(F.count(F.when(missing & F.col(found).isNull(), 1)).alias(out))
        row = frame.agg(*exprs).first().asDict()
        if needs_rank and env.exists(spark, "silver", self.dataset.id):
            for index, rule in enumerate(self.rules):
                if self._beyond_key(rule):
                    row[f"__m_{index}"] = self._duplicates_after(spark, env, frame, rule, latest)
        return BatchMeasures(self, row)

    def _duplicates_after(
        self, spark, env: Environment, ranked: DataFrame, rule: Rule, latest: F.Column
    ) -> int:
        """Duplicates of ``rule``'s columns in silver as it will be after this batch.

        That is the stored rows whose key the batch does not replace (current versions only
        for SCD2, soft-deleted rows left out), plus the batch's latest row per key. So a
        value that repeats one stored under another key counts, and a key keeping its own
        value does not.
        """
        dataset = self.dataset
        keys = list(dataset.primary_key)
        names = list(dict.fromkeys([*keys, *rule.key_columns]))
        incoming = ranked.where(latest).select(*[F.col(quote(n)) for n in names])
        stored = spark.table(env.table("silver", dataset.id))
        if dataset.scd.type == 2:
            stored = stored.where(F.col(quote(dataset.scd.current_column)))
        cdc = dataset.cdc
        if cdc is not None and cdc.delete_mode.value == "soft":
            stored = stored.where(~F.coalesce(F.col(quote(cdc.deleted_column)), F.lit(False)))
        kept = stored.select(*[F.col(quote(n)) for n in names]).join(
            incoming.select(*[F.col(quote(k)) for k in keys]), on=keys, how="left_anti"
        )
        after = kept.unionByName(incoming)
        columns = [F.col(quote(c)) for c in rule.key_columns]
        present = columns[0].isNotNull()
        for column in columns[1:]:
            present = present & column.isNotNull()
        value = columns[0] if len(columns) == 1 else F.struct(*columns)
        rows, distinct = (
            after.where(present).agg(F.count(F.lit(1)), F.count_distinct(value)).first()
        )
        return int(rows - distinct)


@dataclass(frozen=True)
class Outcome:
    """What one rule found in one batch."""

    rule: Rule
    evaluated: int
    failed: int
    observed: float | None
    passed: bool

    @property
    def action(self) -> Action:
        return self.rule.effective_action


@dataclass
class BatchMeasures:
    """The one aggregation's result, read rule by rule."""

    ruleset: RuleSet
    row: dict[str, Any]
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        total = int(self.row["total"])
        silver_bound = total - int(self.row["quarantined"])
        for index, rule in enumerate(self.ruleset.rules):
            if rule.row_level:
                failed = int(self.row[flag_column(index)])
                self.outcomes.append(Outcome(rule, total, failed, float(failed), failed == 0))
                continue
            measured = self.row.get(f"__m_{index}")
            if rule.check is Check.row_count:
                ok = (rule.min is None or total >= int(rule.min)) and (
                    rule.max is None or total <= int(rule.max)
                )
                self.outcomes.append(Outcome(rule, total, 0 if ok else total, float(total), ok))
            elif rule.check is Check.null_percentage:
                nulls = int(measured or 0)
                percent = 100.0 * nulls / total if total else 0.0
                ok = (rule.max_percent is None or percent <= rule.max_percent) and (
                    rule.max_rows is None or nulls <= rule.max_rows
                )
                self.outcomes.append(Outcome(rule, total, nulls, percent, ok))
            elif rule.check is Check.unique:
                duplicates = int(measured or 0)
                ok = duplicates <= (rule.max_rows or 0)
                self.outcomes.append(Outcome(rule, silver_bound, duplicates, duplicates, ok))
            elif rule.check is Check.freshness:
                limit = duration_seconds(rule.max_age or "")
                # No value at all is stale: NULL never passes.
                ok = measured is not None and float(measured) <= limit
                age = None if measured is None else float(measured)
                self.outcomes.append(Outcome(rule, silver_bound, 0 if ok else 1, age, ok))
            elif rule.check is Check.references:
                missing = int(measured or 0)
                self.outcomes.append(Outcome(rule, silver_bound, missing, missing, missing == 0))

    @property
    def total(self) -> int:
        return int(self.row["total"])

    @property
    def quarantined(self) -> int:
        return int(self.row["quarantined"])

    @property
    def warned(self) -> int:
        return int(self.row["warned"])

    def failures(self, action: Action) -> list[Outcome]:
        return [o for o in self.outcomes if not o.passed and o.action is action]

    def raise_on_fail(self, dataset_id: str, where: str = "") -> None:
        """Raise QualityError naming every failed ``fail`` rule and its row count."""
        failed = self.failures(Action.fail)
        if failed:
            listed = "; ".join(
                f"rule '{o.rule.name}' ({o.rule.describe()}) failed on {o.failed} of "
                f"{o.evaluated} rows" + (f", observed {o.observed:g}" if o.observed else "")
                for o in failed
            )
            raise QualityError(
                f"dataset '{dataset_id}'{where}: {listed}; nothing was written to silver"
            )

    def failed_rule_counts(self) -> dict[str, int]:
        return {o.rule.name: o.failed for o in self.outcomes if not o.passed}


def stop_on_fail(
    spark,
    env: Environment,
    dataset: Dataset,
    run_id: str,
    batch_id: int | None,
    measures: BatchMeasures,
    report: dict,
) -> None:
    """Count the batch's warned rows into ``report``; if a ``fail`` rule failed, record the
    batch's metrics, name the rules in ``report["stopped_by"]`` and raise QualityError,
    before anything of the batch is written."""
    report["warned"] = report.get("warned", 0) + measures.warned
    stopping = measures.failures(Action.fail)
    if stopping:
        report["stopped_by"] = [
            {"rule": o.rule.name, "rows_failed": o.failed, "rows_evaluated": o.evaluated}
            for o in stopping
        ]
        record_metrics(spark, env, dataset, run_id, batch_id, measures)
        measures.raise_on_fail(dataset.id, f" batch {batch_id}")


# --------------------------------------------------------------------------- metrics table

METRICS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("dataset", T.StringType(), False),
        T.StructField("batch_id", T.LongType(), True),
        T.StructField("rule", T.StringType(), False),
        T.StructField("check", T.StringType(), False),
        T.StructField("level", T.StringType(), False),
        T.StructField("action", T.StringType(), False),
        T.StructField("rows_evaluated", T.LongType(), False),
        T.StructField("rows_failed", T.LongType(), False),
        T.StructField("observed", T.DoubleType(), True),
        T.StructField("passed", T.BooleanType(), False),
        T.StructField("contract_version", T.StringType(), True),
        T.StructField("recorded_at", T.TimestampType(), False),
    ]
)


def metrics_table(env: Environment) -> str:
    return env.table("ops", METRICS_TABLE)


def ensure_metrics_table(spark, env: Environment) -> str:
    """Create ops.dq_metrics if missing (one row per run, dataset, batch and rule)."""
    return env.create(
        spark,
        "ops",
        METRICS_TABLE,
        f"{columns_ddl(METRICS_SCHEMA)} USING DELTA "
        "COMMENT 'lakeline data-quality metrics: one row per run, dataset, batch, rule'",
    )


def metrics_alongside(
    spark, env: Environment, dataset: Dataset, run_id: str, batch_id: int | None, m: BatchMeasures
) -> AbstractContextManager[None]:
    """Append the batch's metrics (``record_metrics``) while the block runs
    (``overlap.alongside``): the commit to ``ops.dq_metrics`` overlaps the block's own
    Spark jobs (a MERGE) instead of adding to them, and is done before the batch is."""
    return alongside("lakeline-metrics", record_metrics, spark, env, dataset, run_id, batch_id, m)


def record_metrics(
    spark, env: Environment, dataset: Dataset, run_id: str, batch_id: int | None, m: BatchMeasures
) -> None:
    """Append one metrics row per rule for this batch."""
    contract = getattr(dataset, "compiled_contract", None)
    version = contract.version if contract is not None else None
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        (
            run_id,
            dataset.id,
            batch_id,
            o.rule.name,
            o.rule.check.value,
            "row" if o.rule.row_level else "dataset",
            o.action.value,
            int(o.evaluated),
            int(o.failed),
            None if o.observed is None else float(o.observed),
            bool(o.passed),
            version,
            now,
        )
        for o in m.outcomes
    ]
    if not rows:
        return
    ensure_metrics_table(spark, env)
    spark.createDataFrame(rows, METRICS_SCHEMA).write.format("delta").mode("append").saveAsTable(
        metrics_table(env)
    )
