"""Anning: the consent and do-not-disturb registry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create the registry app (``registry.app.create_app``; gunicorn's ``registry:create_app``)."""
    # In the function: this package runs on every import of registry.*, and the factory loads every view.
    from registry.app import create_app as factory

    return factory(test_config)
