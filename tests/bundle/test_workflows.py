"""The GitHub workflows: schema-checked, linted with actionlint, and held to the delivery rules."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lakeline.deploy.bundle_cli import tools_dir

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
README_TEST_COMMAND = "bash .ci/setup && .venv/bin/pytest"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@(v\d+\.\d+\.\d+|[0-9a-f]{40})$")


def load(path: Path) -> dict:
    # PyYAML reads the key `on` as True; give it back its name.
    data = yaml.safe_load(path.read_text())
    if True in data:
        data["on"] = data.pop(True)
    return data


def run(*command: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def actionlint() -> Path:
    path = Path(os.environ.get("LAKELINE_ACTIONLINT") or tools_dir() / "bin" / "actionlint")
    if not os.access(path, os.X_OK):
        pytest.fail(f"actionlint missing at {path}: run `bash .ci/tools.sh`", pytrace=False)
    return path


CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def test_the_three_workflows_exist():
    assert {p.name for p in WORKFLOWS} == {"pr.yml", "deploy.yml", "rollback.yml"}


def test_workflows_match_the_github_workflow_schema():
    result = run(CHECK_JSONSCHEMA, "--builtin-schema", "vendor.github-workflows", *WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_is_clean(actionlint):
    result = run(actionlint, "-no-color", *WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_both_checkers_reject_a_broken_workflow(tmp_path, actionlint):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        (REPO / ".github/workflows/rollback.yml").read_text().replace("runs-on:", "run-on:")
    )
    schema = run(CHECK_JSONSCHEMA, "--builtin-schema", "vendor.github-workflows", broken)
    lint = run(actionlint, "-no-color", broken)
    assert schema.returncode != 0 and "run-on" in schema.stdout + schema.stderr
    assert lint.returncode != 0 and "run-on" in lint.stdout


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_to_full_versions(path):
    for job in load(path)["jobs"].values():
        for step in job.get("steps", []):
            if "uses" in step:
                assert PINNED.match(step["uses"]), f"{path.name}: {step['uses']} is not pinned"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_concurrency_and_environments(path):
    workflow = load(path)
    assert workflow["permissions"] == {"contents": "read"}
    assert "group" in workflow["concurrency"]
    for name, job in workflow["jobs"].items():
        if (job.get("permissions") or {}).get("id-token") == "write":
            assert job.get("environment"), f"{path.name}: job {name} gets OIDC without environment"


def test_production_changes_share_one_concurrency_group_and_are_never_cancelled():
    deploy, rollback = (
        load(REPO / ".github/workflows/deploy.yml"),
        load(REPO / ".github/workflows/rollback.yml"),
    )
    assert deploy["concurrency"] == rollback["concurrency"]
    assert deploy["concurrency"]["cancel-in-progress"] is False
    assert deploy["jobs"]["production"]["environment"] == "production"
    assert rollback["jobs"]["rollback"]["environment"] == "production"
    assert deploy["jobs"]["production"]["needs"] == ["staging", "nutter"]
    assert deploy["on"]["push"]["branches"] == ["main"]
    assert list(rollback["on"]) == ["workflow_dispatch"]
    steps = deploy["jobs"]["production"]["steps"]
    promote = [s["run"] for s in steps if "promote" in s.get("run", "")]
    assert promote and "lakeline.deploy promote" in promote[0]


def test_pr_runs_the_readme_test_command():
    steps = load(REPO / ".github/workflows/pr.yml")["jobs"]["checks"]["steps"]
    assert README_TEST_COMMAND in [s.get("run", "").strip() for s in steps]
    java = [s for s in steps if s.get("uses", "").startswith("actions/setup-java@")]
    assert java and java[0]["with"]["java-version"] == "17"

    # Once the README has its Quick start block, its test command must be this one
    # (.ci/run reads it the same way: the second line of the first fenced block).
    readme = (REPO / "README.md").read_text().splitlines()
    if "## Quick start" in readme:
        block = readme[readme.index("## Quick start") :]
        fences = [i for i, line in enumerate(block) if line.startswith("```")]
        assert block[fences[0] + 2] == README_TEST_COMMAND


def test_pr_validates_every_target_on_the_workspace_or_says_why_not():
    job = load(REPO / ".github/workflows/pr.yml")["jobs"]["bundle-validate"]
    assert job["strategy"]["matrix"]["target"] == ["dev", "staging", "prod_blue", "prod_green"]
    notice = [s for s in job["steps"] if "::notice" in s.get("run", "")]
    assert notice and notice[0]["if"] == "env.WORKSPACE_READY != 'true'"
    assert "github.event.pull_request.head.repo.full_name" in job["env"]["WORKSPACE_READY"]
