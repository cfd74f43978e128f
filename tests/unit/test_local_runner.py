"""The local harness: dbutils stand-in, notebook runner and the bundle job runner."""

import json
import shutil
import textwrap

import pytest

from lakeline.local.bundle import load_job, resolve_variables
from lakeline.local.dbutils import LocalDbutils
from lakeline.local.notebooks import run_notebook
from lakeline.local.runner import LocalJobRunner, format_summary, run_fixture_batches, summary_rows


def test_widgets_take_parameters_over_defaults():
    dbutils = LocalDbutils({"catalog": "lakeline_prod"}, {})
    dbutils.widgets.text("catalog", "lakeline_dev")
    dbutils.widgets.text("run_id", "interactive")
    assert dbutils.widgets.get("catalog") == "lakeline_prod"
    assert dbutils.widgets.get("run_id") == "interactive"
    with pytest.raises(ValueError, match="no widget named 'nope'"):
        dbutils.widgets.get("nope")
    with pytest.raises(ValueError, match="not one of"):
        LocalDbutils({"layer": "platinum"}, {}).widgets.dropdown("layer", "silver", ["silver"])


def test_task_values_flow_between_tasks():
    store = {}
    LocalDbutils({}, store, "plan").jobs.taskValues.set("datasets", ["a", "b"])
    reader = LocalDbutils({}, store, "ingest").jobs.taskValues
    assert reader.get(taskKey="plan", key="datasets") == ["a", "b"]
    with pytest.raises(ValueError, match="never set"):
        reader.get(taskKey="plan", key="other")
    with pytest.raises(TypeError):
        LocalDbutils({}, store, "plan").jobs.taskValues.set("bad", object())


NOTEBOOK = """\
# Databricks notebook source
dbutils.widgets.text("name", "nobody")
name = dbutils.widgets.get("name")
if name == "boom":
    raise RuntimeError("the notebook failed on purpose")
dbutils.jobs.taskValues.set(key="items", value=[name, name.upper()])

# COMMAND ----------

dbutils.notebook.exit(json.dumps({"dataset": name, "step": "demo", "status": "succeeded",
                                  "rows_read": 1, "rows_written": 2}))
"""


def make_bundle(tmp_path, first_name="ok"):
    (tmp_path / "resources").mkdir()
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "task.py").write_text(
        "# Databricks notebook source\nimport json\n" + NOTEBOOK.split("\n", 1)[1]
    )
    (tmp_path / "databricks.yml").write_text(
        textwrap.dedent(
            """\
            bundle: {name: demo}
            include: [resources/*.yml]
            variables:
              first: {default: unused}
              greeting: {default: "hello-${var.first}"}
            targets:
              dev: {default: true, variables: {first: FIRST}}
            """
        ).replace("FIRST", first_name)
    )
    (tmp_path / "resources" / "job.yml").write_text(
        textwrap.dedent(
            """\
            resources:
              jobs:
                demo:
                  parameters:
                    - {name: run, default: "{{job.run_id}}"}
                  tasks:
                    - task_key: first
                      notebook_task:
                        notebook_path: ../nb/task.py
                        base_parameters: {name: "${var.first}"}
                    - task_key: each
                      depends_on: [{task_key: first}]
                      for_each_task:
                        inputs: "{{tasks.first.values.items}}"
                        concurrency: 2
                        task:
                          task_key: each_one
                          notebook_task:
                            notebook_path: ../nb/task.py
                            base_parameters: {name: "{{input}}"}
                    - task_key: last
                      depends_on: [{task_key: each}]
                      notebook_task: {notebook_path: ../nb/task.py}
            """
        )
    )
    return tmp_path


def test_variables_resolve_per_target(tmp_path):
    job = load_job(make_bundle(tmp_path, "ada"), "demo")
    assert job.target == "dev" and job.variables["greeting"] == "hello-ada"
    assert resolve_variables({"variables": {"a": {"default": 1}}}, "x") == {"a": 1}


def test_job_runs_tasks_in_order_and_expands_for_each(spark, tmp_path):
    job = load_job(make_bundle(tmp_path, "ada"), "demo")
    run = LocalJobRunner(job, spark, {}, "run-7").run()
    assert run.ok
    assert [t.task_key for t in run.tasks] == ["first", "each[ada]", "each[ADA]", "last"]
    assert run.tasks[1].parameters == {"name": "ada", "run": "run-7"}
    assert run.tasks[3].output["dataset"] == "nobody"
    table = format_summary(summary_rows(run))
    assert "ADA" in table and "succeeded" in table


def test_a_failing_task_fails_the_run_and_skips_what_depends_on_it(spark, tmp_path):
    job = load_job(make_bundle(tmp_path, "boom"), "demo")
    run = LocalJobRunner(job, spark, {}, "run-8").run()
    assert not run.ok
    [failed] = run.failed
    assert failed.task_key == "first"
    assert failed.error == "RuntimeError: the notebook failed on purpose"
    assert [t.status for t in run.tasks[1:]] == ["skipped (upstream failed)"] * 2


def test_run_notebook_rejects_plain_python(spark, tmp_path):
    path = tmp_path / "x.py"
    path.write_text("print('hi')\n")
    with pytest.raises(ValueError, match="not a Databricks source-format notebook"):
        run_notebook(path, spark)


def test_a_failing_ingest_fails_the_run_and_is_in_the_run_log(spark, repo, tmp_path):
    """The real job and notebooks: a source file missing a declared column fails ingest."""
    fixtures = tmp_path / "fixtures" / "retail"
    shutil.copytree(repo / "fixtures" / "retail" / "batch_1", fixtures / "batch_1")
    broken = next((fixtures / "batch_1" / "customers").glob("*.csv"))
    lines = broken.read_text().splitlines()
    broken.write_text("\n".join([lines[0].replace("email_address", "mail")] + lines[1:]) + "\n")
    work = tmp_path / "work"
    [run] = run_fixture_batches(spark, repo, work, fixtures, target="staging")
    assert not run.ok
    [failed] = run.failed
    assert failed.task_key == "ingest[customers]"
    assert "dataset 'customers'" in failed.error and "'email_address'" in failed.error
    assert {t.task_key: t.status for t in run.tasks}["silver"] == "skipped (upstream failed)"
    log = spark.table("lakeline_staging__ops.run_log").where("status = 'failed'").collect()
    assert [(r.dataset, r.step) for r in log] == [("customers", "bronze")]
    assert "email_address" in log[0].error
    assert json.loads(log[0].details) == {}
