//! Submissions: one event, a batch, a dry run, the typed fast path, and
//! reprocessing the dead letters.

use std::ffi::c_char;

use ingest_core::{Fields, Outcome, PruneRequest};

use crate::error::IngestStatus;
use crate::handle::{ingestor, json_call, IngestHandle};
use crate::panic::boundary;
use crate::strings::{json_string, opt_str_arg, out_arg, str_arg, write_out};

/// What became of one event submitted on the fast path.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// C names INGEST_ACCEPTED, ...: see IngestStatus.
#[allow(clippy::enum_variant_names)]
pub enum IngestOutcomeStatus {
    /// Stored as a new event; `id` is its id.
    IngestAccepted = 0,
    /// The same event is already stored under `id`; nothing changed.
    IngestDuplicate = 1,
    /// The event failed the rules and is kept in the dead-letter store;
    /// `reason_count` reasons, listed by ingest_rejected_json().
    IngestRejected = 2,
    /// The event's key matches the event stored under `id`, whose canonical
    /// fields differ (`reason_count` of them); nothing changed. The JSON
    /// calls list each field with the stored and the sent value.
    IngestConflict = 3,
}

/// The answer of ingest_submit_fields(), without JSON.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestOutcome {
    /// What became of the event.
    pub status: IngestOutcomeStatus,
    /// The stored event's id (ids start at 1): the new event, or the one a
    /// duplicate or a conflict matched; 0 when rejected.
    pub id: i64,
    /// How many reasons the event was rejected for, or fields it conflicts
    /// in; 0 otherwise.
    pub reason_count: u32,
}

impl From<&Outcome> for IngestOutcome {
    fn from(o: &Outcome) -> Self {
        let status = match o {
            Outcome::Accepted { .. } => IngestOutcomeStatus::IngestAccepted,
            Outcome::Duplicate { .. } => IngestOutcomeStatus::IngestDuplicate,
            Outcome::Conflict { .. } => IngestOutcomeStatus::IngestConflict,
            Outcome::Rejected { .. } => IngestOutcomeStatus::IngestRejected,
        };
        IngestOutcome {
            status,
            id: o.id().unwrap_or(0),
            reason_count: u32::try_from(o.reasons().len()).unwrap_or(u32::MAX),
        }
    }
}

/// Submit one raw event (JSON text: a flat object or the envelope
/// `{"source": ..., "payload": {...}}`).
///
/// A rejected event is ::INGEST_OK with `"status": "rejected"`: rejections
/// are outcomes, not errors. Text that does not parse is
/// ::INGEST_INVALID_ARGUMENT. On a storage or injected error nothing of the
/// call was kept (except after the `after_commit` failure point) and the
/// same call may be retried.
///
/// @param h                the store.
/// @param event_json       the raw event.
/// @param out_outcome_json receives `{"status", "id", "event", "reasons"}`
///                         on success; `status` is "accepted", "duplicate" or
///                         "rejected". Owned by the caller: free with
///                         ingest_string_free().
///
/// Thread-safe.
///
/// # Safety
/// `h` is NULL or a live handle; `event_json` is NULL or NUL-terminated;
/// `out_outcome_json` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn ingest_submit_json(
    h: *const IngestHandle,
    event_json: *const c_char,
    out_outcome_json: *mut *mut c_char,
) -> IngestStatus {
    unsafe {
        json_call(
            h,
            (event_json, "event_json"),
            (out_outcome_json, "out_outcome_json"),
            |ing, text| ing.submit_json(text),
        )
    }
}

/// Submit a JSON array of raw events in one transaction: one outcome per
/// input, in order; a repeat inside the batch is a duplicate of the first.
/// On an error nothing of the batch was kept.
///
/// @param h                 the store.
/// @param events_json_array the raw events, a JSON array (anything else is
///                          ::INGEST_INVALID_ARGUMENT).
/// @param out_outcomes_json receives a JSON array of outcomes (as
///                          ingest_submit_json()) on success. Owned by the
///                          caller: free with ingest_string_free().
///
/// Thread-safe.
///
/// # Safety
/// As ingest_submit_json().
#[no_mangle]
pub unsafe extern "C" fn ingest_submit_batch_json(
    h: *const IngestHandle,
    events_json_array: *const c_char,
    out_outcomes_json: *mut *mut c_char,
) -> IngestStatus {
    unsafe {
        json_call(
            h,
            (events_json_array, "events_json_array"),
            (out_outcomes_json, "out_outcomes_json"),
            |ing, text| ing.submit_batch_json(text),
        )
    }
}

/// Dry run: what ingest_submit_json() would answer for this event, storing
/// nothing. An "accepted" answer has `"id": null`; a "duplicate" has the id
/// already stored.
///
/// @param h                the store.
/// @param event_json       the raw event.
/// @param out_outcome_json receives the outcome on success. Owned by the
///                         caller: free with ingest_string_free().
///
/// Thread-safe.
///
/// # Safety
/// As ingest_submit_json().
#[no_mangle]
pub unsafe extern "C" fn ingest_check_json(
    h: *const IngestHandle,
    event_json: *const c_char,
    out_outcome_json: *mut *mut c_char,
) -> IngestStatus {
    unsafe {
        json_call(
            h,
            (event_json, "event_json"),
            (out_outcome_json, "out_outcome_json"),
            |ing, text| ing.check_json(text),
        )
    }
}

/// The fast path for a hot loop: submit one event from C values, without
/// JSON, under the same rules, keys and storage as ingest_submit_json().
///
/// @param h            the store.
/// @param client_id    the client; required (an empty one is rejected).
/// @param metric       the metric, or NULL for the rules' default ("unknown").
/// @param amount       the amount; NaN and infinities are rejected.
/// @param timestamp_ms the instant, in milliseconds since 1970-01-01T00:00:00Z.
/// @param event_id     the client's idempotency key, or NULL.
/// @param out          receives the outcome on success. Caller-allocated;
///                     nothing to free.
///
/// Thread-safe.
///
/// # Safety
/// `h` is NULL or a live handle; the strings are NULL or NUL-terminated;
/// `out` is NULL or valid for writing one ::IngestOutcome.
#[no_mangle]
pub unsafe extern "C" fn ingest_submit_fields(
    h: *const IngestHandle,
    client_id: *const c_char,
    metric: *const c_char,
    amount: f64,
    timestamp_ms: i64,
    event_id: *const c_char,
    out: *mut IngestOutcome,
) -> IngestStatus {
    boundary(|| {
        let ing = unsafe { ingestor(h) }?;
        let fields = Fields {
            client_id: unsafe { str_arg(client_id, "client_id") }?,
            metric: unsafe { opt_str_arg(metric, "metric") }?,
            amount,
            timestamp_ms,
            event_id: unsafe { opt_str_arg(event_id, "event_id") }?,
        };
        let out = out_arg(out, "out")?;
        let outcome = ing.submit_fields(&fields)?;
        write_out(out, IngestOutcome::from(&outcome));
        Ok(())
    })
}

/// Normalise every stored rejection again under the rules this handle was
/// opened with. Those that pass are stored (still deduplicated) and leave
/// the dead-letter store; the rest stay, with the current reasons.
///
/// @param h               the store.
/// @param out_report_json receives `{"accepted", "duplicate", "rejected"}`
///                        counts on success. Owned by the caller: free with
///                        ingest_string_free().
///
/// Thread-safe.
///
/// # Safety
/// `h` is NULL or a live handle; `out_report_json` is NULL or valid for
/// writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn ingest_reprocess_rejected_json(
    h: *const IngestHandle,
    out_report_json: *mut *mut c_char,
) -> IngestStatus {
    boundary(|| {
        let ing = unsafe { ingestor(h) }?;
        let out = out_arg(out_report_json, "out_report_json")?;
        let report = ing.reprocess_rejected()?;
        write_out(out, json_string(&report)?);
        Ok(())
    })
}

/// Remove the events before a time (and dead letters received before it),
/// keeping every rollup: aggregates over whole buckets stay exact. Refused
/// (INGEST_INVALID_ARGUMENT) unless the store's rules set `max_age` and
/// `before` is at or before now minus `max_age`, so that a retry of a
/// removed event is rejected `too_old` and never counted twice.
///
/// @param h               the store.
/// @param request_json    `{"before": <time>, "archive": <path or null>}`:
///                        `before` in any accepted timestamp form; with
///                        `archive`, the removed rows are written to that
///                        file first (NDJSON, gzip when it ends in `.gz`),
///                        synced before each chunk is removed. Run again
///                        after an interruption with the same archive.
/// @param out_report_json receives `{"events", "rejected", "before",
///                        "archive", "bytes_before", "bytes_after"}` on
///                        success. Owned by the caller: free with
///                        ingest_string_free().
///
/// Thread-safe.
///
/// # Safety
/// `h` is NULL or a live handle; `request_json` is NULL or a NUL-terminated
/// string; `out_report_json` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn ingest_prune_json(
    h: *const IngestHandle,
    request_json: *const c_char,
    out_report_json: *mut *mut c_char,
) -> IngestStatus {
    boundary(|| {
        let ing = unsafe { ingestor(h) }?;
        let request = PruneRequest::from_json(unsafe { str_arg(request_json, "request_json") }?)?;
        let out = out_arg(out_report_json, "out_report_json")?;
        let report = ing.prune(request.before, request.archive.as_deref())?;
        write_out(out, json_string(&report)?);
        Ok(())
    })
}
