"""/api/openapi.json: the OpenAPI 3.1 document of every route, written by
hand. The routes read the body as text and hand it to the library (which
names the bad item of a batch), so a framework that parses and validates
bodies from models would change what the server answers; a test checks
every response of the API tests against this document instead, and a
property-based run checks the live server against it."""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify

from .api import DEFAULT_LIMIT, GROUPS, MAX_LIMIT
from .bodies import MAX_BATCH_ITEMS
from .failures import MAX_TIMES, POINTS
from .guard import ENCODINGS, JSON, NDJSON
from .limits import DEFAULT_RATE_LIMIT

blueprint = Blueprint("openapi", __name__)

OUTCOME_STATUSES = ["accepted", "duplicate", "conflict", "rejected"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        **extra,
    }


def _error(description: str, *codes: str) -> dict[str, Any]:
    schema: dict[str, Any] = _ref("Error")
    if codes:
        schema = {"allOf": [_ref("Error"), {"properties": {"error": {"enum": list(codes)}}}]}
    return _json(schema, description)


def _outcome(status: str) -> dict[str, Any]:
    return {"allOf": [_ref("Outcome"), {"properties": {"status": {"const": status}}}]}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


RETRY_AFTER = {
    "description": "seconds to wait before asking again",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}

# Every route that reads or writes the store can meet a storage failure.
STORAGE_FAILED = _error(
    "the database failed (storage_error: nothing was stored, retry the same request) "
    "or the server did (internal_error, ingest_error)",
    "storage_error",
    "ingest_error",
    "internal_error",
)
# BusyError and UnavailableError, through errors.py.
STORAGE_UNAVAILABLE = {
    **_error(
        "the database is busy (stored: false) or cannot be reached or is changing hands, a "
        "restart or a failover (stored: null, unknown: the connection may have been lost after "
        "the commit); retry the same request after Retry-After, which answers duplicate for "
        "an event that was stored",
        "storage_unavailable",
    ),
    "headers": {"Retry-After": RETRY_AFTER},
}
RATE_LIMITED = {
    **_error(
        f"more requests this second than RATE_LIMIT (default {DEFAULT_RATE_LIMIT}) allows "
        "this key (the bearer token, else the address)",
        "rate_limited",
    ),
    "headers": {"Retry-After": RETRY_AFTER},
}
BAD_PARAMETER = ("a parameter is not valid (the message names it)", "invalid_parameter",
                 "invalid_argument")  # fmt: skip
TOO_LARGE = _error(
    "the body is over the limit (1 MiB by default), as sent or inflated",
    "request_entity_too_large",
)

# The guard (guard.py) runs before every route, the page and its files too,
# so its answers belong to every operation; the body's (bodies.py) to every
# operation that reads one.
BAD_HOST = ("the Host header is not a host name (bad_host)", "bad_host")
MISDIRECTED = _error(
    "the Host header names a host this server does not answer for (ALLOWED_HOSTS): "
    "DNS rebinding is refused",
    "misdirected_request",
)
CROSS_SITE = _error(
    "sent by another site's page: Sec-Fetch-Site cross-site or same-site, or an Origin "
    "other than http(s):// and the Host (null included)",
    "cross_site",
)
# Every route but the public ones (auth.PUBLIC_ENDPOINTS) needs a key under
# `make serve`; under `make demo` a request without one may do everything.
PUBLIC_PATHS = ("/", "/api/health", "/api/openapi.json")
UNAUTHORIZED = {
    **_error(
        "no API key where one is needed (unauthorized), or a key that is not valid: "
        "unknown, revoked or malformed (invalid_token)",
        "unauthorized",
        "invalid_token",
    ),
    "headers": {
        "WWW-Authenticate": {
            "description": "RFC 6750's challenge: the scheme to use, and why the key was not taken",
            "required": True,
            "schema": {"type": "string", "pattern": '^Bearer realm="ingest"'},
        }
    },
}
FORBIDDEN_OR_CROSS_SITE = _error(
    "sent by another site's page (cross_site: Sec-Fetch-Site cross-site or same-site, or an "
    "Origin other than http(s):// and the Host, null included), or the key may not do this "
    "(forbidden: a client key on an admin route, or naming another client; nothing was stored)",
    "cross_site",
    "forbidden",
)
UNSUPPORTED = _error(
    f"the body is not {JSON} or {NDJSON} in UTF-8, or its Content-Encoding is not gzip; "
    "it was not read",
    "unsupported_media_type",
)
READ_TIMEOUT = {
    **_error(
        "the body stopped arriving for READ_TIMEOUT seconds (make serve only); nothing was "
        "stored, and the connection is closed",
        "request_timeout",
    ),
    "headers": {
        "Connection": {
            "description": "the rest of the body may still come: the connection is not reused",
            "required": True,
            "schema": {"const": "close"},
        }
    },
}
# The body's own 400s, on every operation that reads one.
BODY_400 = (
    "ended before its announced length (incomplete_body), or is gzip that is not (bad_encoding)",
    "incomplete_body",
    "bad_encoding",
)


def _any_case(text: str) -> str:
    """A regular expression for `text` in any case (JSON Schema's patterns take no flags)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in text)


CONTENT_ENCODING = {
    "name": "Content-Encoding",
    "in": "header",
    "required": False,
    "description": "gzip, inflated within the body limit; none or identity: the body as it is",
    # Read in any case with blanks around it, as HTTP reads a header; none
    # at all is identity.
    "schema": {
        "type": "string",
        "pattern": rf"^[ \t]*(?:{_any_case('|'.join(ENCODINGS))})?[ \t]*$",
    },
}


def _bad_request(*parts: tuple[str, ...]) -> dict[str, Any]:
    """One 400 of several causes: each part is a description and its codes."""
    return _error("; or ".join(p[0] for p in parts), *(code for p in parts for code in p[1:]))


def _guarded(
    path: str, method: str, responses: dict[str, Any], bad_request: tuple[tuple[str, ...], ...] = ()
) -> dict[str, Any]:
    """`responses` with the guard's answers that `method` on `path` can meet,
    and one 400 for the operation's own causes (`bad_request`) and bad_host."""
    guarded = {**responses, "400": _bad_request(*bad_request, BAD_HOST), "421": MISDIRECTED}
    public = path in PUBLIC_PATHS or path.startswith("/static/")
    if method != "get" or path.startswith("/api/"):
        guarded["403"] = CROSS_SITE if public else FORBIDDEN_OR_CROSS_SITE
    if not public:
        guarded["401"] = UNAUTHORIZED
        guarded["403"] = FORBIDDEN_OR_CROSS_SITE
    if method != "get":
        guarded["415"] = UNSUPPORTED
    return guarded


PAGE = [
    _query(
        "limit",
        f"items per page (default {DEFAULT_LIMIT})",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    ),
    _query(
        "offset",
        "items to skip, newest first",
        {"type": "integer", "minimum": 0, "maximum": 2**62, "default": 0},
    ),
]
_GROUP = "(?:(?:" + "|".join(GROUPS) + r")\s*)"
# What _group_by reads: names split at commas, each trimmed, empty ones skipped.
GROUP_BY = {"type": "string", "pattern": rf"^\s*{_GROUP}?(?:,\s*{_GROUP}?)*$"}
TIME = "an RFC 3339 time, a date (2024-01-02, midnight UTC) or epoch seconds or milliseconds"
FILTERS = [
    _query("clientId", "only this client"),
    _query("client_id", "the same as clientId (clientId wins when both are given)"),
    _query("metric", "only this metric (as stored: lower-cased by default)"),
    _query("startDate", f"from this instant, included: {TIME}"),
    _query("start", "the same as startDate (startDate wins)"),
    _query("endDate", f"up to this instant, excluded: {TIME}"),
    _query("end", "the same as endDate (endDate wins)"),
]

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "description": "every error: a stable code and a message for people",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "minLength": 1},
            "message": {"type": "string", "minLength": 1},
            "retry_after": {"type": "integer", "minimum": 1},
            "point": {"enum": [*POINTS, None]},
            "stored": {
                "type": ["boolean", "null"],
                "description": "whether the failed call was kept (after_commit) or not; null "
                "when it cannot be known (storage_unavailable: the connection was lost, maybe "
                "after the commit)",
            },
            "items": {
                "type": "integer",
                "minimum": 2,
                "description": "too_many_items: the items the batch held",
            },
            "max_items": {
                "type": "integer",
                "minimum": 1,
                "description": "too_many_items: MAX_BATCH_ITEMS, the most one batch may hold",
            },
        },
    },
    "Reason": {
        "type": "object",
        "required": ["code", "field", "message"],
        "properties": {
            "code": {
                "type": "string",
                "description": "missing_field, bad_type, bad_timestamp, out_of_range, ...",
            },
            "field": {"type": ["string", "null"], "description": "empty for the whole event"},
            "message": {"type": "string"},
        },
    },
    "Event": {
        "type": "object",
        "description": "an event in its canonical form",
        "required": ["client_id", "metric", "amount", "timestamp", "attributes", "event_id"],
        "properties": {
            "client_id": {"type": "string", "minLength": 1},
            "metric": {"type": "string", "minLength": 1},
            "amount": {"type": "number"},
            "timestamp": {"type": "string", "format": "date-time"},
            "attributes": {"type": "object"},
            "event_id": {"type": ["string", "null"]},
        },
    },
    "StoredEvent": {
        "allOf": [
            _ref("Event"),
            {
                "type": "object",
                "required": ["id", "received_at", "rules_version"],
                "properties": {
                    "id": {"type": "integer"},
                    "received_at": {"type": "string", "format": "date-time"},
                    "rules_version": {"type": "integer"},
                },
            },
        ]
    },
    "Outcome": {
        "type": "object",
        "description": (
            "what became of one event: accepted (stored, with its id), duplicate (of the "
            "stored event id), conflict (its key matches event id stored with other fields), "
            "rejected (with every reason; kept in the dead letters)"
        ),
        "required": ["status", "id", "event", "reasons", "message"],
        "properties": {
            "status": {"enum": OUTCOME_STATUSES},
            "id": {"type": ["integer", "null"]},
            "event": {"oneOf": [_ref("Event"), {"type": "null"}]},
            "reasons": {"type": "array", "items": _ref("Reason")},
            "message": {"type": "string"},
        },
    },
    "BatchResult": {
        "type": "object",
        "required": ["results", "counts"],
        "properties": {
            "results": {
                "type": "array",
                "description": "one outcome per item, in order",
                "items": {
                    "allOf": [
                        _ref("Outcome"),
                        {
                            "type": "object",
                            "required": ["http_status"],
                            "properties": {
                                "http_status": {
                                    "enum": [201, 200, 409, 422],
                                    "description": "the status the item would have alone",
                                }
                            },
                        },
                    ]
                },
            },
            "counts": {
                "type": "object",
                "required": OUTCOME_STATUSES,
                "properties": {s: {"type": "integer", "minimum": 0} for s in OUTCOME_STATUSES},
            },
        },
    },
    "Rejection": {
        "type": "object",
        "description": "rejected input as received, with its reasons",
        "required": ["id", "raw", "reasons", "received_at", "rules_version", "attempts"],
        "properties": {
            "id": {"type": "integer"},
            "raw": {"description": "the input as sent (any JSON value)"},
            "raw_bytes": {"type": "integer", "minimum": 0},
            "raw_exact": {"type": "boolean"},
            "reasons": {"type": "array", "items": _ref("Reason")},
            "received_at": {"type": "string", "format": "date-time"},
            "rules_version": {"type": "integer"},
            "attempts": {"type": "integer", "minimum": 1},
            "client_id": {
                "type": ["string", "null"],
                "description": (
                    "whose dead letter it is: the key's client, else the client the input "
                    "names; null when it names none (or it was stored before dead letters "
                    "had clients), listed to admin keys only"
                ),
            },
        },
    },
    "Page": {
        "type": "object",
        "required": ["status", "items", "limit", "offset", "has_more"],
        "properties": {
            "status": {"enum": ["processed", "rejected"]},
            "items": {"type": "array"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "has_more": {"type": "boolean"},
            "filters": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Totals": {
        "type": "object",
        "required": ["count", "sum", "avg", "min", "max"],
        "properties": {
            "count": {"type": "integer", "minimum": 0},
            "sum": {"type": "number", "description": "exact, rounded once"},
            "avg": {"type": ["number", "null"]},
            "min": {"type": ["number", "null"]},
            "max": {"type": ["number", "null"]},
        },
    },
    "Aggregate": {
        "allOf": [
            _ref("Totals"),
            {
                "type": "object",
                "required": ["query", "stale", "computed_at"],
                "properties": {
                    "query": {"type": "object", "description": "the query as read"},
                    "stale": {
                        "type": "boolean",
                        "description": (
                            "true when the database could not be read and this is the last "
                            "result of the same query, computed at computed_at"
                        ),
                    },
                    "computed_at": {"type": "string", "format": "date-time"},
                    "groups": {
                        "type": "array",
                        "description": "with groupBy: one item per bucket, client or metric",
                        "items": {
                            "allOf": [
                                _ref("Totals"),
                                {
                                    "type": "object",
                                    "properties": {
                                        "bucket": {"type": "string", "format": "date-time"},
                                        "bucket_local": {"type": "string", "format": "date-time"},
                                        "client_id": {"type": "string"},
                                        "metric": {"type": "string"},
                                    },
                                },
                            ]
                        },
                    },
                },
            },
        ]
    },
    "FailureState": {
        "type": "object",
        "required": ["enabled", "point", "remaining", "description"],
        "properties": {
            "enabled": {"type": "boolean"},
            "point": {"enum": [*POINTS, None]},
            "remaining": {"type": "integer", "minimum": 0},
            "description": {"type": "string"},
        },
    },
    "Stats": {
        "type": "object",
        "required": [
            "accepted",
            "duplicate",
            "conflict",
            "rejected",
            "failed",
            "stored_events",
            "stored_rejected",
            "evicted_rejected",
            "failure",
        ],
        "properties": {
            **{
                k: {"type": "integer", "minimum": 0}
                for k in (
                    "accepted",
                    "duplicate",
                    "conflict",
                    "rejected",
                    "failed",
                    "stored_events",
                    "stored_rejected",
                    "evicted_rejected",
                )
            },
            "failure": _ref("FailureState"),
        },
    },
    "ClientStats": {
        "type": "object",
        "description": "what a client key sees: its own client's stored counts only",
        "required": ["client_id", "stored_events", "stored_rejected"],
        "properties": {
            "client_id": {"type": "string"},
            "stored_events": {"type": "integer", "minimum": 0},
            "stored_rejected": {"type": "integer", "minimum": 0},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "message"],
        "properties": {
            "status": {"enum": ["ok", "unavailable"]},
            "message": {"type": "string"},
            "database": {"type": "string"},
            "stored_events": {"type": ["integer", "null"]},
            "version": {"type": ["string", "null"]},
        },
    },
    "RawEvent": {
        "type": "object",
        "description": (
            "one event in any accepted shape: an envelope {source, payload} or a flat "
            "object; client from source, client, clientId, client_id or clientID; amount "
            "from value, amount, amt, val, count or qty; time from timestamp, ts, time, "
            "date, datetime or occurred_at; other fields are kept as attributes"
        ),
        "examples": [
            {"source": "clientA", "payload": {"metric": "sales", "value": 1200, "ts": "2024-01-01"}}
        ],
    },
}


def _events_post() -> dict[str, Any]:
    return {
        "operationId": "submitEvents",
        "summary": "submit one event, or a batch in one transaction",
        "description": (
            f"The body is JSON ({JSON}: one event, or an array for a batch) or NDJSON "
            f"({NDJSON}: a batch, one event a line, blank lines ignored, answered as the "
            "array of the same events), in UTF-8, gzip-compressed or not (Content-Encoding). "
            "An item the library cannot keep (not an object, 1e400, nesting too deep) is a "
            "rejection of that item alone; only text that is not JSON is a 400. A batch of "
            f"more than MAX_BATCH_ITEMS items (default {MAX_BATCH_ITEMS}) is a 413 before "
            "anything is stored."
        ),
        "parameters": [CONTENT_ENCODING],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            _ref("RawEvent"),
                            {
                                "type": "array",
                                "description": (
                                    "a batch; an item that is not an event (not an object, "
                                    "1e400) is a rejection of that item alone"
                                ),
                                "items": {"anyOf": [_ref("RawEvent"), {}]},
                            },
                        ]
                    }
                },
                NDJSON: {
                    "schema": {
                        "type": "string",
                        "description": "a batch: one JSON event per line (the line named in a 400)",
                    }
                },
            },
        },
        "responses": _guarded(
            "/api/events",
            "post",
            {
                "201": _json(_outcome("accepted"), "one event, accepted and stored"),
                "200": _json(
                    {"oneOf": [_outcome("duplicate"), _ref("BatchResult")]},
                    "one event that is a duplicate of a stored one, or a batch (each item with "
                    "its own outcome and http_status)",
                ),
                "409": _json(
                    _outcome("conflict"), "a conflict with a stored event; nothing changed"
                ),
                "422": _json(_outcome("rejected"), "rejected, with every reason; nothing stored"),
                "408": READ_TIMEOUT,
                "413": _error(
                    "the body is over the limit (1 MiB by default), as sent or inflated "
                    "(request_entity_too_large), or the batch holds more than MAX_BATCH_ITEMS "
                    f"items (too_many_items, default {MAX_BATCH_ITEMS}, with items and "
                    "max_items); nothing was stored",
                    "request_entity_too_large",
                    "too_many_items",
                ),
                "429": RATE_LIMITED,
                "500": _error(
                    "storage_error or injected_failure: nothing of the call was stored "
                    "(stored: true only after a failure after the commit, whose retry answers "
                    "duplicate); retry the same request",
                    "storage_error",
                    "injected_failure",
                    "ingest_error",
                    "internal_error",
                ),
                "503": STORAGE_UNAVAILABLE,
            },
            bad_request=(
                (
                    "the body is empty, not UTF-8, or not JSON (the message says where, and "
                    "names the item of a batch or the line of NDJSON)",
                    "empty_body",
                    "malformed_json",
                ),
                BODY_400,
            ),
        ),
    }


# The folders of static/, as the page refers to its files.
STATIC_FOLDERS = ("", "js/", "vendor/")
STATIC_EXAMPLES = {"": "style.css", "js/": "main.js", "vendor/": "uPlot.esm.js"}


def _static(folder: str) -> dict[str, Any]:
    name = "".join(p.title() for p in folder.strip("/").split("/") if p)
    path = f"/static/{folder}{{filename}}"
    return {
        "get": {
            "operationId": f"static{name}File",
            "security": [],
            "summary": f"the web UI's files in static/{folder}",
            "parameters": [
                {
                    "name": "filename",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                    "example": STATIC_EXAMPLES[folder],
                }
            ],
            "responses": _guarded(
                path,
                "get",
                {
                    "200": {
                        "description": "the file",
                        "content": {"*/*": {}},
                    },
                    # Never rate limited: the page's own files cost nothing.
                    "404": _error("no such file", "not_found"),
                },
            ),
        }
    }


def _get(
    path: str,
    op_id: str,
    summary: str,
    ok: dict[str, Any],
    bad_request: tuple[tuple[str, ...], ...] = (),
    **extra: Any,
) -> dict[str, Any]:
    """A GET of the store: rate limited, and it can meet a storage failure."""
    responses = {
        "200": ok,
        "429": RATE_LIMITED,
        "500": STORAGE_FAILED,
        "503": STORAGE_UNAVAILABLE,
    }
    responses.update(extra.pop("responses", {}))
    responses = _guarded(path, "get", responses, bad_request)
    return {"operationId": op_id, "summary": summary, **extra, "responses": responses}


@cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the server's routes (built once: treat it as read-only)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ingest example server",
            "version": "1",
            "description": (
                "Metric events from unreliable clients, normalised, stored exactly once, "
                "and aggregated. Every error is JSON with error (a stable code) and message. "
                f"Every route but /api/health is limited to RATE_LIMIT requests a second per "
                f"key (default {DEFAULT_RATE_LIMIT}): 429 with Retry-After beyond it. "
                "Before any route, every request is checked: a Host that is not a host name is "
                "400 bad_host, one not in ALLOWED_HOSTS 421; a POST or any /api/ request sent "
                "by another site's page is 403; a POST body that is not JSON or NDJSON in "
                "UTF-8, gzip or not, is 415. Under make serve every route but /, its files, "
                "/api/health and this document needs an API key (Authorization: Bearer "
                "TOKEN): 401 without a valid one. A client key writes and reads as its one "
                "client (another client named: 403 forbidden, nothing stored); an admin key "
                "reads everything and alone drives the failure switch and reads /metrics. "
                "Under make demo a request without a key may do everything."
            ),
        },
        "security": [{"bearer": []}],
        "servers": [{"url": "/"}],
        "paths": {
            "/api/events": {
                "post": _events_post(),
                "get": _get(
                    "/api/events",
                    "listEvents",
                    "stored events (status=processed) or dead letters (status=rejected), "
                    "newest first",
                    _json(
                        {
                            "allOf": [
                                _ref("Page"),
                                {
                                    "properties": {
                                        "items": {
                                            "type": "array",
                                            "items": {
                                                "anyOf": [_ref("StoredEvent"), _ref("Rejection")]
                                            },
                                        }
                                    }
                                },
                            ]
                        },
                        "a page of items, and whether there is a next page",
                    ),
                    parameters=[
                        _query(
                            "status",
                            "processed (stored events, default) or rejected (the dead "
                            "letters, which take no filters)",
                            {"enum": ["processed", "rejected"], "default": "processed"},
                        ),
                        *FILTERS,
                        *PAGE,
                    ],
                    bad_request=(BAD_PARAMETER,),
                ),
            },
            "/api/rejected": {
                "get": _get(
                    "/api/rejected",
                    "listRejected",
                    "rejected input as received, with every reason, newest first",
                    _json(
                        {
                            "allOf": [
                                _ref("Page"),
                                {
                                    "properties": {
                                        "status": {"const": "rejected"},
                                        "items": {"type": "array", "items": _ref("Rejection")},
                                    }
                                },
                            ]
                        },
                        "a page of dead letters",
                    ),
                    parameters=PAGE,
                    bad_request=(BAD_PARAMETER,),
                )
            },
            "/api/aggregate": {
                "get": _get(
                    "/api/aggregate",
                    "aggregate",
                    "count, sum, avg, min and max over [startDate, endDate), optionally grouped",
                    _json(_ref("Aggregate"), "the totals (stale: true when read from the cache)"),
                    parameters=[
                        *FILTERS,
                        _query("groupBy", f"one or a comma list of {', '.join(GROUPS)}", GROUP_BY),
                        _query("group_by", "the same as groupBy (groupBy wins)", GROUP_BY),
                        _query(
                            "tz",
                            "an IANA time zone (Europe/Paris) for the time buckets; default UTC",
                        ),
                    ],
                    bad_request=(BAD_PARAMETER,),
                    responses={
                        "503": {
                            **_error(
                                "the database cannot be read and no earlier result of the "
                                "same query is cached (aggregate_unavailable), or the key "
                                "cannot be checked (storage_unavailable)",
                                "aggregate_unavailable",
                                "storage_unavailable",
                            ),
                            "headers": {"Retry-After": RETRY_AFTER},
                        },
                    },
                )
            },
            "/api/simulate-failure": {
                "get": _get(
                    "/api/simulate-failure",
                    "failureState",
                    "the failure switch's state",
                    _json(_ref("FailureState"), "the state"),
                ),
                "post": {
                    "operationId": "simulateFailure",
                    "summary": "arm, disarm or toggle a simulated failure",
                    "description": (
                        "No body toggles a failure of the next write after the insert; "
                        '{"point", "times"} arms one point for the next times calls; '
                        '{"enabled": false} or times 0 disarms.'
                    ),
                    "parameters": [CONTENT_ENCODING],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {
                                    # null, like no body, toggles.
                                    "type": ["object", "null"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "point": {"enum": list(POINTS)},
                                        "times": {
                                            "type": "integer",
                                            "minimum": 0,
                                            "maximum": MAX_TIMES,
                                        },
                                        "enabled": {"type": "boolean"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": _guarded(
                        "/api/simulate-failure",
                        "post",
                        {
                            "200": _json(_ref("FailureState"), "the new state"),
                            "408": READ_TIMEOUT,
                            "413": TOO_LARGE,
                            "429": RATE_LIMITED,
                            "500": STORAGE_FAILED,
                            "503": STORAGE_UNAVAILABLE,
                        },
                        bad_request=(
                            (
                                "the body is not UTF-8 or not JSON, or not one of the shapes above",
                                "malformed_json",
                                "invalid_parameter",
                            ),
                            BODY_400,
                        ),
                    ),
                },
            },
            "/api/stats": {
                "get": _get(
                    "/api/stats",
                    "stats",
                    "outcomes since start, stored counts and the failure switch; for a "
                    "client key, its own client's stored counts",
                    _json(
                        {"oneOf": [_ref("Stats"), _ref("ClientStats")]},
                        "the counts (ClientStats for a client key)",
                    ),
                )
            },
            "/api/health": {
                "get": {
                    "operationId": "health",
                    "security": [],
                    "summary": "whether the database answers (never rate limited)",
                    "responses": _guarded(
                        "/api/health",
                        "get",
                        {
                            "200": _json(_ref("Health"), "ready"),
                            "503": _json(_ref("Health"), "the database cannot be read"),
                        },
                    ),
                }
            },
            "/api/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "security": [],
                    "summary": "this document",
                    "responses": _guarded(
                        "/api/openapi.json",
                        "get",
                        {
                            "200": _json({"type": "object"}, "the OpenAPI 3.1 document"),
                            "429": RATE_LIMITED,
                        },
                    ),
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "counters, latencies and stored counts for Prometheus",
                    "responses": _guarded(
                        "/metrics",
                        "get",
                        {
                            "200": {
                                "description": "Prometheus's text exposition format",
                                "content": {"text/plain": {"schema": {"type": "string"}}},
                            },
                            "429": RATE_LIMITED,
                        },
                    ),
                }
            },
            "/": {
                "get": {
                    "operationId": "webUi",
                    "security": [],
                    "summary": "the web UI",
                    "responses": _guarded(
                        "/",
                        "get",
                        {
                            "200": {
                                "description": "the page",
                                "content": {"text/html": {"schema": {"type": "string"}}},
                            },
                            "429": RATE_LIMITED,
                        },
                    ),
                }
            },
            # A path parameter holds no "/": one entry per folder of static/.
            **{f"/static/{folder}{{filename}}": _static(folder) for folder in STATIC_FOLDERS},
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a key made by examples/server/manage.py add-key",
                }
            },
        },
    }


@blueprint.get("/api/openapi.json")
def openapi_json() -> Response:
    return jsonify(document())
