"""The example server: a Flask app over the `ingest` Python package, with the
routes of the original design and a web UI at /."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ingest
from flask import Flask, Response, send_from_directory

from . import auth, errors, guard, limits, metrics, openapi
from .api import api
from .bodies import MAX_BATCH_ITEMS
from .failures import FailureSwitch

STATIC = Path(__file__).resolve().parent.parent / "static"

# The original design's limit on one request body.
MAX_BODY_BYTES = 1 << 20

# The page loads only its own files; with no inline script allowed, even text
# that slipped into the DOM as HTML could not run.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


@dataclass
class ServerState:
    ingestor: ingest.Ingestor
    failures: FailureSwitch
    db_path: str

    def close(self) -> None:
        self.ingestor.close()


def create_app(
    db_path: str | os.PathLike[str] | None = None,
    *,
    rules: dict[str, Any] | str | None = None,
    durability: str | None = None,
    busy_timeout: float | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    allowed_hosts: Iterable[str] | None = None,
    max_batch_items: int | None = None,
    workers: int = 1,
    rate_limit: int | None = None,
    redis_url: str | None = None,
    require_keys: bool = False,
) -> Flask:
    """The app over a store at `db_path` (default: $DB, else ./data.db): a
    SQLite file, or a `postgres://` URL to share one database between
    several instances.
    `rules`, `durability` and `busy_timeout` go to `ingest.Ingestor`.
    `allowed_hosts`: the Host header values answered (default: $ALLOWED_HOSTS,
    else localhost and 127.0.0.1 with $PORT, default 8000). `max_batch_items`:
    default $MAX_BATCH_ITEMS, else 10 000. `workers`: how many processes
    serve it, each with its own app (and failure switch), as said in answers.
    `rate_limit` (requests per second per key, 0 for none; default $RATE_LIMIT,
    else 300) is counted in Redis at `redis_url` (default $REDIS_URL; "" or
    unset: in this process's memory). `require_keys`: every route but the
    page, /api/health and /api/openapi.json needs an API key (`make serve`);
    without it (`make demo`) a request with no key may do everything.

    The app owns its Ingestor: close it with `app.extensions["ingest"].close()`.
    """
    if allowed_hosts is None:
        allowed_hosts = guard.allowed_hosts_from_env(
            "127.0.0.1", int(os.environ.get("PORT") or 8000)
        )
    if max_batch_items is None:
        max_batch_items = int(os.environ.get("MAX_BATCH_ITEMS") or MAX_BATCH_ITEMS)
    if max_batch_items < 1:
        raise ValueError(f"max_batch_items must be at least 1, not {max_batch_items}")
    path = str(db_path if db_path is not None else os.environ.get("DB", "data.db"))
    if rate_limit is None:
        rate_limit = limits.rate_limit_from_env(os.environ.get("RATE_LIMIT"))
    elif rate_limit < 0:
        raise ValueError(f"rate_limit must be 0 (no limit) or more, not {rate_limit}")
    if redis_url is None:
        redis_url = os.environ.get("REDIS_URL")
    ing = ingest.Ingestor(path, rules=rules, durability=durability, busy_timeout=busy_timeout)

    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    # Werkzeug cuts a chunked body (no Content-Length) at MAX_CONTENT_LENGTH
    # without an error; one byte more tells read_text and read_body the body went over.
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes + 1
    app.config["INGEST_MAX_BODY"] = max_body_bytes
    app.config["INGEST_MAX_BATCH_ITEMS"] = max_batch_items
    # Keep the order the library gives (status first, then id, event...).
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # ing.path: what was opened, with a URL's password hidden (it is shown).
    app.extensions["ingest"] = ServerState(ing, FailureSwitch(ing, workers), ing.path)
    app.config["INGEST_REQUIRE_KEYS"] = require_keys
    # Metrics first: their clock starts before a request is turned away, so
    # refusals are counted by status too. Then the guard: nothing else runs
    # for a request it refuses (the rate limit neither counts nor stores it).
    # Then who is asking, so that the limit counts by key; then the limit;
    # then what the caller may do, so that refused keys count too.
    metrics.install(app, ing)
    guard.register(app, allowed_hosts)
    auth.install_identify(app, ing)
    limits.install(app, rate_limit, redis_url or None)
    auth.install_admit(app)
    app.register_blueprint(api)
    app.register_blueprint(openapi.blueprint)
    errors.register(app)
    worker = str(os.getpid())

    @app.get("/")
    def index() -> Response:
        resp = send_from_directory(STATIC, "index.html")
        resp.headers["Cache-Control"] = "no-cache"
        return resp

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        # Which process answered: under `make serve` each has its own
        # failure switch and counters.
        resp.headers["X-Ingest-Worker"] = worker
        if resp.mimetype == "application/json":
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    return app


__all__ = ["MAX_BATCH_ITEMS", "MAX_BODY_BYTES", "ServerState", "create_app"]
