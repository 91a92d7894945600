"""Checks read from a real streaming standby, and never from one that lags or is gone.

Builds a primary and a hot standby (two PostgreSQL clusters on free ports,
``pg_basebackup -R``) in a temporary folder. Runs in the PostgreSQL pass of
the suite, where the server binaries are on the machine.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from flask import Flask

from registry import migrate
from registry.db import metadata
from registry.extensions import db
from tests.conftest import Api, make_app
from tests.factories import HOLDER

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not BIN or not os.environ.get("REGISTRY_TEST_DATABASE_URL", "").startswith("postgres"),
        reason="needs PostgreSQL server binaries (runs in the PostgreSQL pass)",
    ),
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*cmd: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *cmd], check=True, capture_output=True, timeout=120)


class Cluster:
    """A primary and a streaming standby."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.bin = BIN[-1]
        self.p1, self.p2 = _port(), _port()
        self.primary, self.standby = base / "primary", base / "standby"

    def start(self) -> None:
        _as_postgres(f"{self.bin}/initdb", "-D", str(self.primary), "-A", "trust", "-U", "postgres")
        with open(self.primary / "postgresql.conf", "a") as fh:
            fh.write(
                f"port = {self.p1}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.base}'\n"
                "wal_level = replica\nmax_wal_senders = 5\nfsync = off\n"
            )
        self._ctl(self.primary, "start")
        _as_postgres(f"{self.bin}/pg_basebackup", "-h", "127.0.0.1", "-p", str(self.p1), "-U", "postgres",
                     "-D", str(self.standby), "-R", "-X", "stream")  # fmt: skip
        with open(self.standby / "postgresql.conf", "a") as fh:
            fh.write(f"port = {self.p2}\nhot_standby = on\n")
        self._ctl(self.standby, "start")

    def _ctl(self, data: Path, action: str) -> None:
        _as_postgres(
            f"{self.bin}/pg_ctl",
            "-D",
            str(data),
            "-l",
            str(data) + ".log",
            "-w",
            "-m",
            "immediate",
            action,
        )

    def url(self, port: int) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    def sql(self, port: int, statement: str) -> None:
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True
        ) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def stop(self) -> None:
        for data in (self.standby, self.primary):
            if data.exists():
                with contextlib.suppress(subprocess.CalledProcessError):
                    self._ctl(data, "stop")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # Not under pytest's private temp folder: the postgres user must reach it.
    base = Path(tempfile.mkdtemp(prefix="anning-pgrepl-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    c = Cluster(base)
    c.start()
    migrate.upgrade(c.url(c.p1))
    yield c
    c.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def replicated(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Flask, Api]]:
    app = make_app(
        cluster.url(cluster.p1),
        tmp_path,
        REGISTRY_DATABASE_REPLICA_URLS=cluster.url(cluster.p2),
        REGISTRY_REPLICA_MAX_LAG="1",
    )
    from tests import factories

    with app.app_context(), db.session() as s:
        world = factories.world(s)
    yield app, Api(app.test_client(), world.keys["acme"])
    with app.app_context():
        with db.engine.begin() as conn:
            names = ", ".join(t.name for t in metadata.sorted_tables)
            conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        db.dispose()


def _check(api: Api) -> tuple[str, str]:
    resp = api.post(
        "/check",
        {
            "phone": HOLDER,
            "sender": "acme-cards",
            "channel": "sms",
            "at": "2030-01-15T12:00:00+08:00",
        },
    )
    assert resp.status_code == 200
    return resp.get_json()["reason"], resp.headers["X-Anning-Read-From"]


def _wait_replay(cluster: Cluster) -> None:
    time.sleep(0.6)  # past the health cache


def test_checks_read_from_the_standby(replicated: tuple[Flask, Api], cluster: Cluster) -> None:
    _app, api = replicated
    time.sleep(1.0)  # let the standby replay the setup
    assert _check(api) == ("no_consent", "replica")
    api.post(
        "/optouts", {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "source": "call"}
    )
    time.sleep(0.5)
    assert _check(api) == ("opted_out", "replica")


def test_lagging_standby_is_not_used(replicated: tuple[Flask, Api], cluster: Cluster) -> None:
    _app, api = replicated
    time.sleep(1.0)
    assert _check(api)[1] == "replica"
    cluster.sql(cluster.p2, "SELECT pg_wal_replay_pause()")
    try:
        api.post(
            "/optouts",
            {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "source": "call"},
        )
        time.sleep(1.8)  # the standby is now more than the 1 s bound behind
        # The answer must reflect the opt-out: read from the primary, not the stale standby.
        assert _check(api) == ("opted_out", "primary")
    finally:
        cluster.sql(cluster.p2, "SELECT pg_wal_replay_resume()")
    time.sleep(1.0)
    assert _check(api) == ("opted_out", "replica")


def test_dead_standby_falls_back_to_primary(
    replicated: tuple[Flask, Api], cluster: Cluster
) -> None:
    _app, api = replicated
    time.sleep(1.0)
    assert _check(api)[1] == "replica"
    cluster._ctl(cluster.standby, "stop")
    try:
        time.sleep(0.6)
        assert _check(api) == ("no_consent", "primary")
    finally:
        cluster._ctl(cluster.standby, "start")


def test_revoked_key_is_refused_at_once_while_checks_read_from_the_standby(
    replicated: tuple[Flask, Api], cluster: Cluster
) -> None:
    """Per-process copies of the key are never verified against a standby that may lag."""
    app, api = replicated
    time.sleep(1.0)
    assert _check(api)[1] == "replica"  # the process now holds copies of key and sender
    cluster.sql(cluster.p2, "SELECT pg_wal_replay_pause()")
    try:
        with app.app_context(), db.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE api_key SET revoked_at = timezone('utc', now())")
        resp = api.post("/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"})
        assert resp.status_code == 401  # the standby has not seen the revocation yet
    finally:
        cluster.sql(cluster.p2, "SELECT pg_wal_replay_resume()")
