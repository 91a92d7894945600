"""Test fixtures: the schema built once by the real migrations, each test in a rolled-back transaction.

Set ``REGISTRY_TEST_DATABASE_URL`` to run the whole suite on PostgreSQL, e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/test``; the default is a
SQLite file in a temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, current_app, has_app_context
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from registry import create_app, migrate
from registry.database.engines import make_engine
from registry.database.naming import metadata
from registry.extensions import db, limiter
from tests import factories, hashparts

NOON = "2030-01-15T12:00:00+08:00"  # inside the default calling hours, local time
TEST_ENV = {
    "REGISTRY_SECRET_KEY": "test-secret-not-for-production",
    "REGISTRY_RATELIMIT_CHECK": "100000 per minute",
    "REGISTRY_RATELIMIT_COLD_CHECK": "10000000 per minute",
    "REGISTRY_RATELIMIT_WRITE": "100000 per minute",
    "REGISTRY_RATELIMIT_READ": "100000 per minute",
    "REGISTRY_RATELIMIT_LOGIN_NUMBER": "100000 per minute",
    "REGISTRY_RATELIMIT_LOGIN_CLIENT": "100000 per minute",
    "REGISTRY_RATELIMIT_CODE_CLIENT": "100000 per minute",
    "REGISTRY_RATELIMIT_CONSENT_NUMBER": "100000 per minute",
    "REGISTRY_RATELIMIT_LOOKUP_KEY": "100000 per minute",
    "REGISTRY_RATELIMIT_LOOKUP_CLIENT": "100000 per minute",
    "REGISTRY_RATELIMIT_LOOKUP_HOLDER": "100000 per minute",
    "REGISTRY_RATELIMIT_STAFF_LOGIN": "100000 per minute",
}


def _database_url(tmp: Path) -> str:
    url = os.environ.get("REGISTRY_TEST_DATABASE_URL")
    if url:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url
    return f"sqlite:///{tmp / 'test.sqlite3'}"


def _reset(url: str) -> None:
    """Start from an empty database, so the migrations build every table."""
    if not url.startswith("postgresql"):
        return
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Return the test database's URL, migrated to head by Alembic."""
    url = _database_url(tmp_path_factory.mktemp("db"))
    _reset(url)
    migrate.upgrade(url)
    if os.environ.get(hashparts.ENV) and url.startswith("postgresql"):
        engine = make_engine(url)
        with engine.begin() as conn:
            hashparts.partition_by_hash(conn)
        engine.dispose()
    return url


def make_app(database_url: str, instance: Path, **env: str) -> Flask:
    """Create an app for tests with extra REGISTRY_* settings."""
    environ = {**TEST_ENV, "REGISTRY_DATABASE_URL": database_url, **env}
    # The instance folder holds the rate-limit counts (registry/ratelimit.py): one per app here.
    return create_app({"TESTING": True, "ENVIRON": environ, "INSTANCE_PATH": str(instance)})


@contextmanager
def other_app(database_url: str, instance: Path, **env: str) -> Iterator[Flask]:
    """Create a second app (other settings), closing its connections afterwards."""
    extra = make_app(database_url, instance, **env)
    try:
        yield extra
    finally:
        with extra.app_context():
            db.dispose()
        # Flask-Limiter keeps one storage per Limiter, the last init_app's: give the
        # suite's app its own back (its counts are in its instance folder's file).
        if has_app_context() and current_app._get_current_object() is not extra:  # type: ignore[attr-defined]
            limiter.init_app(current_app._get_current_object())  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """Return the app under test; close its connections at the end."""
    app = make_app(database_url, tmp_path_factory.mktemp("instance"))
    yield app
    with app.app_context():
        db.dispose()


@pytest.fixture(autouse=True)
def _transaction(request: pytest.FixtureRequest, app: Flask) -> Iterator[None]:
    """Run each test in a transaction that is rolled back, unless it is marked ``live``.

    Code under test commits as usual: with ``create_savepoint`` its commits
    release savepoints inside the outer transaction.
    """
    with app.app_context():
        if request.node.get_closest_marker("live"):
            yield
            _truncate(app)
            return
        engine, factory = db.engine, db.sessionmaker
        # Inside one rolled-back transaction every read must see the test's
        # writes, so the lock-free SQLite reader (its own connection in
        # production) reads through the request's session here; live tests,
        # which commit for real, exercise the reader itself.
        state = app.extensions["registry.db"]
        reader, state.reader = state.reader, None
        autocommit, state.autocommit = state.autocommit, None
        conn = engine.connect()
        trans = conn.begin()
        factory.configure(bind=conn, join_transaction_mode="create_savepoint")
        try:
            yield
        finally:
            factory.configure(bind=engine)
            factory.kw.pop("join_transaction_mode", None)
            state.reader, state.autocommit = reader, autocommit
            trans.rollback()
            conn.close()


def _truncate(app: Flask) -> None:
    """Empty every table after a test that committed for real."""
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(t.name for t in metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    """Return a session on the test's transaction, for arranging and asserting."""
    with app.app_context(), db.session() as s:
        yield s


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Return a test client: real requests through the whole WSGI app."""
    return app.test_client()


@pytest.fixture
def world(session: Session) -> factories.World:
    """Return two organizations with keys and senders, and a carrier."""
    return factories.world(session)


class Api:
    """A small client for the JSON API with a bearer key."""

    def __init__(self, client: FlaskClient, key: str) -> None:
        self.client = client
        self.key = key

    def headers(self) -> dict[str, str]:
        """Return the auth header."""
        return {"Authorization": f"Bearer {self.key}"}

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        """POST JSON to /api/v1 + path."""
        return self.client.post(f"/api/v1{path}", json=json, headers=self.headers(), **kw)

    def get(self, path: str, **kw: Any) -> Any:
        """GET /api/v1 + path."""
        return self.client.get(f"/api/v1{path}", headers=self.headers(), **kw)

    def check(self, phone: str, sender: str = "acme-cards", channel: str = "sms", **kw: Any) -> Any:
        """POST /check at NOON unless ``at`` is given; return the JSON answer."""
        kw.setdefault("at", NOON)
        resp = self.post("/check", {"phone": phone, "sender": sender, "channel": channel, **kw})
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()


@pytest.fixture
def acme(client: FlaskClient, world: factories.World) -> Api:
    """Return an API client for Acme Bank (owns sender acme-cards)."""
    return Api(client, world.keys["acme"])


@pytest.fixture
def shop(client: FlaskClient, world: factories.World) -> Api:
    """Return an API client for ShopMall (owns sender shop-deals)."""
    return Api(client, world.keys["shop"])


@pytest.fixture
def carrier(client: FlaskClient, world: factories.World) -> Api:
    """Return an API client for the carrier."""
    return Api(client, world.keys["carrier"])


@pytest.fixture
def gateway(client: FlaskClient, world: factories.World, session: Session) -> Api:
    """Return an API client for the registry's own SMS gateway (role gateway)."""
    return Api(client, factories.gateway(session))


CHROMIUM = "/usr/bin/chromium"  # Debian's Chromium; Playwright cannot download a browser here
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"
)


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """Serve the app on a free port of 127.0.0.1 for the test's duration."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def chromium() -> Iterator[Any]:
    """Return a headless Chromium driven by Playwright."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
