"""dbutils.notebook.run in the local harness: paths, arguments and exit values as in a workspace."""

from __future__ import annotations

import pytest

from lakeline.local.notebooks import run_notebook

HEADER = "# Databricks notebook source\n"


def notebook(path, body: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + body)
    return path


def test_a_notebook_runs_another_by_relative_path_with_arguments(tmp_path):
    notebook(
        tmp_path / "lib" / "child.py",
        'dbutils.widgets.text("x", "default")\n'
        'dbutils.notebook.exit(dbutils.widgets.get("x") + ":" + str(spark))\n',
    )
    notebook(tmp_path / "lib" / "quiet.py", "pass\n")
    parent = notebook(
        tmp_path / "tests" / "parent.py",
        'got = dbutils.notebook.run("../lib/child", 60, {"x": 7})\n'
        'quiet = dbutils.notebook.run("../lib/quiet", 60)\n'
        'dbutils.notebook.exit(f"{got}|{quiet!r}")\n',
    )
    # The child sees the parent's session and its own widgets, arguments as strings.
    assert run_notebook(parent, "the-session") == "7:the-session|''"


def test_a_missing_notebook_names_the_path_it_looked_for(tmp_path):
    parent = notebook(tmp_path / "parent.py", 'dbutils.notebook.run("./nowhere", 60)\n')
    with pytest.raises(FileNotFoundError, match=r"no notebook './nowhere' .*nowhere\.py"):
        run_notebook(parent, "the-session")


def test_an_error_in_the_child_reaches_the_caller(tmp_path):
    notebook(tmp_path / "child.py", 'raise ValueError("bad input")\n')
    parent = notebook(tmp_path / "parent.py", 'dbutils.notebook.run("child", 60)\n')
    with pytest.raises(ValueError, match="bad input"):
        run_notebook(parent, "the-session")
