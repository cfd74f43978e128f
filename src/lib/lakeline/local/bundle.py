"""Read a job out of the bundle: databricks.yml, its includes, and one target's variables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lakeline.errors import LakelineError

_VAR = re.compile(r"\$\{var\.([A-Za-z0-9_]+)\}")


@dataclass(frozen=True)
class BundleJob:
    """A job definition as the bundle declares it, with its target's variables resolved."""

    root: Path
    target: str
    key: str
    definition: dict[str, Any]
    source_file: Path
    variables: dict[str, str]


def _read(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise LakelineError(f"{path}: not valid YAML: {exc}") from exc


def resolve_variables(bundle: dict, target: str) -> dict[str, str]:
    """Variable values for ``target``: defaults, then the target's overrides, resolved."""
    values: dict[str, Any] = {}
    for name, spec in (bundle.get("variables") or {}).items():
        if isinstance(spec, dict) and "default" in spec:
            values[name] = spec["default"]
    overrides = ((bundle.get("targets") or {}).get(target) or {}).get("variables") or {}
    for name, value in overrides.items():
        values[name] = value.get("default") if isinstance(value, dict) else value
    for _ in range(10):  # variables may refer to each other
        changed = False
        for name, value in values.items():
            if isinstance(value, str):
                new = _VAR.sub(lambda m: str(values.get(m.group(1), m.group(0))), value)
                changed |= new != value
                values[name] = new
        if not changed:
            break
    return values


def load_job(root: str | Path, job_key: str, target: str | None = None) -> BundleJob:
    root = Path(root)
    bundle = _read(root / "databricks.yml")
    targets = bundle.get("targets") or {}
    if target is None:
        target = next((t for t, spec in targets.items() if (spec or {}).get("default")), None)
    if target not in targets:
        raise LakelineError(
            f"databricks.yml has no target {target!r} (targets: {', '.join(targets)})"
        )
    files = [root / "databricks.yml"]
    for pattern in bundle.get("include") or []:
        files += sorted(root.glob(pattern))
    for path in files:
        jobs = ((_read(path).get("resources") or {}).get("jobs")) or {}
        if job_key in jobs:
            return BundleJob(
                root=root,
                target=target,
                key=job_key,
                definition=jobs[job_key],
                source_file=path,
                variables=resolve_variables(bundle, target),
            )
    raise LakelineError(f"no job '{job_key}' in databricks.yml or its includes")


def substitute_variables(value: str, variables: dict[str, str], extra: dict[str, str]) -> str:
    """Replace ${var.x} and the ${workspace.*} / ${bundle.*} names given in ``extra``."""
    value = _VAR.sub(lambda m: str(variables.get(m.group(1), m.group(0))), value)
    for name, replacement in extra.items():
        value = value.replace("${" + name + "}", replacement)
    return value
