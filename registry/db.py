"""The database: one engine per app, one session per request, SQLite pragmas."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlmodel import SQLModel

# One naming convention so that Alembic's autogenerate and batch mode on
# SQLite produce stable constraint names on both databases.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the settings each backend needs to be safe under load."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, decide when transactions begin, so that
            # savepoints work and every write transaction takes the lock up front.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # durable across app crashes in WAL
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # BEGIN IMMEDIATE: a check reads then writes its log row; a deferred
            # transaction that upgrades to a writer fails with SQLITE_BUSY at once
            # when another worker wrote in between. Taking the lock first waits.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)


class Database:
    """The engine and session factory of each app, attached with ``init_app``.

    State lives in ``app.extensions``, not on this object, so that several apps
    (tests, a CLI inside a server) never share an engine by accident.
    """

    def init_app(self, app: Flask) -> None:
        """Create the app's engine from its settings and close sessions at teardown."""
        engine = make_engine(app.config["REGISTRY"].database_url)
        app.extensions["registry.db"] = _State(
            engine, sessionmaker(bind=engine, expire_on_commit=False)
        )
        # Close at the end of each request, and of each app context (CLI, jobs):
        # an app context may outlive several requests (tests push one).
        app.teardown_request(_close_session)
        app.teardown_appcontext(_close_session)

    @property
    def engine(self) -> Engine:
        """Return the current app's engine."""
        return _state().engine

    @property
    def sessionmaker(self) -> sessionmaker[Session]:
        """Return the current app's session factory."""
        return _state().sessionmaker

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Open a session outside a request (CLI, worker); commit is the caller's."""
        session = self.sessionmaker()
        try:
            yield session
        finally:
            session.close()


class _State:
    def __init__(self, engine: Engine, factory: sessionmaker[Session]) -> None:
        self.engine = engine
        self.sessionmaker = factory


def _state() -> _State:
    state: _State = current_app.extensions["registry.db"]
    return state


def get_session() -> Session:
    """Return this request's session, opening it on first use."""
    if "db_session" not in g:
        g.db_session = _state().sessionmaker()
    session: Session = g.db_session
    return session


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
