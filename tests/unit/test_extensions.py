"""The app's shortcuts past Flask's and Flask-Limiter's per-call lookups answer as they would."""

from __future__ import annotations

import contextlib
import functools
import inspect

import pytest
from flask import Flask
from flask_limiter import Limiter

from registry.extensions import limiter


def test_the_limiter_state_is_flask_limiters_own(app: Flask) -> None:
    with app.test_request_context("/api/v1/check", method="POST"):
        first = limiter.context  # no state yet: Flask-Limiter's property makes it
        assert first is Limiter.context.fget(limiter)  # type: ignore[attr-defined]
        assert limiter.context is first
        first.view_rate_limit = None
    with app.test_request_context("/healthz"):
        assert limiter.context is not first  # each request its own
    # The headers written from this state: tests/api/test_rate_limits.py.


def plain() -> str:
    return "plain"


async def coroutine() -> str:
    return "coroutine"


def test_plain_functions_and_methods_are_called_as_they_are(app: Flask) -> None:
    assert app.ensure_sync(plain) is plain
    bound = app.make_response  # a bound method, as Flask-Limiter registers hooks
    assert app.ensure_sync(bound) == bound


def test_a_partial_is_flasks_to_judge(app: Flask) -> None:
    part = functools.partial(plain)
    assert app.ensure_sync(part) is part


def test_a_coroutine_function_is_still_wrapped_by_flask(app: Flask) -> None:
    try:
        wrapped = app.ensure_sync(coroutine)
    except RuntimeError:  # Flask without its ``async`` extra refuses async views: its judgement
        return
    assert wrapped is not coroutine
    assert wrapped() == "coroutine"


@pytest.mark.skipif(not hasattr(inspect, "markcoroutinefunction"), reason="Python 3.12 and later")
def test_a_function_marked_a_coroutine_function_is_flasks_to_judge(app: Flask) -> None:
    def marked() -> str:
        return "marked"

    inspect.markcoroutinefunction(marked)  # type: ignore[attr-defined]
    with contextlib.suppress(RuntimeError):  # without Flask's async extra: refused, Flask's way
        assert app.ensure_sync(marked) is not marked
