from lakeline.environment import Environment
from lakeline.gold import render
from lakeline.metadata import GoldTable


def test_references_become_quoted_names_of_the_environment():
    table = GoldTable(
        name="fct",
        file="gold/fct.sql",
        sql="SELECT * FROM {{ silver.orders }} o JOIN {{gold.dim_customer}} c USING (id);\n",
        refs=(("silver", "orders"), ("gold", "dim_customer")),
    )
    local = Environment("lakeline_dev", "/l", "/c", unity_catalog=False)
    uc = Environment("lakeline_prod", "/l", "/c", unity_catalog=True)
    assert render(table, local) == (
        "SELECT * FROM `lakeline_dev__silver`.`orders` o "
        "JOIN `lakeline_dev__gold`.`dim_customer` c USING (id)"
    )
    assert "`lakeline_prod`.`silver`.`orders`" in render(table, uc)
