"""Checks from real streaming standbys: spread, bounded in staleness, never stale on a refusal.

A primary and two hot standbys (tests/replication/cluster.py: their own
server processes on free ports, in a temporary folder), migrated once. The
replication lane of .ci/run runs this module (``pytest -m replication``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from registry import migrate
from registry.database.naming import metadata
from registry.extensions import db
from tests.conftest import Api, make_app
from tests.factories import HOLDER, HOLDER2
from tests.replication.cluster import BIN, Cluster
from tests.replication.cluster import cluster as start_cluster
from tests.wait import wait_for

pytestmark = [
    pytest.mark.replication,
    pytest.mark.live,
    pytest.mark.skipif(not BIN, reason="needs the PostgreSQL server binaries"),
]
MAX_LAG, TIMEOUT, ALLOWANCE = 1.0, 0.5, 0.5
PROBE = min(0.5, MAX_LAG / 4)  # Replicas.probe_every
OPT_OUT = {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "source": "call"}


STATS = "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track_planning = on\n"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with start_cluster(standbys=2, extra=STATS) as c:
        migrate.upgrade(c.url(c.primary_port))
        c.sql(c.primary_port, "CREATE EXTENSION pg_stat_statements")
        yield c


def _app(
    cluster: Cluster, tmp_path: Path, standbys: bool = True, max_lag: float = MAX_LAG, **extra: str
) -> Flask:
    env = {
        "REGISTRY_REPLICA_MAX_LAG": str(max_lag),
        "REGISTRY_REPLICA_TIMEOUT": str(TIMEOUT),
        "REGISTRY_REPLICA_COMMIT_ALLOWANCE": str(ALLOWANCE),
        **extra,
    }
    if standbys:
        env["REGISTRY_DATABASE_REPLICA_URLS"] = ",".join(
            cluster.url(p) for p in cluster.standby_ports
        )
    return make_app(cluster.url(cluster.primary_port), tmp_path, **env)


@pytest.fixture
def replicated(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Flask, Api]]:
    app = _app(cluster, tmp_path)
    from tests import factories

    with app.app_context(), db.session() as s:
        world = factories.world(s)
    api = Api(app.test_client(), world.keys["acme"])
    yield app, api
    _tear_down(app, cluster)


def _tear_down(app: Flask, cluster: Cluster) -> None:
    for port in cluster.standby_ports:
        cluster.sql(port, "SELECT pg_wal_replay_resume()")
    with app.app_context():
        with db.engine.begin() as conn:
            names = ", ".join(t.name for t in metadata.sorted_tables)
            conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        db.dispose()


def _check(api: Api, phone: str = HOLDER, **extra: str) -> tuple[str, str]:
    resp = api.post(
        "/check",
        {
            "phone": phone,
            "sender": "acme-cards",
            "channel": "sms",
            "at": "2030-01-15T12:00:00+08:00",
            **extra,
        },
    )
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["reason"], resp.headers["X-Anning-Read-From"]


def _until_replica(api: Api, phone: str = HOLDER, timeout: float = 10) -> None:
    """Wait until checks are answered from a standby."""
    wait_for("a standby to answer", lambda: _check(api, phone)[1] == "replica", timeout)


def _paused(cluster: Cluster) -> None:
    for port in cluster.standby_ports:
        cluster.sql(port, "SELECT pg_wal_replay_pause()")


def _resumed(cluster: Cluster) -> None:
    """Resume replay on every standby and wait until they hold all the primary wrote."""
    for port in cluster.standby_ports:
        cluster.sql(port, "SELECT pg_wal_replay_resume()")
    wait_for("the standbys to replay", cluster.caught_up, 10)


def _engines(app: Flask) -> tuple[Engine, list[Engine]]:
    state = app.extensions["registry.db"]
    return state.engine, state.replicas.engines


class Statements:
    """Count the statements each engine sends (SQLAlchemy's cursor events), those containing ``only``."""

    def __init__(self, *engines: Engine, only: str = "") -> None:
        self.engines = engines
        self.counts = [0] * len(engines)
        self._listeners = []
        for i, engine in enumerate(engines):

            def count(_conn: Any, _cursor: Any, statement: str, *_args: Any, i: int = i) -> None:
                self.counts[i] += only in statement

            event.listen(engine, "before_cursor_execute", count)
            self._listeners.append((engine, count))

    def close(self) -> None:
        for engine, fn in self._listeners:
            event.remove(engine, "before_cursor_execute", fn)


def test_checks_read_from_a_standby_and_a_fresh_optout_from_the_primary(
    replicated: tuple[Flask, Api],
) -> None:
    _app, api = replicated
    _until_replica(api)
    assert _check(api) == ("no_consent", "replica")
    assert api.post("/optouts", OPT_OUT).status_code == 201
    # The number's own refusal is younger than the standby's measured staleness
    # plus the allowance: the log row's insert finds it, the primary answers.
    assert _check(api) == ("opted_out", "primary")
    # Once the opt-out is older than the window, standbys answer for the number again.
    answers: list[tuple[str, str]] = []
    wait_for(
        "a standby to answer the opted-out number",
        lambda: answers.append(_check(api)) or answers[-1][1] == "replica",
        MAX_LAG + ALLOWANCE + 5,
    )
    assert {reason for reason, _source in answers} == {"opted_out"}


def test_checks_are_spread_over_every_healthy_standby(replicated: tuple[Flask, Api]) -> None:
    app, api = replicated
    _until_replica(api)
    _primary, standbys = _engines(app)
    counter = Statements(*standbys, only="opt_out")  # the facts query, not the health probes
    try:
        sources = [_check(api, HOLDER2)[1] for _ in range(20)]
    finally:
        counter.close()
    assert sources.count("replica") >= 18, sources
    # In turn: each of the two standbys read the facts of about half the checks.
    assert sum(counter.counts) == sources.count("replica"), counter.counts
    assert min(counter.counts) >= 7, counter.counts


def _primary_statements(app: Flask, api: Api, checks: int, batch: bool = False) -> float:
    primary, _standbys = _engines(app)
    for _ in range(3):  # warm: copies, feed number
        _check(api, HOLDER2)
    counter = Statements(primary)
    try:
        for _ in range(checks):
            if batch:
                resp = api.post(
                    "/check/batch",
                    {"phones": [HOLDER, HOLDER2], "sender": "acme-cards", "channel": "sms"},
                )
                assert resp.status_code == 200, resp.get_json()
            else:
                _check(api, HOLDER2)
    finally:
        counter.close()
    return counter.counts[0] / checks


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_standbys_take_statements_off_the_primary(
    replicated: tuple[Flask, Api], cluster: Cluster, tmp_path: Path, batch: bool
) -> None:
    app, api = replicated
    _until_replica(api, HOLDER2)
    with_standbys = _primary_statements(app, api, 40, batch)
    alone = _app(cluster, tmp_path / "alone", standbys=False)
    try:
        without = _primary_statements(alone, Api(alone.test_client(), api.key), 40, batch)
    finally:
        with alone.app_context():
            db.dispose()
    # Both figures are in the assertion message (-rA shows them).
    assert with_standbys <= without, (with_standbys, without)
    if not batch:
        assert with_standbys < 1.5  # the log row's insert, and the probes' share


def _bound_holds(api: Api, since: float) -> None:
    """While the standbys fall behind: the fresh opt-out is never missed, and after
    ``MAX_LAG`` (plus a probe interval) no check reads a standby at all."""
    assert api.post("/optouts", OPT_OUT).status_code == 201
    end = time.monotonic() + MAX_LAG + 1.5
    late = since + MAX_LAG + 2 * PROBE + 0.2
    while time.monotonic() < end:
        assert _check(api, HOLDER)[0] == "opted_out"
        asked = time.monotonic()
        _reason, source = _check(api, HOLDER2)
        if asked > late:
            assert source == "primary", f"a standby answered {asked - since:.2f} s after it stalled"


def test_paused_replay_bound(replicated: tuple[Flask, Api], cluster: Cluster) -> None:
    _app, api = replicated
    _until_replica(api, HOLDER2)
    _paused(cluster)
    _bound_holds(api, time.monotonic())
    _resumed(cluster)
    _until_replica(api, HOLDER2)


def test_stalled_stream_bound(replicated: tuple[Flask, Api], cluster: Cluster) -> None:
    """A stopped walsender: the standbys still report "streaming", yet fall out within the bound."""
    _app, api = replicated
    _until_replica(api, HOLDER2)
    senders = cluster.walsenders()
    assert len(senders) == 2
    with cluster.frozen(senders):
        since = time.monotonic()
        _bound_holds(api, since)
        status = cluster.sql(cluster.standby_ports[0], "SELECT status FROM pg_stat_wal_receiver")
        assert status == [("streaming",)]  # what the old lag measure trusted
    _until_replica(api, HOLDER2)


def test_hung_standby_costs_a_bounded_delay_and_is_skipped(
    replicated: tuple[Flask, Api], cluster: Cluster
) -> None:
    _app, api = replicated
    _until_replica(api, HOLDER2)
    # Connect (libpq's 2 s at least) and a deadline, once per retry interval.
    bound = 2 + TIMEOUT + 1.0
    for frozen in ([1], [1, 2]):
        pids = [pid for i in frozen for pid in cluster.processes(i)]
        with cluster.frozen(pids):
            slow, sources, end = 0, set(), time.monotonic() + 4
            while time.monotonic() < end:
                start = time.monotonic()
                reason, source = _check(api, HOLDER2)
                took = time.monotonic() - start
                assert reason == "no_consent"
                assert took < bound, f"a check took {took:.2f} s with a standby hung"
                slow += took > 0.3
                sources.add(source)
            assert slow <= 2 * len(frozen), slow  # each hung standby costs once, then is skipped
            assert sources == ({"replica", "primary"} if frozen == [1] else {"primary"}) or (
                frozen == [1] and sources == {"replica"}
            )
    _until_replica(api, HOLDER2, timeout=15)  # past the retry interval (5 s)


def test_dead_standbys_fall_back_to_the_primary(
    replicated: tuple[Flask, Api], cluster: Cluster
) -> None:
    _app, api = replicated
    _until_replica(api)
    for i in (1, 2):
        cluster.ctl(i, "stop")
    try:
        # Within a probe interval and a failed connection, the primary answers.
        wait_for("the primary to answer", lambda: _check(api)[1] == "primary", PROBE + 2 + 1)
        assert _check(api) == ("no_consent", "primary")
    finally:
        for i in (1, 2):
            cluster.ctl(i, "start")


def test_revoked_key_is_refused_at_once_while_checks_read_from_standbys(
    replicated: tuple[Flask, Api], cluster: Cluster
) -> None:
    """Per-process copies of the key are verified on the primary, never on a standby."""
    app, api = replicated
    _until_replica(api)  # the process now holds copies of key and sender
    _paused(cluster)
    with app.app_context(), db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE api_key SET revoked_at = timezone('utc', now())")
    resp = api.post("/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"})
    assert resp.status_code == 401  # the standbys have not seen the revocation yet


def test_suspended_sender_is_refused_at_once_while_checks_read_from_standbys(
    replicated: tuple[Flask, Api], cluster: Cluster
) -> None:
    app, api = replicated
    _until_replica(api)
    _paused(cluster)
    with app.app_context(), db.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE sender SET suspended_until = timezone('utc', now()) + interval '1 day'"
        )
    assert _check(api, HOLDER2) == ("sender_suspended", "primary")


def test_a_fresh_optout_in_a_batch_is_answered_from_the_primary(
    replicated: tuple[Flask, Api],
) -> None:
    _app, api = replicated
    _until_replica(api, HOLDER2)
    assert api.post("/optouts", OPT_OUT).status_code == 201
    resp = api.post(
        "/check/batch", {"phones": [HOLDER, HOLDER2], "sender": "acme-cards", "channel": "sms"}
    )
    assert resp.status_code == 200
    assert resp.headers["X-Anning-Read-From"] == "replica"
    reasons = [r["reason"] for r in resp.get_json()["results"]]
    assert reasons == ["opted_out", "no_consent"]


def test_every_connection_is_bounded(replicated: tuple[Flask, Api]) -> None:
    app, _api = replicated
    primary, standbys = _engines(app)
    with primary.connect() as conn:
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "1min"
        assert conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar() == "1min"
        params = conn.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
        assert params["keepalives"] == "1"
        assert params["keepalives_idle"] == "10"
        assert params["connect_timeout"] == "5"
        assert params["tcp_user_timeout"] == "5000"
    for engine in standbys:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "500ms"
            info = conn.connection.dbapi_connection.info  # type: ignore[union-attr]
            params = info.get_parameters()
            assert params["connect_timeout"] == "2"
            assert params["tcp_user_timeout"] == "1000"


def test_a_multi_host_url_finds_the_primary(cluster: Cluster, tmp_path: Path) -> None:
    """The form pg_auto_failover prints: a standby (read-only) first, then the primary."""
    hosts = f"127.0.0.1:{cluster.standby_ports[0]},127.0.0.1:{cluster.primary_port}"
    url = f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write"
    app = make_app(url, tmp_path)
    try:
        with app.app_context(), db.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar() is False
            assert (
                conn.exec_driver_sql("SELECT inet_server_port()").scalar() == cluster.primary_port
            )
    finally:
        with app.app_context():
            db.dispose()


def _consent(api: Api) -> int:
    evidence = {
        "method": "web_form",
        "captured_at": "2026-01-10T09:30:00+08:00",
        "wording": "I agree that Acme Bank may text me card offers.",
        "reference": "form-123",
        "sha256": "a" * 64,
        "ip": "203.0.113.7",
    }
    body = {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "evidence": evidence}
    resp = api.post("/consents", body)
    assert resp.status_code == 201, resp.get_json()
    return int(resp.get_json()["id"])


def _preferences(app: Flask, **change: Any) -> None:
    from registry.subscribers.services import set_preferences

    with app.app_context(), db.session() as s:
        set_preferences(s, HOLDER, **change)
        s.commit()


def _connection_withdrawn(app: Flask) -> None:
    from sqlalchemy import select

    from registry.access import services as access
    from registry.access.models import Connection

    with app.app_context(), db.session() as s:
        row = s.execute(select(Connection.id, Connection.carrier_id)).one()
        access.withdraw(s, row.carrier_id, row.id, "test")
        s.commit()


# Each kind of change that turns an answer to deny, made through its own writer:
# (needs an active consent first, checks name the calling address, the change).
KINDS: dict[str, tuple[bool, bool, Any]] = {
    "optout": (False, False, lambda app, api, ids: api.post("/optouts", OPT_OUT)),
    "consent_revoked": (
        True, False, lambda app, api, ids: api.post(f"/consents/{ids['consent']}/revoke"),
    ),
    "dnd": (False, False, lambda app, api, ids: _preferences(app, dnd_sms=True)),
    "category_blocked": (
        False, False, lambda app, api, ids: _preferences(app, blocked_categories=["finance"]),
    ),
    "disconnection": (
        True, False,
        lambda app, api, ids: ids["carrier"].post(
            "/numbers/disconnections",
            {"disconnections": [{"phone": HOLDER, "disconnected_at": "2026-06-01T00:00:00+00:00"}]},
        ),
    ),
    "address_withdrawn": (True, True, lambda app, api, ids: _connection_withdrawn(app)),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_fresh_refusal_of_each_kind_is_never_answered_stale(
    cluster: Cluster, tmp_path: Path, kind: str
) -> None:
    """With replay paused, the standbys lack the change: the answer is the primary's anyway.

    A long bound (10 s) keeps the paused standbys usable for other numbers, so
    the check of the changed number did reach a standby first (the test fails
    if the guard lets the standby's stale answer through).
    """
    from tests import factories

    needs_consent, from_address, change = KINDS[kind]
    app = _app(cluster, tmp_path, max_lag=10.0, REGISTRY_REQUIRE_CONFIRMATION="false")
    truth_app = _app(cluster, tmp_path / "truth", standbys=False)
    try:
        with app.app_context(), db.session() as s:
            world = factories.world(s)
            if from_address:
                factories.attest(s, "acme", "10690001")
                s.commit()
        api = Api(app.test_client(), world.keys["acme"])
        truth = Api(truth_app.test_client(), world.keys["acme"])
        ids: dict[str, Any] = {"carrier": Api(app.test_client(), world.keys["carrier"])}
        if needs_consent:
            ids["consent"] = _consent(api)
        extra = {"from": "10690001"} if from_address else {}
        wait_for("the standbys to replay", cluster.caught_up, 10)
        # Past the window of the setup's own changes: the number is answered by
        # a standby, by each in turn (their windows differ by their staleness).
        wait_for(
            "the standbys to answer",
            lambda: all(_check(api, HOLDER, **extra)[1] == "replica" for _ in range(4)),
            10,
        )
        before = _check(api, HOLDER, **extra)
        assert before == (_check(truth, HOLDER, **extra)[0], "replica")
        _paused(cluster)
        resp = change(app, api, ids)
        assert resp is None or resp.status_code in (200, 201, 202), resp.get_json()
        after, source = _check(api, HOLDER, **extra)
        assert (after, "primary") == (_check(truth, HOLDER, **extra)[0], source)
        assert after != before[0], after  # the change was a refusal
        # A batch: the changed number's facts (or, for the address, every number's)
        # from the primary, the others' from the paused standby.
        batch = {"phones": [HOLDER, HOLDER2], "sender": "acme-cards", "channel": "sms"}
        batch |= {"at": "2030-01-15T12:00:00+08:00", **extra}
        got, want = api.post("/check/batch", batch), truth.post("/check/batch", batch)
        assert got.status_code == want.status_code == 200, got.get_json()
        reasons = [[r["reason"] for r in resp.get_json()["results"]] for resp in (got, want)]
        assert reasons[0] == reasons[1]
        assert reasons[0][0] == after
        assert _check(api, HOLDER2)[1] == "replica"  # the paused standbys still answer others
        _resumed(cluster)
    finally:
        with truth_app.app_context():
            db.dispose()
        _tear_down(app, cluster)


def _primary_buffers(cluster: Cluster, app: Flask, api: Api, checks: int) -> float:
    for _ in range(3):  # warm: copies, prepared statements
        _check(api, HOLDER2)
    cluster.sql(cluster.primary_port, "SELECT pg_stat_statements_reset()")
    for _ in range(checks):
        _check(api, HOLDER2)
    ((buffers,),) = cluster.sql(
        cluster.primary_port,
        "SELECT coalesce(sum(shared_blks_hit + shared_blks_read), 0) FROM pg_stat_statements "
        "WHERE query NOT ILIKE '%%pg_stat_statements%%'",
    )
    return int(buffers) / checks


def test_standbys_take_buffers_off_the_primary(
    replicated: tuple[Flask, Api], cluster: Cluster, tmp_path: Path
) -> None:
    """The primary's work per check (buffers its statements touch) is no higher with standbys."""
    app, api = replicated
    _until_replica(api, HOLDER2)
    with_standbys = _primary_buffers(cluster, app, api, 60)
    alone = _app(cluster, tmp_path / "alone", standbys=False)
    try:
        without = _primary_buffers(cluster, alone, Api(alone.test_client(), api.key), 60)
    finally:
        with alone.app_context():
            db.dispose()
    assert with_standbys <= without, (with_standbys, without)


def test_a_network_check_after_a_fresh_optout_is_answered_from_the_primary(
    replicated: tuple[Flask, Api],
) -> None:
    """The carrier's check reads a standby as /check does, and is asked again on the primary."""
    from sqlalchemy import select

    from registry.orgs import services as orgs
    from registry.orgs.models import Organization
    from tests import factories

    app, api = replicated
    with app.app_context(), db.session() as s:
        factories.attest(s, "acme", "10690001")  # acme-cards' SMS port
        org = s.scalars(select(Organization).where(Organization.slug == "carrier")).one()
        _, key = orgs.create_key(s, org)
        s.commit()
    carrier = Api(app.test_client(), key)
    ask = {"phone": HOLDER, "from": "10690001", "channel": "sms", "at": "2030-01-15T12:00:00+08:00"}
    _until_replica(api)
    resp = carrier.post("/network/check", ask)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["reason"] == "no_consent"
    assert api.post("/optouts", OPT_OUT).status_code == 201
    # Younger than the standbys' window: the log row's insert finds it, the primary answers.
    resp = carrier.post("/network/check", ask)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["reason"] == "opted_out"
