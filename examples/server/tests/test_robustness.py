"""Hostile bodies against the real server process, over real sockets: huge,
deeply nested, not UTF-8, of the wrong content type, sent slowly, cut off.
Each gets its status code (or, cut off with the socket closed, no answer),
keeps only what it should (an event nested too deeply is JSON: it is
rejected alone and kept as a dead letter), and the server stays up and
answers the next request.

A body must say it is JSON (or NDJSON) in UTF-8: any other type, a form
or text/plain above all (what another site's page can send unasked), is a
415 and is never read."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, Optional

import pytest
import requests

from conftest import ServerProcess, strict_json

# Between the pieces of a slow body: long enough that each piece is its own
# read on the server, with no assertion on time.
PAUSE = 0.02


# The Host every request names: the server's own address (any other is 421).
# Set once the module's server has its port.
HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    global HOST
    d = tmp_path_factory.mktemp("robust")
    s = ServerProcess(d / "robust.db", d / "server.log")
    HOST = f"127.0.0.1:{s.port}"
    yield s
    s.stop()


def new_uid() -> str:
    return "r-" + uuid.uuid4().hex[:12]


def event(client: str, value: Any = 1) -> dict[str, Any]:
    return {"source": client, "payload": {"metric": "m", "value": value, "timestamp": "2024-06-01"}}


def stored(server: ServerProcess) -> tuple[int, int]:
    with requests.get(server.base + "/api/stats", timeout=15) as r:
        assert r.status_code == 200, r.text
        body = r.json()
    return body["stored_events"], body["stored_rejected"]


def still_serves(server: ServerProcess) -> None:
    """The process is alive and a fresh event is accepted."""
    assert server.proc.poll() is None, Path(server.log_path).read_text(errors="replace")
    uid = new_uid()
    with requests.post(server.base + "/api/events", json=event(uid), timeout=15) as r:
        assert r.status_code == 201, r.text
    with requests.get(server.base + "/api/health", timeout=15) as r:
        assert r.status_code == 200, r.text


def head(content_length: int | str | None, content_type: str = "application/json") -> bytes:
    lines = ["POST /api/events HTTP/1.1", f"Host: {HOST}", "Connection: close"]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def exchange(
    server: ServerProcess, pieces: list[bytes], *, then: str = "read"
) -> tuple[int | None, Any]:
    """Send `pieces` (a pause between each), then: "read" the answer,
    "half-close" (no more to send) and read it, or "close" and hear nothing.
    Returns the status and the JSON body (None, None when nothing came)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as s:
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(PAUSE)
            s.sendall(piece)
        if then == "close":
            return None, None
        if then == "half-close":
            s.shutdown(socket.SHUT_WR)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            # Closed with our unread bytes still queued (the 413 before the
            # body): the answer came first.
            pass
    if not data:
        return None, None
    status_line, _, rest = data.partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(body) if body else None


def slowly(data: bytes, size: int = 16) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def body_of(client: str) -> bytes:
    return json.dumps(event(client)).encode()


def nested_arrays(uid: str) -> bytes:
    # The client id inside makes each its own dead letter, not a retry of another's.
    return b"[" * 100_000 + json.dumps(uid).encode() + b"]" * 100_000


def nested_objects(uid: str) -> bytes:
    return b'{"a":' * 50_000 + json.dumps(uid).encode() + b"}" * 50_000


def whole(data: bytes, content_type: str = "application/json") -> list[bytes]:
    """A request with `data` as its body, sent at once."""
    return [head(len(data), content_type) + data]


def with_metric(uid: str, metric: bytes) -> bytes:
    """An event whose metric is the raw bytes `metric` (not UTF-8, say)."""
    return body_of(uid).replace(b'"m"', b'"' + metric + b'"')


Case = tuple[str, Any, str, Optional[int], Optional[str]]

# (id, the request's pieces for a client id, then, status, error code)
CASES: list[Case] = [
    # Huge: refused from the Content-Length alone, before any body is read;
    # or read up to the limit and refused there.
    ("huge-announced", lambda u: [head(64 << 20)], "read", 413, "request_entity_too_large"),
    (
        "huge-just-over",
        lambda u: whole(b"[" * ((1 << 20) + 1)),
        "read",
        413,
        "request_entity_too_large",
    ),
    # Deeply nested, far beyond any parser's recursion limit: JSON, so each
    # too-deep item is rejected alone. An array is a batch (of one here).
    ("nested-arrays", lambda u: whole(nested_arrays(u)), "read", 200, None),
    ("nested-objects", lambda u: whole(nested_objects(u)), "read", 422, None),
    (
        "nested-in-a-batch",
        lambda u: whole(b"[" + body_of(u) + b", " + nested_arrays(u) + b"]"),
        "read",
        200,
        None,
    ),
    # Not UTF-8.
    (
        "bad-continuation",
        lambda u: whole(with_metric(u, b"\xc3\x28")),
        "read",
        400,
        "malformed_json",
    ),
    ("overlong", lambda u: whole(with_metric(u, b"\xc0\xaf")), "read", 400, "malformed_json"),
    (
        "surrogate-bytes",
        lambda u: whole(with_metric(u, b"\xed\xa0\x80")),
        "read",
        400,
        "malformed_json",
    ),
    ("latin-1", lambda u: whole(with_metric(u, b"caf\xe9")), "read", 400, "malformed_json"),
    ("truncated-sequence", lambda u: whole(body_of(u) + b"\xe2"), "read", 400, "malformed_json"),
    (
        "utf-16",
        lambda u: whole(json.dumps(event(u)).encode("utf-16"), "application/json; charset=utf-16"),
        "read",
        415,
        "unsupported_media_type",
    ),
    (
        "utf-8-said",
        lambda u: whole(body_of(u), "application/json; charset=UTF-8"),
        "read",
        201,
        None,
    ),
    # The Content-Type must say JSON or NDJSON: JSON sent as another type is
    # not read (a page of another site can send a form or text/plain).
    (
        "form-type-json-body",
        lambda u: whole(body_of(u), "application/x-www-form-urlencoded"),
        "read",
        415,
        "unsupported_media_type",
    ),
    (
        "text-type-json-body",
        lambda u: whole(body_of(u), "text/plain"),
        "read",
        415,
        "unsupported_media_type",
    ),
    ("no-type-json-body", lambda u: whole(body_of(u), ""), "read", 415, "unsupported_media_type"),
    (
        "form-body",
        lambda u: whole(b"source=" + u.encode() + b"&value=1", "application/x-www-form-urlencoded"),
        "read",
        415,
        "unsupported_media_type",
    ),
    (
        "multipart-body",
        lambda u: whole(multipart(u), "multipart/form-data; boundary=XyZ"),
        "read",
        415,
        "unsupported_media_type",
    ),
    (
        "xml-body",
        lambda u: whole(b"<event source='" + u.encode() + b"'/>", "application/xml"),
        "read",
        415,
        "unsupported_media_type",
    ),
    # Slow: a request in small pieces is read whole.
    ("slow-body", lambda u: [head(len(body_of(u))), *slowly(body_of(u))], "read", 201, None),
    ("slow-headers", lambda u: [*slowly(head(len(body_of(u))), 8), body_of(u)], "read", 201, None),
    # Cut off: the client stops sending, and still listens or is gone.
    (
        "cut-body-half-closed",
        lambda u: [head(len(body_of(u)) + 40), *slowly(body_of(u)[:30])],
        "half-close",
        400,
        "incomplete_body",
    ),
    (
        "cut-body-closed",
        lambda u: [head(len(body_of(u)) + 40), *slowly(body_of(u)[:30])],
        "close",
        None,
        None,
    ),
    (
        "cut-last-byte-closed",
        lambda u: [head(len(body_of(u)) + 1), *slowly(body_of(u))],
        "close",
        None,
        None,
    ),
    (
        "cut-chunked",
        lambda u: [
            chunked_head(),
            b"10\r\n" + body_of(u)[:16] + b"\r\n",
            b"40\r\n" + body_of(u)[16:30],
        ],
        "half-close",
        400,
        "incomplete_body",
    ),
    (
        "cut-headers-half-closed",
        lambda u: [f"POST /api/events HTTP/1.1\r\nHost: {HOST}\r\nContent-Le".encode()],
        "half-close",
        400,
        None,
    ),
    (
        "cut-headers-closed",
        lambda u: [f"POST /api/events HTTP/1.1\r\nHost: {HOST}\r\nContent-Le".encode()],
        "close",
        None,
        None,
    ),
    # A Content-Length that is not a length: no body is read.
    ("content-length-text", lambda u: [head("ten") + body_of(u)], "read", 400, "empty_body"),
    ("content-length-negative", lambda u: [head(-5) + body_of(u)], "read", 400, "empty_body"),
]


class Kept(NamedTuple):
    """What a request of JSON with a too-deep item keeps."""

    events: int
    statuses: list[str]
    # The text of the one item kept as a dead letter, for a client id.
    letter: Callable[[str], bytes]


# The rest keep one event when accepted, else nothing.
KEPT = {
    # The outer brackets are the batch's: its one item is the rest.
    "nested-arrays": Kept(0, ["rejected"], lambda u: nested_arrays(u)[1:-1]),
    "nested-objects": Kept(0, ["rejected"], nested_objects),
    "nested-in-a-batch": Kept(1, ["accepted", "rejected"], nested_arrays),
}


def multipart(uid: str) -> bytes:
    return (
        b'--XyZ\r\nContent-Disposition: form-data; name="event"\r\n\r\n'
        + body_of(uid)
        + b"\r\n--XyZ--\r\n"
    )


def chunked_head() -> bytes:
    return (
        f"POST /api/events HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("pieces", "then", "status", "code", "kept"),
    [(*c[1:], KEPT.get(c[0])) for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_hostile_request(
    server: ServerProcess,
    pieces: Any,
    then: str,
    status: int | None,
    code: str | None,
    kept: Kept | None,
) -> None:
    uid = new_uid()
    before = stored(server)
    answered = refused_posts(server)
    got, body = exchange(server, pieces(uid), then=then)
    assert got == status, body
    if status is not None and status >= 400:
        assert isinstance(body, dict) and body["message"], body
        if code:
            assert body["error"] == code, body
    if then == "close":
        # Nobody is left to hear the answer: wait until the server logs it.
        wait_until(lambda: refused_posts(server) > answered, server)
    if kept is None:
        # Nothing of a refused request is kept; an accepted one is one event.
        assert stored(server) == (before[0] + (status == 201), before[1])
    else:
        outcomes = body["results"] if isinstance(body.get("results"), list) else [body]
        assert [o["status"] for o in outcomes] == kept.statuses, body
        for o in outcomes:
            if o["status"] == "rejected":
                assert [r["code"] for r in o["reasons"]] == ["too_deep"], o
        assert stored(server) == (before[0] + kept.events, before[1] + 1)
        newest = dead_letters(server, 1)[0]
        # Capped: a JSON string of the text's first 64 KiB, not the whole,
        # whose size is still the whole's.
        assert isinstance(newest["raw"], str) and newest["raw_exact"] is False, newest
        assert len(json.dumps(newest["raw"]).encode()) <= 64 << 10
        assert kept.letter(uid).decode().startswith(newest["raw"])
        assert newest["raw_bytes"] == len(kept.letter(uid))
    still_serves(server)


def dead_letters(server: ServerProcess, limit: int) -> list[dict[str, Any]]:
    with requests.get(server.base + "/api/rejected", params={"limit": limit}, timeout=15) as r:
        assert r.status_code == 200, r.text
        return list(strict_json(r.text)["items"])


def refused_posts(server: ServerProcess) -> int:
    """How many POSTs the server has answered with a 400, from its log."""
    lines = Path(server.log_path).read_text(errors="replace").splitlines()
    return sum("POST /api/events HTTP/1.1" in line and '" 400 ' in line for line in lines)


def wait_until(cond: Any, server: ServerProcess) -> None:
    for _ in range(600):
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(Path(server.log_path).read_text(errors="replace"))


def test_huge_body_through_a_client_library(server: ServerProcess) -> None:
    # 16 MiB sent by requests: the answer comes before the body is read.
    before = stored(server)
    data = b'{"source": "huge", "blob": "' + b"x" * (16 << 20) + b'"}'
    try:
        with requests.post(
            server.base + "/api/events",
            data=data,
            headers={"Content-Type": "application/json"},
            timeout=30,
        ) as r:
            assert r.status_code == 413, r.text
            assert r.json()["error"] == "request_entity_too_large"
    except requests.ConnectionError:
        # The server answered 413 and closed while the body was still going
        # out: a clean close, not a crash, as the next request shows.
        pass
    assert stored(server) == before
    still_serves(server)


def test_many_stalled_clients_do_not_block_the_next_request(server: ServerProcess) -> None:
    # Twenty connections each announce a body, send part of it and stall.
    before = stored(server)
    stalled = []
    try:
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=15)
            s.sendall(head(500) + body_of(new_uid())[:20])
            stalled.append(s)
        still_serves(server)
    finally:
        for s in stalled:
            s.close()
    assert stored(server)[1] == before[1]
    still_serves(server)
