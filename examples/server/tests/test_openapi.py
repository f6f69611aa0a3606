"""/api/openapi.json: a valid OpenAPI 3.1 document naming every route and
method the app has, served as built; and schemathesis run against a real
`make serve` (its own SQLite file) from that document, with a client key
and then with an admin key for the routes only an admin may use: no server
error, no response that breaks the document, and no route that answers
without a key where the document says one is needed. (Every response of the API tests is
checked against the document too: see openapi_check.py.)"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from openapi_spec_validator import validate

from conftest import ARTIFACTS, ServerProcess, disarm_every_worker
from ingest_server.openapi import STATIC_FOLDERS, document

# Examples per operation and phase: about 15 s for the first run on this
# 2-core machine. Deterministic mode draws the same cases every run.
MAX_EXAMPLES = 100
# The switch's own run arms failures; fewer examples keep it short.
FAILURE_RUN_EXAMPLES = 30
RUN_SECONDS = 300

# positive_data_acceptance wants a 2xx for every request the schema allows,
# but only the library knows whether a date exists, a zone is known, or an
# event has an amount: those are a 400 or a 422 with reasons, by design.
NOT_APPLICABLE = "positive_data_acceptance"


def test_the_document_is_valid_openapi_3_1(app: Any) -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1.")
    validate(doc)
    r = app.test_client().get("/api/openapi.json")
    assert r.status_code == 200
    assert r.get_json() == doc


def test_every_route_and_method_is_documented(app: Any) -> None:
    served = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if path == "/static/{filename}":
                # One documented path per folder: a path parameter holds no "/".
                served |= {(f"/static/{f}{{filename}}", method.lower()) for f in STATIC_FOLDERS}
            else:
                served.add((path, method.lower()))
    documented = {(p, m) for p, ops in document()["paths"].items() for m in ops}
    assert served == documented


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    d = tmp_path_factory.mktemp("schemathesis")
    s = ServerProcess(d / "schemathesis.db", d / "server.log", serve=True, workers=2)
    yield s
    s.stop()


# Only an admin key may use these (auth.ADMIN_ENDPOINTS): a client key is
# answered 403 whatever it sends, so they have their own run, as admin.
ADMIN_OPERATIONS = ("simulateFailure", "failureState", "metrics")


def schemathesis(server: ServerProcess, name: str, token: str, *args: str) -> None:
    report = ARTIFACTS / f"schemathesis-{name}.xml"
    report.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        server.base + "/api/openapi.json",
        "--generation-deterministic",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
        "--header",
        f"Authorization: Bearer {token}",
        *args,
    ]
    # In the server's temporary folder: schemathesis keeps a .schemathesis/
    # folder where it runs, which does not belong in the checkout.
    run = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
        check=False,
        cwd=Path(server.log_path).parent,
    )
    log = Path(server.log_path).read_text(errors="replace")
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\nserver log:\n{log[-3000:]}"
    assert "Traceback" not in log, log[-3000:]
    assert re.search(r"No issues found", run.stdout), run.stdout


def test_schemathesis_finds_no_server_error_and_no_broken_response(server: ServerProcess) -> None:
    # The failure switch makes 500s on purpose: it has its own run below.
    excluded = [arg for op in ADMIN_OPERATIONS for arg in ("--exclude-operation-id", op)]
    schemathesis(
        server,
        "client-key",
        server.add_key("schemathesis"),
        "--checks",
        "all",
        "--exclude-checks",
        NOT_APPLICABLE,
        "--max-examples",
        str(MAX_EXAMPLES),
        *excluded,
    )


def test_schemathesis_with_the_failure_switch_armed_at_random(server: ServerProcess) -> None:
    # Failures armed by the fuzzer strike the other operations: their 500
    # and 503 answers must still be the documented ones.
    try:
        assert server.admin_token is not None
        schemathesis(
            server,
            "failures",
            server.admin_token,
            "--checks",
            "all",
            "--exclude-checks",
            f"{NOT_APPLICABLE},not_a_server_error",
            "--max-examples",
            str(FAILURE_RUN_EXAMPLES),
        )
    finally:
        disarm_every_worker(server.api(requests.Session()))
