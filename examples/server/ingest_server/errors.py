"""Every error leaves the server as JSON with a message, never as HTML."""

from __future__ import annotations

import logging
from typing import Any

import ingest
from flask import Flask, Response, current_app, jsonify
from werkzeug.exceptions import ClientDisconnected, HTTPException

log = logging.getLogger(__name__)

# Seconds a client should wait before asking for an aggregate again.
RETRY_AFTER_SECONDS = 5
# Seconds a client should wait before sending again when the database is
# busy or changing hands: a PostgreSQL failover is over in a second or two,
# and a client that waits longer only delays its own events.
STORAGE_RETRY_AFTER_SECONDS = 1


class ApiError(Exception):
    """An error with a status, a stable code and a message for people."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra
        self.headers: dict[str, str] = {}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    resp = jsonify({"error": code, "message": message, **extra})
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def too_large_message() -> str:
    limit = current_app.config["INGEST_MAX_BODY"]
    return f"the request body is larger than the limit of {limit} bytes"


def aggregate_unavailable(exc: Exception) -> ApiError:
    err = ApiError(
        503,
        "aggregate_unavailable",
        f"aggregates cannot be read now and no earlier result of this query is cached: {exc}",
        retry_after=RETRY_AFTER_SECONDS,
    )
    err.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return err


def injected_message(point: str | None) -> tuple[str, bool]:
    """What a client should know after a simulated failure: the message, and
    whether anything of the call was kept."""
    if point == "after_commit":
        return (
            "simulated failure after the commit: the event was stored but the answer was "
            "lost; retrying the same event answers duplicate",
            True,
        )
    where = (
        "before the insert" if point == "before_insert" else "after the insert, before the commit"
    )
    return (
        f"simulated storage failure {where}: the transaction rolled back and nothing was "
        "stored; retry the same event",
        False,
    )


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(e: ApiError) -> Response:
        return error_response(e.status, e.code, e.message, e.headers, **e.extra)

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException) -> Response:
        status = e.code or 500
        if isinstance(e, ClientDisconnected):
            # The body stopped short of its Content-Length (or last chunk):
            # nothing of it was read as an event. Whoever still listens hears why.
            return error_response(
                400,
                "incomplete_body",
                "the request body ended before its announced length; nothing was stored",
            )
        if status == 413:
            message = too_large_message()
        else:
            message = e.description or e.name
        code = e.name.lower().replace(" ", "_")
        resp = error_response(status, code, message)
        if status == 405 and e.get_response().headers.get("Allow"):
            resp.headers["Allow"] = e.get_response().headers["Allow"]
        return resp

    @app.errorhandler(ingest.InjectedFailure)
    def _injected(e: ingest.InjectedFailure) -> Response:
        point = e.point
        message, stored = injected_message(point)
        return error_response(500, "injected_failure", message, point=point, stored=stored)

    @app.errorhandler(ingest.StorageError)
    def _storage(e: ingest.StorageError) -> Response:
        return error_response(
            500, "storage_error", f"storage failed and nothing was stored: {e}", stored=False
        )

    def _retry_soon(message: str, stored: bool | None) -> Response:
        # A store that will take the same request again shortly.
        return error_response(
            503,
            "storage_unavailable",
            message,
            {"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)},
            stored=stored,
            retry_after=STORAGE_RETRY_AFTER_SECONDS,
        )

    @app.errorhandler(ingest.BusyError)
    def _busy(e: ingest.BusyError) -> Response:
        return _retry_soon(
            f"the database is busy and nothing was stored; retry the same request: {e}", False
        )

    @app.errorhandler(ingest.UnavailableError)
    def _unavailable(e: ingest.UnavailableError) -> Response:
        # The connection may have been lost after the commit: whether the
        # call was kept is unknown (stored: null), and the retry says, as
        # a stored event answers duplicate.
        return _retry_soon(
            "the database cannot be reached or is changing hands (a restart or a failover); "
            "the call may or may not have been stored: retry the same request, which answers "
            f"duplicate for what was: {e}",
            None,
        )

    @app.errorhandler(ingest.Forbidden)
    def _forbidden(e: ingest.Forbidden) -> Response:
        # The library's own words: which client the key is for, which item
        # named another, and that nothing of the call was stored.
        return error_response(403, "forbidden", str(e).removeprefix("forbidden: "))

    @app.errorhandler(ingest.InvalidArgument)
    def _invalid(e: ingest.InvalidArgument) -> Response:
        return error_response(400, "invalid_argument", str(e))

    @app.errorhandler(ingest.IngestError)
    def _ingest(e: ingest.IngestError) -> Response:
        log.error("ingest error: %s", e)
        return error_response(500, "ingest_error", str(e))

    @app.errorhandler(Exception)
    def _unexpected(e: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error; see the server log")
