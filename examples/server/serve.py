"""Run the example server in production: `make serve`, or, with the package
and the server's requirements in .venv, `python examples/server/serve.py`.

gunicorn with WORKERS processes (default 2) of gthread workers over one
store; each worker opens its own Ingestor after the fork (a SQLite file that
several processes share, or a PostgreSQL URL). From the environment:

  HOST (default 127.0.0.1), PORT (8000), DB (./data.db; a file or a URL),
  DURABILITY (full or normal, default full), WORKERS (2), THREADS
  (connections each worker serves at once, 1024),
  READ_TIMEOUT (seconds a request body may pause, 30), ALLOWED_HOSTS
  (default HOST, localhost and 127.0.0.1, each with PORT), MAX_BATCH_ITEMS,
  RATE_LIMIT and REDIS_URL (see ingest_server/limits.py), and
  PROMETHEUS_MULTIPROC_DIR (where the workers keep their metrics; emptied of
  an earlier run's at each start; default a temporary directory removed
  when the server stops).

Every request but the page, /api/health and /api/openapi.json needs an API
key (`Authorization: Bearer TOKEN`; manage.py makes them).

SIGTERM stops it gracefully: no new connections, requests in flight are
answered, then each worker closes its store.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ingest
from gunicorn.app.base import BaseApplication

# How gunicorn closes a connection after its answer (RFC 9112 section 9.6:
# send FIN, then read what the client still sends until it closes): at most
# this long and this much, as its util.close_graceful.
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 << 10

# ingest_server and prometheus_client are imported in functions, after
# prepare_metrics_dir: prometheus-client chooses at its first import whether
# metric values live in the process or in PROMETHEUS_MULTIPROC_DIR, and the
# workers, forked from this process, keep that choice.
METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"

# Seconds a stopping worker has to answer the requests in flight before the
# master kills it: a body may pause READ_TIMEOUT seconds, then its answer
# goes out.
GRACE_AFTER_READ_TIMEOUT = 5


class ConfigError(Exception):
    pass


def _int_env(name: str, default: int, lo: int, hi: int) -> int:
    raw = os.environ.get(name) or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer from {lo} to {hi}, not {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be an integer from {lo} to {hi}, not {raw!r}")
    return value


def _seconds_env(name: str, default: float) -> float:
    raw = os.environ.get(name) or str(default)
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not 0 < value <= 3600:
        raise ConfigError(f"{name} must be more than 0 and at most 3600 seconds, not {raw!r}")
    return value


class Settings:
    def __init__(self) -> None:
        from ingest_server import MAX_BATCH_ITEMS
        from ingest_server.guard import allowed_hosts_from_env
        from ingest_server.limits import rate_limit_from_env

        self.host = os.environ.get("HOST") or "127.0.0.1"
        self.port = _int_env("PORT", 8000, 1, 65535)
        self.db = os.environ.get("DB") or "data.db"
        self.durability = os.environ.get("DURABILITY") or "full"
        if self.durability not in ("full", "normal"):
            raise ConfigError(f"DURABILITY must be full or normal, not {self.durability!r}")
        self.workers = _int_env("WORKERS", 2, 1, 64)
        self.threads = _int_env("THREADS", 1024, 1, 10_000)
        self.read_timeout = _seconds_env("READ_TIMEOUT", 30)
        self.max_batch_items = _int_env("MAX_BATCH_ITEMS", MAX_BATCH_ITEMS, 1, 10_000_000)
        self.allowed_hosts = allowed_hosts_from_env(self.host, self.port)
        try:
            self.rate_limit = rate_limit_from_env(os.environ.get("RATE_LIMIT"))
        except ValueError as e:
            raise ConfigError(str(e)) from None
        # Read here and handed to every worker: one count per key across them.
        self.redis_url = os.environ.get("REDIS_URL") or ""


def with_read_timeout(app: Callable[..., Any], seconds: float) -> Callable[..., Any]:
    """The app, with a timeout on every read of the request's socket: a body
    that stops arriving frees its thread after `seconds` (the app answers
    408), where gunicorn alone would wait for it forever."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        sock = environ.get("gunicorn.socket")
        if sock is not None:
            sock.settimeout(seconds)
        return app(environ, start_response)

    return wrapped


def linger_then_shut(sock: socket.socket) -> None:
    """Close the way gunicorn does, here: send FIN, read what the client
    still sends until it closes (LINGER_SECONDS, LINGER_BYTES at most), then
    shut the reading side too, so that gunicorn's own close, which follows,
    finds nothing to wait for."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:  # closed or reset already: nothing to wait for
        return
    try:
        deadline = time.monotonic() + LINGER_SECONDS
        drained = 0
        while drained < LINGER_BYTES:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            data = sock.recv(4096)
            if not data:
                break
            drained += len(data)
    except OSError:  # the timeout (TimeoutError is one), or the client gone
        pass
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RD)


def post_request(worker: Any, req: Any, environ: dict[str, Any], resp: Any) -> None:
    # gunicorn closes a connection in the worker's main loop, the one that
    # accepts connections, and waits there up to 2 s for the client's FIN. A
    # client answered before its body was read (415, 421, 429, 408) that
    # then sends nothing more would stop the worker accepting anything for
    # 2 s each: a thousand of them took /api/health down. So the wait is
    # done here, in the request's own thread, once the answer is sent
    # (every answer closes its connection: keepalive is 0).
    if resp is None or not resp.headers_sent or not resp.should_close():
        return
    sock = environ.get("gunicorn.socket")
    if sock is not None:
        linger_then_shut(sock)


def raise_open_files_limit(needed: int) -> None:
    """Each connection a worker holds is a file descriptor; a soft limit of
    1024 (a common default) would refuse connections long before THREADS."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.flask_app: Any = None
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        for key, value in options(s).items():
            self.cfg.set(key, value)

    def load(self) -> Callable[..., Any]:
        from ingest_server import create_app

        # In each worker, after the fork: its own Ingestor, its own switch.
        s = self.settings
        self.flask_app = create_app(
            s.db,
            durability=s.durability,
            allowed_hosts=s.allowed_hosts,
            max_batch_items=s.max_batch_items,
            workers=s.workers,
            rate_limit=s.rate_limit,
            redis_url=s.redis_url,
            require_keys=True,
        )
        return with_read_timeout(self.flask_app, s.read_timeout)


def worker_exit(arbiter: Any, worker: Any) -> None:
    app = getattr(worker.app, "flask_app", None)
    if app is not None:
        app.extensions["ingest"].close()
        worker.log.info("worker %s: store closed", worker.pid)


def child_exit(arbiter: Any, worker: Any) -> None:
    # In the master, once a worker is gone: prometheus-client's bookkeeping
    # for a dead process (its live gauges' files go; its counters stay, and
    # are still added up).
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def prepare_metrics_dir() -> Path | None:
    """Set PROMETHEUS_MULTIPROC_DIR for the workers, with no values of an
    earlier run in it (they would be added to this run's): the directory
    given is created when missing and emptied of prometheus-client's files,
    nothing else of it touched. None given: a new temporary directory,
    returned for the caller to remove."""
    given = os.environ.get(METRICS_DIR)
    if not given:
        made = Path(tempfile.mkdtemp(prefix="ingest-metrics-"))
        os.environ[METRICS_DIR] = str(made)
        return made
    directory = Path(given)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # counter_<pid>.db, histogram_<pid>.db, gauge_<mode>_<pid>.db
        for old in directory.glob("*.db"):
            old.unlink()
    except OSError as e:
        raise ConfigError(f"{METRICS_DIR} {given!r} cannot be used: {e}") from None
    return None


def options(s: Settings) -> dict[str, Any]:
    from ingest_server.guard import host_with_port

    return {
        "bind": [host_with_port(s.host, s.port)],
        "workers": s.workers,
        # gthread: a thread per request, so a slow body holds one thread of
        # one worker, never the worker (sync workers hold the whole process).
        "worker_class": "gthread",
        "threads": s.threads,
        # A worker stops accepting when its threads are all taken: a
        # connection it accepts always has a thread, and the next goes to
        # another worker. So no connection is kept open idle between
        # requests (gthread parks those beyond `threads`); nginx opens one
        # per request to its upstream by default anyway.
        "worker_connections": s.threads,
        "keepalive": 0,
        "graceful_timeout": math.ceil(s.read_timeout) + GRACE_AFTER_READ_TIMEOUT,
        # gunicorn 25+ opens an admin socket at one path per user: a second
        # server would fight over it, and nothing here uses it.
        "control_socket_disable": True,
        "accesslog": "-",
        # gunicorn's default format without %(u)s: a token sent as an HTTP
        # Basic user name (curl -u TOKEN:) would be written to the log.
        "access_log_format": '%(h)s %(l)s - %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
        "errorlog": "-",
        "proc_name": "ingest-serve",
        "post_request": post_request,
        "worker_exit": worker_exit,
        "child_exit": child_exit,
    }


def check_store(db: str) -> tuple[str, int]:
    """Open the store once before any worker does: a bad path or URL is one
    clear message, and a new store's schema is made by one process. The
    store's name (a URL's password hidden) and how many valid keys it has."""
    with ingest.Ingestor(db) as ing:
        return ing.path, sum(1 for k in ing.keys() if not k["revoked_at"])


def main() -> int:
    try:
        made = prepare_metrics_dir()
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    master = os.getpid()
    try:
        return serve()
    finally:
        # A worker leaves through here too (gunicorn ends it with sys.exit in
        # the stack it was forked from): only the master removes the
        # directory, once the workers it still serves are gone.
        if made is not None and os.getpid() == master:
            shutil.rmtree(made, ignore_errors=True)


def serve() -> int:
    from ingest_server.guard import host_with_port

    try:
        settings = Settings()
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    try:
        shown, keys = check_store(settings.db)
    except ingest.IngestError as e:
        print(f"the store {settings.db!r} cannot be opened: {e}", file=sys.stderr)
        return 2
    raise_open_files_limit(settings.workers * (settings.threads + 64) + 64)
    base = f"http://{host_with_port(settings.host, settings.port)}/"
    limit = f"{settings.rate_limit}/s a key" if settings.rate_limit else "none"
    print(
        f"ingest server on {base} ({settings.workers} workers of {settings.threads} "
        f"threads; database: {shown}; hosts answered: {', '.join(settings.allowed_hosts)}; "
        f"rate limit: {limit}, counted in {'Redis' if settings.redis_url else 'each worker'}; "
        f"metrics in {os.environ[METRICS_DIR]})",
        flush=True,
    )
    if keys == 0:
        print(
            "no API keys in this store yet: every request but the page, /api/health and "
            "/api/openapi.json is answered 401 until one is made with "
            "`python examples/server/manage.py add-key CLIENT_ID` with the same DB "
            "(a running server accepts it at once)",
            flush=True,
        )
    # gunicorn's master ends with sys.exit: main's finally still runs.
    Server(settings).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
