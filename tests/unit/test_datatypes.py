import pytest
from pyspark.sql import types as T

from lakeline.datatypes import parse_type


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bigint", T.LongType()),
        ("INT", T.IntegerType()),
        ("string", T.StringType()),
        ("timestamp", T.TimestampType()),
        ("decimal(12,2)", T.DecimalType(12, 2)),
        ("decimal( 38 , 0 )", T.DecimalType(38, 0)),
    ],
)
def test_declared_types_parse_to_spark_types(text, expected):
    assert parse_type(text) == expected


@pytest.mark.parametrize("text", ["money", "decimal(40,2)", "decimal(5,6)", "int); DROP", "map"])
def test_unknown_or_out_of_range_types_are_rejected(text):
    with pytest.raises(ValueError):
        parse_type(text)
