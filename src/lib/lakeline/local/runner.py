"""Run the bundle's job locally, task by task, with the unchanged notebooks.

The job definition is read from ``resources/*.yml``. Tasks run in ``depends_on`` order;
a ``for_each_task`` is expanded from its ``inputs`` (a task value or a JSON list); job
parameters and base parameters reach the notebooks as widgets; ``{{job.run_id}}``,
``{{job.parameters.<name>}}``, ``{{tasks.<key>.values.<name>}}`` and ``{{input}}`` are
resolved as a workspace would. For-each iterations run in threads, at most
``concurrency`` at a time, sharing the one SparkSession.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakeline.errors import LakelineError
from lakeline.local.bundle import BundleJob, load_job, substitute_variables
from lakeline.local.notebooks import run_notebook

_DYNAMIC = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")


@dataclass
class TaskRun:
    task_key: str
    notebook: str
    parameters: dict[str, str]
    status: str = "pending"
    seconds: float = 0.0
    output: Any = None
    error: str | None = None


@dataclass
class JobRun:
    run_id: str
    tasks: list[TaskRun] = field(default_factory=list)

    @property
    def failed(self) -> list[TaskRun]:
        return [t for t in self.tasks if t.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed and all(t.status == "succeeded" for t in self.tasks)


class TaskFailed(LakelineError):
    pass


def _order(tasks: list[dict]) -> list[dict]:
    by_key = {t["task_key"]: t for t in tasks}
    done: list[str] = []
    while len(done) < len(tasks):
        ready = [
            k
            for k, t in by_key.items()
            if k not in done and all(d["task_key"] in done for d in t.get("depends_on") or [])
        ]
        if not ready:
            raise LakelineError("the job's tasks depend on each other in a cycle")
        done.extend(ready)
    return [by_key[k] for k in done]


class LocalJobRunner:
    """Executes one BundleJob in this process against ``spark``."""

    def __init__(self, job: BundleJob, spark, overrides: dict[str, str], run_id: str, out=None):
        self.job = job
        self.spark = spark
        self.run_id = run_id
        self.overrides = overrides
        self.out = out or sys.stdout
        self.task_values: dict[str, dict[str, Any]] = {}
        extra = {
            "workspace.file_path": str(job.root),
            "bundle.target": job.target,
            "bundle.name": "lakeline",
        }
        params = {}
        for p in job.definition.get("parameters") or []:
            params[p["name"]] = substitute_variables(
                str(p.get("default", "")), job.variables, extra
            )
        params.update(overrides)
        self.extra = extra
        self.parameters = {k: self._dynamic(v) for k, v in params.items()}

    def _dynamic(self, value: str, item: str | None = None) -> str:
        def replace(match: re.Match) -> str:
            ref = match.group(1)
            if ref == "job.run_id":
                return self.run_id
            if ref == "input" and item is not None:
                return item
            if ref.startswith("job.parameters."):
                return self.parameters[ref.removeprefix("job.parameters.")]
            if ref.startswith("tasks.") and ".values." in ref:
                task, _, key = ref.removeprefix("tasks.").partition(".values.")
                if key not in self.task_values.get(task, {}):
                    raise LakelineError(f"task value {ref} was never set")
                return json.dumps(self.task_values[task][key])
            raise LakelineError(f"cannot resolve {{{{{ref}}}}} locally")

        return _DYNAMIC.sub(replace, value)

    def _notebook(self, spec: dict) -> Path:
        path = spec["notebook_path"]
        path = path if path.endswith(".py") else path + ".py"
        return (self.job.source_file.parent / path).resolve()

    def _run_notebook(self, task_key: str, spec: dict, item: str | None = None) -> TaskRun:
        base = {
            k: self._dynamic(substitute_variables(str(v), self.job.variables, self.extra), item)
            for k, v in (spec.get("base_parameters") or {}).items()
        }
        # Job parameters take precedence over a task's base parameters, as in a workspace.
        params = {**base, **self.parameters}
        label = task_key if item is None else f"{task_key}[{item}]"
        run = TaskRun(label, str(self._notebook(spec)), params)
        clock = time.perf_counter()
        try:
            value = run_notebook(
                self._notebook(spec), self.spark, params, self.task_values, task_key
            )
            run.output = json.loads(value) if value else None
            run.status = "succeeded"
        except Exception as exc:  # the task fails; the run goes on to report it
            run.status = "failed"
            run.error = f"{type(exc).__name__}: {exc}"
        run.seconds = round(time.perf_counter() - clock, 1)
        mark = "ok" if run.status == "succeeded" else "FAILED"
        line = f"  {label:<30} {mark:<7} {run.seconds:>6.1f}s"
        if run.error:
            line += "\n      " + run.error.splitlines()[0][:300]
        print(line, file=self.out, flush=True)
        return run

    def run(self) -> JobRun:
        result = JobRun(self.run_id)
        failed_keys: set[str] = set()
        for task in _order(self.job.definition.get("tasks") or []):
            key = task["task_key"]
            upstream = [d["task_key"] for d in task.get("depends_on") or []]
            if any(u in failed_keys for u in upstream):
                failed_keys.add(key)
                result.tasks.append(TaskRun(key, "", {}, status="skipped (upstream failed)"))
                print(f"  ▷ {key:<28} skipped: upstream failed", file=self.out)
                continue
            if "notebook_task" in task:
                runs = [self._run_notebook(key, task["notebook_task"])]
            elif "for_each_task" in task:
                loop = task["for_each_task"]
                inputs = json.loads(self._dynamic(str(loop["inputs"])))
                inner = loop["task"]
                if "notebook_task" not in inner:
                    raise LakelineError(f"task '{key}': only notebook tasks run locally")
                workers = max(1, int(loop.get("concurrency", 1)))
                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=key) as pool:
                    runs = list(
                        pool.map(
                            lambda item, key=key, inner=inner: self._run_notebook(
                                key, inner["notebook_task"], str(item)
                            ),
                            inputs,
                        )
                    )
            else:
                raise LakelineError(f"task '{key}': only notebook and for-each tasks run locally")
            result.tasks.extend(runs)
            if any(r.status == "failed" for r in runs):
                failed_keys.add(key)
        return result


def summary_rows(run: JobRun) -> list[dict[str, Any]]:
    """One row per dataset and layer from the notebooks' exit values."""
    rows = []
    for task in run.tasks:
        out = task.output if isinstance(task.output, dict) else None
        if out is None:
            if task.status != "succeeded":
                rows.append(
                    {
                        "dataset": task.task_key,
                        "layer": "-",
                        "rows_in": None,
                        "rows_out": None,
                        "quarantined": None,
                        "status": task.status,
                        "seconds": task.seconds,
                    }
                )
            continue
        rows.append(
            {
                "dataset": out.get("dataset"),
                "layer": out.get("step"),
                "rows_in": out.get("rows_read"),
                "rows_out": out.get("rows_written"),
                "quarantined": (out.get("details") or {}).get("quarantined"),
                "duplicates": (out.get("details") or {}).get("duplicates"),
                "warned": (out.get("details") or {}).get("warned"),
                "failed_rules": _failed_rules(out.get("details") or {}),
                "status": out.get("status"),
                "seconds": task.seconds,
            }
        )
    return rows


def _failed_rules(details: dict) -> str | None:
    """Rules that failed on some rows, as ``name×rows``, for the summary (silver only)."""
    failed = details.get("failed_rules")
    if not isinstance(failed, dict):
        return None
    text = ", ".join(f"{name}×{rows}" for name, rows in sorted(failed.items())) or "none"
    return text if len(text) <= 60 else text[:57] + "..."


def format_summary(rows: list[dict[str, Any]]) -> str:
    headers = [
        "dataset",
        "layer",
        "rows_in",
        "rows_out",
        "quarantined",
        "duplicates",
        "warned",
        "failed_rules",
        "status",
        "seconds",
    ]
    table = [[("-" if r.get(h) is None else str(r[h])) for h in headers] for r in rows]
    widths = [
        max(len(h), *(len(row[i]) for row in table)) if table else len(h)
        for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    return "\n".join(lines)


def stage_batch(batch: Path, landing: Path, name: str) -> list[Path]:
    """Copy one fixture batch into the landing folder, as files arriving from a source."""
    copied = []
    for source in sorted(p for p in batch.rglob("*") if p.is_file()):
        target = landing / name / source.relative_to(batch)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        copied.append(target)
    return copied


def run_fixture_batches(
    spark,
    root: Path,
    work: Path,
    fixtures: Path,
    batches: list[str] | None = None,
    target: str | None = None,
    job_key: str = "medallion",
    out=None,
) -> list[JobRun]:
    """Land each ``batch_N`` folder of ``fixtures`` in turn and run the bundle's job after each.

    Landing, checkpoints and tables live under ``work``; the metadata is the bundle's own
    ``src/metadata``. Stops at the first failed run. Prints progress and a summary per run.
    """
    out = out or sys.stdout
    job = load_job(root, job_key, target)
    found = sorted(p for p in fixtures.glob("batch_*") if p.is_dir())
    chosen = [b for b in found if not batches or b.name.removeprefix("batch_") in batches]
    if not chosen:
        raise LakelineError(f"no batch_* folders to run under {fixtures}")
    overrides = {
        "landing_root": str(work / "landing"),
        "checkpoint_root": str(work / "checkpoints"),
        "metadata_dir": str(root / "src" / "metadata"),
    }
    print(f"lakeline: local run of job '{job_key}' ({job.source_file.relative_to(root)})", file=out)
    print(f"  target {job.target}: catalog {job.variables.get('catalog')}, in {work}", file=out)
    runs = []
    for batch in chosen:
        staged = stage_batch(batch, work / "landing", fixtures.name)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        run_id = f"local-{stamp}-{batch.name}"
        print(f"\n== {batch.name}: {len(staged)} file(s) landed; run {run_id}", file=out)
        run = LocalJobRunner(job, spark, overrides, run_id, out=out).run()
        runs.append(run)
        print("\n" + format_summary(summary_rows(run)), file=out)
        if not run.ok:
            for task in run.failed:
                print(f"\nFAILED task {task.task_key}: {task.error}", file=sys.stderr)
            break
    return runs
