"""Run the example server in production: `make serve`, or, with the package
and the server's requirements in .venv, `python examples/server/serve.py`.

gunicorn with WORKERS processes (default 2) of gthread workers over one
store; each worker opens its own Ingestor after the fork (a SQLite file that
several processes share, or a PostgreSQL URL). From the environment:

  HOST (default 127.0.0.1), PORT (8000), DB (./data.db; a file or a URL),
  WORKERS (2), THREADS (connections each worker serves at once, 1024),
  READ_TIMEOUT (seconds a request body may pause, 30), ALLOWED_HOSTS
  (default HOST, localhost and 127.0.0.1, each with PORT), MAX_BATCH_ITEMS.

SIGTERM stops it gracefully: no new connections, requests in flight are
answered, then each worker closes its store.
"""

from __future__ import annotations

import math
import os
import resource
import sys
from collections.abc import Callable
from typing import Any

import ingest
from gunicorn.app.base import BaseApplication

from ingest_server import MAX_BATCH_ITEMS, create_app
from ingest_server.guard import allowed_hosts_from_env, host_with_port

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
        self.host = os.environ.get("HOST") or "127.0.0.1"
        self.port = _int_env("PORT", 8000, 1, 65535)
        self.db = os.environ.get("DB") or "data.db"
        self.workers = _int_env("WORKERS", 2, 1, 64)
        self.threads = _int_env("THREADS", 1024, 1, 10_000)
        self.read_timeout = _seconds_env("READ_TIMEOUT", 30)
        self.max_batch_items = _int_env("MAX_BATCH_ITEMS", MAX_BATCH_ITEMS, 1, 10_000_000)
        self.allowed_hosts = allowed_hosts_from_env(self.host, self.port)


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
        # In each worker, after the fork: its own Ingestor, its own switch.
        s = self.settings
        self.flask_app = create_app(
            s.db,
            allowed_hosts=s.allowed_hosts,
            max_batch_items=s.max_batch_items,
            workers=s.workers,
        )
        return with_read_timeout(self.flask_app, s.read_timeout)


def worker_exit(arbiter: Any, worker: Any) -> None:
    app = getattr(worker.app, "flask_app", None)
    if app is not None:
        app.extensions["ingest"].close()
        worker.log.info("worker %s: store closed", worker.pid)


def options(s: Settings) -> dict[str, Any]:
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
        "errorlog": "-",
        "proc_name": "ingest-serve",
        "worker_exit": worker_exit,
    }


def check_store(db: str) -> str:
    """Open the store once before any worker does: a bad path or URL is one
    clear message, and a new store's schema is made by one process."""
    with ingest.Ingestor(db) as ing:
        return ing.path


def main() -> int:
    try:
        settings = Settings()
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    try:
        shown = check_store(settings.db)
    except ingest.IngestError as e:
        print(f"the store {settings.db!r} cannot be opened: {e}", file=sys.stderr)
        return 2
    raise_open_files_limit(settings.workers * (settings.threads + 64) + 64)
    base = f"http://{host_with_port(settings.host, settings.port)}/"
    print(
        f"ingest server on {base} ({settings.workers} workers of {settings.threads} "
        f"threads; database: {shown}; hosts answered: {', '.join(settings.allowed_hosts)})",
        flush=True,
    )
    Server(settings).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
