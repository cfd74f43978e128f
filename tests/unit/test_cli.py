import shutil

import pytest

from lakeline.cli import main


def test_validate_lists_datasets_and_gold_order(repo, capsys, monkeypatch):
    monkeypatch.chdir(repo)
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    assert "4 dataset(s): customers, order_lines, orders, products" in out
    assert "fct_order_lines -> agg_daily_sales" in out


def test_validate_reports_every_problem_and_exits_2(repo, tmp_path, capsys):
    shutil.copytree(repo / "src" / "metadata", tmp_path / "metadata")
    orders = tmp_path / "metadata" / "datasets" / "orders.yml"
    orders.write_text(orders.read_text().replace("type: incremental", "type: incremntal"))
    fact = tmp_path / "metadata" / "gold" / "fct_order_lines.sql"
    fact.write_text(fact.read_text().replace("silver.orders }}", "silver.order }}"))
    assert main(["validate", str(tmp_path / "metadata")]) == 2
    err = capsys.readouterr().err
    assert "2 problems in the metadata" in err
    assert "metadata/datasets/orders.yml [dataset orders] field 'load.type'" in err
    assert "[gold table fct_order_lines] field 'sql': refers to {{ silver.order }}" in err


def test_schema_check_fails_when_stale(tmp_path, capsys):
    target = tmp_path / "schema.json"
    target.write_text("{}")
    assert main(["schema", "--check", "--output", str(target)]) == 1
    assert main(["schema", "--output", str(target)]) == 0
    assert main(["schema", "--check", "--output", str(target)]) == 0


def test_deploy_commands_are_reachable(capsys):
    with pytest.raises(SystemExit) as done:
        main(["deploy", "--help"])
    assert done.value.code == 0
    assert "promote" in capsys.readouterr().out
