"""A real pg_auto_failover formation: a monitor and data nodes made by ``pg_autoctl``.

Debian's ``postgresql-15-auto-failover``. Every node is its own ``pg_autoctl
run`` (keeper and PostgreSQL) in its own process group, in a temporary folder
owned by the postgres user (pg_autoctl, like initdb, refuses root), listening
on a free port of 127.0.0.1 only. ``kill`` SIGKILLs a node's whole group (its
keeper too, or the keeper would restart PostgreSQL: a dead machine, not a
crashed server), so that the monitor must fail over. Used by
tests/replication/test_auto_failover.py and benchmarks/auto_failover.py.

**Tuned for a test** (``MONITOR_TUNING``, the monitor's GUCs, in ms): health
checks every 1 s with a 1 s timeout and one retry 0.5 s later, a node
unhealthy 2 s after its last report (defaults: 5 s, 5 s, 2 retries 2 s apart,
20 s). The promoted node stays read-only until the old primary has had
``primary_demote_timeout`` to demote itself (30 s by default: most of a
default failover's 30-55 s); 4 s here, which is safe only because each
keeper's ``timeout.network_partition_timeout`` (a primary cut off from the
monitor and its standbys this long demotes itself; default 20 s) is 2 s, less
than it. ``timeout.prepare_promotion_walreceiver`` (how long a standby being
promoted waits for more WAL; default 5 s) is 1 s.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from tests.replication.cluster import BIN, _children, free_port

AUTOCTL = shutil.which("pg_autoctl")
MONITOR_TUNING = {
    "pgautofailover.health_check_period": "1000",
    "pgautofailover.health_check_timeout": "1000",
    "pgautofailover.health_check_max_retries": "1",
    "pgautofailover.health_check_retry_delay": "500",
    "pgautofailover.node_considered_unhealthy_timeout": "2000",
    "pgautofailover.primary_demote_timeout": "4000",
}
KEEPER_TUNING = {
    "timeout.prepare_promotion_walreceiver": "1",
    "timeout.network_partition_timeout": "2",
}
DATABASE = "anning"


class Formation:
    """A monitor and ``nodes`` data nodes (one primary, the rest synchronous standbys)."""

    def __init__(self, base: Path, nodes: int = 3, tuned: bool = True) -> None:
        self.base = base
        self.tuned = tuned
        self.monitor_port = free_port()
        self.ports = [free_port() for _ in range(nodes)]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {
            "XDG_CONFIG_HOME": str(base / "config"),
            "XDG_DATA_HOME": str(base / "data"),
            "XDG_RUNTIME_DIR": str(base / "run"),
            "PATH": f"{BIN[-1]}:/usr/bin:/bin",
            "PG_CONFIG": f"{BIN[-1]}/pg_config",
        }

    def _cmd(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        env = [f"{k}={v}" for k, v in self.env.items()]
        return [*prefix, "env", *env, "pg_autoctl", *args]

    def autoctl(self, *args: str, timeout: float = 120) -> str:
        """Run one pg_autoctl command as postgres; return its output."""
        done = subprocess.run(
            self._cmd(*args), capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"pg_autoctl {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout

    def _spawn(self, name: str) -> None:
        with open(self.base / f"{name}.log", "ab") as log:  # the child keeps its own copy
            self.procs[name] = subprocess.Popen(
                self._cmd("run", "--pgdata", str(self.base / name)),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() takes keeper and server
            )

    def monitor_sql(self, statement: str) -> list[tuple[Any, ...]]:
        url = f"postgresql://postgres@127.0.0.1:{self.monitor_port}/pg_auto_failover"
        with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
            cur = conn.execute(statement)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def start(self) -> None:
        """Create and run the monitor, then each data node in turn; wait until all replicate."""
        for sub in ("config", "data", "run"):
            (self.base / sub).mkdir(mode=0o700)
            if os.geteuid() == 0:
                shutil.chown(self.base / sub, "postgres", "postgres")
        pg_ctl = f"{BIN[-1]}/pg_ctl"
        monitor = str(self.base / "monitor")
        self.autoctl(
            "create", "monitor", "--pgdata", monitor, "--pgport", str(self.monitor_port),
            "--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl", "--pgctl", pg_ctl,
        )  # fmt: skip
        self.autoctl(
            "config", "set", "--pgdata", monitor, "postgresql.listen_addresses", "127.0.0.1"
        )
        self._spawn("monitor")
        self._until(lambda: bool(self.monitor_sql("SELECT 1")), 30)
        if self.tuned:
            for name, value in MONITOR_TUNING.items():
                self.monitor_sql(f"ALTER SYSTEM SET {name} = {value}")
            self.monitor_sql("SELECT pg_reload_conf()")
        url = f"postgres://autoctl_node@127.0.0.1:{self.monitor_port}/pg_auto_failover?sslmode=disable"
        for i, port in enumerate(self.ports, start=1):
            data = str(self.base / f"n{i}")
            self.autoctl(
                "create", "postgres", "--pgdata", data, "--pgport", str(port), "--listen", "127.0.0.1",
                "--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl", "--monitor", url,
                "--pgctl", pg_ctl, "--name", f"n{i}", "--dbname", DATABASE,
            )  # fmt: skip
            if self.tuned:
                for name, value in KEEPER_TUNING.items():
                    self.autoctl("config", "set", "--pgdata", data, name, value)
            self._spawn(f"n{i}")
            want = {"single", "primary"} if i == 1 else {"secondary"}
            self._until(lambda i=i, want=want: self.state().get(i, ("", 0, "", ""))[2] in want, 90)

    def state(self) -> dict[int, tuple[str, int, str, str]]:
        """Return each node's (name, port, reported state, goal state), by index (1: the first made)."""
        rows = self.monitor_sql(
            "SELECT nodeid, nodename, nodeport, reportedstate, goalstate FROM pgautofailover.node"
        )
        return {int(r[0]): (str(r[1]), int(r[2]), str(r[3]), str(r[4])) for r in rows}

    def primary(self) -> int | None:
        """Return the index of the node that takes writes now, if one does."""
        writing = ("primary", "wait_primary", "single")
        for i, (_name, _port, reported, goal) in self.state().items():
            if reported in writing and goal in writing:
                return i
        return None

    def uri(self) -> str:
        """Return the formation's multi-host URL, as ``pg_autoctl show uri`` prints it."""
        out = self.autoctl(
            "show", "uri", "--pgdata", str(self.base / "monitor"), "--formation", "default"
        )
        for line in out.splitlines():
            if "postgres://" in line:
                return line.split("|")[-1].strip()
        raise RuntimeError(f"no formation URL in {out!r}")

    def url(self, index: int, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.ports[index - 1]}/{DATABASE}"

    def kill(self, index: int) -> None:
        """SIGKILL node ``index``'s keeper, PostgreSQL and every backend: a dead machine.

        The keeper's process group, and the postmaster's children (each
        PostgreSQL child is its own process group).
        """
        pid_file = self.base / f"n{index}" / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0])
        children = _children(postmaster)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.procs[f"n{index}"].pid, signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _until(self, ready: Any, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            with contextlib.suppress(psycopg.Error):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the formation did not get ready in {seconds} s")
            time.sleep(0.25)

    def stop(self) -> None:
        """Stop every node (SIGTERM to its group, SIGKILL after 20 s)."""
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def formation(nodes: int = 3, tuned: bool = True) -> Iterator[Formation]:
    """Run a formation in a fresh temporary folder; stop it and remove the folder afterwards."""
    base = Path(tempfile.mkdtemp(prefix="anning-autofailover-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    f = Formation(base, nodes, tuned)
    try:
        f.start()
        yield f
    finally:
        f.stop()
        shutil.rmtree(base, ignore_errors=True)


def under_load(
    f: Formation, instance: Path, before: float, after: float, clients: int = 2, limit: float = 120
) -> dict[str, Any]:
    """Kill the primary under opt-out and check load; let the monitor fail over; count.

    The app is on the formation's multi-host URL (as printed, with the user
    added), every node listed as a standby for checks, the check spool on and
    the synchronous quorum (nodes - 1: every standby) set. ``before`` seconds
    of load, the kill, then load until ``after`` seconds past the first
    acknowledged opt-out on the new primary (at most ``limit`` s). Every
    acknowledged opt-out and every check's log row is then looked for on the
    new primary.
    """
    from registry import migrate
    from registry.checks import receipts, spool
    from registry.extensions import db
    from tests import factories
    from tests.conftest import make_app

    old = f.primary()
    assert old is not None
    migrate.upgrade(f.url(old))
    uri = f.uri().replace("postgres://", "postgresql://postgres@", 1)
    app = make_app(
        uri,
        instance,
        REGISTRY_DATABASE_REPLICA_URLS=",".join(f.url(i) for i in range(1, len(f.ports) + 1)),
        REGISTRY_REPLICA_SYNC_QUORUM=str(len(f.ports) - 1),
        REGISTRY_CHECK_SPOOL="on",
        REGISTRY_POLICY="opt-out",
        REGISTRY_DATABASE_CONNECT_TIMEOUT="2",
        REGISTRY_RATELIMIT_WRITE="10000000 per minute",
        REGISTRY_RATELIMIT_CHECK="10000000 per minute",
        REGISTRY_RATELIMIT_COLD_CHECK="10000000 per minute",
    )
    settings = app.config["REGISTRY"]
    with app.app_context(), db.session() as s:
        key = factories.world(s).keys["acme"]
    auth = {"Authorization": f"Bearer {key}"}
    refused = {
        "phone": factories.HOLDER,
        "sender": "acme-cards",
        "channels": ["sms"],
        "source": "call",
    }
    assert app.test_client().post("/api/v1/optouts", json=refused, headers=auth).status_code == 201
    acked: list[tuple[float, str]] = []
    checks: list[tuple[float, float, int | None, bool]] = []  # asked, answered, log id, correct
    stop = threading.Event()
    failures: collections.Counter[str] = collections.Counter()

    def optouts(n: int) -> None:
        http, i = app.test_client(), 0
        while not stop.is_set():
            i += 1
            phone = f"+86131{n:02d}{i:06d}"
            body = {"phone": phone, "sender": "acme-cards", "channels": ["sms"], "source": "call"}
            started = time.monotonic()
            try:
                ok = http.post("/api/v1/optouts", json=body, headers=auth).status_code == 201
            except Exception:  # the primary died under the request
                ok = False
            if ok:
                acked.append((started, phone))
            else:
                time.sleep(0.05)

    def checker() -> None:
        http, i = app.test_client(), 0
        while not stop.is_set():
            i += 1
            phone, want = (factories.HOLDER, "deny") if i % 2 else (factories.HOLDER2, "allow")
            body = {
                "phone": phone,
                "sender": "acme-cards",
                "channel": "sms",
                "at": "2030-01-15T12:00:00+08:00",
            }
            started = time.monotonic()
            resp = http.post("/api/v1/check", json=body, headers=auth)
            if resp.status_code == 200:
                out = resp.get_json()
                log_id = receipts.verify(settings, out["check_id"]).log_id
                checks.append((started, time.monotonic(), log_id, out["decision"] == want))
            else:
                failures[
                    f"{resp.status_code} {resp.get_json().get('error', {}).get('message', '')}"[:90]
                ] += 1
                time.sleep(0.05)

    logging.disable(logging.CRITICAL)  # every failed request is logged while the primary is gone
    threads = [threading.Thread(target=optouts, args=(n,), daemon=True) for n in range(clients)]
    threads.append(threading.Thread(target=checker, daemon=True))
    for t in threads:
        t.start()
    try:
        time.sleep(before)
        f.kill(old)
        killed = time.monotonic()
        promoted = None
        deadline = killed + limit
        while time.monotonic() < deadline:
            if promoted is None and f.primary() not in (None, old):
                promoted = time.monotonic()
            if any(t >= killed for t, _ in acked):
                break
            time.sleep(0.1)
        recovered = min((t for t, _ in acked if t >= killed), default=None)
        time.sleep(after)
    finally:
        stop.set()
        stopped = time.monotonic()
        for t in threads:
            t.join()
        logging.disable(logging.NOTSET)
    with app.app_context():
        local = spool.of(settings)
        assert local is not None
        spooled_left = len(local.pending(100_000))
        local.replay(db.engine)  # what the worker does; the app's own replay may have done it
        with db.engine.connect() as conn:
            port = conn.exec_driver_sql("SELECT inet_server_port()").scalar()
            phones = [p for _, p in acked]
            present = {
                r[0]
                for r in conn.exec_driver_sql(
                    "SELECT phone FROM opt_out WHERE phone = ANY(%(p)s)", {"p": phones}
                )
            }
            ids = [i for _, _, i, _ in checks if i is not None]
            rows = conn.exec_driver_sql(
                "SELECT id, count(*) FROM check_log WHERE id = ANY(%(i)s) GROUP BY id", {"i": ids}
            ).all()
        db.dispose()
    logged = {int(i): int(n) for i, n in rows}
    new = f.primary()
    answered = [c for c in checks if c[0] >= killed]
    # The longest time without an answered check, from the kill on.
    marks = [killed, *sorted(c[1] for c in answered if c[1] <= stopped), stopped]
    return {
        "acknowledged": len(acked),
        "lost": len([p for _, p in acked if p not in present]),
        "writes_down_s": (recovered - killed) if recovered is not None else float("nan"),
        "promoted_s": (promoted - killed) if promoted is not None else float("nan"),
        "checks": len(checks),
        "checks_wrong": sum(1 for c in checks if not c[3]),
        "checks_in_outage": sum(1 for c in answered if recovered is None or c[0] < recovered),
        "checks_spooled": sum(1 for c in checks if c[2] is not None and c[2] < 0),
        "checks_down_s": max(b - a for a, b in itertools.pairwise(marks)),
        "check_rows_lost": sum(1 for i in ids if logged.get(i, 0) == 0),
        "check_rows_doubled": sum(1 for n in logged.values() if n > 1),
        "spooled_before_replay": spooled_left,
        "check_failures": dict(failures),
        "old": old,
        "new": new,
        "new_port": f.ports[new - 1] if new else None,
        "app_port": port,
    }
