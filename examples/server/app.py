"""Run the example server: `python examples/server/app.py`.

DB (default ./data.db; a SQLite file or a postgres:// URL) and PORT
(default 8000) come from the environment.
It binds 127.0.0.1 only: it is a demo with a failure switch anyone can flip,
not something to expose on a network (`make serve`, serve.py, is).
It answers the Host names of ALLOWED_HOSTS (default 127.0.0.1 and localhost
with the port) and refuses cross-site requests, as serve.py does.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from ingest_server import create_app
from ingest_server.guard import allowed_hosts_from_env

HOST = "127.0.0.1"


class QuietPolls(logging.Filter):
    """Drop the access-log lines of the page's own polling and assets, which
    would bury every request a person makes."""

    NOISE = ('"GET /api/stats', '"GET /static/', '"GET /api/events?', '"GET /api/rejected?')

    def filter(self, record: logging.LogRecord) -> bool:
        line = record.getMessage()
        return not any(n in line for n in self.NOISE) or '" 5' in line


def main() -> int:
    db = os.environ.get("DB") or "data.db"
    raw_port = os.environ.get("PORT") or "8000"
    try:
        port = int(raw_port)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        print(f"PORT must be a port number from 1 to 65535, not {raw_port!r}", file=sys.stderr)
        return 2
    try:
        app = create_app(db, allowed_hosts=allowed_hosts_from_env(HOST, port))
    except ValueError as e:  # a setting such as RATE_LIMIT that is not valid
        print(e, file=sys.stderr)
        return 2
    logging.getLogger("werkzeug").addFilter(QuietPolls())
    # SIGTERM (a service manager, `kill`) closes the store cleanly, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    shown = app.extensions["ingest"].db_path  # a URL's password hidden
    print(f"ingest example server on http://{HOST}:{port}/  (database: {shown})", flush=True)
    try:
        app.run(host=HOST, port=port, threaded=True, debug=False, use_reloader=False)
    finally:
        app.extensions["ingest"].close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
