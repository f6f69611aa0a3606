"""/metrics: outcomes, rejection reasons, failures, requests and latency
counted from real requests, the stored counts read at scrape time, and
several server processes added up through PROMETHEUS_MULTIPROC_DIR, as
`make serve` sets it up for its workers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import ServerProcess


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def ev(client: str, value: Any, ts: str = "2024-01-01", **extra: Any) -> dict[str, Any]:
    return {"source": client, "amount": value, "ts": ts, **extra}


def test_outcomes_reasons_and_requests_are_counted(app: Any) -> None:
    c = app.test_client()
    assert c.post("/api/events", json=ev("m", 1)).status_code == 201
    assert c.post("/api/events", json=ev("m", "1")).status_code == 200
    assert c.post("/api/events", json=ev("m", 2, event_id="e1")).status_code == 201
    # The same key with another event_id: a conflict.
    assert c.post("/api/events", json=ev("m", 2, event_id="e2")).status_code == 409
    assert c.post("/api/events", json={"source": "m"}).status_code == 422
    batch = [ev("m", 4), ev("m", 4), {"source": "m", "amount": "x", "ts": "2024-01-01"}, 7]
    assert c.post("/api/events", json=batch).status_code == 200
    assert c.get("/nope/at/all").status_code == 404

    r = c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    m = scrape(r.get_data(as_text=True))
    outcomes = {s: value(m, "ingest_outcomes_total", status=s) for s in ("accepted",
        "duplicate", "conflict", "rejected")}  # fmt: skip
    assert outcomes == {"accepted": 3, "duplicate": 2, "conflict": 1, "rejected": 3}
    # One event with two missing fields gives two reasons.
    assert value(m, "ingest_rejection_reasons_total", code="missing_field") == 2
    assert value(m, "ingest_rejection_reasons_total", code="not_an_object") == 1
    assert value(m, "ingest_rejection_reasons_total", code="bad_value") == 1
    post = {"route": "/api/events", "method": "POST"}
    assert value(m, "ingest_http_requests_total", **post, status="201") == 2
    assert value(m, "ingest_http_requests_total", **post, status="422") == 1
    assert value(m, "ingest_http_request_duration_seconds_count", **post) == 6
    assert value(m, "ingest_http_request_duration_seconds_bucket", **post, le="+Inf") == 6
    assert value(m, "ingest_http_requests_total", route="unmatched", method="GET",
                 status="404") == 1  # fmt: skip
    # Stored counts come from the database when scraped.
    assert value(m, "ingest_stored_events") == 3
    assert value(m, "ingest_stored_rejected") == 3
    assert value(m, "ingest_store_readable") == 1
    # No _created series beside the counters.
    assert not [k for k in m if k[0].endswith("_created")]


def test_failures_are_counted_by_error_code(app: Any) -> None:
    c = app.test_client()
    for point in ("before_insert", "after_commit"):
        c.post("/api/simulate-failure", json={"point": point})
        r = c.post("/api/events", json=ev("f", point))
        assert r.status_code == 500 and r.get_json()["error"] == "injected_failure"
    c.post("/api/simulate-failure", json={"point": "aggregate"})
    r = c.get("/api/aggregate", query_string={"clientId": "nobody-asked-before"})
    assert r.status_code == 503
    m = scrape(c.get("/metrics").get_data(as_text=True))
    assert value(m, "ingest_failures_total", error="injected_failure") == 2
    assert value(m, "ingest_failures_total", error="aggregate_unavailable") == 1
    assert value(m, "ingest_failures_total", error="storage_error") == 0


def test_invented_methods_share_one_label(app: Any) -> None:
    c = app.test_client()
    for method in ("BREW", "WHEN", "FOO"):
        assert c.open("/api/stats", method=method).status_code == 405
    m = scrape(c.get("/metrics").get_data(as_text=True))
    # A 405 matched no route: it is unmatched, as a 404 is.
    assert value(m, "ingest_http_requests_total", route="unmatched", method="other",
                 status="405") == 3  # fmt: skip


def test_a_store_that_cannot_be_read_is_still_scraped(app: Any) -> None:
    app.extensions["ingest"].close()
    r = app.test_client().get("/metrics")
    assert r.status_code == 200
    m = scrape(r.get_data(as_text=True))
    assert value(m, "ingest_store_readable") == 0
    assert ("ingest_stored_events", ()) not in m


def test_several_processes_are_added_up(tmp_path: Path) -> None:
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    servers = [
        ServerProcess(tmp_path / "shared.db", tmp_path / f"server{i}.log", env=env)
        for i in range(2)
    ]
    try:
        with requests.Session() as s:
            for i in range(5):
                r = s.post(servers[i % 2].base + "/api/events", json=ev("mp", i), timeout=10)
                assert r.status_code == 201, r.text
            r = s.post(servers[1].base + "/api/events", json={"source": "mp"}, timeout=10)
            assert r.status_code == 422
            for server in servers:
                m = scrape(s.get(server.base + "/metrics", timeout=10).text)
                assert value(m, "ingest_outcomes_total", status="accepted") == 5
                assert value(m, "ingest_outcomes_total", status="rejected") == 1
                assert value(m, "ingest_rejection_reasons_total", code="missing_field") == 2
                post = {"route": "/api/events", "method": "POST"}
                assert value(m, "ingest_http_request_duration_seconds_count", **post) == 6
                # Read once from the shared database, not added per process.
                assert value(m, "ingest_stored_events") == 5
        # Each process kept its values in files of its own there.
        assert len(list(multiproc.glob("*.db"))) >= 2
    finally:
        for server in servers:
            server.stop()


def through_every_worker(server: ServerProcess, client: str) -> int:
    """Events posted to `make serve` until each of its workers has taken
    some; how many were posted (each accepted)."""
    takers: set[str] = set()
    posted = 0
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {server.add_key(client)}"
        while len(takers) < server.workers or posted < 10:
            assert posted < 500, f"only workers {takers} took events"
            r = s.post(server.base + "/api/events", json=ev(client, posted), timeout=10)
            assert r.status_code == 201, r.text
            takers.add(r.headers["X-Ingest-Worker"])
            posted += 1
    return posted


def every_worker_scrapes(server: ServerProcess) -> dict[str, dict[Any, float]]:
    """A scrape from each worker of `make serve`, by worker."""
    scrapes: dict[str, dict[Any, float]] = {}
    with requests.Session() as s:
        s.headers.update(server.headers)  # the admin key: /metrics is for admins
        for _ in range(200):
            r = s.get(server.base + "/metrics", timeout=10)
            assert r.status_code == 200, r.text
            scrapes.setdefault(r.headers["X-Ingest-Worker"], scrape(r.text))
            if len(scrapes) == server.workers:
                return scrapes
    raise AssertionError(f"only workers {set(scrapes)} answered /metrics")


def test_make_serve_adds_up_its_workers(tmp_path: Path) -> None:
    # No PROMETHEUS_MULTIPROC_DIR given: serve.py makes a directory of its own.
    env = {"PROMETHEUS_MULTIPROC_DIR": ""}
    server = ServerProcess(tmp_path / "s.db", tmp_path / "s.log", serve=True, env=env)
    try:
        posted = through_every_worker(server, "serve")
        for worker, m in every_worker_scrapes(server).items():
            # Each worker's scrape: both workers' counts, added up.
            assert value(m, "ingest_outcomes_total", status="accepted") == posted, worker
            post = {"route": "/api/events", "method": "POST"}
            assert value(m, "ingest_http_requests_total", **post, status="201") == posted
            assert value(m, "ingest_stored_events") == posted
    finally:
        server.stop()
    made = re.search(r"metrics in (\S+)\)", server.log_text())
    assert made is not None, server.log_text()
    # Removed when the server stopped, by the master only.
    assert not Path(made.group(1)).exists()


def test_make_serve_starts_its_metrics_afresh(tmp_path: Path) -> None:
    # Not there yet: made at start. A file that is not prometheus-client's is
    # left alone when the directory is emptied.
    multiproc = tmp_path / "metrics"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    for run in range(2):
        server = ServerProcess(
            tmp_path / f"run{run}.db", tmp_path / f"run{run}.log", serve=True, env=env
        )
        try:
            if run == 0:
                (multiproc / "notes.txt").write_text("kept")
            posted = through_every_worker(server, f"run{run}")
            for m in every_worker_scrapes(server).values():
                # This run's events only: the first run's files went at start.
                assert value(m, "ingest_outcomes_total", status="accepted") == posted
        finally:
            server.stop()
        # Left after a stop, for the next start to empty.
        assert len(list(multiproc.glob("*.db"))) >= 2
    assert (multiproc / "notes.txt").read_text() == "kept"
