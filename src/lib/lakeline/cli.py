"""The ``lakeline`` command line."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from lakeline.errors import LakelineError

JOB_KEY = "medallion"


def _bundle_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / "databricks.yml").is_file():
            return folder
    raise LakelineError(f"no databricks.yml in {start} or above; run from the bundle folder")


def run_local(args: argparse.Namespace) -> int:
    from lakeline.local.runner import run_fixture_batches
    from lakeline.session import local_connect_session, local_session, quiet

    root = _bundle_root(Path(args.bundle).resolve())
    work = (root / args.workdir).resolve()
    if args.fresh and work.exists():
        shutil.rmtree(work)
    if args.connect:  # the same job as a client of a local Spark Connect server
        spark = local_connect_session(work / "warehouse")
    else:
        spark = local_session(work / "warehouse")
    quiet(spark)
    runs = run_fixture_batches(
        spark, root, work, root / args.fixtures, batches=args.batch, target=args.target
    )
    return 0 if runs and runs[-1].ok else 1


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


def contracts_check(args: argparse.Namespace) -> int:
    """Compare the contracts with a git base ref; exit 1 on a breaking change."""
    from lakeline.contracts import breaking_changes, format_reports
    from lakeline.metadata import load_project

    load_project(args.metadata)  # the new contracts must be valid (and agree with metadata)
    folder = str(Path(args.metadata) / "contracts")
    reports = breaking_changes(Path("."), args.base, folder)
    text, blocking = format_reports(reports, args.base)
    print(text)
    return 1 if blocking else 0


def quarantine_replay(args: argparse.Namespace) -> int:
    """Re-check a dataset's quarantined rows against the metadata and move passing ones."""
    from lakeline.environment import Environment
    from lakeline.local.bundle import load_job
    from lakeline.metadata import load_project
    from lakeline.quarantine import replay, replay_token
    from lakeline.runlog import logged_step
    from lakeline.session import local_session, quiet

    root = _bundle_root(Path(args.bundle).resolve())
    project = load_project(root / args.metadata)
    if args.dataset not in project.datasets:
        raise LakelineError(
            f"no dataset '{args.dataset}' in {args.metadata} "
            f"(known: {', '.join(sorted(project.datasets))})"
        )
    job = load_job(root, JOB_KEY, args.target)
    work = (root / args.workdir).resolve()
    env = Environment(
        catalog=job.variables["catalog"],
        landing_root=str(work / "landing"),
        checkpoint_root=str(work / "checkpoints"),
        unity_catalog=False,
    )
    spark = local_session(work / "warehouse")
    quiet(spark)
    env.ensure_schemas(spark)
    run_id = replay_token()
    with logged_step(spark, env, run_id, args.dataset, "replay") as result:
        counts = replay(spark, env, project.datasets[args.dataset], run_id, result)
    print(
        f"replay {run_id} of '{args.dataset}': {counts.pending} quarantined row(s) re-checked, "
        f"{counts.replayed} moved to silver ({counts.inserted} inserted, {counts.updated} "
        f"updated, {counts.deleted} deleted, {counts.stale} older than silver), "
        f"{counts.still_quarantined} still quarantined"
        + (f", {counts.requarantined} quarantined again" if counts.requarantined else "")
        + (f"; {counts.recovered} finished from an earlier replay" if counts.recovered else "")
    )
    return 0


def backfill(args: argparse.Namespace) -> int:
    """Rebuild a dataset's silver (and gold) from bronze in the local work folder."""
    from datetime import UTC, datetime

    from lakeline.local.bundle import load_job
    from lakeline.pipeline import Request, run_backfill
    from lakeline.session import local_session, quiet

    root = _bundle_root(Path(args.bundle).resolve())
    job = load_job(root, JOB_KEY, args.target)
    work = (root / args.workdir).resolve()
    spark = local_session(work / "warehouse")
    quiet(spark)
    request = Request(
        catalog=job.variables["catalog"],
        landing_root=str(work / "landing"),
        checkpoint_root=str(work / "checkpoints"),
        run_id=f"backfill-{datetime.now(UTC):%Y%m%dT%H%M%S}",
        dataset=args.dataset,
        layer="silver",
    )
    gold = not args.no_gold
    result = run_backfill(
        spark, request, since=args.since, until=args.until, runs=args.run, with_gold=gold
    )
    print(result.to_json())
    return 0 if result.status == "succeeded" else 1


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
    run.add_argument(
        "--connect",
        action="store_true",
        help="run as a Spark Connect client of a local Connect server (as Databricks Connect)",
    )
    run.set_defaults(func=run_local)

    check = sub.add_parser("validate", help="validate the metadata and list what it defines")
    check.add_argument("metadata", nargs="?", default="src/metadata")
    check.set_defaults(func=validate)

    export = sub.add_parser("schema", help="write (or --check) the dataset JSON Schema")
    export.add_argument("--output", default="docs/schema/dataset.schema.json")
    export.add_argument("--check", action="store_true")
    export.set_defaults(func=schema)

    rebuild = sub.add_parser(
        "backfill", help="rebuild a dataset's silver (and gold) from bronze, all or a range"
    )
    rebuild.add_argument("dataset")
    rebuild.add_argument("--since", help="bronze rows ingested at or after (ISO time)")
    rebuild.add_argument("--until", help="bronze rows ingested before (ISO time)")
    rebuild.add_argument("--run", action="append", help="bronze rows of this run (repeatable)")
    rebuild.add_argument("--no-gold", action="store_true", help="leave gold as it is")
    rebuild.add_argument("--target", default=None, help="bundle target for variables")
    rebuild.add_argument("--bundle", default=".", help="bundle folder (default: here or above)")
    rebuild.add_argument("--workdir", default=".lakeline", help="the local run's work folder")
    rebuild.set_defaults(func=backfill)

    contracts = sub.add_parser(
        "contracts-check",
        help="list contract changes against a git ref; exit 1 on a breaking change",
    )
    contracts.add_argument(
        "--base", required=True, help="git ref to compare with, e.g. origin/main"
    )
    contracts.add_argument("--metadata", default="src/metadata", help="metadata folder")
    contracts.set_defaults(func=contracts_check)

    replay = sub.add_parser(
        "quarantine-replay",
        help="re-check a dataset's quarantined rows with its current rules; move passing rows",
    )
    replay.add_argument("dataset")
    replay.add_argument("--target", default=None, help="bundle target (for the catalog)")
    replay.add_argument("--bundle", default=".", help="bundle folder (default: here or above)")
    replay.add_argument("--workdir", default=".lakeline", help="the local run's work folder")
    replay.add_argument("--metadata", default="src/metadata", help="metadata, bundle-relative")
    replay.set_defaults(func=quarantine_replay)
    # Listed for --help; main() hands everything after "deploy" to lakeline.deploy.cli.
    sub.add_parser(
        "deploy",
        help="blue/green production: promote, rollback, status, unlock (docs/deploying.md)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["deploy"]:
        from lakeline.deploy.cli import main as deploy_main

        return deploy_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LakelineError as exc:
        print(f"lakeline: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
