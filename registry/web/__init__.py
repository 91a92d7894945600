"""The citizen self-service site and the health endpoints."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template
from sqlalchemy import text

from registry.db import get_session

bp = Blueprint("web", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    """Say the process is up (no database access; also the benchmark's trivial endpoint)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    """Say whether the database answers."""
    get_session().execute(text("SELECT 1"))
    return jsonify({"status": "ready"})


@bp.get("/")
def index() -> Any:
    """Show the front page."""
    return render_template("index.html")
