"""Type stubs for the compiled module ``ingest._ingest``."""

import os
from collections.abc import Iterable
from typing import Any, ClassVar, Final, Literal, final, overload

from ingest.types import (
    Aggregate,
    ClientStats,
    CopyReport,
    Event,
    FailPointName,
    GroupBy,
    Instant,
    KeyInfo,
    NewKey,
    OutcomeDict,
    Principal,
    PruneReport,
    RawEvent,
    Reason,
    RejectedEvent,
    ReprocessReport,
    Stats,
    StoredEvent,
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

__version__: Final[str]
CORE_VERSION: Final[str]
MAX_DEPTH: Final[int]

class IngestError(Exception):
    kind: str

class RulesError(IngestError): ...
class InvalidArgument(IngestError, ValueError): ...

class InjectedFailure(IngestError):
    point: FailPointName

class StorageError(IngestError): ...
class BusyError(StorageError): ...
class IoError(StorageError): ...
class CorruptError(StorageError): ...
class FullError(StorageError): ...
class ReadOnlyError(StorageError): ...
class UnavailableError(StorageError): ...
class Forbidden(IngestError): ...

@final
class Outcome:
    @property
    def status(self) -> Literal["accepted", "duplicate", "conflict", "rejected"]: ...
    @property
    def id(self) -> int | None: ...
    @property
    def event(self) -> Event | None: ...
    @property
    def reasons(self) -> list[Reason]: ...
    def to_dict(self) -> OutcomeDict: ...
    def __eq__(self, other: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class Ingestor:
    def __new__(
        cls,
        path: str | os.PathLike[str] = ":memory:",
        *,
        rules: dict[str, Any] | str | None = None,
        durability: Literal["full", "normal"] | None = None,
        busy_timeout: float | None = None,
        max_event_bytes: int | None = None,
        max_dead_letters: int | None = None,
        max_dead_letter_bytes: int | None = None,
    ) -> Ingestor: ...
    def submit(self, event: RawEvent, *, as_client: str | None = None) -> Outcome: ...
    def submit_batch(self, events: str | Iterable[RawEvent], *, as_client: str | None = None) -> list[Outcome]: ...
    def check(self, event: RawEvent) -> Outcome: ...
    def aggregate(
        self,
        *,
        client_id: str | None = None,
        metric: str | None = None,
        start: Instant | None = None,
        end: Instant | None = None,
        group_by: GroupBy | list[GroupBy] | tuple[GroupBy, ...] | None = None,
        tz: str | None = None,
        as_client: str | None = None,
    ) -> Aggregate: ...
    def events(
        self,
        *,
        client_id: str | None = None,
        metric: str | None = None,
        start: Instant | None = None,
        end: Instant | None = None,
        limit: int = 100,
        offset: int = 0,
        as_client: str | None = None,
    ) -> list[StoredEvent]: ...
    def rejected(self, *, limit: int = 100, offset: int = 0, as_client: str | None = None) -> list[RejectedEvent]: ...
    def reprocess_rejected(self) -> ReprocessReport: ...
    def prune(self, *, before: Instant, archive: str | os.PathLike[str] | None = None) -> PruneReport: ...
    def copy_to(self, target: Ingestor) -> CopyReport: ...
    def add_key(self, client_id: str | None = None, *, admin: str | None = None) -> NewKey: ...
    def keys(self) -> list[KeyInfo]: ...
    def revoke_key(self, id: str) -> bool: ...
    def authenticate(self, token: str) -> Principal | None: ...
    @overload
    def stats(self, *, as_client: None = None) -> Stats: ...
    @overload
    def stats(self, *, as_client: str) -> ClientStats: ...
    def simulate_failure(self, point: FailPointName = "after_insert", times: int = 1) -> None: ...
    def armed_failure(self) -> tuple[FailPointName, int] | None: ...
    def clear_failure(self) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def path(self) -> str: ...
    @property
    def rules(self) -> dict[str, Any]: ...
    @property
    def rules_version(self) -> int: ...
    @property
    def durability(self) -> Literal["full", "normal"]: ...
    def __enter__(self) -> Ingestor: ...
    def __exit__(self, *exc: object) -> Literal[False]: ...
