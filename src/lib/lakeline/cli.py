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
    from lakeline.session import local_session

    root = _bundle_root(Path(args.bundle).resolve())
    work = (root / args.workdir).resolve()
    if args.fresh and work.exists():
        shutil.rmtree(work)
    spark = local_session(work / "warehouse")
    spark.sparkContext.setLogLevel("ERROR")
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
