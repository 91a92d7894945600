"""Prometheus metrics: request rates and latencies per endpoint, decisions, queue depths.

Under ``registry serve`` (gunicorn) every worker writes its samples to
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` aggregates them, so a scrape
sees the whole server, not the one worker that answered.
"""

from __future__ import annotations

import functools
import hmac
import os
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Response, request
from prometheus_client import CollectorRegistry, Counter
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

        metrics = Metrics(
            app, group_by="endpoint", defaults_prefix="anning", metrics_decorator=readers_only
        )
    else:
        from prometheus_flask_exporter import PrometheusMetrics

        registry = CollectorRegistry()
        registry.register(DECISIONS)
        registry.register(COLD_REFUSALS)
        registry.register(QueueDepth())
        metrics = PrometheusMetrics(
            app,
            group_by="endpoint",
            defaults_prefix="anning",
            registry=registry,
            metrics_decorator=readers_only,
        )
    app.extensions["registry.metrics"] = metrics


def count_decision(decision: str, reason: str, amount: int = 1) -> None:
    """Count answered checks."""
    DECISIONS.labels(decision, reason).inc(amount)


def count_cold_refusal(organization: str) -> None:
    """Count a request refused by the limit on checks of numbers without a record."""
    COLD_REFUSALS.labels(organization).inc()
