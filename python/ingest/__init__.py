"""Normalise metric events from unreliable clients, store each real event
exactly once in SQLite, and answer exact aggregates.

>>> import ingest
>>> with ingest.Ingestor() as ing:
...     event = {"source": "clientA", "payload": {"metric": "sales", "value": 1200, "timestamp": "2024-01-01"}}
...     ing.submit(event)
<Outcome accepted id=1 client_id='clientA' metric='sales' amount=1200.0 timestamp=2024-01-01T00:00:00.000Z>

Every rule lives in the Rust core (``ingest-core``); this package converts
Python values and errors to and from it, and releases the GIL while the core
works. See ``Ingestor`` and ``Outcome``.
"""

from ._ingest import (
    CORE_VERSION,
    MAX_DEPTH,
    BusyError,
    CorruptError,
    Forbidden,
    FullError,
    IngestError,
    Ingestor,
    InjectedFailure,
    InvalidArgument,
    IoError,
    Outcome,
    ReadOnlyError,
    RulesError,
    StorageError,
    UnavailableError,
    __version__,
)

__all__ = [
    "CORE_VERSION",
    "MAX_DEPTH",
    "BusyError",
    "CorruptError",
    "Forbidden",
    "FullError",
    "IngestError",
    "Ingestor",
    "InjectedFailure",
    "InvalidArgument",
    "IoError",
    "Outcome",
    "ReadOnlyError",
    "RulesError",
    "StorageError",
    "UnavailableError",
    "__version__",
]
