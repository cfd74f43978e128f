"""Expected gold tables for the retail fixtures, computed without Spark or lakeline.

This script is the independent oracle for the end-to-end scenario: it reads the raw
fixture files under ``fixtures/retail/batch_<n>/`` with DuckDB, applies the silver rules
by hand, builds the gold tables with its own SQL (written separately from the Spark SQL
in ``src/metadata/gold/``), and writes one CSV per gold table to
``tests/expected/after_batch_<n>/``.

Silver rules implemented here (for every dataset, over all batches processed so far):

* A row is quarantined when a primary-key column is null, when a non-nullable column
  is null, or when a non-null source value does not cast to its declared type
  (for example ``"4,99"`` into ``decimal(12,2)``).
* Of the remaining rows, each primary key keeps the row with the greatest
  ``updated_at``; ties go to the later batch, then the later file (by name), then the
  later line. An exact duplicate (same key, same values) is the same row, kept once.
  A late row whose ``updated_at`` is older than the version already in silver never
  wins.

Output format: CSV with a header, rows sorted by the table's key columns, decimals with
their scale (``12.50``), dates ISO (``2024-03-15``), booleans ``true``/``false``, nulls
as empty fields.

Usage (needs only ``pip install duckdb``)::

    python tests/expected/compute_expected.py            # rewrite the expected CSVs
    python tests/expected/compute_expected.py --check    # fail if they are out of date
    python tests/expected/compute_expected.py --silver-out /tmp/silver   # also dump silver
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import sys
from decimal import Decimal
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures" / "retail"
EXPECTED = Path(__file__).resolve().parent
BATCHES = (1, 2)

# The contract of each dataset, written out here on purpose (not read from the YAML),
# so that a mistake in the metadata shows up as a difference instead of being copied.
# (name, DuckDB type, source column, nullable)
DATASETS: dict[str, dict] = {
    "customers": {
        "format": "csv",
        "key": ["customer_id"],
        "columns": [
            ("customer_id", "BIGINT", "customer_id", False),
            ("first_name", "VARCHAR", "first_name", True),
            ("last_name", "VARCHAR", "last_name", True),
            ("email", "VARCHAR", "email_address", True),
            ("city", "VARCHAR", "city", True),
            ("country_code", "VARCHAR", "country_code", True),
            ("signup_date", "DATE", "signup_date", True),
            ("loyalty_tier", "VARCHAR", "loyalty_tier", True),
            ("updated_at", "TIMESTAMP", "updated_at", False),
        ],
    },
    "products": {
        "format": "json",
        "key": ["product_id"],
        "columns": [
            ("product_id", "VARCHAR", "product_id", False),
            ("product_name", "VARCHAR", "product_name", True),
            ("category", "VARCHAR", "category", True),
            ("brand", "VARCHAR", "brand", True),
            ("list_price", "DECIMAL(12,2)", "list_price", True),
            ("is_active", "BOOLEAN", "is_active", True),
            ("updated_at", "TIMESTAMP", "updated_at", False),
        ],
    },
    "orders": {
        "format": "csv",
        "key": ["order_id"],
        "columns": [
            ("order_id", "BIGINT", "order_id", False),
            ("customer_id", "BIGINT", "customer_id", False),
            ("order_date", "DATE", "order_date", False),
            ("order_status", "VARCHAR", "order_status", True),
            ("sales_channel", "VARCHAR", "sales_channel", True),
            ("shipping_fee", "DECIMAL(12,2)", "shipping_fee", True),
            ("updated_at", "TIMESTAMP", "updated_at", False),
        ],
    },
    "order_lines": {
        "format": "csv",
        "key": ["order_id", "line_number"],
        "columns": [
            ("order_id", "BIGINT", "order_id", False),
            ("line_number", "INTEGER", "line_number", False),
            ("product_id", "VARCHAR", "product_id", False),
            ("quantity", "INTEGER", "quantity", True),
            ("unit_price", "DECIMAL(12,2)", "unit_price", True),
            ("discount_amount", "DECIMAL(12,2)", "discount_amount", True),
            ("updated_at", "TIMESTAMP", "updated_at", False),
        ],
    },
}

# Gold, written independently of src/metadata/gold/*.sql. (table, key columns, SQL)
GOLD: list[tuple[str, list[str], str]] = [
    (
        "dim_customer",
        ["customer_id"],
        """
        SELECT customer_id, first_name, last_name,
               first_name || ' ' || last_name AS full_name,
               email, city, country_code, loyalty_tier, signup_date
        FROM silver_customers
        """,
    ),
    (
        "dim_product",
        ["product_id"],
        """
        SELECT product_id, product_name, category, brand, list_price, is_active
        FROM silver_products
        """,
    ),
    (
        "fct_order_lines",
        ["order_id", "line_number"],
        """
        SELECT l.order_id, l.line_number, o.order_date, o.customer_id, l.product_id,
               p.category AS product_category, o.order_status, o.sales_channel,
               l.quantity, l.unit_price,
               CAST(l.quantity * l.unit_price AS DECIMAL(14,2)) AS line_amount,
               l.discount_amount,
               CAST(l.quantity * l.unit_price - l.discount_amount AS DECIMAL(14,2))
                   AS net_amount
        FROM silver_order_lines l
        JOIN silver_orders o USING (order_id)
        JOIN silver_products p USING (product_id)
        """,
    ),
    (
        "agg_daily_sales",
        ["order_date", "product_category"],
        """
        SELECT order_date, product_category,
               COUNT(DISTINCT order_id) AS order_count,
               CAST(SUM(quantity) AS BIGINT) AS units_sold,
               CAST(SUM(line_amount) AS DECIMAL(18,2)) AS gross_amount,
               CAST(SUM(discount_amount) AS DECIMAL(18,2)) AS discount_amount,
               CAST(SUM(net_amount) AS DECIMAL(18,2)) AS net_amount
        FROM gold_fct_order_lines
        WHERE order_status <> 'cancelled'
        GROUP BY order_date, product_category
        """,
    ),
]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def load_raw(con: duckdb.DuckDBPyConnection, dataset: str, spec: dict) -> None:
    """Create raw_<dataset>: every source row of every batch as text, with its origin."""
    sources = [c[2] for c in spec["columns"]]
    parts = []
    for batch in BATCHES:
        folder = FIXTURES / f"batch_{batch}" / dataset
        for path in sorted(folder.iterdir()):
            if spec["format"] == "csv":
                reader = (
                    f"read_csv({_lit(str(path))}, header = true, delim = ',', quote = '\"', "
                    f"escape = '\"', all_varchar = true, auto_detect = true)"
                )
            else:
                cols = ", ".join(f"{_lit(s)}: 'VARCHAR'" for s in sources)
                reader = (
                    f"read_json({_lit(str(path))}, format = 'newline_delimited', "
                    f"columns = {{{cols}}})"
                )
            select = ", ".join(_q(s) for s in sources)
            parts.append(
                f"SELECT {batch} AS _batch, {_lit(path.name)} AS _file, "
                f"row_number() OVER () AS _line, {select} FROM {reader}"
            )
    con.execute(f"CREATE OR REPLACE TABLE raw_{dataset} AS " + " UNION ALL ".join(parts))


def build_silver(con: duckdb.DuckDBPyConnection, dataset: str, spec: dict, upto: int) -> dict:
    """Create silver_<dataset> from batches 1..upto; return per-batch accounting."""
    cols = spec["columns"]
    key = spec["key"]
    casts = ", ".join(f"TRY_CAST({_q(src)} AS {typ}) AS {_q(name)}" for name, typ, src, _ in cols)
    # One reason per failed check, joined; empty when the row is fine.
    checks = []
    for name, typ, src, nullable in cols:
        if name in key:
            checks.append(f"CASE WHEN {_q(src)} IS NULL THEN 'null primary key {name}' END")
        elif not nullable:
            checks.append(f"CASE WHEN {_q(src)} IS NULL THEN 'null in required {name}' END")
        checks.append(
            f"CASE WHEN {_q(src)} IS NOT NULL AND TRY_CAST({_q(src)} AS {typ}) IS NULL "
            f"THEN 'cannot cast {name} to {typ.lower()}' END"
        )
    reason = f"concat_ws('; ', {', '.join(checks)})"
    con.execute(
        f"""CREATE OR REPLACE TABLE typed_{dataset} AS
            SELECT _batch, _file, _line, {reason} AS _reason, {casts}
            FROM raw_{dataset} WHERE _batch <= {upto}"""
    )
    names = ", ".join(_q(c[0]) for c in cols)
    keys = ", ".join(_q(k) for k in key)
    con.execute(
        f"""CREATE OR REPLACE TABLE ranked_{dataset} AS
            SELECT *, row_number() OVER (
                PARTITION BY {keys}
                ORDER BY updated_at DESC, _batch DESC, _file DESC, _line DESC) AS _rank
            FROM typed_{dataset} WHERE _reason = ''"""
    )
    con.execute(
        f"CREATE OR REPLACE TABLE silver_{dataset} AS "
        f"SELECT {names} FROM ranked_{dataset} WHERE _rank = 1"
    )

    # Accounting for the last batch: every row read ends in silver, quarantine,
    # an exact-duplicate drop, a superseded version, or a stale late arrival.
    b = upto
    acc: dict = {}
    acc["rows_read"] = con.execute(
        f"SELECT count(*) FROM raw_{dataset} WHERE _batch = {b}"
    ).fetchone()[0]
    acc["quarantined"] = con.execute(
        f"""SELECT _file, _line, {keys}, _reason FROM typed_{dataset}
            WHERE _batch = {b} AND _reason <> '' ORDER BY _file, _line"""
    ).fetchall()
    # Valid rows of this batch that lose, classified by what beats them.
    same_row = " AND ".join(f"w.{_q(c[0])} IS NOT DISTINCT FROM r.{_q(c[0])}" for c in cols)

    def same_key(left: str, right: str) -> str:
        return " AND ".join(f"{left}.{_q(k)} = {right}.{_q(k)}" for k in key)

    losers = con.execute(
        f"""SELECT r._file, r._line, {", ".join("r." + _q(k) for k in key)},
                   CASE
                     WHEN EXISTS (SELECT 1 FROM ranked_{dataset} w
                                  WHERE w._batch = {b} AND w._rank < r._rank AND {same_row})
                       THEN 'exact duplicate'
                     WHEN EXISTS (SELECT 1 FROM ranked_{dataset} w
                                  WHERE w._batch < {b} AND {same_key("w", "r")}
                                    AND w.updated_at > r.updated_at)
                       THEN 'stale late arrival'
                     ELSE 'superseded in the same batch'
                   END AS outcome
            FROM ranked_{dataset} r
            WHERE r._batch = {b} AND r._rank > 1
            ORDER BY r._file, r._line"""
    ).fetchall()
    acc["not_applied"] = losers
    # Keys that are new in this batch vs updated vs unchanged.
    acc["silver_rows"] = con.execute(f"SELECT count(*) FROM silver_{dataset}").fetchone()[0]
    if b > 1:
        acc["new_keys"] = con.execute(
            f"""SELECT count(*) FROM ranked_{dataset} r WHERE r._rank = 1 AND r._batch = {b}
                AND NOT EXISTS (SELECT 1 FROM typed_{dataset} p WHERE p._batch < {b}
                    AND p._reason = '' AND {same_key("p", "r")})"""
        ).fetchone()[0]
        acc["updated_keys"] = con.execute(
            f"""SELECT count(*) FROM ranked_{dataset} r WHERE r._rank = 1 AND r._batch = {b}
                AND EXISTS (SELECT 1 FROM typed_{dataset} p WHERE p._batch < {b}
                    AND p._reason = '' AND {same_key("p", "r")})"""
        ).fetchone()[0]
    else:
        acc["new_keys"] = acc["silver_rows"]
        acc["updated_keys"] = 0

    # Guard the fixtures: two different rows for one key with the same updated_at would
    # make the winner depend on file order, which the fixtures deliberately avoid.
    ties = con.execute(
        f"""SELECT {keys}, updated_at FROM (SELECT DISTINCT {names} FROM ranked_{dataset})
            GROUP BY {keys}, updated_at HAVING count(*) > 1"""
    ).fetchall()
    if ties:
        raise SystemExit(f"{dataset}: ambiguous versions with equal updated_at: {ties}")
    return acc


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def to_csv(con: duckdb.DuckDBPyConnection, table: str, key: list[str]) -> str:
    cur = con.execute(f"SELECT * FROM {table} ORDER BY {', '.join(_q(k) for k in key)}")
    header = [d[0] for d in cur.description]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in cur.fetchall():
        writer.writerow([_fmt(v) for v in row])
    return out.getvalue()


def compute() -> tuple[dict[str, str], list[str], dict[int, duckdb.DuckDBPyConnection]]:
    """Return {relative path: CSV text}, a printable report, and the connections."""
    outputs: dict[str, str] = {}
    report: list[str] = []
    cons = {}
    for upto in BATCHES:
        con = duckdb.connect()
        cons[upto] = con
        report.append(f"== after batch {upto}")
        for dataset, spec in DATASETS.items():
            load_raw(con, dataset, spec)
            acc = build_silver(con, dataset, spec, upto)
            report.append(
                f"  {dataset}: read {acc['rows_read']}, quarantined {len(acc['quarantined'])}, "
                f"not applied {len(acc['not_applied'])}, new keys {acc['new_keys']}, "
                f"updated keys {acc['updated_keys']}, silver rows {acc['silver_rows']}"
            )
            for row in acc["quarantined"]:
                report.append(f"    quarantined {row}")
            for row in acc["not_applied"]:
                report.append(f"    not applied {row}")
        for name, key, sql in GOLD:
            con.execute(f"CREATE OR REPLACE TABLE gold_{name} AS {sql}")
            text = to_csv(con, f"gold_{name}", key)
            outputs[f"after_batch_{upto}/{name}.csv"] = text
            report.append(f"  gold {name}: {text.count(chr(10)) - 1} rows")
    return outputs, report, cons


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--silver-out", type=Path, help="also write silver tables here")
    args = parser.parse_args(argv)

    outputs, report, cons = compute()
    print("\n".join(report))
    if args.silver_out:
        for upto, con in cons.items():
            folder = args.silver_out / f"after_batch_{upto}"
            folder.mkdir(parents=True, exist_ok=True)
            for dataset, spec in DATASETS.items():
                (folder / f"{dataset}.csv").write_text(
                    to_csv(con, f"silver_{dataset}", spec["key"]), encoding="utf-8"
                )
    stale = []
    for rel, text in outputs.items():
        path = EXPECTED / rel
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(rel)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
