"""The complaint desk and its statistics at 1,000,000 complaints: build in SQL, time the pages over HTTP.

Builds a scratch registry (SQLite file by default, or ``--database-url
postgresql://...``, dropped and recreated) with 20 organizations (one in four
with an agent), N complaints (default 1,000,000) over 400 days, of every
type and channel of intake, with their routes (the merchant for every
complaint matched to a sender, the agent for one in four, the financial desk
for the finance senders), answers, closures and overdue flags, plus checks
for the rates; all with bulk ``INSERT ... SELECT`` over a generated series.
Then it runs ``registry stats refresh`` (which recomputes the complaint
rollups), starts the registry under gunicorn (2 workers) on 127.0.0.1, signs
in as an officer and times the desk and the statistics pages, and an
organization's compliance view through the API, each ``--repeat`` times.

    .venv/bin/python benchmarks/complaint_stats.py [--complaints 1000000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_spec = importlib.util.spec_from_file_location("bench_stats", ROOT / "benchmarks" / "stats.py")
if _spec is None or _spec.loader is None:
    raise SystemExit("benchmarks/stats.py is missing")
base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base)

from registry import create_app, migrate  # noqa: E402
from registry.database.engines import make_engine  # noqa: E402
from registry.extensions import db  # noqa: E402
from registry.orgs import services as orgs  # noqa: E402
from registry.senders import services as senders  # noqa: E402

CATS = base.CATS


def build(url: str, complaints: int, checks: int) -> dict[str, object]:
    """Create the scratch data; return the ids and keys the pages need."""
    engine = make_engine(url)
    dialect = engine.dialect.name
    ser = base.series
    app = create_app({"ENVIRON": {"REGISTRY_DATABASE_URL": url, "REGISTRY_SECRET_KEY": "bench"}})
    with app.app_context(), db.session() as session:
        org_ids, sender_ids = [], []
        for i in range(20):
            org = orgs.create_org(session, f"org-{i:02d}", f"Organization {i:02d}")
            org_ids.append(org.id)
            sender, _ = senders.create_sender(session, org.id, f"org-{i:02d}-sms", f"Sender {i:02d}", CATS[i % 12], [f"1069{i:04d}"])  # fmt: skip
            sender_ids.append(sender.id)
        agent = orgs.create_org(session, "agent-cc", "Call center")
        _, key = orgs.create_key(session, orgs.get_org(session, "org-03"))
        session.commit()
        agent_id = agent.id
    if dialect == "postgresql":
        phone = "'+86131' || lpad(({x})::text, 8, '0')"
        ago = "(now() at time zone 'utc') - ({x} % 400) * interval '1 day' - ({x} % 86400) * interval '1 second'"
        plus_h = "{t} + ({h}) * interval '1 hour'"
        day = "CAST({t} AS date)"
        plus_d = "CAST({t} AS date) + ({d})"
        tru, fal = "true", "false"
    else:
        phone = "'+86131' || printf('%08d', {x})"
        ago = "strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || ({x} % 400) || ' days', '-' || ({x} % 86400) || ' seconds')"
        plus_h = "strftime('%Y-%m-%d %H:%M:%f', {t}, '+' || ({h}) || ' hours')"
        day = "date({t})"
        plus_d = "date({t}, '+' || ({d}) || ' days')"
        tru, fal = "1", "0"
    first_org, first_sender = min(org_ids), min(sender_ids)
    types = "CASE n % 13 WHEN 0 THEN 'fraud' WHEN 1 THEN 'after_refusal' WHEN 2 THEN 'outside_hours' WHEN 3 THEN 'too_frequent' WHEN 4 THEN 'impersonation' ELSE 'no_consent' END"
    intake = (
        "CASE n % 7 WHEN 0 THEN 'reporter' WHEN 1 THEN 'sms' WHEN 2 THEN 'staff' ELSE 'site' END"
    )
    matched = "n % 50 <> 0"  # one in fifty: a number no registered sender uses
    with engine.begin() as conn:
        base.timed(f"{checks:,} checks (INSERT ... SELECT)", lambda: conn.execute(text(
            "INSERT INTO check_log (phone, sender_id, organization_id, channel, purpose, category, decision, reason, at, checked_at) "
            f"SELECT {phone.format(x='n * 7919 % 1000000 + 1')}, {first_sender} + n % 20, {first_org} + n % 20, 'sms', 'marketing', 'finance', "
            f"CASE WHEN n % 2 = 0 THEN 'deny' ELSE 'allow' END, CASE WHEN n % 2 = 0 THEN 'no_consent' ELSE 'consent' END, "
            f"{ago.format(x='n * 11')}, {ago.format(x='n * 11')} FROM {ser(dialect, checks)}"
        )))  # fmt: skip
        created = ago.format(x="n * 6113")
        base.timed(f"{complaints:,} complaints (INSERT ... SELECT)", lambda: conn.execute(text(
            "INSERT INTO complaint (phone, address, sender_id, organization_id, agent_id, channel, contacted_at, text, "
            "status, created_at, answered_at, type, intake, police, verdict, sector, acknowledged_at, closed_at, "
            "ack_due, final_due, escalated_at) "
            f"SELECT phone, CASE WHEN {matched} THEN '1069' || pad ELSE '95000' END, "
            f"CASE WHEN {matched} THEN {first_sender} + n % 20 END, CASE WHEN {matched} THEN {first_org} + n % 20 END, "
            f"CASE WHEN {matched} AND n % 4 = 0 THEN {agent_id} END, 'sms', created, 'bench', "
            "CASE WHEN n % 3 = 0 THEN 'open' WHEN n % 3 = 1 THEN 'answered' ELSE 'closed' END, created, "
            f"CASE WHEN n % 3 <> 0 THEN {plus_h.format(t='created', h='n % 240')} END, {types}, {intake}, "
            f"CASE WHEN n % 13 = 0 THEN {tru} ELSE {fal} END, CASE WHEN {matched} THEN 'no_check' ELSE 'unknown_sender' END, "
            f"CASE WHEN {matched} AND (n % 20) % 12 IN (0, 1) THEN 'financial' END, "
            f"CASE WHEN n % 5 <> 0 THEN {plus_h.format(t='created', h='n % 30')} END, "
            f"CASE WHEN n % 3 = 2 THEN {plus_h.format(t='created', h='n % 400')} END, "
            f"{plus_d.format(t='created', d='1')}, {plus_d.format(t='created', d='21')}, "
            f"CASE WHEN n % 17 = 0 THEN {plus_h.format(t='created', h='72')} END "
            f"FROM (SELECT n, {phone.format(x='n * 104729 % 1000000 + 1')} AS phone, {created} AS created, "
            f"{'lpad((n % 20)::text, 4, ' + chr(39) + '0' + chr(39) + ')' if dialect == 'postgresql' else 'printf(' + chr(39) + '%04d' + chr(39) + ', n % 20)'} AS pad "
            f"FROM {ser(dialect, complaints)}) AS c"
        )))  # fmt: skip
        route = (
            "INSERT INTO complaint_route (complaint_id, role, organization_id, sector, forwarded_at, due_on, "
            "answered_at, answered_by, late, overdue_at, action) "
            "SELECT id, '{role}', {org}, {sector}, created_at, "
            + plus_d.format(t="created_at", d="7")
            + ", "
            "CASE WHEN id % 4 <> 0 THEN " + plus_h.format(t="created_at", h="id % 200") + " END, "
            "CASE WHEN id % 4 <> 0 THEN 'org:bench' END, CASE WHEN id % 4 <> 0 AND id % 200 > 160 THEN "
            + tru
            + " ELSE "
            + fal
            + " END, "
            "CASE WHEN id % 4 = 0 AND "
            + day.format(t="created_at")
            + " < "
            + day.format(t="CURRENT_TIMESTAMP")
            + " THEN created_at END, "
            "CASE WHEN id % 4 <> 0 THEN 'stopped_contacting' END FROM complaint WHERE {where}"
        )
        base.timed("routes: merchant", lambda: conn.execute(text(route.format(
            role="merchant", org="organization_id", sector="NULL", where="organization_id IS NOT NULL"))))  # fmt: skip
        base.timed("routes: agent", lambda: conn.execute(text(route.format(
            role="agent", org="agent_id", sector="NULL", where="agent_id IS NOT NULL"))))  # fmt: skip
        base.timed("routes: sector desk", lambda: conn.execute(text(route.format(
            role="sector", org="NULL", sector="sector", where="sector IS NOT NULL"))))  # fmt: skip
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return {"key": key, "org": first_org + 3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--complaints", type=int, default=1_000_000)
    parser.add_argument("--checks", type=int, default=1_000_000)
    parser.add_argument(
        "--database-url", default=None, help="postgresql://... (dropped and recreated)"
    )
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="anning-complaints-"))
    url = args.database_url or f"sqlite:///{tmp / 'complaints.sqlite3'}"
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("postgresql"):
        import psycopg

        name = url.rsplit("/", 1)[1]
        admin = url.rsplit("/", 1)[0].replace("+psycopg", "") + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
    print(f"database: {url.split('@')[-1] if '@' in url else 'SQLite (scratch file)'}")
    migrate.upgrade(url)
    print("building:")
    ids, _ = base.timed("total build", lambda: build(url, args.complaints, args.checks))
    secret = base.staff_account(url)
    full = base.refresh(url)
    print(f"  {'registry stats refresh (with the complaint rollups)':<46} {full:8.2f} s")

    port = base.free_port()
    env = {"REGISTRY_DATABASE_URL": url, "REGISTRY_SECRET_KEY": "bench", "PATH": "/usr/bin:/bin"}
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/registry"), "serve", "--port", str(port), "--workers", "2", "--no-access-log"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        browser = base.Browser(f"http://127.0.0.1:{port}")
        for _ in range(200):
            try:
                browser.get("/healthz")
                break
            except OSError:
                time.sleep(0.1)
        _sign_in(browser, secret)
        pages = [
            "/admin/",
            "/admin/complaints",
            "/admin/complaints?overdue=1",
            "/admin/complaints?org=org-03&status=open",
            "/admin/complaints/1",
            f"/admin/complaints/{args.complaints // 2}",
            "/admin/complaints/stats",
            "/admin/complaints/stats/handling_org.csv",
            "/admin/complaints/stats/handling_sector.csv",
            "/admin/complaints/stats/handling_intake.csv",
            "/admin/complaints/stats/rates_org.csv",
            "/admin/complaints/stats/rates_category.csv",
            "/admin/complaints/stats/overdue.csv",
        ]
        print(f"pages over HTTP (gunicorn, 2 workers; median and worst of {args.repeat}):")
        worst_all = 0.0
        for path in pages:
            times = _time(args.repeat, lambda p=path: browser.get(p))
            worst_all = max(worst_all, max(times))
            print(
                f"  {path:<46} {statistics.median(times) * 1000:8.0f} ms  {max(times) * 1000:8.0f} ms"
            )
        for path in ("/api/v1/compliance", "/api/v1/complaints?due=true"):
            times = _time(args.repeat, lambda p=path: _api(port, str(ids["key"]), p))
            worst_all = max(worst_all, max(times))
            print(
                f"  {path:<46} {statistics.median(times) * 1000:8.0f} ms  {max(times) * 1000:8.0f} ms"
            )
        print(
            f"slowest: {worst_all * 1000:.0f} ms ({'within' if worst_all <= 1 else 'OVER'} the 1 s budget)"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


def _time(repeat: int, fn) -> list[float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        status, _body = fn()
        times.append(time.perf_counter() - started)
        assert status == 200, f"HTTP {status}"
    return times


def _api(port: int, key: str, path: str) -> tuple[int, bytes]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = resp.read()
        json.loads(body)
        return resp.status, body


def _sign_in(browser, secret: str) -> None:  # type: ignore[no-untyped-def]
    import re

    import pyotp

    _, page = browser.get("/admin/login")
    token = re.search(rb'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    assert token, "no CSRF token on the login page"
    status = browser.post("/admin/login", {"csrf_token": token.group(1).decode(), "email": "bench@regulator.example",
                                           "password": base.PASSWORD, "code": pyotp.TOTP(secret).now()})  # fmt: skip
    assert status == 302, f"sign-in failed: {status}"


if __name__ == "__main__":
    main()
