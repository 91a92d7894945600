"""The frequency cap over real HTTP: set on the site by the holder, obeyed by the next checks.

The holder signs in and sets the cap through the live server's pages
(tests/web/test_holder_history.Visitor: a socket, a cookie jar, no
JavaScript); the sender's checks go over another socket. The (N+1)-th allow
of a local day is ``frequency_capped`` with the moment a slot frees, and the
next local day (in the number's own zone, which is not UTC's) allows again.
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from registry.extensions import db
from registry.subscribers import services as subscribers
from tests import factories
from tests.api.test_check import give_consent
from tests.factories import HOLDER
from tests.web.test_holder_history import Visitor

pytestmark = pytest.mark.live
NEW_YORK = "+12125550123"  # a fictional 555-01xx number, in America/New_York


def _check(base: str, key: str, phone: str, at: str) -> dict[str, str]:
    """Ask POST /api/v1/check over a socket; return the answer."""
    where = urlsplit(base)
    conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=30)
    body = {"phone": phone, "sender": "acme-cards", "channel": "sms", "at": at}
    try:
        conn.request("POST", "/api/v1/check", json.dumps(body),
                     {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})  # fmt: skip
        resp = conn.getresponse()
        answer: dict[str, str] = json.loads(resp.read())
        assert resp.status == 200, answer
        return answer
    finally:
        conn.close()


@pytest.fixture
def acme_key(live_server: str) -> str:
    """Commit a world where acme-cards holds the consent of HOLDER and of NEW_YORK."""
    with db.session() as s:
        world = factories.world(s)
        give_consent(s, world)
        give_consent(s, world, NEW_YORK)
        s.commit()
    return world.keys["acme"]


def test_the_cap_set_on_the_site_denies_the_next_allow_until_the_next_local_day(
    live_server: str, acme_key: str
) -> None:
    holder = Visitor(live_server)
    holder.sign_in("138 0013 8000")
    status, url, _page = holder.post("/me/limits", {"sms_per_day": "2"})
    assert (status, url) == (200, "/me/limits")
    answers = [_check(live_server, acme_key, HOLDER, f"2030-01-15T{h}:00:00+08:00")
               for h in ("12", "13", "14")]  # fmt: skip
    assert [a["decision"] for a in answers] == ["allow", "allow", "deny"]
    assert answers[2]["reason"] == "frequency_capped"
    # Full until Shanghai's midnight; the first moment after it inside the calling hours.
    assert answers[2]["next_allowed_at"] == "2030-01-16T00:00:00Z"  # 08:00 in Shanghai
    # Before then, outside the hours: denied for that, and nothing counted.
    early = _check(live_server, acme_key, HOLDER, "2030-01-16T07:59:00+08:00")
    assert early["reason"] == "quiet_hours"
    assert _check(live_server, acme_key, HOLDER, "2030-01-16T08:00:00+08:00")["decision"] == "allow"
    assert _check(live_server, acme_key, HOLDER, "2030-01-16T09:00:00+08:00")["decision"] == "allow"
    third = _check(live_server, acme_key, HOLDER, "2030-01-16T10:00:00+08:00")
    assert third["reason"] == "frequency_capped"


def test_the_day_is_the_numbers_own_over_http(live_server: str, acme_key: str) -> None:
    """A New York evening and the next morning share a UTC day: the local day frees the slot."""
    with db.session() as s:
        subscribers.set_frequency_caps(s, NEW_YORK, {"sms": (1, None)})
        s.commit()
    evening = _check(live_server, acme_key, NEW_YORK, "2030-01-15T20:30:00-05:00")  # 01:30Z
    assert evening["decision"] == "allow"
    late = _check(live_server, acme_key, NEW_YORK, "2030-01-15T20:45:00-05:00")
    assert (late["reason"], late["next_allowed_at"]) == ("frequency_capped", "2030-01-16T13:00:00Z")
    morning = _check(live_server, acme_key, NEW_YORK, "2030-01-16T08:30:00-05:00")  # 13:30Z
    assert morning["decision"] == "allow"
