"""The real server as `make demo` starts it: the curl tests of the original
design, its environment, and what only a real socket shows."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from conftest import SERVER_DIR, ServerProcess, free_port

CURL_TESTS = SERVER_DIR / "curl_tests.sh"


def run_curl_tests(base: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CURL_TESTS), base], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_three_curl_tests_pass(live_server: ServerProcess) -> None:
    result = run_curl_tests(live_server.base)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("ok - ") for line in lines) == 17, result.stdout
    assert not any(line.startswith("not ok") for line in lines)
    assert lines[-1] == "# 17 passed, 0 failed"


def test_the_curl_tests_run_again_on_the_same_database(live_server: ServerProcess) -> None:
    # The demo's data.db keeps its events between runs; the script must not care.
    for _ in range(2):
        result = run_curl_tests(live_server.base)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_curl_tests_fail_loudly_when_the_server_misbehaves(tmp_path: Path) -> None:
    # Nothing listens on this port: every check must fail, and the script too.
    result = run_curl_tests(f"http://127.0.0.1:{free_port()}")
    assert result.returncode != 0
    assert "not ok - 1a" in result.stdout
    assert "0 passed" in result.stdout


def test_db_defaults_to_data_db_in_the_working_directory(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DB"}
    env.update(PORT=str(port), PYTHONUNBUFFERED="1")
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(SERVER_DIR / "app.py")],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            server_ready(f"http://127.0.0.1:{port}", proc, log)
            with requests.get(f"http://127.0.0.1:{port}/api/health", timeout=5) as r:
                assert r.json()["database"] == "data.db"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    assert (tmp_path / "data.db").exists()
    assert f"http://127.0.0.1:{port}/" in log.read_text()


def server_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            break
        try:
            with requests.get(base + "/api/health", timeout=1) as r:
                if r.status_code == 200:
                    return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(log.read_text())


def test_a_bad_port_is_refused_with_a_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SERVER_DIR / "app.py")],
        env={**os.environ, "PORT": "eighty", "DB": str(tmp_path / "x.db")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "PORT must be a port number" in result.stderr
    assert not (tmp_path / "x.db").exists()


def listening_addresses(port: int) -> set[str]:
    """The addresses listening on TCP `port`, read from /proc/net/tcp*."""
    found = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            addr, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                raw = bytes.fromhex(addr)
                if len(raw) == 4:
                    found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def test_it_listens_on_loopback_only(live_server: ServerProcess) -> None:
    assert listening_addresses(live_server.port) == {"127.0.0.1"}


def test_chunked_body_over_the_limit_is_413(live_server: ServerProcess) -> None:
    # No Content-Length: the limit must hold while the body streams in.
    def chunks() -> Any:
        piece = b"x" * 65536
        yield b'{"blob": "'
        for _ in range(20):
            yield piece
        yield b'"}'

    with requests.post(
        live_server.base + "/api/events",
        data=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    ) as r:
        assert r.status_code == 413, r.text
        assert "message" in r.json()


def test_concurrent_retries_store_one_event(live_server: ServerProcess, uid: str) -> None:
    body = json.dumps(
        {"source": uid, "payload": {"metric": "m", "value": 1, "timestamp": "2024-05-01"}}
    )

    def post(_: int) -> int:
        with requests.post(
            live_server.base + "/api/events",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=30,
        ) as r:
            return r.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(post, range(24)))
    assert sorted(codes) == [200] * 23 + [201]
    with requests.get(
        live_server.base + "/api/aggregate", params={"clientId": uid}, timeout=10
    ) as r:
        assert r.json()["count"] == 1


def test_concurrent_toggles_keep_state_and_switch_in_step(
    live_server: ServerProcess, uid: str
) -> None:
    url = live_server.base + "/api/simulate-failure"

    def toggle(_: int) -> bool:
        with requests.post(url, timeout=30) as r:
            return bool(r.json()["enabled"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(toggle, range(20)))
    # Each toggle saw a distinct state: half turned it on, half off.
    assert answers.count(True) == answers.count(False) == 10
    with requests.get(url, timeout=10) as r:
        assert r.json()["enabled"] is False
    body = {"source": uid, "payload": {"metric": "m", "value": 1, "timestamp": "2024-05-02"}}
    with requests.post(live_server.base + "/api/events", json=body, timeout=10) as r:
        assert r.status_code == 201, r.text
