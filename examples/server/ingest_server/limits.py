"""Rate limits per key: RATE_LIMIT requests per second, counted in Redis when
REDIS_URL is set (so every worker and instance shares one count per key),
in this process's memory otherwise."""

from __future__ import annotations

import time

from flask import Flask, request
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from .auth import rate_key
from .errors import ApiError

# Far above what a person or a well-behaved client sends (the web UI polls
# once every 2.5 s and makes about five API calls when it loads; one batch
# carries thousands of events), and below what one key pushed through one
# worker in a tight loop (about 500 small requests a second, measured on this
# 2-core machine): it stops a runaway loop from taking a worker, not a client.
DEFAULT_RATE_LIMIT = 300

# Two Redis round trips per request: a Redis that stops answering should
# cost a request half a second at most, then the limit falls back to memory.
REDIS_TIMEOUT_SECONDS = 0.5

# Where the counts live in Redis: LIMITS:LIMITER/ingest/<key>/...
PREFIX = "ingest"
# After Redis fails, seconds each process counts alone before asking again.
REDIS_RETRY_SECONDS = 5.0

# Endpoints never limited: a load balancer's health probe must not be
# turned away because a client behind the same address is busy.
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


class Limits:
    """One allowance of `per_second` requests per key, counted by the
    `limits` library (the engine Flask-Limiter is built on, called here
    directly: Flask-Limiter's own per-request work, resolving and filtering
    its limits, cost about half a millisecond a request, a third of what
    serving a request costs here) in fixed windows of a second."""

    def __init__(self, per_second: int, redis_url: str | None) -> None:
        self.item = RateLimitItemPerSecond(per_second)
        self.memory = FixedWindowRateLimiter(MemoryStorage())
        self.shared: FixedWindowRateLimiter | None = None
        if redis_url:
            storage = storage_from_string(
                redis_url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
            self.shared = FixedWindowRateLimiter(storage)
        # Until when Redis is not asked (it failed): each process counts alone.
        self.redis_down_until = 0.0

    def allows(self, key: str) -> bool:
        if self.shared is not None and time.monotonic() >= self.redis_down_until:
            try:
                return self.shared.hit(self.item, PREFIX, key)
            except Exception:  # any failure of the storage: redis-py's, a socket's
                # Redis gone: count in memory for a while rather than fail every
                # request or let all through, then ask Redis again.
                self.redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        return self.memory.hit(self.item, PREFIX, key)


def install(app: Flask, per_second: int, redis_url: str | None) -> Limits | None:
    """Limit every request but the exempt ones to `per_second` per key;
    0 installs nothing."""
    if per_second == 0:
        return None
    limits = Limits(per_second, redis_url)

    @app.before_request
    def _limit() -> None:
        endpoint = request.endpoint
        # Never counted: the health probe, the page's files, paths no route
        # matches (a 404 costs nothing).
        if endpoint is None or endpoint == "static" or endpoint in EXEMPT_ENDPOINTS:
            return
        if not limits.allows(limit_key()):
            raise _too_many(limits.item)

    app.config["INGEST_RATE_LIMIT"] = per_second
    app.config["INGEST_RATE_LIMIT_STORAGE"] = "redis" if redis_url else "memory"
    return limits


def _too_many(item: RateLimitItemPerSecond) -> ApiError:
    # A fixed window ends within its length: waiting that long always admits.
    wait = item.get_expiry()
    err = ApiError(
        429,
        "rate_limited",
        f"more than {item.amount} requests in one second for this key; retry after {wait} s",
        retry_after=wait,
    )
    err.headers["Retry-After"] = str(wait)
    return err
