"""A change to the holder's record is described from the locked row, never from an earlier read."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from sqlalchemy import select

from registry.events.models import Event
from registry.events.services import Actor
from registry.extensions import db
from registry.subscribers import services as subscribers
from registry.subscribers.models import Subscriber
from tests.factories import HOLDER


@pytest.mark.live
def test_a_change_after_an_earlier_read_describes_the_row_it_leaves(app: Flask) -> None:
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite's writers hold the database for their whole transaction")
        with db.session() as setup:
            subscribers.set_preferences(setup, HOLDER, dnd_voice=False)
            setup.commit()
        with db.session() as reply, db.session() as site:
            # An SMS reply reads the holder's record first (for the language)...
            assert reply.get(Subscriber, HOLDER) is not None
            # ...the site changes it and commits in between...
            subscribers.set_preferences(site, HOLDER, dnd_voice=True)
            site.commit()
            # ...then the reply sets SMS do-not-disturb (STOPALL).
            subscribers.set_preferences(reply, HOLDER, Actor("subscriber", "sms"), dnd_sms=True)
            reply.commit()
        with db.session() as check:
            row = check.get(Subscriber, HOLDER)
            assert row is not None
            assert (row.dnd_voice, row.dnd_sms) == (True, True)
            last = check.scalars(
                select(Event).where(Event.phone == HOLDER).order_by(Event.id.desc())  # type: ignore[union-attr]
            ).first()
            assert last is not None
            # The event a platform follows says what the row now holds.
            data = json.loads(last.data) if isinstance(last.data, str) else last.data
            assert data["dnd_voice"] is True
            assert data["dnd_sms"] is True
