"""What a request must be before any route looks at it: addressed to one of
our own host names, not sent by another site's page, and with a body (when
it has one) that is JSON or NDJSON in an encoding we read.

Each check is one function of the request, run in order by one
before_request hook; an auth check is one more hook after this one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from flask import Flask, request

from .errors import ApiError

# The media types a body may have; the body is UTF-8 either way.
JSON = "application/json"
NDJSON = "application/x-ndjson"
BODY_TYPES = (JSON, NDJSON)
ENCODINGS = ("identity", "gzip")

# A Host header: a DNS name or IPv4 address, or a bracketed IPv6 address,
# then an optional port. Anything else cannot name this server.
HOST_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?"
)

# Reading these cannot change anything, and a person following a link from
# another site to the page sends them; every other method can.
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def host_with_port(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}".lower()


def default_allowed_hosts(bind: str, port: int) -> list[str]:
    """The names a browser on this machine uses for a server bound to
    `bind`: the address itself, localhost and 127.0.0.1, each with the port."""
    names = [host_with_port(h, port) for h in (bind, "localhost", "127.0.0.1")]
    return list(dict.fromkeys(names))


def allowed_hosts_from_env(bind: str, port: int) -> list[str]:
    """$ALLOWED_HOSTS (comma-separated), else the defaults for `bind`."""
    raw = os.environ.get("ALLOWED_HOSTS", "")
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    return names or default_allowed_hosts(bind, port)


def check_host(allowed: frozenset[str]) -> None:
    """421 for a Host that is not ours: a page of another name (DNS
    rebinding) must not reach the API even when it resolves to us."""
    host = request.environ.get("HTTP_HOST", "")
    if not HOST_RE.fullmatch(host):
        raise ApiError(400, "bad_host", f"the Host header {host[:100]!r} is not a host name")
    if host.lower() not in allowed:
        raise ApiError(
            421,
            "misdirected_request",
            f"this server does not answer for host {host!r}; "
            "it answers for the names in its ALLOWED_HOSTS",
        )


def check_same_origin() -> None:
    """403 for a state-changing request sent by another site's page: the
    browser names the sender in Sec-Fetch-Site and Origin. A request with
    neither (curl, a script) is not from a browser and passes."""
    if request.method in SAFE_METHODS and not request.path.startswith("/api/"):
        return
    site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
    # same-site is another origin of the same site (a sibling subdomain):
    # not ours either.
    if site in ("cross-site", "same-site"):
        raise ApiError(403, "cross_site", f"requests from other sites are refused ({site})")
    origin = request.headers.get("Origin")
    if origin is None:
        return
    host = request.environ.get("HTTP_HOST", "").lower()
    # The scheme is not compared: behind a TLS proxy the page is https and
    # this server sees http, and the host with its port is what another site
    # cannot have.
    if origin.strip().lower() not in (f"http://{host}", f"https://{host}"):
        raise ApiError(
            403, "cross_site", f"requests from another origin ({origin[:100]!r}) are refused"
        )


def has_body() -> bool:
    length = request.content_length
    return bool(length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def content_encoding() -> str:
    """The request's Content-Encoding in lower case, identity when it has none.
    Only HTTP's own blanks (space and tab) around it are dropped: the value
    read is the one the document's pattern describes."""
    return request.headers.get("Content-Encoding", "").strip(" \t").lower() or "identity"


def check_body_type() -> None:
    """415 for a body that is not JSON or NDJSON in UTF-8, or in an
    encoding other than gzip: the types a page of another site can send
    without asking first (forms, text/plain) are never read as events."""
    if request.method in SAFE_METHODS or not has_body():
        return
    mimetype = request.mimetype
    if mimetype not in BODY_TYPES:
        shown = request.headers.get("Content-Type", "")[:100] or "none"
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as {JSON} or {NDJSON}, not {shown!r}",
        )
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise ApiError(
            415, "unsupported_media_type", f"send the body in UTF-8, not charset={charset!r}"
        )
    encoding = content_encoding()
    if encoding not in ENCODINGS:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Encoding {encoding[:50]!r} is not read; send gzip or no encoding",
        )


def register(app: Flask, allowed_hosts: Iterable[str]) -> None:
    allowed = frozenset(h.lower() for h in allowed_hosts)
    app.config["INGEST_ALLOWED_HOSTS"] = sorted(allowed)

    @app.before_request
    def _guard() -> None:
        check_host(allowed)
        check_same_origin()
        check_body_type()


__all__ = [
    "BODY_TYPES",
    "ENCODINGS",
    "JSON",
    "NDJSON",
    "allowed_hosts_from_env",
    "content_encoding",
    "default_allowed_hosts",
    "register",
]
