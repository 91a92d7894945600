"""``registry worker`` as a real process: killed with SIGKILL mid-delivery, restarted, nothing lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flask import Flask

from registry.consent import optouts
from registry.events.services import Actor
from registry.extensions import db
from registry.senders.services import SenderRef
from registry.sync import webhooks
from tests import factories
from tests.conftest import TEST_ENV
from tests.receiver import Receiver

REGISTRY = Path(sys.executable).parent / "registry"


def _optouts(world: factories.World, start: int, n: int) -> None:
    sender = SenderRef(world.sender_ids["acme-cards"], "acme-cards", "Acme", "finance",
                       world.org_ids["acme"], False, "acme")  # fmt: skip
    actor = Actor("org:acme", "api", org_id=world.org_ids["acme"])
    with db.session() as session:
        for i in range(start, start + n):
            optouts.record_optout(session, actor, sender, f"+86139{i:08d}", ["sms"], "app", None, None)  # fmt: skip
        session.commit()


def _worker(database_url: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    # The receiver is on 127.0.0.1: this deployment allows private webhook targets.
    env = {**os.environ, **TEST_ENV, "REGISTRY_DATABASE_URL": database_url,
           "REGISTRY_WEBHOOK_ALLOW_PRIVATE": "true"}  # fmt: skip
    args = ["worker", "--interval", "0.05", "--batch", "5", "--timeout", "0.6", "--backoff", "0.1"]
    return subprocess.Popen(
        [str(REGISTRY), *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.live
def test_kill_9_mid_delivery_then_restart_loses_nothing(
    app: Flask, database_url: str, tmp_path: Path
) -> None:
    receiver = Receiver(mode="ok", delay=0.25)  # slow: the kill lands inside a delivery
    try:
        with db.session() as session:
            world = factories.world(session)
            webhooks.create(session, world.org_ids["acme"], receiver.url, allow_private=True)
            session.commit()
        _optouts(world, 0, 40)
        worker = _worker(database_url, tmp_path)
        try:
            assert _wait(lambda: len(receiver.deliveries) >= 2, 20), "worker never delivered"
            time.sleep(0.1)  # the third batch is on the wire
            worker.send_signal(signal.SIGKILL)
            worker.wait(5)
        finally:
            if worker.poll() is None:
                worker.kill()
        delivered_before = len(receiver.deliveries)
        assert delivered_before < 8, "the worker finished before it could be killed"
        _optouts(world, 40, 10)  # changes while no worker runs
        receiver.delay = 0.0
        worker = _worker(database_url, tmp_path)
        try:
            everything = set(range(1, 51))
            # Feed numbers start at 1 in a fresh database: 50 opt-outs, 50 numbers.
            assert _wait(lambda: receiver.accepted_seqs() >= everything, 30), sorted(
                everything - receiver.accepted_seqs()
            )
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(10)
        assert worker.returncode == 0
        ids = [d.delivery_id for d in receiver.deliveries]
        assert len(ids) >= 10  # 50 changes in batches of 5, plus the repeat after the kill
        with db.session() as session:
            hook = webhooks.list_hooks(session, world.org_ids["acme"])[0]
            assert hook.cursor == 50
            assert hook.failures == 0
    finally:
        receiver.close()
