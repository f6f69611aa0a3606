"""/metrics in Prometheus's text format.

Counters and the latency histogram live in this process; when several worker
processes serve one app, PROMETHEUS_MULTIPROC_DIR (set before the workers
start, to a directory emptied at each start) makes each process write its
values there, and a scrape of any one worker adds up all of them. The stored
counts are read from the database at scrape time, so they are the same
whichever worker answers."""

from __future__ import annotations

import os
import time
from collections import Counter as Tally
from collections.abc import Iterator

import ingest
from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

OUTCOMES = ("accepted", "duplicate", "conflict", "rejected")
# The error codes of the 5xx answers the server gives on purpose; any other
# 5xx is counted under its own code too, these are only shown at 0 from the start.
FAILURES = ("storage_error", "injected_failure", "aggregate_unavailable", "ingest_error")
# Any other method is one label value: a client inventing methods must not
# grow the series without bound.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# What generate_latest writes: the text format every Prometheus reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Small requests answer in a millisecond; a 1 MiB batch or a busy PostgreSQL
# takes a good part of a second.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class StoredCounts(Collector):
    """What the database holds, read when scraped."""

    def __init__(self, ing: ingest.Ingestor) -> None:
        self._ing = ing

    def collect(self) -> Iterator[Metric]:
        readable = GaugeMetricFamily(
            "ingest_store_readable", "1 when the stored counts could be read at this scrape"
        )
        try:
            stats = self._ing.stats()
        except ingest.IngestError:
            # A scrape is how one learns the database is down: answer it.
            readable.add_metric([], 0)
            yield readable
            return
        readable.add_metric([], 1)
        yield readable
        for name, key, text in (
            ("ingest_stored_events", "stored_events", "events stored in the database"),
            ("ingest_stored_rejected", "stored_rejected", "distinct rejected inputs kept"),
            (
                "ingest_evicted_rejected",
                "evicted_rejected",
                "dead letters removed to keep the store within its bound, since it was created",
            ),
        ):
            yield GaugeMetricFamily(name, text, value=stats[key])  # type: ignore[literal-required]


class Metrics:
    def __init__(self, ing: ingest.Ingestor) -> None:
        # A registry per app: two apps in one process (the tests) count apart.
        self.registry = CollectorRegistry()
        self.stored = StoredCounts(ing)
        self.outcomes = Counter(
            "ingest_outcomes",
            "events submitted, by outcome",
            ["status"],
            registry=self.registry,
        )
        self.reasons = Counter(
            "ingest_rejection_reasons",
            "reasons given for rejected events, by code (an event can have several)",
            ["code"],
            registry=self.registry,
        )
        self.failures = Counter(
            "ingest_failures",
            "requests that failed on the server's side, by error code",
            ["error"],
            registry=self.registry,
        )
        self.requests = Counter(
            "ingest_http_requests",
            "HTTP requests answered, by route, method and status code",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ingest_http_request_duration_seconds",
            "time from reading a request's headers to its answer, by route and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        for status in OUTCOMES:
            self.outcomes.labels(status)
        for code in FAILURES:
            self.failures.labels(code)
        if multiprocess_dir() is None:
            self.registry.register(self.stored)

    def exposition(self) -> bytes:
        if multiprocess_dir() is None:
            return generate_latest(self.registry)
        # Each worker wrote its values to the directory; add them all up.
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(self.stored)
        return generate_latest(registry)

    def observe(self, resp: Response) -> None:
        started = g.pop("ingest_started", None)
        rule = request.url_rule
        route = rule.rule if rule is not None else "unmatched"
        method = request.method if request.method in METHODS else "other"
        self.requests.labels(route, method, str(resp.status_code)).inc()
        if started is not None:
            self.latency.labels(route, method).observe(time.perf_counter() - started)
        outcomes = g.pop("ingest_outcomes", None)
        if outcomes:
            self._count(outcomes)
        if resp.status_code >= 500:
            body = resp.get_json(silent=True) if resp.is_json else None
            code = body.get("error") if isinstance(body, dict) else None
            self.failures.labels(code if isinstance(code, str) else "http_500").inc()

    def _count(self, outcomes: list[ingest.Outcome]) -> None:
        # A batch is thousands of outcomes: one increment per label, not per item.
        statuses = Tally(o.status for o in outcomes)
        reasons = Tally(r["code"] for o in outcomes if o.status == "rejected" for r in o.reasons)
        for status, n in statuses.items():
            self.outcomes.labels(status).inc(n)
        for code, n in reasons.items():
            self.reasons.labels(code).inc(n)


def count_outcome(outcome: ingest.Outcome) -> None:
    """Note an outcome the current request answers; counted with its response."""
    g.setdefault("ingest_outcomes", []).append(outcome)


def install(app: Flask, ing: ingest.Ingestor) -> Metrics:
    """Count every request of `app` and serve /metrics. Call before any other
    extension's before_request, so the time of a request turned away early
    (a rate limit) is measured too."""
    # A _created series beside every counter doubles the scrape and tells
    # nothing a restart does not.
    disable_created_metrics()
    metrics = Metrics(ing)
    app.extensions["ingest_metrics"] = metrics

    @app.before_request
    def _start() -> None:
        g.ingest_started = time.perf_counter()

    @app.after_request
    def _observe(resp: Response) -> Response:
        metrics.observe(resp)
        return resp

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        # Admin keys only under `make serve` (auth.ADMIN_ENDPOINTS).
        body = current_app.extensions["ingest_metrics"].exposition()
        resp = Response(body, mimetype=None, content_type=CONTENT_TYPE)
        resp.headers["Cache-Control"] = "no-store"
        return resp

    return metrics


__all__ = ["Metrics", "count_outcome", "install"]
