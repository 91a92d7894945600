"""Statistics pages at 1,000,000 holders: build the data in SQL, refresh the rollups, time each page over HTTP.

Builds a scratch registry (SQLite file by default, or ``--database-url
postgresql://...`` for a scratch PostgreSQL database that is dropped and
recreated) with N holders (default 1,000,000), their preference events,
several million checks and a few thousand complaints (when the complaints
domain is present), all with bulk ``INSERT ... SELECT`` over a generated
series (a recursive CTE on SQLite, ``generate_series`` on PostgreSQL). Then
it times ``registry stats refresh`` (full and incremental), starts the
registry under gunicorn on 127.0.0.1, signs in as an officer (password and
TOTP) and times every statistics page over HTTP.

    .venv/bin/python benchmarks/stats.py [--holders 1000000] [--checks 3000000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import http.client
import http.cookiejar
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pyotp
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry import create_app, migrate  # noqa: E402
from registry.admin import accounts  # noqa: E402
from registry.database.engines import make_engine  # noqa: E402
from registry.extensions import db  # noqa: E402
from registry.orgs import services as orgs  # noqa: E402
from registry.senders import services as senders  # noqa: E402

PASSWORD = "benchmark password only"
CATS = (
    "finance", "insurance", "real_estate", "education", "health", "employment",
    "travel", "retail", "automotive", "telecom", "food", "other",
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(label: str, fn):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - started
    print(f"  {label:<46} {elapsed:8.2f} s")
    return result, elapsed


def series(dialect: str, n: int) -> str:
    """Return a FROM clause yielding ``n`` rows with a column ``n`` (1..n)."""
    if dialect == "postgresql":
        return f"generate_series(1::bigint, {n}) AS s(n)"
    return f"(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) SELECT n FROM s) AS s"


def build(url: str, holders: int, checks: int) -> dict[str, int]:
    """Create the scratch data; return ids the pages need."""
    engine = make_engine(url)
    dialect = engine.dialect.name
    ser = series
    if dialect == "postgresql":
        phone = "'+86131' || lpad(({x})::text, 8, '0')"
        ago = "(now() at time zone 'utc') - ({x} % 400) * interval '1 day' - ({x} % 86400) * interval '1 second'"
        boolean = "({cond})"
        cats = "concat_ws(',', {parts})"
        part = "CASE WHEN {cond} THEN '{cat}' END"
    else:
        phone = "'+86131' || printf('%08d', {x})"
        ago = "strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || ({x} % 400) || ' days', '-' || ({x} % 86400) || ' seconds')"
        boolean = "({cond})"
        cats = "trim(replace({parts}, ',,', ','), ',')"
        part = "CASE WHEN {cond} THEN '{cat},' ELSE '' END"
    cat_parts = [part.format(cond=f"n % {17 + i} = 0", cat=c) for i, c in enumerate(CATS)]
    blocked = (
        cats.format(parts=", ".join(cat_parts))
        if dialect == "postgresql"
        else "rtrim(" + " || ".join(cat_parts) + ", ',')"
    )
    dnd_v, dnd_s = boolean.format(cond="n % 9 = 0"), boolean.format(cond="n % 5 = 0")
    ids: dict[str, int] = {}
    with engine.begin() as conn:
        timed(f"{holders:,} holders (INSERT ... SELECT)", lambda: conn.execute(text(
            f"INSERT INTO subscriber (phone, dnd_voice, dnd_sms, blocked_categories, session_epoch, created_at, updated_at) "
            f"SELECT {phone.format(x='n')}, {dnd_v}, {dnd_s}, {blocked}, 0, {ago.format(x='n * 7')}, {ago.format(x='n * 7')} FROM {ser(dialect, holders)}"
        )))  # fmt: skip
        # One preference event per holder who set anything, as the site would have written it.
        json_ = (
            "'{\"blocked_categories\": [], \"dnd_sms\": ' || CASE WHEN dnd_sms THEN 'true' ELSE 'false' END || "
            "', \"dnd_voice\": ' || CASE WHEN dnd_voice THEN 'true' ELSE 'false' END || ', \"quiet_hours\": null}'"
        )
        timed("preference events", lambda: conn.execute(text(
            "INSERT INTO event (phone, type, at, actor, via, state, data) "
            f"SELECT phone, 'preferences.changed', updated_at, 'subscriber', 'site', 'set', {json_} "
            "FROM subscriber WHERE dnd_sms OR dnd_voice OR blocked_categories <> '' ORDER BY updated_at"
        )))  # fmt: skip
    app = create_app({"ENVIRON": {"REGISTRY_DATABASE_URL": url, "REGISTRY_SECRET_KEY": "bench"}})
    with app.app_context(), db.session() as session:
        org_ids, sender_ids = [], []
        for i in range(20):
            org = orgs.create_org(session, f"org-{i:02d}", f"Organization {i:02d}")
            org_ids.append(org.id)
            sender, _ = senders.create_sender(session, org.id, f"org-{i:02d}-sms", f"Sender {i:02d}", CATS[i % 12], [f"1069{i:04d}"])  # fmt: skip
            sender_ids.append(sender.id)
        session.commit()
    ids["secret"] = staff_account(url)  # type: ignore[assignment]
    reasons = "CASE n % 10 WHEN 0 THEN 'dnd' WHEN 1 THEN 'category_blocked' WHEN 2 THEN 'opted_out' WHEN 3 THEN 'no_consent' WHEN 4 THEN 'quiet_hours' ELSE 'consent' END"
    decision = "CASE WHEN n % 10 < 5 THEN 'deny' ELSE 'allow' END"
    first_org, first_sender = min(org_ids), min(sender_ids)
    with engine.begin() as conn:
        timed(f"{checks:,} checks (INSERT ... SELECT)", lambda: conn.execute(text(
            "INSERT INTO check_log (phone, sender_id, organization_id, channel, purpose, category, decision, reason, at, checked_at) "
            f"SELECT {phone.format(x=f'n * 7919 % {holders} + 1')}, "
            f"{first_sender} + n % 20, {first_org} + n % 20, CASE WHEN n % 3 = 0 THEN 'voice' ELSE 'sms' END, 'marketing', 'finance', "
            f"{decision}, {reasons}, {ago.format(x='(' + str(checks) + ' - n) * 11')}, {ago.format(x='(' + str(checks) + ' - n) * 11')} "
            f"FROM {ser(dialect, checks)}"
        )))  # fmt: skip
        complaints = max(1000, holders // 200)
        answered = (
            "CASE WHEN n % 3 <> 0 THEN created + (n % 240) * interval '1 hour' END"
            if dialect == "postgresql"
            else "CASE WHEN n % 3 <> 0 THEN strftime('%Y-%m-%d %H:%M:%f', created, '+' || (n % 240) || ' hours') END"
        )
        timed(f"{complaints:,} complaints (INSERT ... SELECT)", lambda: conn.execute(text(
            "INSERT INTO complaint (phone, address, sender_id, organization_id, channel, contacted_at, text, status, created_at, answered_at) "
            f"SELECT phone, '1069' || printf_n, sid, oid, 'sms', created, 'bench', CASE WHEN n % 3 = 0 THEN 'open' ELSE 'answered' END, created, {answered} "
            f"FROM (SELECT n, {phone.format(x=f'n * 104729 % {holders} + 1')} AS phone, {first_sender} + n % 20 AS sid, "
            f"{first_org} + n % 20 AS oid, {ago.format(x='n * 6113')} AS created, "
            f"{'lpad((n % 20)::text, 4, ' + chr(39) + '0' + chr(39) + ')' if dialect == 'postgresql' else 'printf(' + chr(39) + '%04d' + chr(39) + ', n % 20)'} AS printf_n "
            f"FROM {ser(dialect, complaints)}) AS c"
        )))  # fmt: skip
        if dialect == "postgresql":
            conn.execute(text("ANALYZE"))
    engine.dispose()
    return ids


def staff_account(url: str) -> str:
    """Create (or re-create) the benchmark's officer; return its TOTP secret."""
    app = create_app({"ENVIRON": {"REGISTRY_DATABASE_URL": url, "REGISTRY_SECRET_KEY": "bench"}})
    with app.app_context(), db.session() as session:
        session.execute(text("DELETE FROM staff_audit"))
        session.execute(text("DELETE FROM staff_user WHERE email = 'bench@regulator.example'"))
        new = accounts.create_staff(session, "bench@regulator.example", PASSWORD, "officer")
        session.commit()
        return new.totp_secret


def refresh(url: str) -> float:
    """Run ``registry stats refresh``; return the time it reports (without process start-up)."""
    env = {**os.environ, "REGISTRY_DATABASE_URL": url, "REGISTRY_SECRET_KEY": "bench"}
    out = subprocess.run(
        [str(ROOT / ".venv/bin/registry"), "stats", "refresh"], env=env, check=True,
        capture_output=True, text=True,
    ).stdout  # fmt: skip
    print(f"    {out.strip()}")
    return float(re.search(r"in ([0-9.]+) s", out).group(1))  # type: ignore[union-attr]


class Browser:
    """A cookie-keeping HTTP client for the console."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
            NoRedirect(),
        )

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with self.opener.open(self.base + path, timeout=60) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def post(self, path: str, data: dict[str, str]) -> int:
        body = urllib.parse.urlencode(data).encode()
        try:
            with self.opener.open(self.base + path, body, timeout=60) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holders", type=int, default=1_000_000)
    parser.add_argument("--checks", type=int, default=3_000_000)
    parser.add_argument(
        "--database-url", default=None, help="postgresql://... (dropped and recreated)"
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--reuse", action="store_true", help="keep the data already in --database-url"
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="anning-stats-"))
    url = args.database_url or f"sqlite:///{tmp / 'stats.sqlite3'}"
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("postgresql") and not args.reuse:
        import psycopg

        name = url.rsplit("/", 1)[1]
        admin = url.rsplit("/", 1)[0].replace("+psycopg", "") + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
    print(f"database: {url.split('@')[-1] if '@' in url else 'SQLite (scratch file)'}")
    migrate.upgrade(url)
    if args.reuse:
        ids = {"secret": staff_account(url)}
    else:
        print("building:")
        ids, _build_s = timed("total build", lambda: build(url, args.holders, args.checks))
    full = refresh(url)
    print(f"  {'registry stats refresh (first, full)':<46} {full:8.2f} s")
    again = refresh(url)
    print(f"  {'registry stats refresh (nothing new)':<46} {again:8.2f} s")

    port = free_port()
    env = {**os.environ, "REGISTRY_DATABASE_URL": url, "REGISTRY_SECRET_KEY": "bench"}
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/registry"), "serve", "--port", str(port), "--workers", "2", "--no-access-log"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        browser = Browser(base)
        _, page = browser.get("/admin/login")
        token = re.search(rb'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
        assert token, "no CSRF token on the login page"
        code = pyotp.TOTP(ids["secret"]).now()  # type: ignore[arg-type]
        status = browser.post("/admin/login", {"csrf_token": token.group(1).decode(), "email": "bench@regulator.example", "password": PASSWORD, "code": code})  # fmt: skip
        assert status == 302, f"sign-in failed: {status}"
        from datetime import date

        from registry.stats.services import quarter_of

        quarter = quarter_of(date.today())
        pages = [
            "/admin/",
            "/admin/stats",
            f"/admin/stats?q={quarter}",
            "/admin/stats/willingness.csv",
            "/admin/stats/dnd.csv",
            "/admin/stats/checks.csv",
            f"/admin/reports/quarterly?q={quarter}",
            "/admin/sanctions",
            "/admin/orgs",
            "/sanctions",
        ]
        pages += list(EXTRA_PAGES)
        pages += [
            f"/admin/sharing/industries.csv?q={quarter}",
            f"/admin/sharing/clues.csv?q={quarter}",
        ]
        print(f"pages over HTTP (gunicorn, 2 workers; median and worst of {args.repeat}):")
        worst_all = 0.0
        for path in pages:
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                status, _body = browser.get(path)
                times.append(time.perf_counter() - started)
                assert status == 200, f"{path}: HTTP {status}"
            worst_all = max(worst_all, max(times))
            print(
                f"  {path:<46} {statistics.median(times) * 1000:8.0f} ms  {max(times) * 1000:8.0f} ms"
            )
        print(
            f"slowest page: {worst_all * 1000:.0f} ms ({'within' if worst_all <= 2 else 'OVER'} the 2 s budget)"
        )
        # Enforcement (issue 17): drafting the quarter's public review is a POST.
        draft_times = []
        for _ in range(max(1, args.repeat // 2)):
            _, page = browser.get("/admin/reviews")
            token = re.search(rb'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
            assert token, "no CSRF token on the reviews page"
            started = time.perf_counter()
            status = browser.post("/admin/reviews", {"csrf_token": token.group(1).decode(), "quarter": quarter, "note": ""})  # fmt: skip
            draft_times.append(time.perf_counter() - started)
            assert status in (200, 302), f"draft: HTTP {status}"
        print(
            f"  {'POST /admin/reviews (draft ' + quarter + ')':<46} {statistics.median(draft_times) * 1000:8.0f} ms  {max(draft_times) * 1000:8.0f} ms"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


EXTRA_PAGES = [
    "/admin/complaints",
    "/admin/complaints?overdue=1",
    "/admin/complaints?org=org-03&status=open",
    "/admin/complaints/1",
    "/admin/complaints/2",
    "/admin/stats/complaints.csv",
    "/admin/stats/answer_times.csv",
    "/admin/warnings",
    "/admin/sharing",
]

if __name__ == "__main__":
    main()
