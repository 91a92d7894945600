"""``registry connections add|list|withdraw``: the operator records and ends access relations."""

from __future__ import annotations

from collections.abc import Callable

from click.testing import Result
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.access.models import Connection
from registry.senders.models import SenderAddress
from tests.factories import World

Cli = Callable[..., Result]


def test_add_list_withdraw(cli: Cli, session: Session, world: World) -> None:
    result = cli("connections", "add", "carrier", "acme", "--kind", "sms_port",
                 "--address", "1069 0001")  # fmt: skip
    assert result.exit_code == 0, result.output
    connection_id = int(result.output.split("\t")[0])
    address = session.scalars(
        select(SenderAddress).where(SenderAddress.address == "10690001")
    ).one()
    assert (address.attested_via, address.carrier_id) == ("connection", world.org_ids["carrier"])
    listed = cli("connections", "list", "--carrier", "carrier")
    assert "10690001\tacme-cards" in listed.output
    # The wrong party: a sender is not a carrier; an address in the carrier's range is its own.
    refused = cli("connections", "add", "acme", "shop", "--kind", "trunk", "--address", "10690009")
    assert refused.exit_code == 2
    assert "not a carrier" in refused.output
    result = cli("connections", "withdraw", str(connection_id), "--reason", "contract ended")
    assert result.exit_code == 0, result.output
    session.expire_all()
    assert session.get(Connection, connection_id).withdrawn_at is not None  # type: ignore[union-attr]
    assert address.withdrawn_at is not None
    again = cli("connections", "withdraw", str(connection_id))
    assert again.exit_code == 1
    assert "already withdrawn" in again.output
    assert cli("connections", "list").output == ""
    assert "withdrawn" in cli("connections", "list", "--all").output


def test_bad_input_is_a_clear_error(cli: Cli, world: World) -> None:
    result = cli("connections", "add", "carrier", "acme", "--kind", "sms_port", "--address", "nope")
    assert result.exit_code == 1
    assert "not a calling number" in result.output
    result = cli("connections", "add", "carrier", "nobody", "--kind", "sms_port",
                 "--address", "10690009")  # fmt: skip
    assert result.exit_code == 1
    assert "nobody" in result.output
    assert cli("connections", "withdraw", "999").exit_code == 1
