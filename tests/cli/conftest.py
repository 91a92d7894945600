"""CLI fixtures: commands run through the app's click group, on the test's transaction."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import Result
from flask import Flask


@pytest.fixture
def cli(app: Flask) -> Callable[..., Result]:
    """Return ``cli("org", "create", ...)``: run a ``registry`` command and return its result.

    The commands open their sessions with ``db.session()``; the autouse transaction
    fixture has bound the session factory to the test's connection, so what a
    command commits is visible to the test and rolled back after it.
    """
    runner = app.test_cli_runner()

    def run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(args=list(args), input=input)

    return run
