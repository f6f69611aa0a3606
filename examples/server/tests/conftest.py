"""Fixtures: the app under Flask's test client, the real server as a process
on 127.0.0.1, and one `api` that runs a test against both."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import ingest
import psycopg
import pytest
import redis
import requests
from flask.testing import FlaskClient

SERVER_DIR = Path(__file__).resolve().parent.parent
REPO = SERVER_DIR.parent.parent
sys.path.insert(0, str(SERVER_DIR))

import openapi_check  # noqa: E402
from ingest_server import create_app  # noqa: E402
from serve_line import serve_line  # noqa: E402

ARTIFACTS = Path(os.environ.get("INGEST_ARTIFACTS", REPO / "artifacts" / "server"))
STARTUP_SECONDS = 30
POSTGRES = os.environ.get("INGEST_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgres"]
REDIS = "redis://127.0.0.1:6379/0"


@dataclass
class Reply:
    status: int
    body: Any
    headers: Mapping[str, str]
    text: str


class AllowedHostClient(FlaskClient):
    """Flask's test client, addressed as FlaskApi addresses its requests: to
    the first Host the app answers for. The client's own default, localhost
    without a port, is a name the guard refuses (421) unless ALLOWED_HOSTS
    has it. A base_url given to a request still wins."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        hosts = self.application.config["INGEST_ALLOWED_HOSTS"]
        kwargs.setdefault("base_url", "http://" + hosts[0])
        return super().open(*args, **kwargs)


def addressed(app: Any) -> Any:
    """`app`, whose test_client() sends an allowed Host (AllowedHostClient)."""
    app.test_client_class = AllowedHostClient
    return app


class FlaskApi:
    """The app in this process, through Flask's test client."""

    kind = "flask"
    port = 8000

    def __init__(self, app: Any) -> None:
        self.app = app
        self.client = app.test_client()
        # Addressed as a browser on this machine would: to a host the app
        # answers for (the test client's own default, localhost, is not one).
        self.host = app.config["INGEST_ALLOWED_HOSTS"][0]
        self.base_url = "http://" + self.host
        self.port = int(self.host.rsplit(":", 1)[1]) if ":" in self.host else 80

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: bytes | str | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        if json_body is not None:
            data = json.dumps(json_body)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        resp = self.client.open(
            path,
            method=method,
            base_url=self.base_url,
            query_string=params,
            data=data,
            headers=hdrs,
        )
        raw = resp.get_data()
        resp.close()  # a file response holds its file open until closed
        openapi_check.check(method, path, params, resp.status_code, resp.headers, raw)
        text = raw.decode("utf-8", "replace")
        return Reply(resp.status_code, _json_or_none(text), resp.headers, text)


class HttpApi:
    """The real server over HTTP on 127.0.0.1; with `token`, every request
    carries it as its bearer key unless it names its own Authorization."""

    kind = "http"

    def __init__(self, base: str, session: requests.Session, token: str | None = None) -> None:
        self.base = base
        self.session = session
        self.token = token
        self.host = base.removeprefix("http://")
        self.port = int(self.host.rsplit(":", 1)[1])

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: bytes | str | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        if json_body is not None:
            data = json.dumps(json_body)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if self.token is not None:
            hdrs.setdefault("Authorization", f"Bearer {self.token}")
        resp = self.session.request(
            method, self.base + path, params=params, data=data, headers=hdrs, timeout=15
        )
        openapi_check.check(method, path, params, resp.status_code, resp.headers, resp.content)
        return Reply(resp.status_code, _json_or_none(resp.text), resp.headers, resp.text)


def strict_json(text: str) -> Any:
    """The body as JSON proper: NaN and Infinity are not JSON."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} in the body: {text[:200]}")

    return json.loads(text, parse_constant=refuse)


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """`python examples/server/app.py` with PORT and DB (a file or a URL)
    set, as `make demo` runs it; with `serve=True`, the line of `make serve`
    with HOST, PORT, DB and WORKERS (and `env`) set, and an admin key made
    in the store first (`admin_token`; `headers` carry it)."""

    def __init__(
        self,
        db: Path | str,
        log: Path,
        *,
        serve: bool = False,
        workers: int = 2,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.db = db
        self.log_path = log
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.host = f"127.0.0.1:{self.port}"
        self.workers = workers if serve else 1
        full_env = {
            **os.environ,
            "PORT": str(self.port),
            "DB": str(db),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.admin_token: str | None = None
        if serve:
            self.admin_token = self.add_key(admin="tests")
        self._log = open(log, "wb")  # closed in stop()
        if serve:
            line = serve_line(host="127.0.0.1", port=self.port, db=str(db), workers=workers)
            # One simple command: bash execs it, so the pid is the server's.
            command = ["bash", "-c", line]
            cwd = REPO
        else:
            command = [sys.executable, str(SERVER_DIR / "app.py")]
            cwd = log.parent
        self.proc = subprocess.Popen(
            command, env=full_env, stdout=self._log, stderr=subprocess.STDOUT, cwd=str(cwd)
        )
        self._wait_ready()

    def add_key(self, client_id: str | None = None, *, admin: str | None = None) -> str:
        """A new key in the server's store (as manage.py makes one): its token.
        The running server accepts it at once."""
        with ingest.Ingestor(str(self.db)) as ing:
            return str(ing.add_key(client_id, admin=admin)["token"])

    @property
    def headers(self) -> dict[str, str]:
        """The admin key's Authorization header under `make serve`; none for the demo."""
        return {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else {}

    def api(self, session: requests.Session, token: str | None = None) -> HttpApi:
        """This server over HTTP, as `token` (default: the admin key under `make serve`)."""
        return HttpApi(self.base, session, token or self.admin_token)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with requests.get(self.base + "/api/health", timeout=1) as r:
                    if r.status_code == 200:
                        return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not start on {self.base}:\n{self.log_text()}")

    def stop(self) -> int | None:
        """SIGTERM, as a service manager stops it; the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode


@contextmanager
def postgres_schema(prefix: str) -> Iterator[str]:
    """A store URL on a schema of its own on $INGEST_TEST_POSTGRES, dropped
    afterwards. Unreachable fails under CI and skips elsewhere, as the
    README says of every PostgreSQL half."""
    try:
        admin = psycopg.connect(POSTGRES, autocommit=True)
    except psycopg.OperationalError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {POSTGRES} is unreachable under CI: {e}")
        pytest.skip(f"PostgreSQL at {POSTGRES} is unreachable: {e}")
    schema = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{POSTGRES}{'&' if '?' in POSTGRES else '?'}schema={schema}"
    finally:
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.close()


def redis_url() -> str:
    """$INGEST_TEST_REDIS (default the local Redis, database 0), checked to
    answer. Unreachable fails under CI and skips elsewhere, as PostgreSQL does;
    .ci/run starts one when the machine has none. Tests keep to keys of their own."""
    url = os.environ.get("INGEST_TEST_REDIS", REDIS)
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=2) as client:
            client.ping()
    except redis.RedisError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {url} is unreachable under CI: {e}")
        pytest.skip(f"Redis at {url} is unreachable: {e}")
    return url


@contextmanager
def store_on(backend: str, directory: Path) -> Iterator[Path | str]:
    """Where a server keeps its events: a SQLite file in `directory`, or a
    fresh PostgreSQL schema."""
    if backend == "sqlite":
        yield directory / "store.db"
    else:
        with postgres_schema(backend) as url:
            yield url


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    app = addressed(create_app(tmp_path / "test.db"))
    app.config["TESTING"] = True
    yield app
    app.extensions["ingest"].close()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    d = tmp_path_factory.mktemp("live")
    server = ServerProcess(d / "live.db", d / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def serve_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`make serve` with two workers over one SQLite file."""
    d = tmp_path_factory.mktemp("serve")
    server = ServerProcess(d / "serve.db", d / "server.log", serve=True, workers=2)
    yield server
    server.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "fresh.db", tmp_path / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def http_session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.fixture(params=["flask", "http"])
def api(request: pytest.FixtureRequest, http_session: requests.Session) -> Iterator[Any]:
    """The same test against the app in-process and the real server over HTTP.
    The real server is shared by the tests, so tests use their own client ids
    and leave the failure switch off."""
    if request.param == "flask":
        a: Any = FlaskApi(request.getfixturevalue("app"))
    else:
        a = HttpApi(request.getfixturevalue("live_server").base, http_session)
    yield a
    a.request("POST", "/api/simulate-failure", json_body={"enabled": False})


@pytest.fixture(params=["flask", "demo", "serve"])
def any_api(request: pytest.FixtureRequest, http_session: requests.Session) -> Iterator[Any]:
    """The same test through Flask's test client, against `make demo` and
    against `make serve` (two workers)."""
    if request.param == "flask":
        a: Any = FlaskApi(request.getfixturevalue("app"))
    else:
        server = request.getfixturevalue(
            "live_server" if request.param == "demo" else "serve_server"
        )
        a = server.api(http_session)
    yield a
    disarm_every_worker(a)


def disarm_every_worker(api: Any) -> None:
    """Turn the failure switch off in every worker: under `make serve` each
    has its own, and each request reaches one of them."""
    workers = 1

    def disarm() -> int:
        nonlocal workers
        r = api.request("POST", "/api/simulate-failure", json_body={"enabled": False})
        assert r.status == 200, r.text
        workers = r.body["workers"]
        return int(r.body["worker"])

    seen = until_each_worker_answered(disarm, lambda seen: len(seen) >= workers)
    assert len(seen) >= workers, f"only workers {seen} answered"


def until_each_worker_answered(
    ask: Callable[[], int], enough: Callable[[set[int]], bool], tries: int = 1000
) -> set[int]:
    """The workers that answered `ask` (which returns the answering worker),
    asking until `enough` of them have or `tries` run out.

    Which worker accepts a connection is the kernel's choice, and on a busy
    machine it has handed one worker every one of a hundred back-to-back
    requests; after the first few, a short pause between asks lets an idle
    worker reach accept first."""
    seen: set[int] = set()
    for i in range(tries):
        seen.add(ask())
        if enough(seen):
            break
        if i >= 20:
            time.sleep(0.01)
    return seen


def event(client: str, *, metric: str = "sales", value: Any = 1200, ts: str = "2024-01-01") -> dict:
    return {"source": client, "payload": {"metric": metric, "value": value, "timestamp": ts}}


@pytest.fixture
def uid() -> str:
    return "t-" + uuid.uuid4().hex[:12]


def _load_scenario_rule() -> Callable[[], list[tuple[str, Path]]]:
    """``scenario_files`` of ``tests/scenarios/files.py``, the one rule for
    which scenario files the Python suites run."""
    rule = REPO / "tests" / "scenarios" / "files.py"
    spec = importlib.util.spec_from_file_location("scenario_rule", rule)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return cast(Callable[[], list[tuple[str, Path]]], module.scenario_files)


scenario_files = _load_scenario_rule()


def load_scenario(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text())
