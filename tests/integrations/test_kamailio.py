"""Kamailio asks Anning for every INVITE: SIPp calls through the shipped config to a SIPp answerer.

Everything here is real and local: the registry served by ``registry serve``
(gunicorn) on the suite's database, Kamailio running
integrations/kamailio/anning.cfg as shipped, SIPp as caller and callee, all
on 127.0.0.1 and free ports; each process is started and stopped here.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from registry.checks.models import CheckLog
from registry.extensions import db
from registry.orgs import delegations
from registry.senders import services as senders
from registry.subscribers import services as subscribers
from tests import factories
from tests.api.test_check import give_consent
from tests.conftest import TEST_ENV
from tests.factories import HOLDER, HOLDER2, World
from tests.integrations import sip
from tests.serving.server import free_port, fresh_env, serving

pytestmark = [
    pytest.mark.live,  # the registry is another process: it sees committed data only
    pytest.mark.skipif(sip.missing() is not None, reason=sip.missing() or ""),
]


@pytest.fixture(scope="module")
def registry_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Serve the registry on the suite's database with ``registry serve``, as an operator does."""
    tmp = tmp_path_factory.mktemp("registry")
    port = free_port()
    # Kamailio asks about "now": calling hours around now, so that a consented call is allowed
    # whenever the suite runs (the window wraps midnight where it must).
    local = datetime.now(ZoneInfo("Asia/Shanghai"))
    hours = f"{local - timedelta(hours=2):%H:%M}-{local + timedelta(hours=2):%H:%M}"
    env = fresh_env(
        tmp, **TEST_ENV, REGISTRY_DATABASE_URL=database_url, REGISTRY_CALLING_HOURS=hours
    )
    argv = [sip.registry_command(), "serve", "--port", str(port), "--workers", "2",
            "--no-access-log"]  # fmt: skip
    with serving(argv, env, port) as served:
        yield served.base


@pytest.fixture
def world() -> World:
    """Acme (acme-cards), ShopMall, and the carrier that checks acme-cards' calls for it."""
    with db.session() as session:
        w = factories.world(session)
        delegations.grant(session, w.org_ids["acme"], "carrier", ["acme-cards"], ["check"])
        # The trunk's calling number (sip.call's default), attested by the carrier that
        # connects it: the check's ``from`` (issue 15).
        senders.add_addresses(session, w.org_ids["acme"], "acme-cards", [sip.CALLING])
        factories.attest(session, "acme", sip.CALLING)
        subscribers.set_preferences(session, HOLDER2, dnd_voice=True)
        session.commit()
    return w


def _checks(world: World) -> int:
    """Return how many checks the carrier made (as acme-cards' agent)."""
    log = CheckLog.__table__  # type: ignore[attr-defined]
    with db.session() as session:
        return session.scalar(
            select(func.count()).select_from(log).where(log.c.agent_id == world.org_ids["carrier"])
        ) or 0  # fmt: skip


def test_dnd_declined_and_consented_call_answered(
    registry_url: str, world: World, tmp_path: Path
) -> None:
    with db.session() as session:
        give_consent(session, world, HOLDER, channels=("voice",))
    key = world.keys["carrier"]
    with (
        sip.answerer(tmp_path) as callee,
        sip.kamailio(tmp_path, registry_url, key, "acme-cards") as proxy,
    ):
        denied = sip.call(tmp_path, proxy, callee, HOLDER2, 603)
        assert denied.returncode == 0, (denied.messages, denied.stderr, proxy.output())
        assert denied.final() == "SIP/2.0 603 Decline (dnd)"
        assert 'Reason: SIP;cause=603;text="dnd"' in denied.messages
        assert callee.invites() == 0  # never relayed
        allowed = sip.call(tmp_path, proxy, callee, HOLDER, 200, asserted="+8657188880000")
        assert allowed.returncode == 0, (allowed.messages, allowed.stderr, proxy.output())
        assert allowed.final().startswith("SIP/2.0 200")
        assert callee.invites() == 1
    assert _checks(world) == 2  # each call checked once, logged as the carrier for acme-cards


def test_national_called_number_is_checked(registry_url: str, world: World, tmp_path: Path) -> None:
    key = world.keys["carrier"]
    with (
        sip.answerer(tmp_path) as callee,
        sip.kamailio(tmp_path, registry_url, key, "acme-cards") as proxy,
    ):
        denied = sip.call(tmp_path, proxy, callee, "13900139000", 603)  # HOLDER2, without +86
        assert denied.returncode == 0, (denied.messages, proxy.output())
        assert denied.final() == "SIP/2.0 603 Decline (dnd)"


@pytest.mark.parametrize("party", ["shop", "carrier-for-shop"])
def test_the_wrong_party_is_refused_and_nothing_relayed(
    registry_url: str, world: World, tmp_path: Path, party: str
) -> None:
    # ShopMall's key cannot check acme-cards' calls; the carrier has no delegation from ShopMall.
    key, sender = {
        "shop": (world.keys["shop"], "acme-cards"),
        "carrier-for-shop": (world.keys["carrier"], "shop-deals"),
    }[party]
    with db.session() as session:
        give_consent(session, world, HOLDER, channels=("voice",))
    # Even when failing open: a refused key is a configuration to fix, not an outage to ride out.
    with (
        sip.answerer(tmp_path) as callee,
        sip.kamailio(tmp_path, registry_url, key, sender, ANNING_FAIL_OPEN="1") as proxy,
    ):
        refused = sip.call(tmp_path, proxy, callee, HOLDER, 503)
        assert refused.returncode == 0, (refused.messages, proxy.output())
        assert "registry refused the check" in refused.final()
        assert callee.invites() == 0
    assert "status 403" in proxy.output()


class Hung:
    """A registry that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"


@pytest.mark.parametrize("down", ["refused", "hung"])
@pytest.mark.parametrize("fail_open", [False, True])
def test_registry_outage_fails_as_set(
    world: World, tmp_path: Path, down: str, fail_open: bool
) -> None:
    hung = Hung()
    try:
        url = hung.url if down == "hung" else f"http://127.0.0.1:{free_port()}"
        setting = {"ANNING_FAIL_OPEN": "1"} if fail_open else {}
        with (
            sip.answerer(tmp_path) as callee,
            sip.kamailio(tmp_path, url, world.keys["carrier"], "acme-cards", **setting) as proxy,
        ):
            answer = sip.call(tmp_path, proxy, callee, HOLDER2, 200 if fail_open else 503)
            assert answer.returncode == 0, (answer.messages, proxy.output())
            if fail_open:
                assert answer.final().startswith("SIP/2.0 200")
                assert callee.invites() == 1  # relayed unchecked, as the setting says
            else:
                assert answer.final() == "SIP/2.0 503 Service Unavailable (registry unavailable)"
                assert 'Reason: SIP;cause=503;text="registry unavailable"' in answer.messages
                assert callee.invites() == 0
            assert "anning: no answer" in proxy.output()  # logged for the operator
    finally:
        hung.sock.close()


@pytest.mark.parametrize(
    ("ruri", "status"),
    [
        ("sip:127.0.0.1:{port}", "484 Address Incomplete (no called number)"),
        ("sip:alice@127.0.0.1:{port}", "484 Address Incomplete (not a phone number)"),
        ("sip:%zz@127.0.0.1:{port}", "484 Address Incomplete (not a phone number)"),
        # Digits the registry refuses as a phone number (422 invalid_phone).
        ("sip:123@127.0.0.1:{port}", "484 Address Incomplete (not a phone number)"),
        ("sip:+8613800138000@127.0.0.1:99999", "400 Bad Request URI"),  # port out of range
        ("sip:+8613800138000@@127.0.0.1:{port}", "400 Bad Request URI"),
        ("sip:", "400 Bad Request URI"),
    ],
)
def test_bad_requests_get_a_clear_sip_error(
    registry_url: str, world: World, tmp_path: Path, ruri: str, status: str
) -> None:
    key = world.keys["carrier"]
    with (
        sip.answerer(tmp_path) as callee,
        sip.kamailio(tmp_path, registry_url, key, "acme-cards") as proxy,
    ):
        code = int(status.split()[0])
        bad = sip.call(tmp_path, proxy, callee, "", code, ruri=ruri.format(port=callee.port))
        assert bad.returncode == 0, (bad.messages, bad.stderr, proxy.output())
        assert bad.final() == f"SIP/2.0 {status}"
        assert callee.invites() == 0
        # Kamailio is still there and still checking.
        after = sip.call(tmp_path, proxy, callee, HOLDER2, 603)
        assert after.final() == "SIP/2.0 603 Decline (dnd)", proxy.output()
