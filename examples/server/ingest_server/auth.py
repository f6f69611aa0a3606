"""Who is asking, and what they may do: the API key of `Authorization:
Bearer TOKEN` (keys are made with manage.py and kept in the store, so every
worker and instance over one database knows the same ones).

A client key writes and reads as its one client (the library's `as_client`
decides what that means for each event and query); an admin key reads
everything, drives the failure switch and reads /metrics. `make serve`
requires a key on every route but the public ones. `make demo` does not: a
request there without a key is the person at the machine, who may do
everything; one with a key is held to that key, as under `make serve`.

Two hooks, with the rate limit between them: `identify` reads the key and
never refuses, so the limit counts a request by its key's id (or by its
address when it has no valid key, so that guessing keys is limited too);
`admit` then refuses what the caller may not do.
"""

from __future__ import annotations

from dataclasses import dataclass

import ingest
from flask import Flask, current_app, g, request

from .errors import ApiError

# Answered without a key: the page and its files (it asks for the key), the
# API's description, and the health probe a load balancer sends.
PUBLIC_ENDPOINTS = frozenset({"index", "static", "openapi.openapi_json", "api.health"})

# Only an admin key (or the demo's keyless local person) may use these.
ADMIN_ENDPOINTS = frozenset({"api.simulate_failure", "api.failure_state", "prometheus_metrics"})

# RFC 6750: what a client without a valid key is told to send.
REALM = 'Bearer realm="ingest"'


@dataclass(frozen=True)
class Caller:
    """The key a request carries (`key_id`), or none: then either the demo's
    local person (`local`), who may do everything, or someone unknown on a
    public route."""

    key_id: str | None = None
    client_id: str | None = None
    admin: bool = False
    local: bool = False

    @property
    def everything(self) -> bool:
        """Reads every client and drives the failure switch."""
        return self.admin or self.local


# A request without a key under `make demo`.
KEYLESS = Caller(local=True)
# A request without a valid key on a public route of `make serve`.
ANONYMOUS = Caller()


@dataclass(frozen=True)
class Unidentified:
    """Why a request has no caller: what `admit` answers with 401 where a key
    is needed."""

    code: str
    message: str
    # The token was read but is no key's: RFC 6750's invalid_token.
    invalid_token: bool = False


def unauthorized(why: Unidentified) -> ApiError:
    err = ApiError(401, why.code, why.message)
    challenge = REALM
    if why.invalid_token:
        challenge += ', error="invalid_token"'
    err.headers["WWW-Authenticate"] = challenge
    return err


def read_token() -> str | Unidentified | None:
    """The bearer token of the Authorization header; None without one."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return Unidentified(
            "unauthorized",
            "send the key as `Authorization: Bearer TOKEN` (the token manage.py add-key printed)",
        )
    return token


def identify(ing: ingest.Ingestor) -> Caller | Unidentified:
    """The caller of this request."""
    token = read_token()
    if token is None:
        if current_app.config["INGEST_REQUIRE_KEYS"]:
            return Unidentified(
                "unauthorized",
                "this server needs an API key: send `Authorization: Bearer TOKEN` "
                "(an operator makes one with examples/server/manage.py add-key)",
            )
        return KEYLESS
    if isinstance(token, Unidentified):
        return token
    principal = ing.authenticate(token)
    if principal is None:
        # One answer for every wrong token: unknown, revoked or a wrong secret.
        return Unidentified(
            "invalid_token", "the API key is not valid (unknown or revoked)", invalid_token=True
        )
    scope = principal["scope"]
    if scope["kind"] == "admin":
        return Caller(key_id=principal["key_id"], admin=True)
    return Caller(key_id=principal["key_id"], client_id=scope["client_id"])


def caller() -> Caller:
    """The caller `admit` let through."""
    found = g.get("ingest_caller")
    assert isinstance(found, Caller), "auth.admit runs before every route"
    return found


def rate_key() -> str | None:
    """Whose allowance the request draws on: its key's id when it carries a
    valid key; None otherwise (the caller uses the remote address)."""
    found = g.get("ingest_caller")
    if isinstance(found, Caller) and found.key_id is not None:
        return "key:" + found.key_id
    return None


def admit() -> None:
    """401 without a valid key where one is needed; 403 for a client key on
    an admin route."""
    endpoint = request.endpoint
    found = g.get("ingest_caller")
    if endpoint is None or endpoint in PUBLIC_ENDPOINTS:
        # A path no route answers is a 404 to anyone; a public route
        # answers a wrong key too (the page then asks for another).
        if not isinstance(found, Caller):
            g.ingest_caller = ANONYMOUS
        return
    if isinstance(found, Unidentified):
        raise unauthorized(found)
    assert isinstance(found, Caller)
    if endpoint in ADMIN_ENDPOINTS and not found.everything:
        raise ApiError(403, "forbidden", "this needs an admin key; a client key cannot use it")


def install_identify(app: Flask, ing: ingest.Ingestor) -> None:
    @app.before_request
    def _identify() -> None:
        g.ingest_caller = identify(ing)


def install_admit(app: Flask) -> None:
    app.before_request(admit)


__all__ = [
    "ADMIN_ENDPOINTS",
    "ANONYMOUS",
    "KEYLESS",
    "PUBLIC_ENDPOINTS",
    "Caller",
    "caller",
    "install_admit",
    "install_identify",
    "rate_key",
]
