"""``registry scrub-worker`` as real processes: one killed with SIGKILL halfway, others resume.

A job of 200,000 numbers (20 chunks) is uploaded over HTTP; a worker process
is killed as soon as it has answered a chunk. What it left must be whole
chunks only (results, check-log rows and counters agree). Two new workers
are then started at once: one takes the job over when the dead one's lease
runs out, the other finds nothing to claim, and the result is every line
exactly once, each number logged exactly once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from registry.checks.models import CheckBatch, CheckLog
from registry.extensions import db
from registry.scrubs.models import ScrubChunk, ScrubJob
from tests import factories
from tests.api.test_scrubs import Http
from tests.conftest import TEST_ENV

REGISTRY = Path(sys.executable).parent / "registry"
ROWS = 200_000


def _worker(database_url: str, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **TEST_ENV, "REGISTRY_DATABASE_URL": database_url,
           "REGISTRY_INSTANCE_PATH": str(tmp_path / "instance")}  # fmt: skip
    with (tmp_path / f"{name}.log").open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [str(REGISTRY), "scrub-worker", "--lease", "3", "--interval", "0.1"],
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _job(job_id: int) -> ScrubJob:
    with db.session() as session:
        job = session.get(ScrubJob, job_id)
        assert job is not None
        session.expunge(job)
        return job


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _logged() -> tuple[int, int, int]:
    """Return (check-log rows, check batches, answered chunks) in the database."""
    with db.session() as session:
        return (
            session.scalar(select(func.count()).select_from(CheckLog)) or 0,
            session.scalar(select(func.count()).select_from(CheckBatch)) or 0,
            session.scalar(
                select(func.count()).select_from(ScrubChunk).where(ScrubChunk.result.is_not(None))  # type: ignore[union-attr]
            )
            or 0,
        )


@pytest.mark.live
def test_a_worker_killed_halfway_leaves_whole_chunks_and_another_finishes(
    live_server: str, database_url: str, tmp_path: Path
) -> None:
    with db.session() as session:
        world = factories.world(session)
    acme = Http(live_server, world.keys["acme"])
    path = tmp_path / "list.csv"
    with path.open("w") as fh:
        fh.write("phone\n")
        fh.writelines(f"+86139{i:08d}\n" for i in range(ROWS))
    with path.open("rb") as fh:
        status, job = acme.upload(fh)
    assert status == 202, job
    job_id = job["id"]

    first = _worker(database_url, tmp_path, "first")
    try:
        assert _wait(lambda: _job(job_id).chunks_done >= 1, 120), (
            tmp_path / "first.log"
        ).read_text()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    left = _job(job_id)
    assert left.status == "running", "the dead worker still holds its lease"
    assert 0 < left.chunks_done < left.chunks, "killed halfway"
    # Whole chunks only: counters, results, batches and log rows all agree.
    assert left.processed == left.chunks_done * 10_000
    assert _logged() == (left.processed, left.chunks_done, left.chunks_done)
    status, polled = acme.json("GET", f"/scrubs/{job_id}")
    assert (polled["status"], polled["processed"]) == ("running", left.processed)
    status, _refused = acme.json("GET", f"/scrubs/{job_id}/result.csv")
    assert status == 409  # never a half-written result

    others = [_worker(database_url, tmp_path, name) for name in ("second", "third")]
    try:
        assert _wait(lambda: _job(job_id).status == "done", 300), (
            tmp_path / "second.log"
        ).read_text() + (tmp_path / "third.log").read_text()
    finally:
        for proc in others:
            proc.send_signal(signal.SIGTERM)
        for proc in others:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    done = _job(job_id)
    assert done.claims == 1, "taken over exactly once, by one of the two"
    assert (done.processed, done.allowed + done.denied + done.invalid) == (ROWS, ROWS)
    assert _logged() == (ROWS, done.chunks, done.chunks)  # no chunk answered twice

    status, _headers, data = acme.request("GET", f"/scrubs/{job_id}/result.csv")
    assert status == 200
    assert hashlib.sha256(data).hexdigest() == done.result_sha256
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert [int(r["line"]) for r in rows] == list(range(2, ROWS + 2))
    assert rows[-1]["phone"] == f"+86139{ROWS - 1:08d}"
    status, cert = acme.json("GET", f"/scrubs/{job_id}/certificate")
    assert (cert["rows"], cert["result_sha256"]) == (ROWS, done.result_sha256)
