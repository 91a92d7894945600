"""The holder's own controls (issue 19) through real requests: the site sets them, checks obey.

The frequency cap across all senders, refusals with an end the holder chose,
one-tap unsubscribe, and the holder's records in the DPV / ISO/IEC TS 27560
form; and the wrong party (a sender) can set none of them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.consent import optouts, refusals
from registry.consent.models import OptOut
from registry.events.models import Event
from registry.events.services import SYSTEM
from registry.senders.services import sender_as_owner
from registry.sms.models import SmsMessage
from registry.subscribers import services as subscribers
from registry.subscribers.models import Subscriber
from tests.api.test_check import _settings, give_consent
from tests.conftest import NOON, Api
from tests.factories import HOLDER, HOLDER2, World
from tests.web.test_site import csrf, sign_in

NEW_YORK = "+12125550123"  # a fictional 555-01xx number, in America/New_York


def set_cap(client: FlaskClient, **limits: int) -> None:
    """Set the cap on /me/limits as the signed-in holder."""
    data = {"csrf_token": csrf(client, "/me/limits"), **{k: str(v) for k, v in limits.items()}}
    resp = client.post("/me/limits", data=data)
    assert resp.status_code == 302, resp.get_data(as_text=True)[:800]


# --- The frequency cap ---------------------------------------------------------------------


def test_cap_denies_the_next_allow_and_frees_a_slot_the_next_local_day(
    client: FlaskClient, session: Session, world: World, acme: Api
) -> None:
    give_consent(session, world)
    sign_in(client, session)
    set_cap(client, sms_per_day=2)
    assert [acme.check(HOLDER)["decision"] for _ in range(2)] == ["allow", "allow"]
    third = acme.check(HOLDER)
    assert (third["decision"], third["reason"]) == ("deny", "frequency_capped")
    # Full until local midnight; the first allowed moment after it is 08:00 in Shanghai.
    assert third["next_allowed_at"] == "2030-01-16T00:00:00Z"
    assert acme.check(HOLDER, at="2030-01-16T08:00:00+08:00")["decision"] == "allow"
    # Calls have no cap; a denied check (quiet hours) counts nothing.
    assert acme.check(HOLDER, channel="voice")["decision"] == "allow"
    assert acme.check(HOLDER, at="2030-01-16T22:00:00+08:00")["reason"] == "quiet_hours"
    assert acme.check(HOLDER, at="2030-01-16T09:00:00+08:00")["decision"] == "allow"
    assert acme.check(HOLDER, at="2030-01-16T10:00:00+08:00")["reason"] == "frequency_capped"


def test_the_day_is_the_numbers_own_not_utcs(session: Session, world: World, acme: Api) -> None:
    """Two New York evenings and mornings fall on one UTC day: the local day decides."""
    give_consent(session, world, NEW_YORK)
    subscribers.set_frequency_caps(session, NEW_YORK, {"sms": (1, None)})
    session.commit()
    evening = acme.check(NEW_YORK, at="2030-01-15T20:30:00-05:00")  # 01:30Z on the 16th
    assert evening["decision"] == "allow"
    late = acme.check(NEW_YORK, at="2030-01-15T20:45:00-05:00")
    assert late["reason"] == "frequency_capped"
    assert late["next_allowed_at"] == "2030-01-16T13:00:00Z"  # 08:00 in New York
    morning = acme.check(NEW_YORK, at="2030-01-16T08:30:00-05:00")  # 13:30Z, same UTC day
    assert morning["decision"] == "allow"


def test_week_cap_frees_on_the_local_monday(session: Session, world: World, acme: Api) -> None:
    give_consent(session, world)
    subscribers.set_frequency_caps(session, HOLDER, {"sms": (None, 2)})
    session.commit()
    assert acme.check(HOLDER, at="2030-01-15T12:00:00+08:00")["decision"] == "allow"  # Tuesday
    assert acme.check(HOLDER, at="2030-01-17T12:00:00+08:00")["decision"] == "allow"
    sunday = acme.check(HOLDER, at="2030-01-20T12:00:00+08:00")
    assert (sunday["reason"], sunday["next_allowed_at"]) == (
        "frequency_capped",
        "2030-01-21T00:00:00Z",  # Monday 08:00 in Shanghai
    )
    assert acme.check(HOLDER, at="2030-01-21T08:00:00+08:00")["decision"] == "allow"


def test_cap_counts_every_sender_and_an_exempt_sender_passes(
    client: FlaskClient, session: Session, world: World, acme: Api, shop: Api
) -> None:
    give_consent(session, world)
    give_consent(session, world, code="shop-deals")
    sign_in(client, session)
    set_cap(client, sms_per_day=1)
    assert acme.check(HOLDER)["decision"] == "allow"
    assert shop.check(HOLDER, sender="shop-deals")["reason"] == "frequency_capped"
    # The holder ticks "this sender may always reach me" for shop-deals on the Senders page.
    page = client.get("/me/senders").get_data(as_text=True)
    assert "This sender may always reach me" in page or "此发送方可以随时联系我" in page
    resp = client.post(
        "/me/senders",
        data={
            "x-csrf_token": csrf(client, "/me/senders"),
            "x-sender_id": str(world.sender_ids["shop-deals"]),
            "x-exempt": "1",
        },
    )
    assert resp.status_code == 302
    assert shop.check(HOLDER, sender="shop-deals")["decision"] == "allow"
    assert shop.check(HOLDER, sender="shop-deals")["decision"] == "allow"  # never counted
    assert acme.check(HOLDER)["reason"] == "frequency_capped"


def test_batch_checks_count_too(session: Session, world: World, acme: Api) -> None:
    give_consent(session, world)
    give_consent(session, world, HOLDER2)
    subscribers.set_frequency_caps(session, HOLDER, {"sms": (1, None)})
    session.commit()
    body = acme.post(
        "/check/batch",
        {"sender": "acme-cards", "channel": "sms", "at": NOON, "phones": [HOLDER, HOLDER2, HOLDER]},
    ).get_json()
    assert [r["reason"] for r in body["results"]] == ["consent", "consent", "consent"]
    again = acme.post(
        "/check/batch", {"sender": "acme-cards", "channel": "sms", "at": NOON, "phones": [HOLDER]}
    ).get_json()
    assert again["results"][0]["reason"] == "frequency_capped"
    assert again["results"][0]["next_allowed_at"] == "2030-01-16T00:00:00Z"
    assert again["summary"] == {"allow": 0, "deny": 1, "invalid": 0}


def test_cap_form_refuses_bad_numbers(client: FlaskClient, session: Session, world: World) -> None:
    sign_in(client, session)
    token = csrf(client, "/me/limits")
    for bad in ("0", "100", "-1", "three"):
        resp = client.post("/me/limits", data={"csrf_token": token, "sms_per_day": bad})
        assert resp.status_code == 200
        assert "1 to 99" in resp.get_data(as_text=True) or "1 到 99" in resp.get_data(as_text=True)
    assert session.get(Subscriber, HOLDER).frequency_caps is None  # type: ignore[union-attr]


def test_a_sender_cannot_set_a_holders_cap_or_refusals(
    client: FlaskClient, session: Session, world: World, acme: Api
) -> None:
    """The API key opens none of the holder's pages; one holder's session changes only its number."""
    give_consent(session, world)
    token = csrf(client, "/sign-in")  # a real form token, of a browser not signed in
    for path, data in (
        ("/me/limits", {"sms_per_day": "5"}),
        ("/me", {"dnd_sms": "y", "dnd_sms_for": "1y"}),
        ("/me/senders", {"x-sender_id": str(world.sender_ids["acme-cards"]), "x-exempt": "1"}),
        ("/me/unsubscribe", {"everyone": "1"}),
    ):
        tokens = {"csrf_token": token, "x-csrf_token": token}
        resp = client.post(path, data=data | tokens, headers=acme.headers())
        assert resp.status_code == 302
        assert "/sign-in" in resp.headers["Location"]
        # Without the site's form token (a sender's script), refused before anything.
        assert client.post(path, data=data, headers=acme.headers()).status_code in (302, 400)
    # No API route writes a holder's preferences either.
    for path in ("/preferences", "/subscribers/" + HOLDER, "/limits"):
        assert acme.post(path, {"sms_per_day": 1}).status_code in (404, 405)
    holder = session.get(Subscriber, HOLDER)
    assert holder is None or (holder.frequency_caps is None and not holder.dnd_sms)
    # Another holder, signed in, sets its own cap: HOLDER's checks are untouched.
    sign_in(client, session, "139 0013 9000")
    set_cap(client, sms_per_day=1)
    for _ in range(3):
        assert acme.check(HOLDER)["decision"] == "allow"
    assert session.get(Subscriber, HOLDER2).frequency_caps == "sms=1/"  # type: ignore[union-attr]


# --- Refusals with an end -------------------------------------------------------------------


def test_a_timed_dnd_ends_on_time_with_a_reminder_and_a_feed_event(
    client: FlaskClient, session: Session, world: World, acme: Api
) -> None:
    sign_in(client, session)
    token = csrf(client, "/me")
    resp = client.post(
        "/me", data={"dnd_sms": "y", "dnd_sms_for": "3m", "quiet_hours": "", "csrf_token": token}
    )
    assert resp.status_code == 302
    holder = session.get(Subscriber, HOLDER, populate_existing=True)
    assert holder is not None
    end = subscribers.refusal_ends(holder)["sms"]
    assert timedelta(days=89) < end - holder.updated_at < timedelta(days=93)
    assert "Ends" in client.get("/me").get_data(as_text=True) or "结束" in client.get(
        "/me"
    ).get_data(as_text=True)
    before = (end - timedelta(minutes=1)).isoformat()
    assert acme.check(HOLDER, at=_inside_hours(end - timedelta(days=1)))["reason"] == "dnd"
    assert acme.check(HOLDER, at=before)["reason"] in ("dnd", "quiet_hours")
    after = _inside_hours(end + timedelta(days=1))
    assert acme.check(HOLDER, at=after)["reason"] == "no_consent"  # the refusal stopped counting

    # A week before: one reminder text, not two.
    settings = _settings()
    assert refusals.run(session, settings, end - timedelta(days=3)).reminded == 1
    assert refusals.run(session, settings, end - timedelta(days=2)).reminded == 0
    texts = session.scalars(
        select(SmsMessage.body).where(
            SmsMessage.phone == HOLDER, SmsMessage.kind == "refusal_ending"
        )
    ).all()
    assert len(texts) == 1
    # After the end: lifted from the record, with an event dated at the end.
    assert refusals.run(session, settings, end + timedelta(hours=1)).lifted == 1
    session.commit()
    holder = session.get(Subscriber, HOLDER, populate_existing=True)
    assert holder is not None
    assert not holder.dnd_sms
    assert holder.refusal_ends is None
    ended = session.scalars(
        select(Event).where(Event.phone == HOLDER, Event.state == "expired")
    ).one()
    assert (ended.type, ended.at) == ("preferences.changed", end)


def test_a_timed_sender_block_ends_and_the_consent_speaks_again(
    client: FlaskClient, session: Session, world: World, acme: Api
) -> None:
    give_consent(session, world)
    sign_in(client, session)
    resp = client.post(
        "/me/senders",
        data={
            "b-csrf_token": csrf(client, "/me/senders"),
            "b-query": "acme-cards",
            "b-duration": "1y",
        },
    )
    assert resp.status_code == 302
    block = session.scalars(select(OptOut).where(OptOut.phone == HOLDER)).one()
    assert block.expires_at is not None
    assert (
        acme.check(HOLDER, at=_inside_hours(block.expires_at - timedelta(days=1)))["reason"]
        == "opted_out"
    )
    assert (
        acme.check(HOLDER, at=_inside_hours(block.expires_at + timedelta(days=1)))["reason"]
        == "consent"
    )
    assert refusals.run(session, _settings(), block.expires_at + timedelta(minutes=1)).lifted == 1
    session.commit()
    event = session.scalars(select(Event).where(Event.type == "optout.expired")).one()
    assert event.at == block.expires_at
    # The sender's organization reads the end in its change feed.
    changes = acme.get("/changes?after=0").get_json()["changes"]
    (end,) = [c for c in changes if c["type"] == "optout.expired"]
    assert (end["sender"], end["state"]) == ("acme-cards", "expired")
    assert end["at"] == block.expires_at.isoformat().replace("+00:00", "Z")


def _inside_hours(moment: datetime) -> str:
    """Return noon in Shanghai on the day of ``moment`` (inside calling hours)."""
    local = moment.astimezone(_settings().tz)
    return local.replace(hour=12, minute=0, second=0, microsecond=0).isoformat()


# --- One-tap unsubscribe ----------------------------------------------------------------


def test_one_tap_unsubscribe_turns_each_listed_senders_next_check_into_opted_out(
    client: FlaskClient, session: Session, world: World, acme: Api, shop: Api
) -> None:
    give_consent(session, world)
    give_consent(session, world, code="shop-deals")
    now = datetime.now(UTC).replace(microsecond=0)
    assert acme.check(HOLDER, at=now.isoformat())["decision"] in ("allow", "deny")
    acme.check(HOLDER, at=NOON)
    shop.check(HOLDER, sender="shop-deals", at=NOON)
    sign_in(client, session)
    page = client.get("/me/unsubscribe").get_data(as_text=True)
    assert "Acme-Cards" in page
    assert "Shop-Deals" in page
    # One sender first.
    token = csrf(client, "/me/unsubscribe")
    client.post(
        "/me/unsubscribe",
        data={"csrf_token": token, "sender_id": str(world.sender_ids["acme-cards"])},
    )
    assert acme.check(HOLDER)["reason"] == "opted_out"
    assert shop.check(HOLDER, sender="shop-deals")["reason"] == "consent"
    # Then everyone left.
    resp = client.post("/me/unsubscribe", data={"csrf_token": token, "everyone": "1"})
    assert resp.status_code == 302
    assert shop.check(HOLDER, sender="shop-deals")["reason"] == "opted_out"
    assert acme.check(HOLDER, channel="voice")["reason"] == "opted_out"
    rows = session.scalars(select(OptOut).where(OptOut.phone == HOLDER)).all()
    assert {r.source for r in rows} == {"site"}
    assert len(rows) == 2
    # A sender id that is not on the list is refused; nothing is recorded for it.
    resp = client.post(
        "/me/unsubscribe", data={"csrf_token": token, "sender_id": "999999"}, follow_redirects=True
    )
    assert "not on your list" in resp.get_data(as_text=True) or "不在" in resp.get_data(
        as_text=True
    )


def test_a_holder_sees_only_senders_allowed_for_their_own_number(
    client: FlaskClient, session: Session, world: World, acme: Api
) -> None:
    give_consent(session, world, HOLDER2)
    acme.check(HOLDER2)
    acme.check(HOLDER)  # no_consent for HOLDER: not listed
    sign_in(client, session)
    page = client.get("/me/unsubscribe").get_data(as_text=True)
    assert "Acme-Cards" not in page


# --- My records in a standard form ----------------------------------------------------------


def test_my_data_streams_every_event_beyond_the_old_cap_of_1000(
    client: FlaskClient, session: Session, world: World
) -> None:
    sender = sender_as_owner(session, "acme-cards", datetime.now(UTC))
    for _ in range(1003):
        optouts.record_optout(session, SYSTEM, sender, HOLDER, ["sms"], "site")
    session.commit()
    sign_in(client, session)
    data = json.loads(client.get("/me/data.json").get_data(as_text=True))
    assert len([e for e in data["events"] if e["type"] == "optout.recorded"]) == 1003


def test_my_records_in_dpv_field_names(
    client: FlaskClient, session: Session, world: World, acme: Api, shop: Api
) -> None:
    give_consent(session, world)
    sign_in(client, session)
    resp = client.get("/me/consent-records.json")
    assert resp.status_code == 200
    records = resp.get_json()["records"]
    (record,) = [r for r in records if r["dpv:hasDataController"]["name"] == "Acme"]
    assert record["dpv:hasDataSubject"] == {"@type": "dpv:DataSubject", "dpv:hasIdentifier": HOLDER}
    assert record["dpv:hasConsentStatus"] == "dpv:ConsentGiven"
    assert record["dpv:hasPurpose"]["@type"] == "dpv:DirectMarketing"
    # The platforms' export: GET /consent-records, the caller's own records only.
    body = acme.get("/consent-records").get_json()
    assert [r["dpv:hasConsentStatus"] for r in body["records"]] == ["dpv:ConsentGiven"]
    assert body["@context"]["dpv"] == "https://w3id.org/dpv#"
    assert shop.get("/consent-records").get_json()["records"] == []
