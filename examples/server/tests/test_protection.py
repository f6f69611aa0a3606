"""Cross-site requests, foreign Host headers and bodies of other types or
encodings, as an attacker's page or a careless client sends them: each is
refused with its status and a JSON error, and nothing of it is kept.

Every test runs through Flask's test client, against the server as `make
demo` runs it and against `make serve` (gunicorn, two workers)."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest

from conftest import disarm_every_worker, event

EVIL = "http://evil.example"
REBIND = "rebind.attacker.example"


def own_host(api: Any) -> str:
    """The Host a browser on this machine sends to the server."""
    return str(api.host)


def stored(api: Any, uid: str) -> int:
    r = api.request("GET", "/api/aggregate", params={"clientId": uid})
    assert r.status == 200, r.text
    return int(r.body["count"])


def switch_is_off(api: Any) -> None:
    # Asked several times: under `make serve` each worker has its own switch,
    # and any of them may answer.
    for _ in range(8):
        r = api.request("GET", "/api/simulate-failure")
        assert r.status == 200, r.text
        assert r.body["enabled"] is False, r.body


def assert_error(r: Any, status: int, code: str, method: str = "GET") -> None:
    assert r.status == status, r.text
    if method == "HEAD":  # the same answer, without its body
        return
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    assert r.body["error"] == code, r.body
    assert r.body["message"], r.body


# ---- the attacks the issue names ----


def test_empty_cross_site_form_post_cannot_flip_the_switch(any_api: Any) -> None:
    # What <form method=post action=.../api/simulate-failure> on another
    # site sends: a form type, no body, Origin null (a sandboxed frame).
    r = any_api.request(
        "POST",
        "/api/simulate-failure",
        data=b"",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": "null"},
    )
    assert_error(r, 403, "cross_site")
    switch_is_off(any_api)


def test_text_plain_body_cannot_arm_the_switch(any_api: Any) -> None:
    # fetch(url, {method: "POST", body: "..."}) from any page, no preflight:
    # text/plain. Refused for its type even with no Origin to tell.
    r = any_api.request(
        "POST",
        "/api/simulate-failure",
        data=b'{"point":"after_commit","times":1000}',
        headers={"Content-Type": "text/plain"},
    )
    assert_error(r, 415, "unsupported_media_type")
    switch_is_off(any_api)


def test_text_plain_event_from_another_origin_is_refused(any_api: Any, uid: str) -> None:
    r = any_api.request(
        "POST",
        "/api/events",
        data=json.dumps(event(uid)),
        headers={"Content-Type": "text/plain", "Origin": EVIL},
    )
    assert_error(r, 403, "cross_site")
    assert stored(any_api, uid) == 0


def test_a_json_event_from_another_origin_is_refused(any_api: Any, uid: str) -> None:
    # A page of another site that was allowed to send JSON still names itself.
    r = any_api.request("POST", "/api/events", json_body=event(uid), headers={"Origin": EVIL})
    assert_error(r, 403, "cross_site")
    r = any_api.request(
        "POST", "/api/events", json_body=event(uid), headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert_error(r, 403, "cross_site")
    r = any_api.request(
        "POST", "/api/events", json_body=event(uid), headers={"Sec-Fetch-Site": "same-site"}
    )
    assert_error(r, 403, "cross_site")
    assert stored(any_api, uid) == 0


def routes(app: Any) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, and one it does not."""
    found = [("GET", "/no/such/route")]
    for rule in app.url_map.iter_rules():
        path = rule.rule.replace("<path:filename>", "js/main.js")
        for method in sorted(rule.methods - {"OPTIONS"}):
            found.append((method, path))
    return found


def test_a_foreign_host_is_refused_on_every_route(any_api: Any, app: Any, uid: str) -> None:
    # DNS rebinding: the attacker's name resolves to 127.0.0.1, so the
    # browser sends the attacker's Host and thinks the page same-origin.
    seen = routes(app)
    assert ("POST", "/api/events") in seen and ("GET", "/") in seen, seen
    for method, path in seen:
        r = any_api.request(
            method,
            path,
            json_body=event(uid) if method == "POST" else None,
            headers={"Host": REBIND},
        )
        assert_error(r, 421, "misdirected_request", method)
        r = any_api.request(method, path, headers={"Host": f"{REBIND}:{any_api.port}"})
        assert_error(r, 421, "misdirected_request", method)
    assert stored(any_api, uid) == 0
    switch_is_off(any_api)


@pytest.mark.parametrize(
    "host", ["a b", "127.0.0.1:80:80", "[::1", "evil.example/x", "host:port", "", "é.example"]
)
def test_a_malformed_host_is_400(any_api: Any, host: str) -> None:
    r = any_api.request("GET", "/api/health", headers={"Host": host})
    assert_error(r, 400, "bad_host")


def test_own_origin_and_same_origin_fetches_pass(any_api: Any, uid: str) -> None:
    host = own_host(any_api)
    for headers in (
        {"Origin": f"http://{host}"},
        # Behind a TLS proxy the page's origin is https with the same host.
        {"Origin": f"https://{host}"},
        {"Sec-Fetch-Site": "same-origin", "Origin": f"http://{host}"},
        {"Sec-Fetch-Site": "none"},
    ):
        r = any_api.request("POST", "/api/events", json_body=event(uid), headers=headers)
        assert r.status in (200, 201), (headers, r.text)
    assert stored(any_api, uid) == 1


def test_other_origins_of_our_host_are_refused(any_api: Any, uid: str) -> None:
    host = own_host(any_api)
    name = host.rsplit(":", 1)[0]
    for origin in (f"http://{name}:1", f"http://{name}", f"http://{host}.evil.example", "null"):
        r = any_api.request("POST", "/api/events", json_body=event(uid), headers={"Origin": origin})
        assert_error(r, 403, "cross_site")
    assert stored(any_api, uid) == 0


def test_a_link_from_another_site_opens_the_page(any_api: Any) -> None:
    # A top-level navigation from another site: reading the page changes
    # nothing, and the page then calls the API as itself.
    r = any_api.request("GET", "/", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status == 200, r.text
    r = any_api.request("GET", "/api/stats", headers={"Sec-Fetch-Site": "cross-site"})
    assert_error(r, 403, "cross_site")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain",
        "text/plain; charset=utf-8",
        "application/xml",
        "application/json-patch+json",
        "application/json; charset=latin-1",
        "",
    ],
)
def test_a_body_of_another_type_is_415(any_api: Any, uid: str, content_type: str) -> None:
    r = any_api.request(
        "POST", "/api/events", data=json.dumps(event(uid)), headers={"Content-Type": content_type}
    )
    assert_error(r, 415, "unsupported_media_type")
    assert stored(any_api, uid) == 0


def test_the_type_may_be_spelled_in_any_case_and_say_utf8(any_api: Any, uid: str) -> None:
    r = any_api.request(
        "POST",
        "/api/events",
        data=json.dumps(event(uid)),
        headers={"Content-Type": "Application/JSON; charset=UTF-8"},
    )
    assert r.status == 201, r.text


def test_a_post_without_a_body_needs_no_type(any_api: Any) -> None:
    # curl -X POST .../api/simulate-failure, as the original design's test 3.
    r = any_api.request("POST", "/api/simulate-failure", headers={"Content-Type": ""})
    assert r.status == 200 and r.body["enabled"] is True, r.text
    disarm_every_worker(any_api)


# ---- encodings ----


def test_gzip_bodies_are_read(any_api: Any, uid: str) -> None:
    one = gzip.compress(json.dumps(event(uid)).encode())
    r = any_api.request("POST", "/api/events", data=one, headers={"Content-Encoding": "gzip"})
    assert r.status == 201, r.text
    batch = [event(uid, value=v) for v in range(2, 6)]
    r = any_api.request(
        "POST",
        "/api/events",
        data=gzip.compress(json.dumps(batch).encode()),
        headers={"Content-Encoding": "GZIP"},
    )
    assert r.status == 200 and r.body["counts"]["accepted"] == 4, r.text
    r = any_api.request(
        "POST",
        "/api/simulate-failure",
        data=gzip.compress(b'{"enabled": false}'),
        headers={"Content-Encoding": "gzip"},
    )
    assert r.status == 200, r.text
    assert stored(any_api, uid) == 5


def test_gzip_of_several_members_is_read_whole(any_api: Any, uid: str) -> None:
    text = json.dumps([event(uid, value=1), event(uid, value=2)]).encode()
    data = gzip.compress(text[:10]) + gzip.compress(text[10:])
    r = any_api.request("POST", "/api/events", data=data, headers={"Content-Encoding": "gzip"})
    assert r.status == 200 and r.body["counts"]["accepted"] == 2, r.text


def test_a_gzip_bomb_is_413_and_never_inflated_past_the_limit(any_api: Any, uid: str) -> None:
    # 1 GiB of spaces after an event is about 1 MiB of gzip: under the body
    # limit as sent, a thousand times over it inflated.
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = z.compress(json.dumps(event(uid)).encode())
    block = b" " * (1 << 20)
    for _ in range(1 << 10):
        bomb += z.compress(block)
    bomb += z.flush()
    assert len(bomb) < 1 << 20
    r = any_api.request("POST", "/api/events", data=bomb, headers={"Content-Encoding": "gzip"})
    assert_error(r, 413, "request_entity_too_large")
    assert "inflates" in r.body["message"]
    assert stored(any_api, uid) == 0


def test_gzip_just_under_the_limit_is_read(any_api: Any, uid: str) -> None:
    text = json.dumps(event(uid)).encode()
    text += b" " * ((1 << 20) - len(text))
    r = any_api.request(
        "POST", "/api/events", data=gzip.compress(text), headers={"Content-Encoding": "gzip"}
    )
    assert r.status == 201, r.text


@pytest.mark.parametrize(
    "data",
    [b"not gzip at all", gzip.compress(b'{"a": 1}')[:-6], b"\x1f\x8b\x08\x00" + b"\x00" * 20],
    ids=["not-gzip", "cut-short", "bad-header"],
)
def test_broken_gzip_is_400(any_api: Any, data: bytes) -> None:
    r = any_api.request("POST", "/api/events", data=data, headers={"Content-Encoding": "gzip"})
    assert_error(r, 400, "bad_encoding")


@pytest.mark.parametrize("encoding", ["br", "deflate", "compress", "zstd", "gzip, br"])
def test_other_encodings_are_415(any_api: Any, uid: str, encoding: str) -> None:
    r = any_api.request(
        "POST", "/api/events", json_body=event(uid), headers={"Content-Encoding": encoding}
    )
    assert_error(r, 415, "unsupported_media_type")
    assert stored(any_api, uid) == 0
