"""Standbys, failover and the check log's WAL, measured in one run on a real cluster.

Starts a primary and two streaming standbys (tests/replication/cluster.py: their
own processes on free ports of 127.0.0.1) and prints:

1. checks/s through the app with facts from the primary only and with two
   standbys, and the primary's CPU per check in both (every process of the
   primary cluster, read from /proc, exited backends included) with the
   statements the primary ran per check;
2. acknowledged opt-outs lost and seconds without a write through a kill -9 of
   the primary with synchronous replication (benchmarks/failover.py);
3. WAL bytes per check (the primary's ``pg_current_wal_lsn()`` before and after
   N checks of random numbers over a check log already holding ``--fill``
   rows): right after a checkpoint (every page touched first writes a full
   image) and in steady state, with ``wal_compression`` off and on, and
   without the phone index (what it costs).

Load stays bounded (``--clients`` processes, ``--seconds`` each) for a shared
2-core machine; the app runs in-process (Flask's test client), so checks/s is
the app's and the database's work together, not HTTP.

    .venv/bin/python benchmarks/replication.py [--seconds 8] [--clients 2] [--checks 2000] [--fill 300000] [--skip-wal] [--skip-failover]
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from failover import run as failover
from sqlalchemy import event

from registry import migrate
from registry.extensions import db
from tests import factories
from tests.conftest import make_app
from tests.replication.cluster import Cluster, cluster

ENV = {
    "REGISTRY_RATELIMIT_CHECK": "100000000 per minute",
    "REGISTRY_RATELIMIT_COLD_CHECK": "100000000 per day",
    "REGISTRY_REPLICA_MAX_LAG": "2",
}


def _phone(rng: random.Random) -> str:
    return f"+86131{rng.randrange(10**8):08d}"


def _app(c: Cluster, standbys: bool) -> Any:
    env = dict(ENV)
    if standbys:
        env["REGISTRY_DATABASE_REPLICA_URLS"] = ",".join(c.url(p) for p in c.standby_ports)
    return make_app(c.url(c.primary_port), Path(tempfile.mkdtemp(prefix="anning-bench-")), **env)


def _load(args: tuple[str, list[str], str, float, int]) -> tuple[int, int, int]:
    """One client process: checks of random numbers for ``seconds``; (checks, primary statements, from standby)."""
    primary_url, standby_urls, key, seconds, seed = args
    env = dict(ENV)
    if standby_urls:
        env["REGISTRY_DATABASE_REPLICA_URLS"] = ",".join(standby_urls)
    app = make_app(primary_url, Path(tempfile.mkdtemp(prefix="anning-bench-")), **env)
    statements = [0]
    with app.app_context():
        event.listen(
            db.engine,
            "before_cursor_execute",
            lambda *_a: statements.__setitem__(0, statements[0] + 1),
        )
    http, rng = app.test_client(), random.Random(seed)
    auth = {"Authorization": f"Bearer {key}"}
    body = {"sender": "acme-cards", "channel": "sms", "at": "2030-01-15T12:00:00+08:00"}
    for _ in range(20):  # warm: copies, standby health
        http.post("/api/v1/check", json={**body, "phone": _phone(rng)}, headers=auth)
    statements[0] = 0
    done = replica = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        resp = http.post("/api/v1/check", json={**body, "phone": _phone(rng)}, headers=auth)
        assert resp.status_code == 200, resp.get_json()
        done += 1
        replica += resp.headers["X-Anning-Read-From"] == "replica"
    with app.app_context():
        db.dispose()
    return done, statements[0], replica


def throughput(c: Cluster, key: str, seconds: float, clients: int) -> None:
    """Print checks/s and the primary's CPU per check, with and without standbys."""
    standby_urls = [c.url(p) for p in c.standby_ports]
    ctx = multiprocessing.get_context("spawn")
    # What the primary spends with no checks at all (checkpointer, WAL writer,
    # walsenders...), over the same time: subtracted, so the figure is per check.
    idle0 = c.cpu_seconds(0)
    time.sleep(seconds)
    idle = c.cpu_seconds(0) - idle0
    print(f"primary idle: {idle / seconds * 1e3:.1f} ms CPU per second (subtracted below)")
    figures: dict[str, list[float]] = {"primary only": [], "two standbys": []}
    # Interleaved, twice: other people's load on a shared machine moves between runs.
    phases = [("primary only", []), ("two standbys", standby_urls)] * 2
    for label, urls in phases:
        c.sql(c.primary_port, "SELECT pg_stat_statements_reset()")
        cpu0 = c.cpu_seconds(0)
        start = time.monotonic()
        with ctx.Pool(clients) as pool:
            results = pool.map(
                _load, [(c.url(c.primary_port), urls, key, seconds, n) for n in range(clients)]
            )
        wall = time.monotonic() - start
        cpu = c.cpu_seconds(0) - cpu0 - idle * wall / seconds
        # The server's own time in the app's statements (planning and execution;
        # not commits, WAL writing or streaming): steadier than /proc on a busy machine.
        # and the buffers they touched: work that other load on the machine does not move.
        ((server_ms, buffers, plans),) = c.sql(
            c.primary_port,
            "SELECT coalesce(sum(total_exec_time + total_plan_time), 0), "
            "coalesce(sum(shared_blks_hit + shared_blks_read), 0), coalesce(sum(plans), 0) "
            "FROM pg_stat_statements WHERE query NOT ILIKE '%%pg_stat_statements%%'",
        )
        checks = sum(r[0] for r in results)
        stmts = sum(r[1] for r in results)
        replica = sum(r[2] for r in results)
        rate = checks / seconds
        per_check = cpu / (checks + 20 * clients)  # the warm-up checks ran in the window too
        figures[label].append(per_check)
        print(
            f"checks ({label}): {rate:,.0f} checks/s ({clients} clients, {seconds:.0f} s), "
            f"primary CPU {1e6 * per_check:,.0f} µs/check, "
            f"statement time on the primary {1e3 * float(server_ms) / (checks + 20 * clients):,.0f} µs/check, "
            f"{int(buffers) / (checks + 20 * clients):.1f} buffers/check, "
            f"{int(plans) / (checks + 20 * clients):.2f} plans/check, "
            f"{stmts / checks:.2f} primary statements/check, "
            f"{100 * replica / checks:.0f}% answered from standbys (wall {wall:.1f} s incl. start)"
        )
    ratios = [
        w / wo for w, wo in zip(figures["two standbys"], figures["primary only"], strict=True)
    ]
    print("primary CPU per check with standbys / without: " + ", ".join(f"{r:.2f}" for r in ratios))


def explain_guard(c: Cluster, key: str) -> None:
    """Print where the buffers of a standby check's one primary statement go (EXPLAIN ANALYZE).

    The statement and its parameters are the ones the app sent for a check
    answered from a standby (the guarded log insert), captured on the engine.
    """
    import psycopg

    app = _app(c, standbys=True)
    sent: list[tuple[str, Any]] = []
    with app.app_context():
        event.listen(
            db.engine,
            "before_cursor_execute",
            lambda _c, _cur, sql, params, *_a: sent.append((sql, params)),
        )
    http, auth = app.test_client(), {"Authorization": f"Bearer {key}"}
    body = {"sender": "acme-cards", "channel": "sms", "phone": "+8613100000042"}
    for _ in range(50):  # until a standby answers (and the copies are made)
        sent.clear()
        resp = http.post("/api/v1/check", json=body, headers=auth)
        if resp.headers["X-Anning-Read-From"] == "replica":
            break
        time.sleep(0.1)
    with app.app_context():
        db.dispose()
    inserts = [(sql, params) for sql, params in sent if sql.startswith("INSERT INTO check_log")]
    if not inserts:
        print("guarded log insert: no check was answered from a standby")
        return
    sql, params = inserts[-1]
    with psycopg.connect(c.url(c.primary_port, "postgresql"), autocommit=True) as conn:
        for _ in range(3):  # the last of three: caches warm
            plan = [r[0] for r in conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) {sql}", params)]  # fmt: skip
    print("guarded log insert (EXPLAIN ANALYZE, BUFFERS), a standby check's one primary statement:")
    print(
        "\n".join(
            f"    {line}" for line in plan if "Buffers" in line or "->" in line or "Insert" in line
        )
    )


def writer_cost(c: Cluster, key: str, count: int = 300) -> None:
    """Print WAL bytes and primary statement time per opt-out with the fact_change triggers and without.

    What the standby guard costs the writers: every change of a number's facts
    also writes its ``fact_change`` row. The triggers are dropped for the
    second measure by disabling them (``ALTER TABLE ... DISABLE TRIGGER``) and
    enabled again afterwards.
    """
    app = _app(c, standbys=False)
    http, auth = app.test_client(), {"Authorization": f"Bearer {key}"}
    rng = random.Random(11)

    def measure() -> tuple[float, float]:
        c.sql(c.primary_port, "SELECT pg_stat_statements_reset()")
        lsn0 = int(c.sql(c.primary_port, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0])
        for _ in range(count):
            body = {
                "phone": _phone(rng),
                "sender": "acme-cards",
                "channels": ["sms"],
                "source": "call",
            }
            resp = http.post("/api/v1/optouts", json=body, headers=auth)
            assert resp.status_code == 201, resp.get_json()
        lsn1 = int(c.sql(c.primary_port, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0])
        ((ms,),) = c.sql(
            c.primary_port,
            "SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements "
            "WHERE query NOT ILIKE '%%pg_stat_statements%%'",
        )
        return (lsn1 - lsn0) / count, 1e3 * float(ms) / count

    figures = {}
    for label in ("with triggers", "without", "with triggers again"):
        switch = "DISABLE" if label == "without" else "ENABLE"
        for table in ("opt_out", "consent", "subscriber", "cap_exemption", "disconnection"):
            c.sql(c.primary_port, f"ALTER TABLE {table} {switch} TRIGGER USER")
        figures[label] = measure()
    with app.app_context():
        db.dispose()
    print(
        "per opt-out (API, primary only): "
        + ", ".join(
            f"{k}: {w:,.0f} B WAL, {t:,.0f} µs in statements" for k, (w, t) in figures.items()
        )
    )


def wal_per_check(c: Cluster, key: str, checks: int, fill: int) -> None:
    """Print WAL bytes per check after a checkpoint and in steady state, compression off/on."""
    port = c.primary_port
    # A check log that is not tiny: its phone index then spreads over many pages.
    c.sql(
        port,
        "INSERT INTO check_log (phone, sender_id, organization_id, channel, purpose, category, "
        "decision, reason, at, checked_at) SELECT '+86131' || lpad((random() * 1e8)::bigint::text, 8, '0'), "
        "1, 1, 'sms', 'marketing', 'general', 'deny', 'no_consent', now(), "
        "timezone('utc', now()) - (g %% 1000) * interval '1 second' FROM generate_series(1, %s) g",
        fill,
    )
    c.sql(port, "VACUUM ANALYZE check_log")
    rows, total, heap = c.sql(
        port,
        "SELECT (SELECT count(*) FROM check_log), sum(pg_total_relation_size(relid)), "
        "sum(pg_relation_size(relid)) FROM pg_partition_tree('check_log')",
    )[0]
    print(
        f"check log size: {int(total) / rows:,.0f} B per row with its indexes "
        f"({int(heap) / rows:,.0f} B heap), over {rows:,} rows"
    )
    app = _app(c, standbys=False)
    http, rng = app.test_client(), random.Random(7)
    auth = {"Authorization": f"Bearer {key}"}
    body = {"sender": "acme-cards", "channel": "sms", "at": "2030-01-15T12:00:00+08:00"}

    def measure(checkpoint: bool) -> float:
        if checkpoint:
            c.sql(port, "CHECKPOINT")
        lsn0 = int(c.sql(port, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0])
        for _ in range(checks):
            http.post("/api/v1/check", json={**body, "phone": _phone(rng)}, headers=auth)
        lsn1 = int(c.sql(port, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0])
        return (lsn1 - lsn0) / checks

    for compression in ("off", "lz4", "pglz"):
        try:
            c.sql(port, f"ALTER SYSTEM SET wal_compression = '{compression}'")
        except Exception:  # lz4 not built in
            continue
        c.sql(port, "SELECT pg_reload_conf()")
        time.sleep(0.3)
        first, steady = measure(True), measure(False)
        print(
            f"WAL per check (wal_compression={compression}, {fill:,} rows logged before): "
            f"{first:,.0f} B right after a checkpoint, {steady:,.0f} B in steady state ({checks} checks each)"
        )
    c.sql(port, "ALTER SYSTEM SET wal_compression = 'off'")
    c.sql(port, "SELECT pg_reload_conf()")
    c.sql(port, "DROP INDEX ix_check_log_phone_checked_at")
    time.sleep(0.3)
    print(
        f"WAL per check without the phone index (wal_compression=off): "
        f"{measure(True):,.0f} B after a checkpoint, {measure(False):,.0f} B steady"
    )
    c.sql(port, "CREATE INDEX ix_check_log_phone_checked_at ON check_log (phone, checked_at)")
    with app.app_context():
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--fill", type=int, default=300_000)
    parser.add_argument("--skip-failover", action="store_true")
    parser.add_argument("--skip-wal", action="store_true", help="only the standby phases")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    stats = (
        "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track_planning = on\n"
    )
    with cluster(standbys=2, extra=stats) as c:
        migrate.upgrade(c.url(c.primary_port))
        c.sql(c.primary_port, "CREATE EXTENSION pg_stat_statements")
        app = _app(c, standbys=False)
        with app.app_context(), db.session() as s:
            key = factories.world(s).keys["acme"]
        with app.app_context():
            db.dispose()
        time.sleep(1.0)  # the standbys replay the setup
        throughput(c, key, args.seconds, args.clients)
        explain_guard(c, key)
        writer_cost(c, key)
        if not args.skip_wal:
            wal_per_check(c, key, args.checks, args.fill)
    if not args.skip_failover:
        r = failover("sync", before=3.0, after=5.0, clients=3)
        print(
            f"failover (synchronous ANY 1, kill -9 of the primary, manual promote): "
            f"{r['acknowledged']} opt-outs acknowledged, {r['lost']} lost, "
            f"{r['downtime_s']:.2f} s without an acknowledged write"
        )


if __name__ == "__main__":
    main()
