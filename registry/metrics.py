"""Prometheus metrics: request rates and latencies per endpoint, decisions, queue depths.

Under ``registry serve`` (gunicorn) every worker writes its samples to
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` aggregates them, so a scrape
sees the whole server, not the one worker that answered.

Each request is one observation of ``anning_http_request_duration_seconds``
(method, endpoint, status; its ``_count`` is the request count), made by one
``after_request`` hook from a start time the WSGI wrapper notes in the
environ. prometheus_flask_exporter serves ``/metrics``; its own per-request
hooks (a ``before_request``, an ``after_request`` that looked the labelled
series up and also counted a request total, and a ``teardown``) cost every
request about 200k instructions and are not installed (docs/performance.md).
"""

from __future__ import annotations

import functools
import hmac
import os
from collections.abc import Callable, Iterable, Iterator
from time import perf_counter
from typing import Any

from flask import Flask, Response, request
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlmodel import col

from registry.config import current_settings
from registry.db import get_session
from registry.edge import local_client
from registry.sms.models import SmsMessage

DECISIONS = Counter(
    "anning_decisions_total",
    "Check answers by decision and reason",
    ["decision", "reason"],
    registry=None,
)
COLD_REFUSALS = Counter(
    "anning_cold_check_refusals_total",
    "Checks refused because an organization checked too many numbers it has no record with",
    ["organization"],
    registry=None,
)

REQUEST_DURATION = Histogram(
    "anning_http_request_duration_seconds",
    "HTTP request duration in seconds, by method, endpoint and status",
    ["method", "endpoint", "status"],
    registry=None,
)
_STARTED = "anning.started"  # the environ key of the request's start (perf_counter)
_NOT_TIMED = "prometheus_metrics"  # /metrics itself (the exporter's endpoint), as before


class QueueDepth(Collector):
    """Report how many outbound messages wait, read from the database at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the outbox depth gauge."""
        gauge = GaugeMetricFamily(
            "anning_outbox_depth", "Messages waiting to be delivered", labels=["outbox"]
        )
        try:
            queued = get_session().scalar(
                select(func.count())
                .select_from(SmsMessage)
                .where(col(SmsMessage.status) == "queued")
            )
        except Exception:  # a scrape must not fail because the database is down
            return
        gauge.add_metric(["sms"], float(queued or 0))
        yield gauge


def readers_only(view: Callable[..., Any]) -> Callable[..., Any]:
    """Serve /metrics to this machine, or to whoever shows ``REGISTRY_METRICS_TOKEN``.

    The samples name organizations (refused cold checks), so they are not public.
    """

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        token = current_settings().metrics_token
        shown = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if (token and hmac.compare_digest(shown.encode(), token.encode())) or local_client():
            return view(*args, **kwargs)
        return Response(
            "/metrics answers this machine, or a bearer token (REGISTRY_METRICS_TOKEN)\n",
            403,
            mimetype="text/plain",
        )

    return guarded


def init_app(app: Flask) -> None:
    """Expose /metrics and time every request by endpoint."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import generate_latest, multiprocess
        from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

        class Metrics(GunicornInternalPrometheusMetrics):
            def generate_metrics(
                self, accept_header: str | None = None, names: object = None
            ) -> tuple[str, str]:
                # The workers' samples from their files, plus the live queue depth.
                registry = CollectorRegistry()
                multiprocess.MultiProcessCollector(registry)
                registry.register(QueueDepth())
                return generate_latest(
                    registry
                ).decode(), "text/plain; version=0.0.4; charset=utf-8"

        metrics = Metrics(app, export_defaults=False, metrics_decorator=readers_only)
    else:
        from prometheus_flask_exporter import PrometheusMetrics

        registry = CollectorRegistry()
        for collector in (REQUEST_DURATION, DECISIONS, COLD_REFUSALS, QueueDepth()):
            registry.register(collector)
        metrics = PrometheusMetrics(
            app, registry=registry, export_defaults=False, metrics_decorator=readers_only
        )
    app.extensions["registry.metrics"] = metrics
    app.wsgi_app = _Timed(app.wsgi_app)  # type: ignore[method-assign]
    app.after_request(_observe)


class _Timed:
    """WSGI wrapper that notes when a request started, for ``_observe``."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ[_STARTED] = perf_counter()
        return self.wsgi_app(environ, start_response)


# One labelled series per (method, endpoint, status), looked up once per process.
_SERIES: dict[tuple[str, str | None, int], Any] = {}


def _observe(response: Response) -> Response:
    """Record the request's duration: one observation, the series from a dict."""
    req = request._get_current_object()  # type: ignore[attr-defined]  # one context lookup
    started = req.environ.get(_STARTED)
    endpoint = req.endpoint
    if started is None or endpoint == _NOT_TIMED:
        return response
    labels = (req.method, endpoint, response.status_code)
    series = _SERIES.get(labels)
    if series is None:
        series = _SERIES[labels] = REQUEST_DURATION.labels(labels[0], str(endpoint), labels[2])
    series.observe(max(perf_counter() - started, 0.0))
    return response


# One labelled counter per (decision, reason), looked up once per process (a few dozen).
_DECIDED: dict[tuple[str, str], Any] = {}


def count_decision(decision: str, reason: str, amount: int = 1) -> None:
    """Count answered checks."""
    series = _DECIDED.get((decision, reason))
    if series is None:
        series = _DECIDED[decision, reason] = DECISIONS.labels(decision, reason)
    series.inc(amount)


def count_cold_refusal(organization: str) -> None:
    """Count a request refused by the limit on checks of numbers without a record."""
    COLD_REFUSALS.labels(organization).inc()
