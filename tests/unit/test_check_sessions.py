"""A check's sessions (db.CheckSessions): opened on first use, committed whoever opened them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from registry.db import CheckSessions


def test_nothing_is_opened_until_used_and_a_retry_on_the_primary_is_committed(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (v INTEGER)"))
    opened: list[Session] = []

    def open_write() -> Session:
        if not opened:
            opened.append(Session(engine))
        return opened[0]

    dbs = CheckSessions(open_write, open_write, open_write)
    dbs.commit()  # nothing opened: nothing to commit, nothing opened by committing
    assert opened == []
    # A standby's answer the primary did not confirm is asked again on the primary
    # (checks.services.check): the copy opens the write session, the request commits it.
    primary = dbs.without_standby()
    primary.write.execute(text("INSERT INTO t VALUES (1)"))
    dbs.commit()
    with engine.connect() as other:
        assert other.execute(text("SELECT count(*) FROM t")).scalar() == 1
    assert primary.write is opened[0]
    opened[0].close()
    engine.dispose()
