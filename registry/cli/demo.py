"""``registry demo``: fill an empty registry with believable demo data."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import click
from flask import current_app
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from registry.access import services as access
from registry.config import Settings, current_settings
from registry.consent import services as consents
from registry.events.services import Actor
from registry.extensions import db
from registry.numbers import ranges
from registry.orgs import delegations
from registry.orgs import services as orgs
from registry.orgs.filings import Filing
from registry.orgs.models import Organization
from registry.senders import services as senders
from registry.subscribers import services as subscribers
from registry.timeutil import utcnow

# Example numbers in the shape of Chinese mobiles; none belongs to a real person
# we know of, and the demo never texts anyone (the console SMS backend).
DEMO_LOGIN = "+8613100000001"
DEMO_HOLDERS = [f"+86131000000{i:02d}" for i in range(1, 21)]
DEMO_RANGES = ("+86131", "+86139")
# Who the demo's own changes are attributed to: never the holder (SPEC §8).
DEMO = Actor("demo", "cli")

ORGS = [
    ("acme-bank", "Acme Bank 顶峰银行", "sender"),
    ("bluesky-cc", "Blue Sky Call Center 蓝天呼叫中心", "sender"),
    ("shopmall", "ShopMall Platform 好物商城", "platform"),
    ("citytel", "CityTel Carrier 城市电信", "carrier"),
    ("regulator", "Communications Regulator", "regulator"),
    # Brings the replies sent to the registry's own number (REGISTRY_SMS_NUMBER).
    ("anning-sms", "Anning SMS Gateway 安宁短信网关", "gateway"),
    # A phone app answering "who is calling me" (GET /api/v1/lookup).
    ("callguard", "CallGuard App 来电卫士", "lookup"),
]
# What each demo organization is in the chain (the rest are merchants).
KINDS = {"bluesky-cc": "call_center", "shopmall": "platform", "citytel": "carrier"}
SENDERS = [
    ("acme-bank", "acme-cards", "Acme Bank Credit Cards", "finance", ["10690001", "+862160000001"]),
    ("acme-bank", "acme-loans", "Acme Bank Loans", "finance", ["10690002"]),
    ("shopmall", "shopmall-deals", "ShopMall Deals", "retail", ["10690003", "+862160000003"]),
    ("bluesky-cc", "bluesky-insure", "Blue Sky Insurance Offers", "insurance", ["+862160000004"]),
]


def key_file(instance: str) -> Path:
    """Return where the demo's own API key is kept so re-runs can print it again."""
    return Path(instance) / "demo_api_key"


def fill(session: Session, settings: Settings, instance: str) -> dict[str, str]:
    """Create the demo organizations, senders, holders and consents; return the API keys."""
    keys: dict[str, str] = {}
    org_ids: dict[str, int] = {}
    for slug, name, role in ORGS:
        org = orgs.create_org(session, slug, name, role, kind=KINDS.get(slug, "merchant"))
        org_ids[slug] = org.id or 0
        _, keys[slug] = orgs.create_key(session, org, "demo")
    refs = {}
    now = utcnow()
    # The demo carrier holds the ranges of the demo numbers (DEMO_HOLDERS,
    # DEMO_LOGIN, the synthetic +86139 holders): it may report them disconnected.
    for prefix in DEMO_RANGES:
        ranges.assign(session, prefix, "citytel", "demo")
    for slug, code, name, category, addresses in SENDERS:
        senders.create_sender(session, org_ids[slug], code, name, category, addresses)
    # The demo carrier connects every demo address (the access relation attests
    # it), so a demo check naming its ``from`` is answered as the sender's.
    for slug, _code, _name, _category, addresses in SENDERS:
        for address in addresses:
            kind = "sms_port" if address.startswith("106") else "enterprise_line"
            access.connect(
                session, org_ids["citytel"], slug, kind, [address], settings.default_region, "demo"
            )
    for slug, code, *_ in SENDERS:
        caller = orgs.Caller(org_ids[slug], slug, slug, "sender", None)
        refs[code] = senders.resolve_sender(session, caller, code, "consent", now)
    # Blue Sky calls Acme's card holders from Acme's landline, under a filed business.
    delegations.grant(
        session, org_ids["acme-bank"], "bluesky-cc", ["acme-cards"], ["check", "optout"], None,
        Filing("credit cards 信用卡", "marketing", ["+862160000001"],
               "Acme Bank card holders who agreed to offers", "card upgrade offers",
               "Demo Contact", "+8613100000099"),
        settings.default_region,
    )  # fmt: skip
    for i, phone in enumerate(DEMO_HOLDERS):
        # Seeded settings are recorded as what they are: the demo's, not the holder's.
        if i % 4 == 1:
            subscribers.set_preferences(session, phone, DEMO, dnd_sms=True, dnd_voice=True)
        elif i % 4 == 2:
            subscribers.set_preferences(
                session, phone, DEMO, blocked_categories=["finance", "real_estate"]
            )
        elif i % 4 == 3:
            subscribers.set_preferences(session, phone, DEMO, quiet_hours="12:00-14:00")
        slug, code = ("acme-bank", "acme-cards") if i % 2 == 0 else ("shopmall", "shopmall-deals")
        sender = refs[code]
        owner = sender.organization_id
        evidence = consents.Evidence(
            method="web_form",
            captured_at=now - timedelta(days=30 - i),
            wording=f"I agree that {sender.name} may send me offers by SMS and phone.",
            reference=f"demo-form-{i:03d}",
        )
        actor = consents.Actor(f"org:{slug}", "cli", org_id=owner)
        consents.create_consent(
            session, settings, actor, sender, phone, ["sms", "voice"], evidence,
            external_id=f"demo-{i}", confirmed=i % 5 != 4,
        )  # fmt: skip
    # The login number's account exists with nothing set: no change is recorded in its name.
    subscribers.get_or_create(session, DEMO_LOGIN)
    key_file(instance).parent.mkdir(parents=True, exist_ok=True)
    key_file(instance).write_text(keys["acme-bank"])
    key_file(instance).chmod(0o600)
    return keys


@click.command("demo")
@click.option(
    "--holders",
    type=click.IntRange(0, 99_999_999),
    default=0,
    help="Also generate this many synthetic holders (preferences, consents, opt-outs) in bulk.",
)
def demo(holders: int) -> None:
    """Fill an empty database with demo data; print the demo API keys and login number."""
    settings: Settings = current_settings()
    with db.session() as session:
        if session.scalar(select(func.count()).select_from(Organization)):
            raise click.ClickException(
                "the database is not empty; demo data goes into an empty one"
            )
        keys = fill(session, settings, current_app.instance_path)
        session.commit()
        if holders:
            started = time.perf_counter()
            bulk_holders(session, holders)
            session.commit()
            click.echo(
                f"generated {holders:,} holders in {time.perf_counter() - started:.1f} s", err=True
            )
    for slug, key in keys.items():
        click.echo(f"API key for {slug}: {key}")
    click.echo(f"demo login number: {DEMO_LOGIN} (codes appear in `registry sms outbox`)")
    click.echo(
        f"registry SMS number: {settings.sms_number} (holders' replies to it: "
        "POST /api/v1/gateway/inbound-sms with the anning-sms key)"
    )


# Synthetic holders are +86139 followed by eight digits. Each row is made by the
# database itself from a number series (INSERT ... SELECT over generate_series
# on PostgreSQL, a recursive CTE on SQLite): no Python loop, no round trips,
# which beats client-side COPY because nothing crosses the wire. These rows are
# state only, marked with evidence method "synthetic" and no event history.
_SERIES = {
    "postgresql": "SELECT n FROM generate_series(0, :count - 1) AS n",
    "sqlite": "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n + 1 < :count) SELECT n FROM s",
}
_PHONE = {
    "postgresql": "'+86139' || lpad(n::text, 8, '0')",
    "sqlite": "'+86139' || substr('00000000' || n, -8, 8)",
}


def bulk_holders(session: Session, count: int) -> None:
    """Generate ``count`` holders: a third with preferences, half with a consent, a tenth opted out."""
    dialect = session.get_bind().dialect.name
    series, phone = _SERIES[dialect], _PHONE[dialect]
    sender_ids = [row[0] for row in session.execute(text("SELECT id FROM sender ORDER BY id"))]
    org_of: dict[int, int] = dict(
        session.execute(text("SELECT id, organization_id FROM sender")).all()
    )
    now = utcnow().replace(tzinfo=None)
    k = len(sender_ids)
    params = {"count": count, "now": now}
    if dialect == "postgresql":
        # Millions of rows in one statement outlast REGISTRY_DATABASE_STATEMENT_TIMEOUT,
        # which bounds a request's statements, not this build (10M holders: over 60 s on a
        # slow machine). For this transaction only.
        session.execute(text("SET LOCAL statement_timeout = 0"))
    # Subscribers: DND on SMS for every 7th, finance blocked for every 5th, quiet hours for every 9th.
    session.execute(
        text(
            "INSERT INTO subscriber (phone, dnd_voice, dnd_sms, blocked_categories, quiet_hours, "  # noqa: S608 - constants and integer ids only  # nosec B608
            "session_epoch, created_at, updated_at) "
            f"SELECT {phone}, n % 11 = 0, n % 7 = 0, CASE WHEN n % 5 = 0 THEN 'finance' ELSE '' END, "
            "CASE WHEN n % 9 = 0 THEN '12:00-14:00' END, 0, :now, :now "
            f"FROM ({series}) AS g WHERE n % 3 = 0"
        ),
        params,
    )
    case_sender = (
        "CASE "
        + " ".join(f"WHEN n % {k} = {i} THEN {sid}" for i, sid in enumerate(sender_ids))
        + " END"
    )
    case_org = (
        "CASE "
        + " ".join(f"WHEN n % {k} = {i} THEN {org_of[sid]}" for i, sid in enumerate(sender_ids))
        + " END"
    )
    session.execute(
        text(
            "INSERT INTO consent (phone, sender_id, organization_id, channels, status, "  # noqa: S608 - constants and integer ids only  # nosec B608
            "evidence_method, evidence_captured_at, created_at, activated_at) "
            f"SELECT {phone}, {case_sender}, {case_org}, 'sms,voice', 'active', 'synthetic', :now, :now, :now "
            f"FROM ({series}) AS g WHERE n % 2 = 0"
        ),
        params,
    )
    session.execute(
        text(
            "INSERT INTO opt_out (phone, sender_id, organization_id, channels, source, received_at, created_at) "  # noqa: S608 - constants and integer ids only  # nosec B608
            f"SELECT {phone}, {case_sender}, {case_org}, 'sms', 'synthetic', :now, :now "
            f"FROM ({series}) AS g WHERE n % 10 = 1"
        ),
        params,
    )
    if dialect == "postgresql":
        session.execute(text("ANALYZE subscriber; ANALYZE consent; ANALYZE opt_out"))
    else:
        session.execute(text("ANALYZE"))


COMMANDS = [demo]
