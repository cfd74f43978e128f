"""Column types a dataset may declare, parsed into Spark types without going through SQL text."""

from __future__ import annotations

import re

from pyspark.sql import types as T

_SIMPLE: dict[str, T.DataType] = {
    "string": T.StringType(),
    "boolean": T.BooleanType(),
    "tinyint": T.ByteType(),
    "smallint": T.ShortType(),
    "int": T.IntegerType(),
    "integer": T.IntegerType(),
    "bigint": T.LongType(),
    "long": T.LongType(),
    "float": T.FloatType(),
    "double": T.DoubleType(),
    "date": T.DateType(),
    "timestamp": T.TimestampType(),
}
_DECIMAL = re.compile(r"^decimal\(\s*(\d{1,2})\s*,\s*(\d{1,2})\s*\)$")

SUPPORTED = sorted(_SIMPLE) + ["decimal(p,s)"]


def parse_type(text: str) -> T.DataType:
    """Parse a declared type such as ``bigint`` or ``decimal(12,2)``.

    Raises ValueError for anything else; money must be declared as an exact decimal.
    """
    key = text.strip().lower()
    if key in _SIMPLE:
        return _SIMPLE[key]
    match = _DECIMAL.match(key)
    if match:
        precision, scale = int(match.group(1)), int(match.group(2))
        if not 1 <= precision <= 38 or scale > precision:
            raise ValueError(
                f"decimal({precision},{scale}) is out of range: "
                "1 <= precision <= 38 and scale <= precision"
            )
        return T.DecimalType(precision, scale)
    raise ValueError(f"unknown type {text!r}; supported: {', '.join(SUPPORTED)}")
