"""Checks keep answering from a standby while the primary is dead; their log rows wait in a spool.

A primary with two synchronous standbys (``ANY 1``), the app on the multi-host
URL with ``REGISTRY_CHECK_SPOOL`` on: the primary is killed (-9, every
process), checks are answered from a standby and spooled, writes are refused,
a standby is promoted, and the spooled rows land in the new primary's
``check_log`` exactly once, where "who checked my number" reads them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from registry import migrate
from registry.checks import receipts, spool
from registry.checks.history import checks_for_phone
from registry.extensions import db
from tests import factories
from tests.conftest import Api, make_app
from tests.factories import HOLDER, HOLDER2
from tests.replication.cluster import BIN, Cluster
from tests.replication.cluster import cluster as start_cluster

pytestmark = [
    pytest.mark.replication,
    pytest.mark.live,
    pytest.mark.skipif(not BIN, reason="needs the PostgreSQL server binaries"),
]
MAX_LAG = 1.0
OPT_OUT = {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "source": "call"}


def _app(c: Cluster, instance: Path) -> Flask:
    hosts = ",".join(f"127.0.0.1:{p}" for p in c.ports)
    return make_app(
        f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write",
        instance,
        REGISTRY_DATABASE_REPLICA_URLS=",".join(c.url(p) for p in c.standby_ports),
        REGISTRY_REPLICA_MAX_LAG=str(MAX_LAG),
        REGISTRY_REPLICA_TIMEOUT="0.5",
        REGISTRY_REPLICA_COMMIT_ALLOWANCE="0.5",
        REGISTRY_REPLICA_SYNC_QUORUM="2",  # ANY 1 of 2 synchronous standbys: both must answer
        REGISTRY_DATABASE_CONNECT_TIMEOUT="2",
        REGISTRY_CHECK_SPOOL="on",
        REGISTRY_POLICY="opt-out",  # a number without a refusal is allowed
    )


def _check(api: Api, phone: str) -> tuple[int, dict[str, Any], str]:
    resp = api.post(
        "/check",
        {
            "phone": phone,
            "sender": "acme-cards",
            "channel": "sms",
            "at": "2030-01-15T12:00:00+08:00",
        },
    )
    return resp.status_code, resp.get_json(), resp.headers.get("X-Anning-Read-From", "")


def _until(what: Any, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_checks_answer_from_a_standby_while_the_primary_is_dead(tmp_path: Path) -> None:
    with start_cluster(standbys=2, sync="ANY 1") as c:
        migrate.upgrade(c.url(c.primary_port))
        app = _app(c, tmp_path)
        settings = app.config["REGISTRY"]
        try:
            with app.app_context(), db.session() as s:
                key = factories.world(s).keys["acme"]
            api = Api(app.test_client(), key)
            assert api.post("/optouts", OPT_OUT).status_code == 201
            # Both answers from a standby (the opt-out older than the bound by now).
            _until(
                lambda: _check(api, HOLDER)[2] == "replica" and _check(api, HOLDER2)[2] == "replica"
            )
            local = spool.of(settings)
            assert local is not None
            assert local.origin is not None

            c.kill_primary()
            killed = time.monotonic()
            spooled: dict[int, tuple[str, str]] = {}
            # Longer than the staleness bound: the standbys' own positions keep them fresh.
            while time.monotonic() < killed + 3 * MAX_LAG + 1:
                for phone, want in ((HOLDER, ("deny", "opted_out")), (HOLDER2, ("allow",))):
                    status, out, source = _check(api, phone)
                    assert status == 200, out
                    assert (out["decision"], out["reason"])[: len(want)] == want, out
                    assert source == "replica"
                    claims = receipts.verify(settings, out["check_id"])
                    assert claims.log_id is not None
                    assert claims.log_id < 0
                    spooled[claims.log_id] = (phone, out["decision"])
            assert len(spooled) >= 10
            assert {i for i, _ in local.pending(10_000)} == set(spooled)
            # What must be exact is not answered meanwhile: an opt-out is refused.
            other = {**OPT_OUT, "phone": HOLDER2}
            assert api.post("/optouts", other).status_code == 503

            best, _received = c.promote_most_advanced()  # the failover, by hand
            # The next check written on the new primary replays the spool (the worker would too).
            _until(lambda: _check(api, HOLDER2)[0] == 200 and not local.pending())
            with app.app_context():
                local.replay(db.engine)  # a second replayer: nothing left, nothing doubled
            ids = ",".join(str(i) for i in spooled)
            rows = c.sql(
                c.ports[best],
                f"SELECT id, phone, decision, count(*) FROM check_log WHERE id IN ({ids}) "
                "GROUP BY id, phone, decision",
            )
            assert {r[0]: (r[1], r[2]) for r in rows} == spooled
            assert all(r[3] == 1 for r in rows)
            with app.app_context(), db.session() as s:
                mine = checks_for_phone(s, HOLDER2, limit=10_000)
            answered = sum(1 for p, _ in spooled.values() if p == HOLDER2)
            assert sum(1 for r in mine if r["decision"] == "allow") >= answered
        finally:
            with app.app_context():
                db.dispose()
