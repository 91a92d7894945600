"""What the range check costs a carrier's report: ``python benchmarks/disconnections.py``.

In process (Flask test client), on a scratch SQLite file: a carrier holding
two ranges among 2,000 assigned to others reports 10,000 of its numbers in one
request; then the same lookups alone (``ranges.holder_of``), to show the share
of the range check in the report. Numbers are the suite's test shapes
(+86138…), never real subscribers'.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from _common import machine

from registry import create_app, migrate
from registry.extensions import db
from registry.numbers import ranges
from registry.orgs import services as orgs

ROWS = 10_000


def main() -> None:
    """Run once and print the figures."""
    folder = Path(tempfile.mkdtemp(prefix="anning-bench-"))
    url = f"sqlite:///{folder / 'bench.sqlite3'}"
    migrate.upgrade(url)
    env = {
        "REGISTRY_DATABASE_URL": url,
        "REGISTRY_SECRET_KEY": "bench-not-secret",
        "REGISTRY_RATELIMIT_WRITE": "1000 per second",
    }
    app = create_app({"TESTING": True, "ENVIRON": env})
    app.instance_path = str(folder)
    with app.app_context(), db.session() as session:
        org = orgs.create_org(session, "bench-carrier", "Bench carrier", "carrier")
        _, key = orgs.create_key(session, org)
        other = orgs.create_org(session, "other-carrier", "Other carrier", "carrier")
        for prefix in ("+86138", "+86139"):
            ranges.assign(session, prefix, org.slug, "bench")
        for n in range(2_000):  # others' ranges: +8615xxxx and +8618xxxx
            ranges.assign(session, f"+86{150_000 + n * 7}", other.slug, "bench")
        session.commit()
        phones = [f"+86138{n:08d}" for n in range(ROWS)]
        started = time.perf_counter()
        for phone in phones:
            ranges.holder_of(session, phone)
        lookups = time.perf_counter() - started
    client = app.test_client()
    rows = [{"phone": p, "disconnected_at": "2026-03-01T00:00:00+08:00"} for p in phones]
    started = time.perf_counter()
    resp = client.post(
        "/api/v1/numbers/disconnections",
        json={"disconnections": rows},
        headers={"Authorization": f"Bearer {key}"},
    )
    report = time.perf_counter() - started
    assert resp.status_code == 202, resp.get_json()
    assert resp.get_json()["accepted"] == ROWS, resp.get_json()
    print(machine())
    print(f"report of {ROWS:,} rows: {report:.2f} s ({report / ROWS * 1000:.3f} ms a row)")
    print(
        f"range lookups alone: {lookups:.2f} s ({lookups / ROWS * 1000:.3f} ms a number), "
        f"{lookups / report:.0%} of the report"
    )
    with app.app_context():
        db.dispose()


if __name__ == "__main__":
    main()
