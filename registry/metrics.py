"""Prometheus metrics: request rates and latencies per endpoint, decisions, queue depths.

Under ``registry serve`` (gunicorn) every worker writes its samples to
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` aggregates them, so a scrape
sees the whole server, not the one worker that answered.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from flask import Flask
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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
        from sqlalchemy import func, select
        from sqlmodel import col

        from registry.db import get_session
        from registry.sms.models import SmsMessage

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

        metrics = Metrics(app, group_by="endpoint", defaults_prefix="anning")
    else:
        from prometheus_flask_exporter import PrometheusMetrics

        registry = CollectorRegistry()
        registry.register(DECISIONS)
        registry.register(COLD_REFUSALS)
        registry.register(QueueDepth())
        metrics = PrometheusMetrics(
            app, group_by="endpoint", defaults_prefix="anning", registry=registry
        )
    app.extensions["registry.metrics"] = metrics


def count_decision(decision: str, reason: str, amount: int = 1) -> None:
    """Count answered checks."""
    DECISIONS.labels(decision, reason).inc(amount)


def count_cold_refusal(organization: str) -> None:
    """Count a request refused by the limit on checks of numbers without a record."""
    COLD_REFUSALS.labels(organization).inc()
