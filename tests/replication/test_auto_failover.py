"""pg_auto_failover for real: the monitor fails over a killed primary; nothing acknowledged is lost.

A monitor and two data nodes made by ``pg_autoctl`` (tests/replication/autofailover.py,
the monitor's health checks tuned to seconds). The app runs on the multi-host
URL pg_autoctl prints under opt-out and check load; the primary's keeper and
server are SIGKILLed; the monitor promotes the standby; the app reaches it
through the URL; every acknowledged opt-out and every answered check's log
row (spooled ones replayed) is on it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.replication.autofailover import AUTOCTL, formation, under_load
from tests.replication.cluster import BIN

pytestmark = [
    pytest.mark.replication,
    pytest.mark.live,
    pytest.mark.skipif(not BIN, reason="needs the PostgreSQL server binaries"),
    pytest.mark.skipif(
        AUTOCTL is None, reason="needs pg_autoctl (Debian postgresql-15-auto-failover)"
    ),
]


def test_the_monitor_fails_over_and_nothing_acknowledged_is_lost(tmp_path: Path) -> None:
    with formation(nodes=2) as f:
        r = under_load(f, tmp_path, before=2, after=2, limit=60)
    print(r)  # noqa: T201  # the figures, shown by -rA
    assert r["acknowledged"] > 20, r
    assert r["lost"] == 0, r
    assert r["new"] != r["old"], r
    assert r["app_port"] == r["new_port"], r  # found through the multi-host URL
    assert r["checks_wrong"] == 0, r
    assert r["check_rows_lost"] == 0, r
    assert r["check_rows_doubled"] == 0, r
    assert r["writes_down_s"] < 60, r
