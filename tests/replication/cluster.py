"""A real PostgreSQL primary with streaming hot standbys, on free ports of 127.0.0.1.

Each cluster is its own set of server processes in a temporary folder (never
the machine's shared server): ``initdb``, ``pg_basebackup -R`` per standby.
Used by the replication lane (tests/replication) and benchmarks/replication.py.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def as_postgres(*cmd: str, timeout: float = 120) -> None:
    """Run a server command as the postgres user (initdb refuses root)."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *cmd], check=True, capture_output=True, timeout=timeout)


def _children(pid: int) -> list[int]:
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.split("/")[2]))
    return found


class Cluster:
    """A primary and ``standbys`` streaming hot standbys (synchronous with ``sync``)."""

    def __init__(self, base: Path, standbys: int = 2, sync: str | None = None) -> None:
        self.base = base
        self.bin = BIN[-1]
        self.sync = sync
        self.ports = [free_port() for _ in range(standbys + 1)]
        self.dirs = [base / "primary", *(base / f"standby{i}" for i in range(1, standbys + 1))]

    @property
    def primary_port(self) -> int:
        return self.ports[0]

    @property
    def standby_ports(self) -> list[int]:
        return self.ports[1:]

    def start(self, extra: str = "") -> None:
        """Create and start the primary, then each standby from a base backup of it."""
        primary = self.dirs[0]
        as_postgres(f"{self.bin}/initdb", "-D", str(primary), "-A", "trust", "-U", "postgres")
        names = ",".join(f"s{i}" for i in range(1, len(self.dirs)))
        sync = f"synchronous_standby_names = '{self.sync} ({names})'\n" if self.sync else ""
        with open(primary / "postgresql.conf", "a") as fh:
            fh.write(
                f"port = {self.ports[0]}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.base}'\n"
                "wal_level = replica\nmax_wal_senders = 8\nfsync = off\n"
                "shared_buffers = 32MB\nmax_connections = 60\n" + sync + extra
            )
        self.ctl(0, "start")
        for i in range(1, len(self.dirs)):
            data = self.dirs[i]
            as_postgres(f"{self.bin}/pg_basebackup", "-h", "127.0.0.1", "-p", str(self.ports[0]),
                        "-U", "postgres", "-D", str(data), "-R", "-X", "stream")  # fmt: skip
            with open(data / "postgresql.auto.conf", "a") as fh:
                # The standby's name for synchronous_standby_names.
                fh.write(
                    f"primary_conninfo = 'host=127.0.0.1 port={self.ports[0]} user=postgres "
                    f"application_name=s{i}'\n"
                )
            with open(data / "postgresql.conf", "a") as fh:
                fh.write(f"port = {self.ports[i]}\nhot_standby = on\n")
            self.ctl(i, "start")

    def ctl(self, index: int, action: str, mode: str = "immediate") -> None:
        """Run ``pg_ctl action`` on instance ``index`` (0: the primary)."""
        data = str(self.dirs[index])
        as_postgres(f"{self.bin}/pg_ctl", "-D", data, "-l", data + ".log", "-w", "-m", mode, action)

    def url(self, port: int, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://postgres@127.0.0.1:{port}/postgres"

    def sql(self, port: int, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run one statement on the instance at ``port``; return its rows (if any)."""
        with psycopg.connect(
            self.url(port, "postgresql"), autocommit=True, connect_timeout=5
        ) as conn:
            cur = conn.execute(statement, args or None)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def caught_up(self) -> bool:
        """Tell whether every standby has replayed all the primary has written so far."""
        (now,) = self.sql(self.primary_port, "SELECT pg_current_wal_lsn()")[0]
        return all(
            self.sql(port, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", now)[0][0]
            for port in self.standby_ports
        )

    def postmaster(self, index: int) -> int:
        return int((self.dirs[index] / "postmaster.pid").read_text().split()[0])

    def processes(self, index: int) -> list[int]:
        """Return the pids of instance ``index``: its postmaster and every child."""
        pm = self.postmaster(index)
        return [pm, *_children(pm)]

    def walsenders(self) -> list[int]:
        """Return the pids of the primary's walsenders."""
        rows = self.sql(self.primary_port, "SELECT pid FROM pg_stat_replication")
        return [int(r[0]) for r in rows]

    @contextlib.contextmanager
    def frozen(self, pids: list[int]) -> Iterator[None]:
        """SIGSTOP ``pids`` for the block (a hung server: its kernel still accepts packets)."""
        try:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):  # a backend that just exited
                    os.kill(pid, signal.SIGSTOP)
            yield
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def cpu_seconds(self, index: int) -> float:
        """Return the CPU time (user + system) of instance ``index``'s live processes."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        pm = self.postmaster(index)
        for pid in self.processes(index):
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
                if pid == pm:  # the backends that exited, reaped by the postmaster
                    total += (int(fields[13]) + int(fields[14])) / tick
        return total

    def kill_primary(self) -> None:
        """SIGKILL every process of the primary (a dead machine)."""
        for pid in self.processes(0):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def promote_most_advanced(self) -> tuple[int, dict[int, int]]:
        """Promote the standby that received the most WAL (the manual failover).

        Return its index and every standby's received WAL position. Its
        configuration, copied from the old primary, names the standbys as
        synchronous; alone, it must not wait for them, so that is cleared.
        """
        received = {
            i: int(
                self.sql(self.ports[i], "SELECT pg_last_wal_receive_lsn() - '0/0'::pg_lsn")[0][0]
            )
            for i in range(1, len(self.ports))
        }
        best = max(received, key=lambda i: received[i])
        self.ctl(best, "promote")
        self.sql(self.ports[best], "ALTER SYSTEM SET synchronous_standby_names = ''")
        self.sql(self.ports[best], "SELECT pg_reload_conf()")
        return best, received

    def stop(self) -> None:
        for index in reversed(range(len(self.dirs))):
            if (self.dirs[index] / "postmaster.pid").exists():
                with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
                    self.ctl(index, "stop")


@contextlib.contextmanager
def cluster(standbys: int = 2, sync: str | None = None, extra: str = "") -> Iterator[Cluster]:
    """Start a cluster in a fresh temporary folder; stop and remove it afterwards."""
    # Not under pytest's private temp folder: the postgres user must reach it.
    base = Path(tempfile.mkdtemp(prefix="anning-pgrepl-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    c = Cluster(base, standbys, sync)
    try:
        c.start(extra)
        yield c
    finally:
        c.stop()
        shutil.rmtree(base, ignore_errors=True)
