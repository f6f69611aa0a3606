"""Every response the API tests are served, checked against the server's
OpenAPI document (/api/openapi.json) by openapi-core: its status is
documented for its operation, and its body and headers match what the
document says of that status. A HEAD is checked as the GET it stands for,
without the body; a path or method the document does not have may only get
the answers Werkzeug's routing gives, or the guard's, which runs first."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import jsonschema
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.validation.response.validators import V31ResponseHeadersValidator
from werkzeug.datastructures import Headers, ImmutableMultiDict

from ingest_server.openapi import document

# Statuses Flask and Werkzeug give a route, or a path, the document does not
# have: the error body all the same.
UNDOCUMENTED_STATUSES = {404, 405}
# The guard (ingest_server/guard.py) answers before any route is looked for,
# so a path no route has gets its answers too, each with its own code.
GUARD_CODES = {
    400: "bad_host",
    403: "cross_site",
    415: "unsupported_media_type",
    421: "misdirected_request",
}


@cache
def spec() -> OpenAPI:
    # Built from the dict the server serves, so what is checked is what clients read.
    return OpenAPI.from_dict(document())


@cache
def head_validator() -> V31ResponseHeadersValidator:
    # Flask answers HEAD for every GET route with the GET's status and
    # headers and no body: the document's GET says what they may be.
    return V31ResponseHeadersValidator(spec().spec)


@dataclass
class SentRequest:
    method: str
    path: str
    query: Mapping[str, Any] | None
    content_type: str = "application/json"
    body: bytes | None = None
    host_url: str = "http://127.0.0.1"
    parameters: RequestParameters = field(init=False)

    def __post_init__(self) -> None:
        self.method = self.method.lower()
        split = urlsplit(self.path)
        self.path = split.path
        items = [(k, str(v)) for k, v in (self.query or {}).items() if v is not None]
        self.parameters = RequestParameters(query=ImmutableMultiDict(items))


@dataclass
class ServedResponse:
    status_code: int
    headers: Headers
    data: bytes

    @property
    def content_type(self) -> str:
        return str(self.headers.get("Content-Type", "")).lower()


def check(
    method: str,
    path: str,
    params: Mapping[str, Any] | None,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
) -> None:
    """Raise AssertionError when the response breaks the document."""
    head = method.upper() == "HEAD"
    request = SentRequest("GET" if head else method, path, params)
    response = ServedResponse(status, Headers(list(headers.items())), body)
    try:
        if head:
            head_validator().validate(request, response)
        else:
            spec().validate_response(request, response)
    except (PathNotFound, OperationNotFound):
        guard_code = GUARD_CODES.get(status)
        assert status in UNDOCUMENTED_STATUSES or guard_code is not None, (
            f"{method} {path} is not in the document, yet answered {status}: {body[:300]!r}"
        )
        if head:
            assert not body, body[:300]
            return
        error = document()["components"]["schemas"]["Error"]
        answer = json.loads(body)
        jsonschema.validate(answer, error, cls=jsonschema.Draft202012Validator)
        if guard_code is not None:
            assert answer["error"] == guard_code, (method, path, status, answer)
    except Exception as e:
        raise AssertionError(
            f"{method} {path} {dict(params or {})} answered {status}, which breaks "
            f"/api/openapi.json: {e!r}\n{body[:500]!r}"
        ) from e
