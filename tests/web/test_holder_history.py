"""The holder's record on /me/data, every event of it, a page at a time, through real HTTP.

A holder with more than two pages of events walks the "Older" links from
the newest page to the oldest and back with "Newer", over a real socket
(urllib, with its own cookie jar, as a browser without JavaScript would):
every event is reached exactly once, newest first. Another holder's session
given the page keys of the first holder's history sees its own events only,
and a forged key is a clear 400, never a 500. The browser test
(tests/web/test_holder_controls_browser.py) runs the same pages through axe.
"""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from registry.events import services as events
from registry.events.models import Event
from registry.events.services import HISTORY_PAGE, SYSTEM
from registry.extensions import db
from registry.sms.models import SmsMessage
from tests import factories
from tests.factories import HOLDER, HOLDER2

pytestmark = pytest.mark.live
# More than two pages: the walk passes a middle page, and the last page is short.
MANY = 2 * HISTORY_PAGE + 7
FIRST = datetime(2030, 3, 1, 4, 0, tzinfo=UTC)  # HOLDER's events, a minute apart
OTHERS = datetime(2031, 6, 1, 4, 0, tzinfo=UTC)  # HOLDER2's, another year: never on HOLDER's pages


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class Visitor:
    """A browser without JavaScript: real HTTP to the live server, cookies kept, redirects followed."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self.opener.addheaders = [("Accept-Language", "en")]

    def get(self, path: str) -> tuple[int, str, str]:
        """Return the status, the final URL's path and query, and the page of a GET."""
        try:
            with self.opener.open(self.base + path, timeout=30) as resp:
                return resp.status, self._local(resp.url), resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, path, exc.read().decode()

    def post(self, path: str, fields: dict[str, str]) -> tuple[int, str, str]:
        """Submit the form on ``path`` with ``fields`` and its CSRF token; follow the redirect."""
        _status, _url, page = self.get(path)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
        assert token, page[:500]
        data = urllib.parse.urlencode({**fields, "csrf_token": token.group(1)}).encode()
        with self.opener.open(self.base + path, data, timeout=30) as resp:
            return resp.status, self._local(resp.url), resp.read().decode()

    def _local(self, url: str) -> str:
        return url.removeprefix(self.base)

    def sign_in(self, typed: str) -> None:
        """Sign in with the number typed as a person would and the code the registry texted."""
        _status, url, _page = self.post("/sign-in", {"phone": typed})
        with db.session() as s:
            body = s.scalars(
                select(SmsMessage.body)
                .where(SmsMessage.kind == "login_code")
                .order_by(SmsMessage.id.desc())  # type: ignore[union-attr]
            ).first()
        assert body is not None
        code = re.search(r"\b(\d{6})\b", body)
        assert code
        phone = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["phone"][0]
        _status, url, _page = self.post(url, {"phone": phone, "code": code.group(1)})
        assert url == "/me", url


def _times(page: str) -> list[str]:
    """Return the instants of the events listed on a /me/data page, in page order."""
    timeline = page.split('<ol class="timeline">', 1)[1].split("</ol>", 1)[0]
    return re.findall(r'<time datetime="([^"]+)">', timeline)


def _link(page: str, rel: str) -> str | None:
    """Return the page link marked ``rel`` ("next": older, "prev": newer), if the page has one."""
    found = re.search(rf'<a rel="{rel}" href="([^"]+)">', page)
    return found.group(1).replace("&amp;", "&") if found else None


@pytest.fixture
def histories(live_server: str) -> dict[str, list[str]]:
    """Commit MANY events for HOLDER and three for HOLDER2; return each one's instants, newest first."""
    with db.session() as s:
        factories.world(s)
        for i in range(MANY):
            events.record(s, SYSTEM, HOLDER, "preferences.changed", state="set",
                          at=FIRST + timedelta(minutes=i))  # fmt: skip
        for i in range(3):
            events.record(s, SYSTEM, HOLDER2, "preferences.changed", state="set",
                          at=OTHERS + timedelta(minutes=i))  # fmt: skip
        s.commit()
    mine = [_iso(FIRST + timedelta(minutes=i)) for i in reversed(range(MANY))]
    theirs = [_iso(OTHERS + timedelta(minutes=i)) for i in reversed(range(3))]
    return {HOLDER: mine, HOLDER2: theirs}


def test_a_holder_reaches_every_event_page_by_page_and_back(
    live_server: str, histories: dict[str, list[str]]
) -> None:
    holder = Visitor(live_server)
    holder.sign_in("138 0013 8000")
    status, _url, page = holder.get("/me/data")
    assert status == 200
    assert f"Changes recorded: {MANY}." in page
    assert _link(page, "prev") is None  # the newest page has nothing newer
    pages, seen = [page], _times(page)
    while (older := _link(page, "next")) is not None:
        status, _url, page = holder.get(older)
        assert status == 200
        pages.append(page)
        seen += _times(page)
    # Every event once, newest first, in pages of HISTORY_PAGE (the last one short).
    assert seen == histories[HOLDER]
    assert [len(_times(p)) for p in pages] == [HISTORY_PAGE, HISTORY_PAGE, 7]
    # And back: "Newer" from the oldest page gives the same pages in reverse.
    back = [_times(page)]
    while (newer := _link(page, "prev")) is not None:
        status, _url, page = holder.get(newer)
        assert status == 200
        back.append(_times(page))
    assert back == [_times(p) for p in reversed(pages)]
    assert _link(page, "next") is not None
    assert _link(page, "prev") is None
    # The download has them all too: the page and the JSON agree.
    status, _url, body = holder.get("/me/data.json")
    assert status == 200
    assert body.count('"preferences.changed"') == MANY
    # And the stream left nothing open: a write right after it is not kept waiting
    # (it was, on SQLite, for the writer lock of a session reopened by the stream).
    status, url, _page = holder.post("/me/limits", {"sms_per_day": "3"})
    assert (status, url) == (200, "/me/limits")


def test_another_holder_pages_only_through_their_own_events(
    live_server: str, histories: dict[str, list[str]]
) -> None:
    with db.session() as s:
        ids = s.execute(
            select(func.min(Event.id), func.max(Event.id)).where(Event.phone == HOLDER)
        ).one()
    other = Visitor(live_server)
    other.sign_in("139 0013 9000")
    # The keys of HOLDER's pages, and bounds around all of them: HOLDER2's three events only.
    for query in (f"?before={ids[1] + 1}", f"?before={ids[1] - HISTORY_PAGE}",
                  f"?after={ids[0] - 1}", "?after=0", ""):  # fmt: skip
        status, _url, page = other.get(f"/me/data{query}")
        assert status == 200, query
        assert set(_times(page)) <= set(histories[HOLDER2]), query
        assert not set(_times(page)) & set(histories[HOLDER]), query
    # Signed out, a page key leads to the sign-in page, not to anyone's events.
    status, url, page = Visitor(live_server).get(f"/me/data?before={ids[1] + 1}")
    assert url.startswith("/sign-in")
    assert '<ol class="timeline">' not in page


@pytest.mark.parametrize(
    "query",
    [
        "?before=abc",
        "?after=-",
        "?after=%C2%B2",
        "?before=1&after=2",
        "?before=99999999999999999999999",
    ],
)
def test_a_forged_page_key_is_a_clear_error_not_a_500(
    live_server: str, histories: dict[str, list[str]], query: str
) -> None:
    holder = Visitor(live_server)
    holder.sign_in("138 0013 8000")
    status, _url, page = holder.get(f"/me/data{query}")
    assert status == 400
    assert "That page link is not valid" in page
    # The newest page is shown under the error, so the holder can go on.
    assert _times(page) == histories[HOLDER][:HISTORY_PAGE]
