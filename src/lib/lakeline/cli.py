"""The ``lakeline`` command line."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from lakeline.errors import LakelineError

JOB_KEY = "medallion"


def _bundle_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / "databricks.yml").is_file():
            return folder
    raise LakelineError(f"no databricks.yml in {start} or above; run from the bundle folder")


def stage_batch(batch: Path, landing: Path, name: str) -> list[str]:
    """Copy one fixture batch into the local landing folder, as new files arriving."""
    copied = []
    for source in sorted(p for p in batch.rglob("*") if p.is_file()):
        target = landing / name / source.relative_to(batch)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        copied.append(str(target))
    return copied


def run_local(args: argparse.Namespace) -> int:
    from lakeline.local.bundle import load_job
    from lakeline.local.runner import LocalJobRunner, format_summary, summary_rows
    from lakeline.session import local_session

    root = _bundle_root(Path(args.bundle).resolve())
    work = (root / args.workdir).resolve()
    if args.fresh and work.exists():
        shutil.rmtree(work)
    job = load_job(root, JOB_KEY, args.target)
    fixtures = (root / args.fixtures).resolve()
    batches = sorted(p for p in fixtures.glob("batch_*") if p.is_dir())
    if args.batch:
        batches = [b for b in batches if b.name.removeprefix("batch_") in args.batch]
    if not batches:
        raise LakelineError(f"no batch_* folders to run under {fixtures}")
    overrides = {
        "landing_root": str(work / "landing"),
        "checkpoint_root": str(work / "checkpoints"),
        "metadata_dir": str(root / "src" / "metadata"),
    }
    print(f"lakeline: local run of job '{JOB_KEY}' from {job.source_file.relative_to(root)}")
    print(f"  target {job.target}: catalog {job.variables.get('catalog')}, work folder {work}")
    spark = local_session(work / "warehouse")
    spark.sparkContext.setLogLevel("ERROR")
    status = 0
    for batch in batches:
        staged = stage_batch(batch, work / "landing", fixtures.name)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        run_id = f"local-{stamp}-{batch.name}"
        print(f"\n== {batch.name}: {len(staged)} file(s) landed; run {run_id}")
        run = LocalJobRunner(job, spark, overrides, run_id).run()
        print()
        print(format_summary(summary_rows(run)))
        if not run.ok:
            for task in run.failed:
                print(f"\nFAILED task {task.task_key}: {task.error}", file=sys.stderr)
            status = 1
            break
    return status


def validate(args: argparse.Namespace) -> int:
    from lakeline.metadata import load_project

    project = load_project(args.metadata)
    print(
        f"{len(project.datasets)} dataset(s): {', '.join(sorted(project.datasets))}\n"
        f"{len(project.gold)} gold table(s), build order: "
        f"{' -> '.join(g.name for g in project.gold_order())}"
    )
    return 0


def schema(args: argparse.Namespace) -> int:
    from lakeline.metadata import dataset_json_schema

    text = json.dumps(dataset_json_schema(), indent=2, sort_keys=True) + "\n"
    target = Path(args.output)
    if args.check:
        if not target.is_file() or target.read_text() != text:
            print(f"{target} is out of date; run `lakeline schema`", file=sys.stderr)
            return 1
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(f"wrote {target}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the bundle's medallion job locally on the fixtures")
    run.add_argument(
        "--target", default=None, help="bundle target for variables (default: the default target)"
    )
    run.add_argument("--bundle", default=".", help="bundle folder (default: here or above)")
    run.add_argument("--fixtures", default="fixtures/retail", help="folder of batch_N folders")
    run.add_argument("--batch", action="append", help="run only batch N (repeatable)")
    run.add_argument("--workdir", default=".lakeline", help="local landing, checkpoints, tables")
    run.add_argument("--fresh", action="store_true", help="start from an empty work folder")
    run.set_defaults(func=run_local)

    check = sub.add_parser("validate", help="validate the metadata and list what it defines")
    check.add_argument("metadata", nargs="?", default="src/metadata")
    check.set_defaults(func=validate)

    export = sub.add_parser("schema", help="write (or --check) the dataset JSON Schema")
    export.add_argument("--output", default="docs/schema/dataset.schema.json")
    export.add_argument("--check", action="store_true")
    export.set_defaults(func=schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LakelineError as exc:
        print(f"lakeline: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
