"""Gold: tables defined by SQL over silver (and other gold tables), built in dependency order.

A gold SQL file is a SELECT; it names other tables only as ``{{ silver.<dataset> }}`` or
``{{ gold.<table> }}``. Those references are replaced here by validated, quoted names
for the environment, and the table is rebuilt with CREATE OR REPLACE TABLE ... AS.
"""

from __future__ import annotations

import re

from lakeline.environment import Environment
from lakeline.metadata import GoldTable
from lakeline.runlog import StepResult

_REF = re.compile(r"\{\{\s*(bronze|silver|gold)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def render(table: GoldTable, env: Environment) -> str:
    """The table's SELECT with every reference resolved to this environment's names."""
    return _REF.sub(lambda m: env.table(m.group(1), m.group(2)), table.sql).strip().rstrip(";")


def build(spark, env: Environment, table: GoldTable, result: StepResult) -> None:
    target = env.table("gold", table.name)
    spark.sql(f"CREATE OR REPLACE TABLE {target} USING DELTA AS\n{render(table, env)}")
    rows = int(spark.table(target).count())  # numpy.int64 over Spark Connect 3.5
    result.rows_written += rows
    result.details.setdefault("tables", {})[table.name] = rows
