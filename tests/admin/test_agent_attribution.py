"""A complaint about a contact an agent checked for a principal's sender counts against both."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import time

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from registry.complaints import desk
from registry.config import Settings
from registry.orgs import delegations
from registry.orgs import services as orgs
from registry.stats import services as stats
from tests.admin.conftest import file_complaint
from tests.conftest import Api
from tests.factories import HOLDER, HOLDER2, World


@pytest.fixture
def settings(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Calling hours all day: these tests are not about the window."""
    s = replace(app.config["REGISTRY"], calling_hours=(time(0), time(23, 59, 59)))
    monkeypatch.setitem(app.config, "REGISTRY", s)
    return s


@pytest.fixture
def agent(client: FlaskClient, session: Session, world: World, settings: Settings) -> Api:
    """Call center B, checking for Acme's sender acme-cards under a delegation."""
    org = orgs.create_org(session, "callcenter-b", "Call center B", "sender")
    _, key = orgs.create_key(session, org)
    delegations.grant(session, world.org_ids["acme"], "callcenter-b", ["acme-cards"], ["check"])
    session.commit()
    return Api(client, key)


def _csv(client: FlaskClient, name: str) -> list[list[str]]:
    resp = client.get(f"/admin/stats/{name}.csv")
    assert resp.status_code == 200
    return list(csv.reader(io.StringIO(resp.get_data(as_text=True))))


def test_desk_and_statistics_count_the_agent_and_the_principal(
    app: Flask,
    as_viewer: FlaskClient,
    session: Session,
    settings: Settings,
    world: World,
    acme: Api,
    agent: Api,
) -> None:
    assert agent.check(HOLDER)["reason"] == "no_consent"  # the agent asks for Acme, is told deny
    acme.check(HOLDER2)  # Acme asks for itself
    by_agent = file_complaint(session, HOLDER)  # ...and the holder is texted from acme-cards' port
    by_acme = file_complaint(session, HOLDER2)
    callcenter = orgs.get_org(session, "callcenter-b").id
    assert (by_agent.organization_id, by_agent.agent_id) == (world.org_ids["acme"], callcenter)
    assert (by_acme.organization_id, by_acme.agent_id) == (world.org_ids["acme"], None)
    verdict = desk.verdict(session, settings, by_agent)
    assert verdict.code == "contacted_despite_deny"
    assert verdict.agent_id == callcenter

    # The desk names the agent next to the verdict; the principal's own complaint does not.
    html = as_viewer.get(f"/admin/complaints/{by_agent.id}").get_data(as_text=True)
    verdict_html = html[html.index('id="verdict"') :]
    assert "Checked by Call center B, on behalf of Acme" in verdict_html
    assert "counts against both organizations" in verdict_html
    own = as_viewer.get(f"/admin/complaints/{by_acme.id}").get_data(as_text=True)
    assert "on behalf of" not in own
    # The queue finds the complaint under either organization.
    queue = as_viewer.get("/admin/complaints?org=callcenter-b").get_data(as_text=True)
    assert f'id="complaint-{by_agent.id}"' in queue
    assert f'id="complaint-{by_acme.id}"' not in queue
    assert "callcenter-b as agent" in queue
    acme_queue = as_viewer.get("/admin/complaints?org=acme").get_data(as_text=True)
    assert f'id="complaint-{by_agent.id}"' in acme_queue
    assert f'id="complaint-{by_acme.id}"' in acme_queue

    # Complaints per organization per quarter: Acme answers for both, the agent for its one.
    rows = _csv(as_viewer, "complaints")
    assert rows[0][0] == "organization"
    assert rows[0][-2:] == ["total", "as"]
    table = {r[0]: (r[-2], r[-1]) for r in rows[1:]}
    assert table == {"acme": ("2", "principal"), "callcenter-b (as agent)": ("1", "agent")}

    # Checks per organization: the agent's check counts for Acme and, as agent, for the agent.
    result = CliRunner().invoke(app.cli, ["stats", "refresh"])
    assert result.exit_code == 0, result.output
    checks = {(o.slug, o.as_agent): o for o in stats.checks_by_org(session)}
    assert set(checks) == {("acme", False), ("callcenter-b", True)}
    assert (checks[("acme", False)].total, checks[("acme", False)].denied) == (2, 2)
    mine = checks[("callcenter-b", True)]
    assert (mine.total, mine.denied, mine.deny_reasons) == (1, 1, {"no_consent": 1})
    rows = _csv(as_viewer, "checks")
    assert rows[0][:2] == ["organization", "checks"]
    assert rows[0][-1] == "as"
    table = {r[0]: (r[1], r[4], r[-1]) for r in rows[1:]}
    assert table == {
        "acme": ("2", "100.0", "principal"),
        "callcenter-b (as agent)": ("1", "100.0", "agent"),
    }
    page = as_viewer.get("/admin/stats").get_data(as_text=True)
    assert page.count("callcenter-b (as agent)") >= 4  # two tables and two charts


def test_the_latest_check_decides_who_answers(
    session: Session, settings: Settings, world: World, acme: Api, agent: Api
) -> None:
    agent.check(HOLDER)
    acme.check(HOLDER)  # Acme asked again itself, after the agent: the verdict rests on Acme's
    complaint = file_complaint(session, HOLDER)
    assert complaint.agent_id is None
    assert desk.verdict(session, settings, complaint).agent_id is None
    acme.check(HOLDER2)
    agent.check(HOLDER2)
    assert file_complaint(session, HOLDER2).agent_id == orgs.get_org(session, "callcenter-b").id
