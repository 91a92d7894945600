"""The copies and the statement counts again, on the wiring production runs.

The other tests run inside one rolled-back transaction, which switches off
the SQLite reader and PostgreSQL's autocommit session (tests/conftest.py, so
every read sees the test's uncommitted writes). Production reads keys,
senders and facts through those, and on both databases writes a single
check's log row as one statement that commits by itself. Here the same tests
run ``live`` (committed for real, tables emptied afterwards), so the code
path production takes is the one tested: a copy is never used past a change
made by another connection, and a check is still its four statements, then two.
"""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import text

from registry import copies
from registry.extensions import db
from tests.api.test_check import (
    test_batch_whose_log_rows_fail_answers_503_and_writes_nothing,  # noqa: F401
)
from tests.api.test_check_queries import (
    _cold_copies as _cold_copies_queries,  # noqa: F401  (autouse fixtures, used by name)
)
from tests.api.test_check_queries import (
    _feed_position_cached,  # noqa: F401
    statements,
    test_batch_of_thousands_is_a_handful_of_statements,  # noqa: F401
    test_delegated_check_costs_one_more_lookup,  # noqa: F401
    test_single_check_is_four_statements_then_two,  # noqa: F401
)
from tests.api.test_copies import (
    _cold_copies,  # noqa: F401
    test_a_new_delegation_is_honoured_after_a_refusal,  # noqa: F401
    test_a_suspension_that_ends_needs_no_change,  # noqa: F401
    test_agent_suspended_at_once,  # noqa: F401
    test_changed_category_is_used_at_once,  # noqa: F401
    test_copies_are_used,  # noqa: F401
    test_delegated_opt_out_reads_afresh_and_honours_scope,  # noqa: F401
    test_opt_out_after_a_change_to_the_sender_is_recorded_afresh,  # noqa: F401
    test_opt_out_with_a_revoked_key_is_refused_and_writes_nothing,  # noqa: F401
    test_revoked_and_narrowed_delegation_at_once,  # noqa: F401
    test_revoked_key_is_refused_at_once,  # noqa: F401
    test_suspended_sender_and_organization_at_once,  # noqa: F401
)
from tests.conftest import Api
from tests.factories import HOLDER, World

pytestmark = pytest.mark.live


def test_the_production_sessions_are_in_use(app: Flask) -> None:
    """The reader (SQLite) or the autocommit session (PostgreSQL) is on: this module tests them."""
    state = app.extensions["registry.db"]
    assert (state.reader if state.engine.dialect.name == "sqlite" else state.autocommit) is not None


def test_a_single_check_commits_its_log_row_by_itself(app: Flask, acme: Api, world: World) -> None:
    """No BEGIN or COMMIT around a check's log row, and the row is visible to others at once."""
    with statements(app) as seen:
        answer = acme.check(HOLDER)
    assert [s.split(None, 1)[0].upper() for s in seen][-1] == "INSERT"
    with app.app_context(), db.engine.connect() as other:
        found = other.execute(
            text("SELECT decision, reason FROM check_log WHERE phone = :p"), {"p": HOLDER}
        ).one()
    assert tuple(found) == (answer["decision"], answer["reason"])


def test_a_warm_check_opens_no_session(
    app: Flask, acme: Api, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Key and sender from copies, facts and log row on the thread's Direct: no Session at all.

    The first check reads the key and sender (a session); every later one
    answers and logs the same, with none opened (db.CheckSessions).
    """
    first = acme.check(HOLDER)
    state = app.extensions["registry.db"]
    opened: list[str] = []
    for name in ("sessionmaker", "reader", "autocommit"):
        factory = getattr(state, name)
        if factory is not None:

            def counting(factory: object = factory, name: str = name) -> object:
                opened.append(name)
                return factory()  # type: ignore[operator]

            monkeypatch.setattr(state, name, counting)
    with statements(app) as seen:
        again = acme.check(HOLDER)
    assert opened == []
    assert (again["decision"], again["reason"]) == (first["decision"], first["reason"])
    assert [s.split(None, 1)[0].upper() for s in seen] == ["SELECT", "INSERT"]
    # Without copies (a new process) the check opens the session it reads them with.
    monkeypatch.setattr(copies, "_CALLERS", {})
    monkeypatch.setattr(copies, "_SENDERS", {})
    cold = acme.check(HOLDER)
    assert opened
    assert (cold["decision"], cold["reason"]) == (first["decision"], first["reason"])
