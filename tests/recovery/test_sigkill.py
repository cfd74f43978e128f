"""A run killed with SIGKILL at several points, then rerun, ends as a clean run does."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures" / "cdc"
CHILD = Path(__file__).with_name("child.py")

# Killed in turn, each run resuming what the previous one left: during ingest (bronze
# micro-batch committed, its state and checkpoint not), during the next ingest (the
# replayed batch not written again but its state recorded, the next one committed and
# its state recorded, its checkpoint not), during the silver merge (as the tombstones,
# written beside the MERGE, are about to be: silver merged or not, the checkpoint not;
# tests/cdc has the tombstone-without-MERGE case), after the silver batch (merged,
# tombstones and quarantine written, the checkpoint not), then a run to the end.
KILLS = [
    "lakeline.bronze._append:1:after",
    "lakeline.state.record:2:after",
    "lakeline.cdc._record_tombstones:1:before",
    "lakeline.cdc.process_batch:1:after",
]


def _metadata(tmp_path: Path) -> Path:
    folder = tmp_path / "metadata" / "datasets"
    folder.mkdir(parents=True)
    spec = yaml.safe_load((FIXTURES / "customers.yml").read_text())
    # One file per bronze micro-batch, so ingest has several commits to be killed between.
    spec["source"]["options"] = {"maxFilesPerTrigger": "1"}
    (folder / "customers_cdc.yml").write_text(yaml.safe_dump(spec))
    return folder.parent


def _run(tmp_path: Path, metadata: Path, landing: Path, run_id: str, kill: str):
    dump = tmp_path / f"{run_id}.json"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src" / "lib")}
    proc = subprocess.run(
        [
            sys.executable,
            str(CHILD),
            str(tmp_path / "work"),
            str(metadata),
            str(landing),
            run_id,
            kill,
            str(dump),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, (json.loads(dump.read_text()) if dump.exists() else None)


def test_sigkill_at_each_step_then_rerun_equals_a_clean_run(tmp_path):
    metadata = _metadata(tmp_path)
    landing = tmp_path / "landing"
    folder = landing / "cdc" / "customers"
    folder.mkdir(parents=True)
    for batch in (1, 2):
        for file in (FIXTURES / "feed" / f"batch_{batch}").iterdir():
            shutil.copy(file, folder / file.name)
    for i, kill in enumerate(KILLS):
        proc, dump = _run(tmp_path, metadata, landing, f"killed{i}", kill)
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
        assert dump is None
    proc, final = _run(tmp_path, metadata, landing, "rerun", "none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The clean run's result is the hand-written table (tests/cdc check the clean run).
    expected = []
    lines = (FIXTURES / "expected" / "customers_scd1.csv").read_text().splitlines()
    header = lines[0].split(",")
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=True))
        expected.append(
            json.dumps(
                {
                    "customer_id": int(row["customer_id"]),
                    "name": row["name"],
                    "city": row["city"],
                    "changed_at": row["changed_at"].replace("T", " "),
                    "lsn": int(row["lsn"]),
                },
                default=str,
            )
        )
    assert final["silver"] == sorted(expected)
    assert final["bronze_rows"] == 17  # every feed row exactly once: no duplicates, no loss
    assert final["quarantine_rows"] == 2  # the two bad changes, quarantined once
    # The state table lists every source file once, the replayed batches' files included.
    files = sorted(Path(f.removeprefix("file:")).name for f in final["state_files"])
    assert files == sorted(f.name for f in folder.iterdir())
