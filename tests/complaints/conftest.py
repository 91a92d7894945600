"""Complaint fixtures: a reporter, an agent checking for Acme, calling hours all day."""

from __future__ import annotations

from dataclasses import replace
from datetime import time

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from registry.config import Settings
from registry.orgs import delegations
from registry.orgs import services as orgs
from tests.conftest import Api
from tests.factories import World


@pytest.fixture
def settings(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Calling hours all day: these tests are not about the window."""
    s = replace(app.config["REGISTRY"], calling_hours=(time(0), time(23, 59, 59)))
    monkeypatch.setitem(app.config, "REGISTRY", s)
    return s


def org_api(client: FlaskClient, session: Session, slug: str, role: str) -> Api:
    """Create an organization with a key; return its API client."""
    org = orgs.create_org(session, slug, slug.replace("-", " ").title(), role)
    _, key = orgs.create_key(session, org)
    session.commit()
    return Api(client, key)


@pytest.fixture
def agent(client: FlaskClient, session: Session, world: World, settings: Settings) -> Api:
    """Call center B, checking for Acme's sender acme-cards under a delegation."""
    api = org_api(client, session, "callcenter-b", "sender")
    delegations.grant(session, world.org_ids["acme"], "callcenter-b", ["acme-cards"], ["check"])
    session.commit()
    return api


@pytest.fixture
def reporter(client: FlaskClient, session: Session, world: World) -> Api:
    """A 12321-style reporting app (role reporter)."""
    return org_api(client, session, "report-app", "reporter")
