"""Rate limits per key: RATE_LIMIT requests per second, counted in Redis when
REDIS_URL is set (so every worker and instance shares one count per key),
in this process's memory otherwise."""

from __future__ import annotations

from flask import Flask, Response, request
from flask_limiter import Limiter, RateLimitExceeded

from .auth import rate_key
from .errors import error_response

# Far above what a person or a well-behaved client sends (the web UI polls
# once every 2.5 s and makes about five API calls when it loads; one batch
# carries thousands of events), and below what one key pushed through one
# worker in a tight loop (about 500 small requests a second, measured on this
# 2-core machine): it stops a runaway loop from taking a worker, not a client.
DEFAULT_RATE_LIMIT = 300

# Two Redis round trips per request: a Redis that stops answering should
# cost a request half a second at most, then the limit falls back to memory.
REDIS_TIMEOUT_SECONDS = 0.5

# Endpoints never limited: a load balancer's health probe must not be
# turned away because a client behind the same address is busy. (Flask-Limiter
# never counts static files, nor paths no route matches.)
EXEMPT_ENDPOINTS = frozenset({"api.health"})


def limit_key() -> str:
    """Whose allowance a request draws on: its API key's id when it carries
    a valid key (auth.identify ran first), else the remote address, so that
    requests with no key or a wrong one (guesses) share their address's."""
    key = rate_key()
    if key is not None:
        return key
    return "addr:" + (request.remote_addr or "unknown")


def rate_limit_from_env(raw: str | None) -> int:
    """RATE_LIMIT as requests per second per key; unset or empty is the
    default, 0 turns limits off."""
    if raw is None or not raw.strip():
        return DEFAULT_RATE_LIMIT
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(
            f"RATE_LIMIT must be a whole number of requests per second (0 for none), not {raw!r}"
        )
    return value


def install(app: Flask, per_second: int, redis_url: str | None) -> Limiter | None:
    """Limit every request but the exempt ones to `per_second` per key;
    0 installs nothing."""
    if per_second == 0:
        return None
    storage = redis_url or "memory://"
    options: dict[str, str | int | float] = {}
    if redis_url:
        options = {
            "socket_timeout": REDIS_TIMEOUT_SECONDS,
            "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
        }
    limiter = Limiter(
        limit_key,
        app=app,
        # One allowance per key across every route, not one per route: a
        # client that spreads its requests over routes gets no more.
        application_limits=[f"{per_second} per 1 second"],
        application_limits_exempt_when=lambda: request.endpoint in EXEMPT_ENDPOINTS,
        storage_uri=storage,
        storage_options=options,  # type: ignore[arg-type]
        strategy="fixed-window",
        key_prefix="ingest",
        # Redis gone: each process keeps limiting on its own until it is back,
        # rather than failing every request or letting all through.
        in_memory_fallback_enabled=True,
    )
    app.register_error_handler(RateLimitExceeded, _too_many)
    app.config["INGEST_RATE_LIMIT"] = per_second
    app.config["INGEST_RATE_LIMIT_STORAGE"] = "redis" if redis_url else "memory"
    return limiter


def _too_many(e: RateLimitExceeded) -> Response:
    # Flask-Limiter's own 429 is not our error body, and carries no
    # Retry-After unless every response gets rate-limit headers.
    item = e.limit.limit
    # A fixed window ends within its length: waiting that long always admits.
    wait = item.get_expiry()
    return error_response(
        429,
        "rate_limited",
        f"more than {item.amount} requests in one second for this key; retry after {wait} s",
        {"Retry-After": str(wait)},
        retry_after=wait,
    )
