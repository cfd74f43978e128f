"""The real Databricks CLI validates and deploys the bundle against the workspace stand-in.

Assertions read what the CLI sent (the stand-in records every request), so they check the
bundle as Databricks receives it: after includes, targets, presets and variables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lakeline.testing.workspace_standin import WorkspaceStandIn

SERVICE_PRINCIPAL = "6d1c1a52-6f0e-4d2e-9a5b-2c4a1c0de001"  # BUNDLE_VAR_service_principal
DEVELOPER = "dana.developer@example.com"
TARGETS = ["dev", "staging", "prod_blue", "prod_green"]
JOB_PARAMETERS = {"catalog", "landing_root", "checkpoint_root", "metadata_dir", "run_id"}
NOTEBOOKS = {"sync", "plan", "ingest", "transform", "maintenance"}


def root_of(target: str, user: str = SERVICE_PRINCIPAL) -> str:
    return f"/Workspace/Users/{user}/.bundle/lakeline/{target}"


def all_tasks(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Every task of a job, the tasks inside for_each loops included."""
    out = []
    for task in settings.get("tasks") or []:
        out.append(task)
        if "for_each_task" in task:
            out.append(task["for_each_task"]["task"])
    return out


def created_jobs(standin: WorkspaceStandIn) -> dict[str, dict[str, Any]]:
    """Job settings by name, as the CLI sent them to jobs/create."""
    return {r.json["name"]: r.json for r in standin.requests_to("POST", "/api/2.2/jobs/create")}


def by_key(settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["task_key"]: t for t in settings["tasks"]}


# -- validate ------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_validate_every_target_strict(target, copy_bundle, standin_factory, bundle_cli):
    standin = standin_factory(DEVELOPER if target == "dev" else SERVICE_PRINCIPAL)
    cli = bundle_cli(copy_bundle(), standin)

    result = cli("validate", "--strict", "--target", target)

    assert "Validation OK!" in result.output
    assert standin.requests_to("GET", "/api/2.0/preview/scim/v2/Me")
    assert standin.unhandled == []


@pytest.mark.parametrize("target", ["staging", "prod_blue", "prod_green"])
def test_production_targets_resolve_root_path_run_as_and_permissions(
    target, copy_bundle, standin_factory, bundle_cli
):
    cli = bundle_cli(copy_bundle(), standin_factory())

    config = json.loads(cli("validate", "--target", target, "--output", "json").stdout)

    assert config["bundle"]["mode"] == "production"
    assert config["workspace"]["root_path"] == root_of(target)
    assert config["run_as"] == {"service_principal_name": SERVICE_PRINCIPAL}
    grants = {
        (p.get("group_name") or p.get("service_principal_name"), p["level"])
        for p in config["permissions"]
    }
    assert {(SERVICE_PRINCIPAL, "CAN_MANAGE"), ("lakeline-oncall", "CAN_RUN")} <= grants
    for job in config["resources"]["jobs"].values():
        assert job["run_as"] == {"service_principal_name": SERVICE_PRINCIPAL}
        assert job["tags"]["environment"] in {"staging", "prod"}
        assert {"project", "team", "cost_center", "component"} <= set(job["tags"])
        if target.startswith("prod_"):
            assert job["tags"]["color"] == target.removeprefix("prod_")


# -- deploy ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prod(copy_bundle, standin_factory, bundle_cli) -> WorkspaceStandIn:
    """One production workspace with both colors deployed: blue live, green idle with a policy."""
    standin = standin_factory(SERVICE_PRINCIPAL)
    cli = bundle_cli(copy_bundle(), standin)
    cli("deploy", "--target", "prod_blue", "--var", "schedule_pause_status=UNPAUSED")
    cli("deploy", "--target", "prod_green", "--var", "cluster_policy_id=policy-0042")
    return standin


@pytest.fixture(scope="module")
def dev(copy_bundle, standin_factory, bundle_cli) -> WorkspaceStandIn:
    standin = standin_factory(DEVELOPER)
    bundle_cli(copy_bundle(), standin)("deploy", "--target", "dev")
    return standin


def test_deploy_creates_every_job_once_per_color(prod, dev):
    assert sorted(created_jobs(prod)) == [
        "[blue] lakeline-maintenance",
        "[blue] lakeline-medallion",
        "[green] lakeline-maintenance",
        "[green] lakeline-medallion",
    ]
    assert sorted(created_jobs(dev)) == [
        "[dev dana_developer] lakeline-maintenance",
        "[dev dana_developer] lakeline-medallion",
    ]
    assert prod.unhandled == [] and dev.unhandled == []


@pytest.mark.parametrize("color", ["blue", "green"])
def test_notebooks_are_uploaded_and_tasks_point_at_them(prod, color):
    files = f"{root_of('prod_' + color)}/files"
    for name in NOTEBOOKS:
        uploaded = prod.object_at(f"{files}/src/notebooks/{name}")
        assert uploaded is not None and uploaded.object_type == "NOTEBOOK", name
    # The library the notebooks import and the metadata they read are there as files.
    assert prod.object_at(f"{files}/src/lib/lakeline/pipeline.py").object_type == "FILE"
    assert prod.paths_under(f"{files}/src/metadata/datasets")
    # Only what the jobs need is synced.
    for absent in ("fixtures", "tests", ".github", ".ci", "uv.lock"):
        assert prod.object_at(f"{files}/{absent}") is None, absent

    jobs = created_jobs(prod)
    paths = {
        t["task_key"]: t["notebook_task"]["notebook_path"]
        for t in all_tasks(jobs[f"[{color}] lakeline-medallion"])
        if "notebook_task" in t
    }
    notebooks = f"{files}/src/notebooks"
    assert paths == {
        "sync": f"{notebooks}/sync",
        "plan": f"{notebooks}/plan",
        "ingest_dataset": f"{notebooks}/ingest",
        "silver_dataset": f"{notebooks}/transform",
        "gold": f"{notebooks}/transform",
    }
    for path in paths.values():
        assert prod.object_at(path).object_type == "NOTEBOOK"


def test_job_parameters_reach_the_notebooks_with_target_values(prod, dev):
    medallion = created_jobs(prod)["[green] lakeline-medallion"]
    params = {p["name"]: p["default"] for p in medallion["parameters"]}
    assert set(params) == JOB_PARAMETERS
    assert params["catalog"] == "lakeline_prod"
    assert params["landing_root"] == "/Volumes/lakeline_prod/landing/files"
    assert params["checkpoint_root"] == "/Volumes/lakeline_prod/ops/checkpoints"
    assert params["metadata_dir"] == f"{root_of('prod_green')}/files/src/metadata"
    assert params["run_id"] == "{{job.run_id}}"

    dev_params = {
        p["name"]: p["default"]
        for p in created_jobs(dev)["[dev dana_developer] lakeline-medallion"]["parameters"]
    }
    assert dev_params["catalog"] == "lakeline_dev"

    tasks = by_key(medallion)
    assert tasks["ingest"]["for_each_task"]["task"]["notebook_task"]["base_parameters"] == {
        "dataset": "{{input}}"
    }
    assert tasks["gold"]["notebook_task"]["base_parameters"] == {"layer": "gold"}


def test_for_each_wiring(prod):
    tasks = by_key(created_jobs(prod)["[blue] lakeline-medallion"])
    assert set(tasks) == {"sync", "plan", "ingest", "silver", "gold"}
    for key, inner in (("ingest", "ingest_dataset"), ("silver", "silver_dataset")):
        loop = tasks[key]["for_each_task"]
        assert loop["inputs"] == "{{tasks.plan.values.datasets}}"
        assert loop["concurrency"] == 4
        assert loop["task"]["task_key"] == inner
    assert tasks["ingest"]["depends_on"] == [{"task_key": "plan"}]
    assert tasks["silver"]["depends_on"] == [{"task_key": "ingest"}]
    assert tasks["gold"]["depends_on"] == [{"task_key": "silver"}]


def test_job_clusters_spot_autoscale_policy_and_tags(prod, dev):
    jobs = created_jobs(prod)
    for name, settings in jobs.items():
        color = "blue" if name.startswith("[blue]") else "green"
        (cluster,) = settings["job_clusters"]
        spec = cluster["new_cluster"]
        assert cluster["job_cluster_key"] == "main"
        assert spec["aws_attributes"] == {
            "availability": "SPOT_WITH_FALLBACK",
            "first_on_demand": 1,
            "spot_bid_price_percent": 100,
        }
        assert spec["autoscale"] == {"min_workers": 1, "max_workers": 8}
        assert spec["data_security_mode"] == "SINGLE_USER"
        assert spec["spark_version"] == "15.4.x-scala2.12"
        assert spec["custom_tags"] == {
            "team": "data-platform",
            "cost_center": "cc-4410",
            "environment": "prod",
            "color": color,
        }
        # An empty policy variable leaves the field out; a set one reaches the cluster.
        if color == "green":
            assert spec["policy_id"] == "policy-0042"
            assert spec["apply_policy_default_values"] is True
        else:
            assert "policy_id" not in spec
        for task in all_tasks(settings):
            if "for_each_task" in task:
                continue
            assert task["job_cluster_key"] == "main", task["task_key"]
            assert "existing_cluster_id" not in task and "new_cluster" not in task
            assert task["max_retries"] >= 1 and task["min_retry_interval_millis"] >= 60000
            assert task["timeout_seconds"] > 0

    dev_spec = created_jobs(dev)["[dev dana_developer] lakeline-medallion"]["job_clusters"][0]
    assert dev_spec["new_cluster"]["autoscale"] == {"min_workers": 1, "max_workers": 2}


def test_schedules_are_paused_except_on_the_live_color(prod, dev):
    pause = {
        name: settings["schedule"]["pause_status"]
        for standin in (prod, dev)
        for name, settings in created_jobs(standin).items()
    }
    assert pause == {
        "[blue] lakeline-medallion": "UNPAUSED",
        "[blue] lakeline-maintenance": "UNPAUSED",
        "[green] lakeline-medallion": "PAUSED",
        "[green] lakeline-maintenance": "PAUSED",
        "[dev dana_developer] lakeline-medallion": "PAUSED",
        "[dev dana_developer] lakeline-maintenance": "PAUSED",
    }
    jobs = created_jobs(prod)
    assert jobs["[blue] lakeline-medallion"]["schedule"]["quartz_cron_expression"] == "0 0 2 * * ?"
    assert jobs["[blue] lakeline-maintenance"]["schedule"]["quartz_cron_expression"] == (
        "0 30 4 ? * SUN"
    )


def test_run_as_tags_notifications_and_permissions(prod, dev):
    for name, settings in created_jobs(prod).items():
        color = "blue" if name.startswith("[blue]") else "green"
        assert settings["run_as"] == {"service_principal_name": SERVICE_PRINCIPAL}
        assert settings["tags"] == {
            "project": "lakeline",
            "team": "data-platform",
            "cost_center": "cc-4410",
            "environment": "prod",
            "color": color,
            "component": "maintenance" if "maintenance" in name else "medallion",
        }
        assert settings["email_notifications"]["on_failure"] == ["lakeline-alerts@example.com"]
        assert settings["max_concurrent_runs"] == 1
    for settings in created_jobs(dev).values():
        assert "run_as" not in settings

    job_acls = [
        r.json["access_control_list"]
        for r in prod.requests
        if r.method == "PUT" and r.path.startswith("/api/2.0/permissions/jobs/")
    ]
    assert len(job_acls) == 4
    for acl in job_acls:
        grants = {
            (e.get("group_name") or e.get("service_principal_name"), e["permission_level"])
            for e in acl
        }
        assert ("lakeline-oncall", "CAN_MANAGE_RUN") in grants
        assert ("lakeline-engineers", "CAN_MANAGE") in grants
        assert ("users", "CAN_VIEW") in grants
    folder_acls = [
        r
        for r in prod.requests
        if r.method == "PUT" and r.path.startswith("/api/2.0/permissions/directories/")
    ]
    assert len(folder_acls) == 2  # each color's root_path


def test_redeploy_updates_the_same_jobs(copy_bundle, standin_factory, bundle_cli):
    standin = standin_factory(SERVICE_PRINCIPAL)
    cli = bundle_cli(copy_bundle(), standin)
    cli("deploy", "--target", "prod_green")
    ids = sorted(standin.jobs)
    cli("deploy", "--target", "prod_green", "--var", "max_workers=12")

    assert sorted(standin.jobs) == ids
    assert len(standin.requests_to("POST", "/api/2.2/jobs/create")) == 2
    resets = standin.requests_to("POST", "/api/2.2/jobs/reset")
    assert {r.json["job_id"] for r in resets} == set(ids)
    for job in standin.jobs.values():
        assert job["settings"]["job_clusters"][0]["new_cluster"]["autoscale"]["max_workers"] == 12


def test_azure_cluster_is_selected_by_a_target_variable(copy_bundle, standin_factory, bundle_cli):
    bundle = copy_bundle()
    text = (bundle / "databricks.yml").read_text()
    (bundle / "databricks.yml").write_text(
        text
        + """
  prod_azure:
    mode: production
    workspace:
      root_path: /Workspace/Users/${var.service_principal}/.bundle/${bundle.name}/prod_azure
    run_as:
      service_principal_name: ${var.service_principal}
    permissions: *production_permissions
    variables:
      job_cluster: ${var.azure_job_cluster}
"""
    )
    cli = bundle_cli(bundle, standin_factory())

    config = json.loads(cli("validate", "--target", "prod_azure", "--output", "json").stdout)

    spec = config["resources"]["jobs"]["medallion"]["job_clusters"][0]["new_cluster"]
    assert "aws_attributes" not in spec
    assert spec["azure_attributes"] == {
        "availability": "SPOT_WITH_FALLBACK_AZURE",
        "first_on_demand": 1,
        "spot_bid_max_price": -1,
    }
    assert spec["node_type_id"] == "Standard_D4ds_v5"


# -- an invalid bundle makes validate fail with the CLI's own message ---------------------------


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_missing_notebook_fails_validate(copy_bundle, standin_factory, bundle_cli):
    bundle = copy_bundle()
    _edit(
        bundle / "resources/medallion_job.yml",
        "../src/notebooks/plan.py",
        "../src/notebooks/plann.py",
    )

    result = bundle_cli(bundle, standin_factory())("validate", "--target", "prod_blue", check=False)

    assert result.returncode != 0
    assert "notebook src/notebooks/plann.py not found" in result.output


def test_misspelled_enum_fails_strict_validate(copy_bundle, standin_factory, bundle_cli):
    bundle = copy_bundle()
    _edit(bundle / "resources/medallion_job.yml", "op: GREATER_THAN", "op: GREATER_THEN")

    cli = bundle_cli(bundle, standin_factory())
    result = cli("validate", "--strict", "--target", "staging", check=False)

    assert result.returncode != 0
    assert 'invalid value "GREATER_THEN" for enum field' in result.output
    assert "resources.jobs.medallion.health.rules[0].op" in result.output
