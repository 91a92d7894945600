"""``registry serve`` as a user runs it: a subprocess on a free port of 127.0.0.1."""

from __future__ import annotations

import http.client
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO_KEY = re.compile(r"demo API key \(acme-bank\): (\S+)")
INSTALL = re.compile(r"python3 -m venv \.venv && \.venv/bin/pip install -q -e (\S+) && (.+)")


def quickstart() -> list[tuple[str, str]]:
    """Return the Quickstart's commands as (what is installed, what is run)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)\n```", section, re.S)
    assert len(blocks) == 2, "the Quickstart is two commands: run, and test"
    commands = []
    for block in blocks:
        match = INSTALL.fullmatch(block.strip())
        assert match, f"not 'make the venv, install, run': {block!r}"
        commands.append((match.group(1), match.group(2)))
    return commands


def quickstart_serve(tmp: Path) -> tuple[list[str], dict[str, str], int]:
    """Return the README's serve command as written, with a free port and 2 workers appended,
    and its environment: a new SQLite file and instance folder."""
    (_, run), _ = quickstart()
    port = free_port()
    return [*shlex.split(run), "--port", str(port), "--workers", "2"], fresh_env(tmp), port


def free_port() -> int:
    """Return a port of 127.0.0.1 nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_env(tmp: Path, **extra: str) -> dict[str, str]:
    """Return this environment without any REGISTRY_* setting, on a new SQLite file and instance."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "PROMETHEUS_"))}
    env["REGISTRY_DATABASE_URL"] = f"sqlite:///{tmp / 'registry.sqlite3'}"
    env["REGISTRY_INSTANCE_PATH"] = str(tmp / "instance")
    return {**env, **extra}


class Served:
    """A running server: its port, and what it printed so far."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.base = f"http://127.0.0.1:{port}"

    def output(self) -> str:
        """Return what the command printed (stdout and stderr)."""
        return self.log.read_text(errors="replace")

    def demo_key(self) -> str:
        """Return the demo API key the command printed."""
        match = DEMO_KEY.search(self.output())
        assert match, self.output()
        return match.group(1)


@contextmanager
def serving(
    argv: Sequence[str], env: dict[str, str], port: int, cwd: Path = ROOT, wait: float = 90
) -> Iterator[Served]:
    """Run ``argv`` until it answers ``/healthz`` on ``port``; stop it (master and workers) after."""
    log = Path(env["REGISTRY_INSTANCE_PATH"]).parent / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    served = Served(proc, port, log)
    try:
        deadline = time.monotonic() + wait
        while True:
            assert proc.poll() is None, f"the server stopped:\n{served.output()}"
            assert time.monotonic() < deadline, f"no answer on /healthz:\n{served.output()}"
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        yield served
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
