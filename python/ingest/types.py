"""The shapes of the dicts that ``ingest`` returns, for type checkers.

These are plain ``TypedDict`` declarations: at runtime every result is an
ordinary ``dict``. Timestamps are RFC 3339 UTC text with milliseconds
(``2024-01-01T00:00:00.000Z``).
"""

from datetime import date
from typing import Any, Literal, TypedDict

__all__ = [
    "Aggregate",
    "ClientStats",
    "CopyReport",
    "Event",
    "FailPointName",
    "Group",
    "GroupBy",
    "Instant",
    "KeyInfo",
    "KeyScope",
    "NewKey",
    "OutcomeDict",
    "Principal",
    "PruneReport",
    "RawEvent",
    "Reason",
    "RejectedEvent",
    "ReprocessReport",
    "Stats",
    "Status",
    "StoredEvent",
    "Totals",
]

#: An event as ``submit`` takes it: a dict, or its JSON text.
RawEvent = dict[str, Any] | str
#: A point in time as the queries take it: RFC 3339 or date text, epoch
#: seconds or milliseconds, a ``date``, or a ``datetime`` (naive means UTC).
Instant = str | int | float | date
GroupBy = Literal["hour", "day", "month", "client_id", "client", "metric"]
FailPointName = Literal["before_insert", "after_insert", "after_commit", "aggregate"]
Status = Literal["accepted", "duplicate", "conflict", "rejected"]


class Event(TypedDict):
    """A normalised event."""

    client_id: str
    metric: str
    amount: float
    timestamp: str
    attributes: dict[str, Any]
    event_id: str | None


class Reason(TypedDict):
    """Why an event was rejected, or a field it conflicts in: a stable code,
    the canonical field it concerns (empty for the event as a whole), and a
    message for people."""

    code: str
    field: str
    message: str


class OutcomeDict(TypedDict):
    """``Outcome.to_dict()``: the same four keys whatever the status."""

    status: Status
    id: int | None
    event: Event | None
    reasons: list[Reason]


class StoredEvent(Event):
    """An event as stored (``Ingestor.events``)."""

    id: int
    received_at: str
    rules_version: int


class RejectedEvent(TypedDict):
    """A stored rejection (``Ingestor.rejected``): the raw input as received."""

    id: int
    raw: Any
    reasons: list[Reason]
    rules_version: int
    received_at: str
    attempts: int
    raw_bytes: int
    raw_exact: bool
    #: The client it belongs to: an ``as_client`` caller's, or the client
    #: the input names; ``None`` when neither is known (and for every dead
    #: letter stored before clients were recorded).
    client_id: str | None


class Totals(TypedDict):
    count: int
    sum: float
    avg: float | None
    min: float | None
    max: float | None


class Group(Totals, total=False):
    """One group of a grouped aggregate: its key fields are present when
    grouped by them. ``bucket_local`` (the bucket's start as local time with
    its offset, ``"2024-03-31T00:00:00+01:00"``) only when grouped by a time
    bucket in a zone (``tz``)."""

    bucket: str
    bucket_local: str
    client_id: str
    metric: str


class _AggregateBase(Totals):
    stale: bool
    computed_at: str


class Aggregate(_AggregateBase, total=False):
    """``Ingestor.aggregate``: ``groups`` is present when the query groups."""

    groups: list[Group]


class ReprocessReport(TypedDict):
    accepted: int
    duplicate: int
    conflict: int
    rejected: int


class CopyReport(TypedDict):
    copied: int
    already_there: int
    rejected: int
    now_accepted: int
    pruned: int


class KeyScope(TypedDict, total=False):
    """What a key may do: ``{"kind": "client", "client_id"}`` or
    ``{"kind": "admin", "name"}``."""

    kind: Literal["client", "admin"]
    client_id: str
    name: str


class NewKey(TypedDict):
    """A key just made by ``add_key``: its token is shown here only."""

    id: str
    token: str
    scope: KeyScope


class KeyInfo(TypedDict):
    """A stored key as ``keys`` lists it (never its secret)."""

    id: str
    scope: KeyScope
    created_at: str
    revoked_at: str | None


class Principal(TypedDict):
    """Whose token ``authenticate`` found it to be."""

    key_id: str
    scope: KeyScope


class PruneReport(TypedDict):
    """What ``prune`` removed, and the store's size before and after."""

    events: int
    rejected: int
    before: str
    archive: str | None
    bytes_before: int
    bytes_after: int


class Stats(TypedDict):
    accepted: int
    duplicate: int
    conflict: int
    rejected: int
    failed: int
    stored_events: int
    stored_rejected: int
    evicted_rejected: int


class ClientStats(TypedDict):
    """``stats(as_client=...)``: what one client has in the store."""

    client_id: str
    stored_events: int
    stored_rejected: int
