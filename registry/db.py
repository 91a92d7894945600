"""The database of each app: its engines, and the sessions a request or a check uses.

``Database`` attaches an app's engine (database/engines.py), standbys
(database/standby.py), the single check's connections (``Direct``,
database/statements.py) and session factories; the getters return this
request's sessions, opened on first use and closed at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from flask import Flask, current_app, g
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from registry.database.engines import Timeouts, make_engine, make_pg_engine
from registry.database.standby import Replicas, Standby
from registry.database.statements import Direct

# A name the Database class can use in annotations: its ``sessionmaker``
# property shadows the class inside the class body.
SessionFactory: TypeAlias = "sessionmaker[Session]"


class Database:
    """The engine and session factory of each app, attached with ``init_app``.

    State lives in ``app.extensions``, not on this object, so that several apps
    (tests, a CLI inside a server) never share an engine by accident.
    """

    def init_app(self, app: Flask) -> None:
        """Create the app's engine from its settings and close sessions at teardown."""
        settings = app.config["REGISTRY"]
        if settings.database_url.startswith("postgresql"):
            engine = make_pg_engine(
                settings.database_url,
                Timeouts(settings.database_connect_timeout, settings.database_statement_timeout),
            )
        else:
            engine = make_engine(settings.database_url)
        standby = Timeouts(
            settings.replica_timeout, settings.replica_timeout, deadline=settings.replica_timeout
        )
        replicas = Replicas(
            engine,
            [
                make_pg_engine(url, standby, pool_size=5, max_overflow=5)
                for url in settings.replica_urls
            ],
            settings.replica_max_lag,
            quorum=settings.replica_sync_quorum,
        )
        reader = autocommit = None
        if engine.dialect.name == "sqlite":
            reader = sessionmaker(
                bind=engine.execution_options(autocommit_reads=True), expire_on_commit=False
            )
        else:
            autocommit = sessionmaker(
                bind=engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
            )
        app.extensions["registry.db"] = _State(
            engine, sessionmaker(bind=engine, expire_on_commit=False), replicas, reader, autocommit
        )
        # Close at the end of each request, and of each app context (CLI, jobs):
        # an app context may outlive several requests (tests push one).
        app.teardown_request(_close_session)
        app.teardown_appcontext(_close_session)

    def dispose(self) -> None:
        """Close every pooled connection of the current app (primary and standbys)."""
        state = _state()
        state.direct.retire()
        state.engine.dispose()
        for engine in state.replicas.engines:
            engine.dispose()

    @property
    def engine(self) -> Engine:
        """Return the current app's engine."""
        return _state().engine

    @property
    def sessionmaker(self) -> SessionFactory:
        """Return the current app's session factory."""
        return _state().sessionmaker

    @property
    def reader(self) -> SessionFactory | None:
        """Return the current app's factory for lock-free reads (SQLite), if any."""
        return _state().reader

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Open a session outside a request (CLI, worker); commit is the caller's."""
        session = self.sessionmaker()
        try:
            yield session
        finally:
            session.close()


class _State:
    def __init__(
        self,
        engine: Engine,
        factory: sessionmaker[Session],
        replicas: Replicas,
        reader: sessionmaker[Session] | None,
        autocommit: sessionmaker[Session] | None = None,
    ) -> None:
        self.engine = engine
        self.sessionmaker = factory
        self.replicas = replicas
        self.reader = reader
        self.autocommit = autocommit
        self.direct = Direct(engine)


def _state() -> _State:
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # one context lookup
    state: _State = app.extensions["registry.db"]
    return state


def get_session() -> Session:
    """Return this request's session, opening it on first use."""
    if "db_session" not in g:
        g.db_session = _state().sessionmaker()
    session: Session = g.db_session
    return session


def get_reader() -> Session:
    """Return a session for this request's reads of current data (keys, senders, facts).

    On SQLite it runs outside any transaction, so a request holds the write
    lock only for its writes; on PostgreSQL it is the request's own session.
    """
    state = _state()
    if state.reader is None:
        return get_session()
    if "db_reader" not in g:
        g.db_reader = state.reader()
    session: Session = g.db_reader
    return session


def get_autocommit() -> Session | None:
    """Return a session whose every statement commits by itself (PostgreSQL), else None.

    For the single check, whose only write is one log row: without BEGIN and
    COMMIT it is three round trips instead of five. Never for work that must be
    atomic across statements. None on SQLite (writes queue on the writer lock)
    and inside the tests' rolled-back transaction.
    """
    state = _state()
    if state.autocommit is None:
        return None
    if "db_autocommit" not in g:
        g.db_autocommit = state.autocommit()
    session: Session = g.db_autocommit
    return session


def get_standby() -> Standby | None:
    """Return this request's standby for lag-tolerant reads (checks), or None: the primary.

    ``missing_since`` is the wall-clock time from which the standby may lack
    commits (its measured staleness) less ``REGISTRY_REPLICA_COMMIT_ALLOWANCE``,
    the longest a write may take between stamping its ``fact_change`` row and
    committing (and clock skew between the app servers and the primary).
    """
    state = _state()
    if not state.replicas.engines:
        return None
    if "db_standby" not in g:
        chosen = state.replicas.choose()
        g.db_standby = None
        if chosen is not None:
            index, behind = chosen
            allowance = current_app.config["REGISTRY"].replica_commit_allowance
            since = datetime.now(UTC) - timedelta(seconds=behind + allowance)
            g.db_standby = Standby(index, state.replicas.session(index), since, state.replicas)
    standby: Standby | None = g.db_standby
    return standby


Opener: TypeAlias = "Callable[[], Session]"  # returns a session, opening it on first call


class CheckSessions:
    """The sessions a check request uses, chosen by database and standby health; none opened yet.

    ``write`` takes the log rows (the request commits it before answering);
    ``read`` the facts (a standby's when one is usable: ``standby``);
    ``lookup`` reads keys and senders on the primary. Each is opened when the
    check first uses it (its ``open_*``, this request's getter), so a warm
    single check, whose key and sender come from copies and whose facts and
    log row go by ``direct``, opens no session at all.
    """

    __slots__ = ("_opened", "direct", "open_lookup", "open_read", "open_write", "standby")

    def __init__(
        self,
        write: Opener,
        read: Opener,
        lookup: Opener,
        standby: Standby | None = None,
        direct: Direct | None = None,  # the single check's facts and log row, without a Session
    ) -> None:
        self.open_write, self.open_read, self.open_lookup = write, read, lookup
        self.standby, self.direct = standby, direct
        # The write sessions opened, shared with ``without_standby``'s copy (for ``commit``).
        self._opened: list[Session] = []

    @classmethod
    def on(cls, session: Session) -> CheckSessions:
        """Return a check's sessions all on ``session`` (a command's or a benchmark's own)."""

        def opened() -> Session:
            return session

        return cls(opened, opened, opened)

    @property
    def write(self) -> Session:
        """Return the session of the log rows."""
        if not self._opened:
            self._opened.append(self.open_write())
        return self._opened[0]

    def commit(self) -> None:
        """Commit the log rows' session, if the check (or its retry on the primary) opened it."""
        for session in self._opened:
            if session.in_transaction():
                session.commit()

    @property
    def read(self) -> Session:
        """Return the session of the facts."""
        return self.open_read()

    @property
    def lookup(self) -> Session:
        """Return the session of keys and senders (the primary)."""
        return self.open_lookup()

    @property
    def replica(self) -> bool:
        """Tell whether the facts are read from a standby."""
        return self.standby is not None

    def without_standby(self) -> CheckSessions:
        """Return the same request's sessions with the facts read on the primary too."""
        primary = CheckSessions(self.open_write, self.open_write, self.open_lookup)
        primary._opened = self._opened  # the same request's write session: one to commit
        return primary


def _lookup() -> Session:
    """Return the session of a check's reads on the primary: autocommit, else the reader."""
    return get_autocommit() or get_reader()


def get_check_sessions(single: bool, standby: bool = True) -> CheckSessions:
    """Return this request's sessions for a check of one number (``single``) or a batch.

    A single check's one write is its log row: it commits by itself (no
    BEGIN/COMMIT) on the connection that reads its facts (``direct``, kept by
    the thread, unless the facts come from a standby) (on SQLite under the
    writer lock, which the reads never take). A batch writes a batch row and
    its log rows in one transaction. ``standby=False``: everything on the
    primary (a check whose standby answer could not be confirmed).
    """
    state = _state()
    chosen = get_standby() if standby else None
    if chosen is not None:
        facts = chosen.session

        def on_standby() -> Session:
            return facts

        if single and state.autocommit is not None:
            return CheckSessions(_lookup, on_standby, _lookup, chosen)
        return CheckSessions(get_session, on_standby, _lookup, chosen)
    if single and (state.autocommit is not None or state.reader is not None):
        # SQLite: the log row is one statement on the reader's connection, which
        # commits by itself under the writer lock (``Prepared``); PostgreSQL: in
        # autocommit. On ``direct``: one connection, no BEGIN/COMMIT.
        return CheckSessions(_lookup, _lookup, _lookup, direct=state.direct)
    return CheckSessions(get_session, get_reader, _lookup)


def _close_session(_exc: BaseException | None) -> None:
    here = g._get_current_object()  # one context lookup
    standby = here.pop("db_standby", None)
    if standby is not None:
        standby.session.close()
    for name in ("db_session", "db_reader", "db_autocommit"):
        session = here.pop(name, None)
        if session is not None:
            session.close()
