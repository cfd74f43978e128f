"""The one place where names reach SQL: validated, then quoted.

Metadata never reaches SQL as raw text. Every catalog, schema, table and column name
is checked against a plain-identifier pattern when the metadata loads, and quoted with
backticks here when a statement is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)


def is_identifier(name: str) -> bool:
    """True when ``name`` is a plain identifier: letters, digits, underscore, not a digit first."""
    return isinstance(name, str) and bool(_IDENTIFIER.match(name))


def check_identifier(name: str, what: str = "identifier") -> str:
    """Return ``name`` unchanged, or raise ValueError saying why it cannot be used in SQL."""
    if not is_identifier(name):
        raise ValueError(
            f"{what} {name!r} is not a plain identifier "
            "(letters, digits and '_', starting with a letter or '_', at most 128 characters)"
        )
    return name


def quote(name: str) -> str:
    """Backtick-quote a validated identifier for use in Spark SQL."""
    return f"`{check_identifier(name)}`"


@dataclass(frozen=True)
class TableName:
    """A three-part Unity Catalog name: ``catalog.schema.table``.

    On Databricks it is used as is. Local Spark has a single catalog with one-level
    databases, so locally the catalog and schema fold into one database named
    ``<catalog>__<schema>`` (see ``local()``).
    """

    catalog: str
    schema: str
    table: str

    def __post_init__(self) -> None:
        check_identifier(self.catalog, "catalog")
        check_identifier(self.schema, "schema")
        check_identifier(self.table, "table")

    @property
    def uc(self) -> str:
        """Quoted three-part name, as used in Unity Catalog."""
        return ".".join(quote(p) for p in (self.catalog, self.schema, self.table))

    @property
    def local_database(self) -> str:
        return f"{self.catalog}__{self.schema}"

    def local(self) -> str:
        """Quoted two-part name in the local Spark session catalog."""
        return f"{quote(self.local_database)}.{quote(self.table)}"

    def __str__(self) -> str:
        return f"{self.catalog}.{self.schema}.{self.table}"
