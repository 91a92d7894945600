"""The OpenAPI document and its browsable page."""

from __future__ import annotations

from typing import Any

from flask import jsonify, render_template

from registry.api import bp, read_limit
from registry.api.openapi import OPERATIONS, document
from registry.extensions import limiter


@bp.get("/openapi.json")
@limiter.limit(read_limit)  # no key needed: per client address
def openapi_json() -> Any:
    """Serve the OpenAPI 3 document generated from the request and response models."""
    return jsonify(document("/api/v1"))


@bp.get("/docs")
@limiter.limit(read_limit)
def docs() -> Any:
    """Serve a readable page of every operation and its schemas (no external scripts)."""
    doc = document("/api/v1")
    return render_template("api_docs.html", doc=doc, operations=OPERATIONS)
