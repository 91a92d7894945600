"""SQLite's write-ahead log is checkpointed by a thread, never inside a writer's COMMIT.

SQLite's automatic checkpoint runs in the COMMIT that fills the log, with two
fsyncs, while that writer holds the machine-wide writer lock; every other
writer waited behind it. The registry's connections turn it off and each
process's checkpoint thread copies the log back every ``Checkpoints.EVERY``
writes (registry/database/writerlock.py).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from registry.database.engines import make_engine
from registry.database.writerlock import _WRITERS, Checkpoints
from registry.ratelimit import SQLiteStorage
from tests.wait import wait_for


def _log_frames(path: Path) -> tuple[int, int]:
    """Return (frames in the log, frames already copied back), without copying any."""
    conn = sqlite3.connect(path)
    try:
        # A PASSIVE checkpoint of a log another thread is checkpointing reports the same counts.
        _busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(NOOP)").fetchone()
    except sqlite3.OperationalError:  # SQLite before 3.x NOOP: ask nothing
        pytest.skip("this SQLite has no NOOP checkpoint")
    finally:
        conn.close()
    return frames, copied


def test_commits_do_not_checkpoint_and_the_thread_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Checkpoints, "EVERY", 50)
    path = tmp_path / "registry.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    checkpoints = _WRITERS[engine].checkpoints
    assert checkpoints is not None
    # Big rows: well over SQLite's 1,000-page automatic threshold before the thread's turn.
    for i in range(Checkpoints.EVERY - 2):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": "x" * 100_000 + str(i)})
    frames, copied = _log_frames(path)
    assert frames > 1000  # no COMMIT checkpointed the log (it would have reset it)
    assert checkpoints.done == 0
    for i in range(2):  # the EVERY-th write wakes the thread
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": str(i)})
    wait_for("the checkpoint thread", lambda: checkpoints.done >= 1)
    frames, copied = _log_frames(path)
    assert copied == frames > 0  # everything copied back into the database file
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == Checkpoints.EVERY
    engine.dispose()


def test_a_checkpoint_waits_for_no_writer(tmp_path: Path) -> None:
    """The thread's checkpoint runs while another writer holds the writer lock and writes."""
    path = tmp_path / "registry.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    checkpoints = _WRITERS[engine].checkpoints
    assert checkpoints is not None
    with engine.begin() as conn:  # holds the writer lock and SQLite's write lock
        conn.exec_driver_sql("INSERT INTO t DEFAULT VALUES")
        checkpoints.checkpoint()  # would block (or fail busy) if it needed either
        assert checkpoints.done == 1
    engine.dispose()


def test_a_removed_file_is_not_created_again(tmp_path: Path) -> None:
    checkpoints = Checkpoints(str(tmp_path / "gone.sqlite3"))
    checkpoints.checkpoint()
    assert checkpoints.done == 0
    assert not (tmp_path / "gone.sqlite3").exists()


def test_the_rate_limit_file_is_checkpointed_off_its_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Checkpoints, "EVERY", 20)
    storage = SQLiteStorage(f"sqlite:///{tmp_path / 'limits.sqlite3'}")
    assert storage._db().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    checkpoints = storage._writers.checkpoints
    assert checkpoints is not None
    for _ in range(Checkpoints.EVERY):
        storage.incr("key", 60)
    wait_for("the rate limits' checkpoint", lambda: checkpoints.done >= 1)
    assert storage.get("key") == Checkpoints.EVERY
