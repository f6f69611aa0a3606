"""The serving stack's floor for the HTTP benchmark (benches/http/bench.py):
one POST endpoint that parses the JSON body and answers it, and nothing
else (no store, no guard, no metrics), served by `make serve`'s own gunicorn
configuration: serve.py's Settings, options() and Server, so the same
workers, threads, keepalive and logging as the app it is the floor of. The
environment is read as serve.py reads it (HOST, PORT, WORKERS, THREADS...).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "server"))

from flask import Flask, Response, jsonify, request

import serve


def floor_app() -> Flask:
    app = Flask(__name__)

    @app.post("/api/events")
    def echo() -> Response:
        return jsonify(request.get_json())

    @app.get("/api/health")
    def health() -> Response:
        return jsonify({"status": "ok"})

    return app


class FloorServer(serve.Server):
    def load(self) -> Callable[..., Any]:
        # flask_app stays None: serve.worker_exit then has no store to close.
        return serve.with_read_timeout(floor_app(), self.settings.read_timeout)


def main() -> int:
    made = serve.prepare_metrics_dir()
    master = os.getpid()
    try:
        settings = serve.Settings()
        serve.raise_open_files_limit(settings.workers * (settings.threads + 64) + 64)
        print(f"floor on {settings.host}:{settings.port} ({settings.workers} workers)", flush=True)
        FloorServer(settings).run()
        return 0
    finally:
        if made is not None and os.getpid() == master:
            shutil.rmtree(made, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
