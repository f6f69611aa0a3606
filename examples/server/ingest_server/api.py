"""The JSON API under /api: the routes of the original design."""

from __future__ import annotations

import json
from typing import Any

import ingest
from flask import Blueprint, Response, current_app, jsonify, request

from . import bodies
from .auth import caller
from .errors import ApiError, aggregate_unavailable
from .failures import MAX_TIMES, POINTS, FailureSwitch
from .metrics import count_outcome

api = Blueprint("api", __name__, url_prefix="/api")

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
TIME_GROUPS = ("hour", "day", "month")
GROUPS = (*TIME_GROUPS, "client_id", "metric")

# An outcome's HTTP status, as the original design fixed them; a conflict
# (a key that matches a stored event with other fields) is 409.
STATUS_OF = {"accepted": 201, "duplicate": 200, "conflict": 409, "rejected": 422}


def _state() -> Any:
    return current_app.extensions["ingest"]


def _ing() -> ingest.Ingestor:
    return _state().ingestor


def _failures() -> FailureSwitch:
    return _state().failures


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON does not, and neither do we.
    raise ValueError(f"{name} is not valid JSON")


def read_body(*, allow_empty: bool = False) -> Any:
    """The request body as JSON. Raises 413 when it is over the limit, and
    400 with a message (line and column) when it is not JSON."""
    data = bodies.read_bytes()
    if not data.strip():
        if allow_empty:
            return None
        raise ApiError(400, "empty_body", "the request body is empty; send JSON")
    text = bodies.decode(data)
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise ApiError(
            400,
            "malformed_json",
            f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}",
        ) from None
    except ValueError as e:
        raise ApiError(400, "malformed_json", f"malformed JSON: {e}") from None
    except RecursionError:
        raise ApiError(400, "malformed_json", "malformed JSON: nested too deeply") from None


def _outcome_json(outcome: ingest.Outcome) -> dict[str, Any]:
    count_outcome(outcome)
    body = outcome.to_dict()
    if outcome.status == "accepted":
        body["message"] = f"accepted and stored as event {outcome.id}"
    elif outcome.status == "duplicate":
        body["message"] = f"duplicate of event {outcome.id}; nothing new was stored"
    elif outcome.status == "conflict":
        parts = [r["message"] for r in outcome.reasons]
        body["message"] = (
            f"conflict with event {outcome.id}, stored with other values; nothing changed: "
            + "; ".join(parts)
        )
    else:
        parts = [f"{r['field'] or 'event'}: {r['message']}" for r in outcome.reasons]
        body["message"] = "rejected: " + "; ".join(parts)
    return body


@api.post("/events")
def post_events() -> tuple[Response, int]:
    # The library reads the text: an item it cannot keep (a lone surrogate
    # escape, nesting too deep, 1e400, a reserved key) is rejected alone with
    # its reason; only text that is not JSON is a 400, naming the item.
    text = bodies.read_text()
    if bodies.is_ndjson():
        array, lines = bodies.ndjson_to_array(text)
        return _submit(_ing(), array, batch=True, lines=lines)
    # JSON's own whitespace only: anything else before a `[` is not JSON.
    batch = text.lstrip(" \t\n\r").startswith("[")
    if batch:
        items = bodies.count_array_items(text)
        if items is not None:
            bodies.check_batch_size(items)
    return _submit(_ing(), text, batch=batch)


def _submit(
    ing: ingest.Ingestor, text: str, *, batch: bool, lines: list[int] | None = None
) -> tuple[Response, int]:
    try:
        return _submit_text(ing, text, batch)
    except ingest.InvalidArgument as e:
        # From reading the text: it is not JSON (the message names the item,
        # or for NDJSON the line it came from).
        message = str(e).removeprefix("invalid argument: ")
        if lines is not None:
            message = bodies.name_lines(message, lines)
        raise ApiError(400, "malformed_json", f"malformed JSON: {message}") from None


def _submit_text(ing: ingest.Ingestor, text: str, batch: bool) -> tuple[Response, int]:
    # A client key's events are its client's: one naming no client is
    # filled in, one naming another makes the whole request Forbidden (403)
    # with nothing stored.
    as_client = caller().client_id
    if batch:
        outcomes = ing.submit_batch(text, as_client=as_client)
        results = [_outcome_json(o) for o in outcomes]
        counts = {s: sum(1 for o in outcomes if o.status == s) for s in STATUS_OF}
        # One status for a mixed batch: 200, with each item's own status (the
        # one it would get alone) beside its outcome.
        for r in results:
            r["http_status"] = STATUS_OF[r["status"]]
        return jsonify({"results": results, "counts": counts}), 200
    outcome = ing.submit(text, as_client=as_client)
    return jsonify(_outcome_json(outcome)), STATUS_OF[outcome.status]


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    # Absent only: an empty value is not a number (the document says integer).
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(
            400, "invalid_parameter", f"{name} must be an integer, not {raw!r}"
        ) from None
    if not lo <= value <= hi:
        raise ApiError(400, "invalid_parameter", f"{name} must be from {lo} to {hi}, not {value}")
    return value


def _text_arg(*names: str) -> str | None:
    for name in names:
        value = request.args.get(name, "").strip()
        if value:
            return value
    return None


def _page() -> tuple[int, int]:
    return (
        _int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        _int_arg("offset", 0, 0, 2**62),
    )


def _rejected_page() -> dict[str, Any]:
    limit, offset = _page()
    # One row more than asked tells whether there is a next page.
    rows = _ing().rejected(limit=limit + 1, offset=offset, as_client=caller().client_id)
    return {
        "status": "rejected",
        "items": rows[:limit],
        "limit": limit,
        "offset": offset,
        "has_more": len(rows) > limit,
    }


@api.get("/events")
def get_events() -> Response:
    status = request.args.get("status", "processed")
    if status == "rejected":
        filters = [
            n
            for n in ("clientId", "client_id", "metric", "startDate", "endDate")
            if request.args.get(n)
        ]
        if filters:
            raise ApiError(
                400,
                "invalid_parameter",
                f"{', '.join(filters)} filter processed events only; rejected events are "
                "listed whole, newest first",
            )
        return jsonify(_rejected_page())
    if status != "processed":
        raise ApiError(
            400, "invalid_parameter", f"status must be processed or rejected, not {status!r}"
        )
    limit, offset = _page()
    filters = {
        "client_id": _text_arg("clientId", "client_id"),
        "metric": _text_arg("metric"),
        "start": _text_arg("startDate", "start"),
        "end": _text_arg("endDate", "end"),
    }
    rows = _ing().events(**filters, limit=limit + 1, offset=offset, as_client=caller().client_id)
    return jsonify(
        {
            "status": "processed",
            "items": rows[:limit],
            "limit": limit,
            "offset": offset,
            "has_more": len(rows) > limit,
            "filters": {k: v for k, v in filters.items() if v is not None},
        }
    )


@api.get("/rejected")
def get_rejected() -> Response:
    return jsonify(_rejected_page())


def _group_by() -> str | list[str] | None:
    raw = _text_arg("groupBy", "group_by")
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for n in names:
        if n not in GROUPS:
            raise ApiError(
                400,
                "invalid_parameter",
                f"groupBy must be one or more of {', '.join(GROUPS)}, not {n!r}",
            )
    return names[0] if len(names) == 1 else names


@api.get("/aggregate")
def get_aggregate() -> Response:
    query = {
        "client_id": _text_arg("clientId", "client_id"),
        "metric": _text_arg("metric"),
        "start": _text_arg("startDate", "start"),
        "end": _text_arg("endDate", "end"),
        "group_by": _group_by(),
    }
    # An IANA zone for the buckets and their bucket_local; the library checks
    # it (an unknown zone is InvalidArgument: 400). Passed only when given.
    tz = _text_arg("tz")
    if tz is not None:
        query["tz"] = tz
    try:
        result = _ing().aggregate(**query, as_client=caller().client_id)
    except ingest.InjectedFailure as e:
        raise aggregate_unavailable(e) from None
    except ingest.StorageError as e:
        raise aggregate_unavailable(e) from None
    body = {"query": {k: v for k, v in query.items() if v is not None}, **result}
    return jsonify(body)


@api.post("/simulate-failure")
def simulate_failure() -> Response:
    switch = _failures()
    body = read_body(allow_empty=True)
    if body is None:
        return jsonify(switch.toggle())
    if not isinstance(body, dict):
        raise ApiError(
            400,
            "invalid_parameter",
            'send no body to toggle, or {"point": ..., "times": ...} or {"enabled": false}',
        )
    unknown = sorted(set(body) - {"point", "times", "enabled"})
    if unknown:
        raise ApiError(400, "invalid_parameter", f"unknown key(s): {', '.join(unknown)}")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ApiError(400, "invalid_parameter", "enabled must be true or false")
    point = body.get("point", "after_insert")
    if point not in POINTS:
        raise ApiError(
            400, "invalid_parameter", f"point must be one of {', '.join(POINTS)}, not {point!r}"
        )
    times = body.get("times", 1)
    if not isinstance(times, int) or isinstance(times, bool) or not 0 <= times <= MAX_TIMES:
        raise ApiError(400, "invalid_parameter", f"times must be an integer from 0 to {MAX_TIMES}")
    if not enabled:
        return jsonify(switch.clear())
    return jsonify(switch.arm(point, times))


@api.get("/simulate-failure")
def failure_state() -> Response:
    return jsonify(_failures().state())


@api.get("/stats")
def stats() -> Response:
    who = caller()
    if who.client_id is not None:
        # A client sees its own counts, not the store's or the process's.
        return jsonify(_ing().stats(as_client=who.client_id))
    return jsonify({**_ing().stats(), "failure": _failures().state()})


@api.get("/health")
def health() -> tuple[Response, int]:
    try:
        counts = _ing().stats()
    except ingest.IngestError as e:
        return jsonify(
            {"status": "unavailable", "message": f"the database cannot be read: {e}"}
        ), 503
    body: dict[str, Any] = {
        "status": "ok",
        "message": "ready",
        "version": getattr(ingest, "__version__", None),
    }
    # Where the store is and how much it holds are for whoever may read
    # everything; a load balancer's probe needs only the status.
    if caller().everything:
        body["database"] = _state().db_path
        body["stored_events"] = counts.get("stored_events")
    return jsonify(body), 200
