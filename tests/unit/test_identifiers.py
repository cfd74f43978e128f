import pytest

from lakeline.environment import Environment
from lakeline.identifiers import TableName, check_identifier, is_identifier, quote


@pytest.mark.parametrize("name", ["orders", "_x", "Order_Lines2", "a" * 128])
def test_plain_identifiers_pass(name):
    assert is_identifier(name)
    assert quote(name) == f"`{name}`"


@pytest.mark.parametrize(
    "name",
    ["", "1orders", "orders; DROP TABLE x", "a`b", "a.b", "a b", "naïve", "a" * 129, "x--"],
)
def test_anything_else_is_rejected_before_reaching_sql(name):
    assert not is_identifier(name)
    with pytest.raises(ValueError, match="not a plain identifier"):
        quote(name)


def test_check_identifier_names_what_was_wrong():
    with pytest.raises(ValueError, match="catalog 'bad name'"):
        check_identifier("bad name", "catalog")


def test_table_names_map_to_unity_catalog_and_local():
    name = TableName("lakeline_dev", "silver", "orders")
    assert name.uc == "`lakeline_dev`.`silver`.`orders`"
    assert name.local() == "`lakeline_dev__silver`.`orders`"
    assert str(name) == "lakeline_dev.silver.orders"


def test_environment_resolves_names_and_paths_per_target():
    local = Environment("lakeline_dev", "/land", "/ckpt", unity_catalog=False)
    remote = Environment("lakeline_prod", "/Volumes/p/landing/files", "/ck", unity_catalog=True)
    assert local.table("silver", "orders") == "`lakeline_dev__silver`.`orders`"
    assert remote.table("silver", "orders") == "`lakeline_prod`.`silver`.`orders`"
    assert local.source_path("retail/orders") == "/land/retail/orders"
    assert local.source_path("s3://bucket/x") == "s3://bucket/x"
    assert local.checkpoint("orders", "bronze") == "/ckpt/orders/bronze"
    assert remote.external_table("raw.erp_orders") == "`lakeline_prod`.`raw`.`erp_orders`"
    with pytest.raises(ValueError):
        Environment("dev; drop", "/l", "/c", unity_catalog=False)
