"""Where an environment keeps its tables, landing files and checkpoints.

A bundle target maps to one catalog (bundle variable ``catalog``). Inside it lakeline
uses fixed schemas: ``bronze``, ``silver``, ``gold``, ``quarantine`` and ``ops`` (control
table, state, run log). In Unity Catalog a table is ``<catalog>.<schema>.<table>``;
local Spark has one catalog with one-level databases, so locally the same table is
``<catalog>__<schema>.<table>`` (for example ``lakeline_dev.silver.orders`` is
``lakeline_dev__silver.orders`` on a laptop).
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass

from pyspark.sql import types as T

from lakeline.identifiers import TableName, check_identifier, quote

SCHEMAS = ("bronze", "silver", "gold", "quarantine", "ops")

# What the losers of a race to create one Delta table fail with: the winner's files are in
# the location (or its first commit changed the protocol) before its table is registered.
_CREATE_RACE = (
    "DELTA_PROTOCOL_CHANGED",
    "DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION",
    "DELTA_METADATA_CHANGED",
    "TABLE_OR_VIEW_ALREADY_EXISTS",
    "TableAlreadyExistsException",
)
_CREATE_ATTEMPTS = 20


@dataclass(frozen=True)
class Environment:
    """The names and folders one run works in, built from the job's parameters."""

    catalog: str
    landing_root: str
    checkpoint_root: str
    unity_catalog: bool

    def __post_init__(self) -> None:
        check_identifier(self.catalog, "catalog")

    def name(self, schema: str, table: str) -> TableName:
        return TableName(self.catalog, schema, table)

    def table(self, schema: str, table: str) -> str:
        """The quoted name to use in SQL and ``spark.table`` in this environment."""
        name = self.name(schema, table)
        return name.uc if self.unity_catalog else name.local()

    def exists(self, spark, schema: str, table: str) -> bool:
        name = self.name(schema, table)
        plain = str(name) if self.unity_catalog else f"{name.local_database}.{name.table}"
        return spark.catalog.tableExists(plain)

    def create(self, spark, schema: str, table: str, definition: str | T.StructType) -> str:
        """``CREATE TABLE IF NOT EXISTS <table> <definition>`` (columns and clauses), once
        however many tasks ask at the same moment; the table's quoted name.

        ``definition`` may instead be a schema whose names are not all plain identifiers
        (bronze keeps its source's columns as they are): the table is then created from it
        with ``spark.catalog.createTable``, so the names never become SQL text.

        Tables are created empty, never by writing an empty DataFrame: Spark records the
        size of a table created by a write in the catalog and, for Delta, never updates it,
        so every later plan would take the table for one that fits in a broadcast.

        Two creates of one Delta table race, and ``IF NOT EXISTS`` does not stop it: the
        losers fail before the winner's table is registered. A loser waits for it to be.
        """
        name = self.table(schema, table)
        for attempt in range(1, _CREATE_ATTEMPTS + 1):
            if self.exists(spark, schema, table):
                return name
            try:
                if isinstance(definition, T.StructType):
                    spark.catalog.createTable(name, source="delta", schema=definition)
                else:
                    spark.sql(f"CREATE TABLE IF NOT EXISTS {name} {definition}")
                return name
            except Exception as exc:
                if attempt == _CREATE_ATTEMPTS or not any(m in str(exc) for m in _CREATE_RACE):
                    raise
                time.sleep(0.25)
        return name

    def external_table(self, table: str) -> str:
        """A source table given as schema.table (this catalog) or catalog.schema.table."""
        parts = table.split(".")
        catalog, schema, name = [self.catalog, *parts] if len(parts) == 2 else parts
        if self.unity_catalog:
            return TableName(catalog, schema, name).uc
        return TableName(catalog, schema, name).local()

    def schema(self, schema: str) -> str:
        check_identifier(schema, "schema")
        if self.unity_catalog:
            return f"{quote(self.catalog)}.{quote(schema)}"
        return quote(f"{self.catalog}__{schema}")

    def ensure_schemas(self, spark) -> None:
        for schema in SCHEMAS:
            spark.sql(f"CREATE SCHEMA IF NOT EXISTS {self.schema(schema)}")

    def source_path(self, path: str) -> str:
        """A dataset's source path: absolute paths and URIs as given, others under landing."""
        if path.startswith("/") or "://" in path:
            return path
        return posixpath.join(self.landing_root, path)

    def checkpoint(self, dataset: str, step: str) -> str:
        return posixpath.join(self.checkpoint_root, dataset, step)


def columns_ddl(schema: T.StructType) -> str:
    """``(`a` bigint NOT NULL, `b` string, ...)``: the column list of a CREATE TABLE for a
    schema whose names are plain identifiers (checked and quoted here)."""
    columns = ", ".join(
        f"{quote(f.name)} {f.dataType.simpleString()}{'' if f.nullable else ' NOT NULL'}"
        for f in schema.fields
    )
    return f"({columns})"
