"""A database that is gone answers 503 in the envelope, and recovery needs no restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from registry import migrate
from tests.conftest import make_app


@pytest.mark.live
def test_unreachable_database_is_503_then_recovers(tmp_path: Path) -> None:
    db_file = tmp_path / "gone" / "r.sqlite3"
    app: Flask = make_app(f"sqlite:///{db_file}", tmp_path)  # the folder does not exist yet
    client = app.test_client()
    for path in ("/readyz", "/api/v1/senders"):
        resp = client.get(path, headers={"Authorization": "Bearer ann_abcdefgh_x"})
        assert resp.status_code == 503
        assert resp.get_json()["error"]["code"] == "unavailable"
        assert resp.headers["Retry-After"] == "5"
    assert client.get("/healthz").status_code == 200  # the process itself is fine
    db_file.parent.mkdir()
    migrate.upgrade(f"sqlite:///{db_file}")
    assert client.get("/readyz").status_code == 200
