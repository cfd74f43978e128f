"""Run a Databricks source-format notebook in this process, as a job task would."""

from __future__ import annotations

from pathlib import Path

from lakeline.local.dbutils import LocalDbutils, NotebookExit


def run_notebook(
    path: str | Path,
    spark,
    parameters: dict[str, str] | None = None,
    task_values: dict | None = None,
    task_key: str = "local",
) -> str | None:
    """Execute the notebook's cells with ``spark`` and a local ``dbutils``.

    Returns the value given to ``dbutils.notebook.exit`` (None if it never exits).
    Exceptions raised by the notebook propagate unchanged.
    """
    path = Path(path)
    source = path.read_text()
    if not source.startswith("# Databricks notebook source"):
        raise ValueError(f"{path} is not a Databricks source-format notebook")
    dbutils = LocalDbutils(
        parameters or {},
        task_values if task_values is not None else {},
        task_key,
        notebook_path=path,
        spark=spark,
    )
    scope = {
        "__name__": "__main__",
        "__file__": str(path),
        "spark": spark,
        "dbutils": dbutils,
        "display": lambda df, *a, **k: df.show(truncate=False),
    }
    try:
        exec(compile(source, str(path), "exec"), scope)  # noqa: S102 - running a notebook
    except NotebookExit as done:
        return done.value
    return None
