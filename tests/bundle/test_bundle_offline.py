"""Offline checks of the bundle files: typed models, paths, wiring and production rules.

These need no CLI and no workspace; they name the file and field that is wrong.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from databricks.bundles.jobs import ClusterSpec, Job

REPO = Path(__file__).resolve().parents[2]
PRODUCTION_TARGETS = ["staging", "prod_blue", "prod_green"]
TASK_VALUE_REF = re.compile(r"^\{\{tasks\.([A-Za-z0-9_]+)\.values\.([A-Za-z0-9_]+)\}\}$")
VAR_REF = re.compile(r"\$\{var\.([A-Za-z0-9_]+)")


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


BUNDLE = load(REPO / "databricks.yml")
RESOURCE_FILES = sorted(
    path for pattern in BUNDLE["include"] for path in REPO.glob(pattern) if path.is_file()
)
JOBS = [
    (path, key, spec)
    for path in RESOURCE_FILES
    for key, spec in ((load(path).get("resources") or {}).get("jobs") or {}).items()
]
JOB_IDS = [f"{path.name}:{key}" for path, key, _ in JOBS]


def tasks_of(job: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for task in job.get("tasks") or []:
        out.append(task)
        if "for_each_task" in task:
            out.append(task["for_each_task"]["task"])
    return out


def walk(node: Any, trail: str = ""):
    """Yields (trail, key, value) for every mapping entry in a YAML tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield trail, key, value
            yield from walk(value, f"{trail}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{trail}[{i}]")


def test_there_are_jobs_to_check():
    assert {key for _, key, _ in JOBS} >= {"medallion", "maintenance"}


@pytest.mark.parametrize(("path", "key", "job"), JOBS, ids=JOB_IDS)
def test_job_parses_with_the_typed_bundle_models(path, key, job):
    try:
        Job.from_dict(job)
    except (TypeError, ValueError) as exc:
        pytest.fail(f"{path.relative_to(REPO)}: job {key}: {exc}", pytrace=False)


@pytest.mark.parametrize("variable", ["aws_job_cluster", "azure_job_cluster"])
def test_cluster_variables_parse_as_cluster_specs(variable):
    spec = BUNDLE["variables"][variable]["default"]
    ClusterSpec.from_dict(spec)
    assert "autoscale" in spec and "policy_id" in spec and "data_security_mode" in spec
    attributes = spec.get("aws_attributes") or spec.get("azure_attributes")
    assert attributes["first_on_demand"] == "${var.first_on_demand}"
    assert BUNDLE["variables"]["first_on_demand"]["default"] >= 1  # the driver is on-demand
    assert set(spec["custom_tags"]) == {"team", "cost_center", "environment", "color"}


@pytest.mark.parametrize(("path", "key", "job"), JOBS, ids=JOB_IDS)
def test_notebook_paths_exist(path, key, job):
    for task in tasks_of(job):
        notebook = (task.get("notebook_task") or {}).get("notebook_path")
        if notebook:
            resolved = (path.parent / notebook).resolve()
            assert resolved.is_file(), f"{path.name}: task {task['task_key']}: {notebook} missing"
            assert resolved.read_text().startswith("# Databricks notebook source"), resolved


@pytest.mark.parametrize(("path", "key", "job"), JOBS, ids=JOB_IDS)
def test_for_each_inputs_reference_upstream_tasks_and_their_task_values(path, key, job):
    tasks = {t["task_key"]: t for t in job.get("tasks") or []}

    def upstream(task_key: str) -> set[str]:
        seen: set[str] = set()
        todo = [d["task_key"] for d in tasks[task_key].get("depends_on") or []]
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo += [d["task_key"] for d in tasks[current].get("depends_on") or []]
        return seen

    for task in tasks.values():
        for dep in task.get("depends_on") or []:
            assert dep["task_key"] in tasks, f"{path.name}: {task['task_key']} -> {dep}"
        loop = task.get("for_each_task")
        if not loop:
            continue
        match = TASK_VALUE_REF.match(loop["inputs"])
        assert match, f"{path.name}: {task['task_key']}: inputs {loop['inputs']!r}"
        producer, value = match.groups()
        assert producer in tasks, f"{path.name}: {task['task_key']} reads unknown task {producer}"
        assert producer in upstream(task["task_key"]), f"{producer} is not upstream"
        notebook = (path.parent / tasks[producer]["notebook_task"]["notebook_path"]).resolve()
        assert re.search(
            rf"taskValues\.set\(\s*key\s*=\s*[\"']{value}[\"']", notebook.read_text()
        ), f"{notebook.name} never sets the task value {value!r} that {task['task_key']} reads"
        assert 1 <= loop.get("concurrency", 1) <= 16


def test_only_job_clusters_no_all_purpose_cluster():
    trees = [("databricks.yml", BUNDLE)] + [(p.name, load(p)) for p in RESOURCE_FILES]
    for name, tree in trees:
        for trail, key, _ in walk(tree):
            assert key not in {"existing_cluster_id", "cluster_id"}, f"{name}: {trail}.{key}"
    for path, _key, job in JOBS:
        clusters = {c["job_cluster_key"] for c in job.get("job_clusters") or []}
        for task in tasks_of(job):
            if "for_each_task" in task:
                continue
            assert task.get("job_cluster_key") in clusters, f"{path.name}: {task['task_key']}"


@pytest.mark.parametrize(("path", "key", "job"), JOBS, ids=JOB_IDS)
def test_schedule_paused_unless_the_target_says_otherwise(path, key, job):
    assert job["schedule"]["pause_status"] == "${var.schedule_pause_status}"
    assert BUNDLE["variables"]["schedule_pause_status"]["default"] == "PAUSED"
    for name, target in BUNDLE["targets"].items():
        assert "schedule_pause_status" not in (target.get("variables") or {}), name
    assert job["email_notifications"]["on_failure"] == "${var.failure_recipients}"
    assert job["tags"]["component"] == key


def test_targets():
    targets = BUNDLE["targets"]
    assert set(targets) == {"dev", *PRODUCTION_TARGETS}
    assert targets["dev"]["mode"] == "development" and targets["dev"]["default"] is True
    roots = set()
    for name in PRODUCTION_TARGETS:
        target = targets[name]
        assert target["mode"] == "production", name
        root = target["workspace"]["root_path"]
        assert root.endswith(f"/{name}"), f"{name}: root_path {root} is not per target"
        roots.add(root)
        assert target["run_as"] == {"service_principal_name": "${var.service_principal}"}, name
        levels = {p["level"] for p in target["permissions"]}
        assert "CAN_MANAGE" in levels and "CAN_VIEW" in levels, name
        assert target["presets"]["tags"]["environment"] == target["variables"]["environment"]
    assert len(roots) == len(PRODUCTION_TARGETS)
    for color in ("blue", "green"):
        target = targets[f"prod_{color}"]
        assert target["variables"]["color"] == color
        assert target["presets"]["tags"]["color"] == color
        assert target["presets"]["name_prefix"] == f"[{color}] "
    assert set(BUNDLE["presets"]["tags"]) == {"project", "team", "cost_center"}


def test_every_variable_reference_is_declared():
    declared = set(BUNDLE["variables"])
    texts = [(REPO / "databricks.yml").read_text()] + [p.read_text() for p in RESOURCE_FILES]
    used = {name for text in texts for name in VAR_REF.findall(text)}
    assert used - declared == set()
