"""Command line of the blue/green delivery: ``lakeline deploy <command>``.

    promote   deploy a version to the idle color (paused), smoke-run it, flip if it passed
    rollback  make the previous color live again
    status    which color is live, what each holds, pending flip, lock holder
    unlock    remove a stale lock (``--force``), e.g. after a crashed run that will not rerun

The workspace comes from the usual Databricks client configuration (``DATABRICKS_HOST`` plus a
token, OIDC or a profile). Exit codes: 0 done, 1 failed (smoke run, deploy, API),
3 another operation holds the lock (nothing changed).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import socket
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import DatabricksError

from lakeline.deploy import bluegreen
from lakeline.deploy.bundle_cli import BundleDeployer, require_cli

EXIT_FAILED = 1
EXIT_LOCKED = 3


def default_owner() -> str:
    """Who runs this: stable across reruns of one CI run, so a rerun resumes its own work."""
    if os.environ.get("LAKELINE_DEPLOY_OWNER"):
        return os.environ["LAKELINE_DEPLOY_OWNER"]
    if os.environ.get("GITHUB_RUN_ID"):
        repo = os.environ.get("GITHUB_REPOSITORY", "github")
        return f"{repo}/actions/runs/{os.environ['GITHUB_RUN_ID']}"
    return f"{getpass.getuser()}@{socket.gethostname()}"


def _parameters(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"--smoke-param wants NAME=VALUE, got {pair!r}")
        out[name] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakeline deploy", description="Blue/green promotion and rollback of production."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        help="workspace folder of the blue/green journal and lock "
        "(default: /Workspace/Users/<you>/.bundle/<project>/bluegreen)",
    )
    common.add_argument("--project", default="lakeline", help="value of the jobs' project tag")
    common.add_argument("--target-prefix", default="prod_", help="bundle targets are PREFIX+color")
    common.add_argument("--owner", default=None, help="lock owner (default: the CI run or you)")
    common.add_argument("--verbose", "-v", action="store_true")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("promote", parents=[common], help="deploy idle color, smoke, flip")
    p.add_argument("--version", required=True, help="what is deployed, e.g. the commit SHA")
    p.add_argument("--bundle-dir", default=".", type=Path, help="folder of databricks.yml")
    p.add_argument("--smoke-component", default="medallion", help="component tag of smoke job")
    p.add_argument(
        "--smoke-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="job parameter for the smoke run (repeatable)",
    )
    p.add_argument("--smoke-timeout-minutes", type=float, default=120)
    p.add_argument("--databricks-cli", type=Path, help="the Go CLI (default: built by tools.sh)")

    commands.add_parser("rollback", parents=[common], help="make the previous color live")
    s = commands.add_parser("status", parents=[common], help="show live color and state")
    s.add_argument("--json", action="store_true")
    u = commands.add_parser("unlock", parents=[common], help="remove a stale lock")
    u.add_argument("--force", action="store_true", help="required: you are sure it is stale")
    return parser


def main(argv: Sequence[str] | None = None, ws: WorkspaceClient | None = None) -> int:
    """Run one command; returns the exit code. ``ws`` is for tests (default: from the env)."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="lakeline deploy: %(message)s",
    )
    try:
        ws = ws or WorkspaceClient()
        config = bluegreen.BlueGreenConfig(
            state_dir=args.state_dir or bluegreen.default_state_dir(ws, args.project),
            project=args.project,
            target_prefix=args.target_prefix,
            **(
                {
                    "smoke_component": args.smoke_component,
                    "smoke_parameters": _parameters(args.smoke_param),
                    "smoke_timeout": timedelta(minutes=args.smoke_timeout_minutes),
                }
                if args.command == "promote"
                else {}
            ),
        )
        owner = args.owner or default_owner()
        if args.command == "promote":
            deployer = BundleDeployer(
                config, args.bundle_dir.resolve(), cli=args.databricks_cli or require_cli()
            )
            outcome = bluegreen.promote(ws, config, deployer, version=args.version, owner=owner)
            print(f"promote: {outcome.describe()}")
        elif args.command == "rollback":
            outcome = bluegreen.rollback(ws, config, owner=owner)
            print(f"rollback: {outcome.describe()}")
        elif args.command == "status":
            state = bluegreen.status(ws, config)
            if args.json:
                print(json.dumps(state, indent=2, default=str))
            else:
                print(f"live: {state['live'] or 'none'}   previous: {state['previous'] or 'none'}")
                for color in bluegreen.COLORS:
                    print(
                        f"  {color:5}  version {state['versions'].get(color, '-')}  "
                        f"schedules {', '.join(state['schedules'][color]) or 'no jobs'}"
                    )
                if state["pending"]:
                    print(f"pending (interrupted) flip: {state['pending']}")
                if state["lock"]:
                    print(f"locked by: {state['lock']}")
        elif args.command == "unlock":
            if not args.force:
                print("unlock: add --force once you are sure the holder is gone", file=sys.stderr)
                return EXIT_FAILED
            held = bluegreen.force_unlock(ws, config)
            print(f"unlock: removed lock held by {held}" if held else "unlock: no lock was held")
        return 0
    except bluegreen.OperationInProgress as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except (bluegreen.BlueGreenError, DatabricksError) as exc:
        print(f"{args.command} failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
