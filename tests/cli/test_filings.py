"""``registry org kind``, ``registry delegation grant`` with a filing, ``registry delegation file``."""

from __future__ import annotations

from collections.abc import Callable

from click.testing import Result
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.orgs.models import Delegation, DelegationFiling, Organization
from tests.factories import World

Cli = Callable[..., Result]
FILING = ("--business-name", "credit cards", "--business-type", "marketing",
          "--address", "1069 0001", "--targets", "card holders", "--content", "upgrades",
          "--contact-name", "Wang Li", "--contact-phone", "131 0000 1234")  # fmt: skip


def test_a_call_center_needs_the_filing_on_the_command_line(
    cli: Cli, session: Session, world: World
) -> None:
    made = cli("org", "create", "bluesky-cc", "--name", "Blue Sky", "--kind", "call_center")
    assert made.exit_code == 0, made.output
    assert "call_center" in made.output
    refused = cli("delegation", "grant", "acme", "bluesky-cc", "--sender", "acme-cards",
                  "--scope", "check")  # fmt: skip
    assert refused.exit_code != 0
    assert "business filing" in refused.output
    assert session.scalars(select(Delegation)).all() == []
    granted = cli("delegation", "grant", "acme", "bluesky-cc", "--sender", "acme-cards",
                  "--scope", "check", *FILING)  # fmt: skip
    assert granted.exit_code == 0, granted.output
    filing = session.scalars(select(DelegationFiling)).one()
    assert (filing.business_name, filing.contact_phone) == ("credit cards", "+8613100001234")
    listed = cli("delegation", "list", "bluesky-cc")
    assert "credit cards (marketing) from 10690001" in listed.output


def test_only_the_principal_files_on_the_command_line(
    cli: Cli, session: Session, world: World
) -> None:
    cli("org", "create", "plain-agent", "--name", "Plain")
    cli("delegation", "grant", "acme", "plain-agent", "--sender", "acme-cards", "--scope", "check")
    delegation = session.scalars(select(Delegation)).one()
    assert "NOT FILED" not in cli("delegation", "list", "acme").output
    for wrong in ("plain-agent", "shop"):
        refused = cli("delegation", "file", wrong, str(delegation.id), *FILING)
        assert refused.exit_code != 0
        assert "principal" in refused.output or "not yours" in refused.output
    assert session.scalars(select(DelegationFiling)).all() == []
    done = cli("delegation", "file", "acme", str(delegation.id), *FILING)
    assert done.exit_code == 0, done.output
    assert cli("delegation", "file", "acme", str(delegation.id)).exit_code == 2


def test_org_kind_sets_and_refuses_unknown_kinds(cli: Cli, session: Session, world: World) -> None:
    assert cli("org", "kind", "shop", "sms_port").exit_code == 0
    org = session.scalars(select(Organization).where(Organization.slug == "shop")).one()
    assert org.kind == "sms_port"
    assert cli("org", "kind", "shop", "king").exit_code == 2
    unfiled = cli("delegation", "list", "shop")
    assert unfiled.exit_code == 0
