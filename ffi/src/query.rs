//! Reading: aggregates, listings of events and dead letters, stats, rules.

use std::ffi::c_char;

use ingest_core::{EventFilter, Page, Query};

use crate::error::IngestStatus;
use crate::handle::{ingestor, IngestHandle};
use crate::panic::boundary;
use crate::strings::{json_string, opt_str_arg, out_arg, str_arg, write_out};

/// Aggregate the stored events: count, sum, avg, min, max.
///
/// @param h               the store.
/// @param query_json      `{"client_id", "metric", "start", "end", "group_by",
///                        "tz"}`, every key optional (`"{}"` is every event);
///                        `start` is inclusive, `end` exclusive, both any
///                        accepted timestamp text; `group_by` is "hour",
///                        "day", "month", "client_id", "metric" or a list of
///                        them (one time bucket at most); `tz` an IANA time
///                        zone name ("Europe/Berlin") whose local hours, days
///                        and months the time buckets are. Unknown keys and
///                        bad values (unknown zones too) are
///                        ::INGEST_INVALID_ARGUMENT, never an empty result.
/// @param out_result_json receives `{"count", "sum", "avg", "min", "max",
///                        "stale", "computed_at"}` plus `"groups"` (a list,
///                        each with its key fields) when grouped; with `tz`
///                        each group also has `"bucket_local"`, its start as
///                        local time with the offset
///                        (`"2024-03-31T00:00:00+01:00"`). `stale` is
///                        true when the database could not be read and this is
///                        the last result of the same query. Owned by the
///                        caller: free with ingest_string_free().
///
/// Thread-safe.
///
/// # Safety
/// `h` is NULL or a live handle; `query_json` is NULL or NUL-terminated;
/// `out_result_json` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn ingest_aggregate_json(
    h: *const IngestHandle,
    query_json: *const c_char,
    out_result_json: *mut *mut c_char,
) -> IngestStatus {
    boundary(|| {
        let ing = unsafe { ingestor(h) }?;
        let query = Query::from_json(unsafe { str_arg(query_json, "query_json") }?)?;
        let out = out_arg(out_result_json, "out_result_json")?;
        let result = ing.aggregate(&query)?;
        write_out(out, json_string(&result)?);
        Ok(())
    })
}

/// List stored events, newest first.
///
/// @param h           the store.
/// @param filter_json `{"client_id", "metric", "start", "end", "limit",
///                    "offset"}`, every key optional (`limit` 1 to 10000,
///                    default 100), or NULL for the defaults. Unknown keys
///                    and bad values are ::INGEST_INVALID_ARGUMENT.
/// @param out_json    receives a JSON array of `{"id", "client_id", "metric",
///                    "amount", "timestamp", "attributes", "event_id",
///                    "received_at", "rules_version"}`. Owned by the caller:
///                    free with ingest_string_free().
///
/// Thread-safe.
///
/// # Safety
/// `h` is NULL or a live handle; `filter_json` is NULL or NUL-terminated;
/// `out_json` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn ingest_events_json(
    h: *const IngestHandle,
    filter_json: *const c_char,
    out_json: *mut *mut c_char,
) -> IngestStatus {
    boundary(|| {
        let ing = unsafe { ingestor(h) }?;
        let filter = match unsafe { opt_str_arg(filter_json, "filter_json") }? {
            Some(text) => EventFilter::from_json(text)?,
            None => EventFilter::default(),
        };
        let out = out_arg(out_json, "out_json")?;
        let events = ing.events(&filter)?;
        write_out(out, json_string(&events)?);
        Ok(())
    })
}

/// List stored rejections (the dead-letter store), newest first.
///
/// @param h           the store.
/// @param filter_json the page, `{"limit", "offset"}` (both optional), or
///                    NULL for the first 100. Other keys and bad values are
///                    ::INGEST_INVALID_ARGUMENT.
/// @param out_json    receives a JSON array of `{"id", "raw", "reasons",
///                    "rules_version", "received_at", "attempts"}`; each
///                    reason is `{"code", "field", "message"}`. Owned by the
///                    caller: free with ingest_string_free().
///
/// Thread-safe.
///
/// # Safety
/// As ingest_events_json().
#[no_mangle]
pub unsafe extern "C" fn ingest_rejected_json(
    h: *const IngestHandle,
    filter_json: *const c_char,
    out_json: *mut *mut c_char,
) -> IngestStatus {
    boundary(|| {
        let ing = unsafe { ingestor(h) }?;
        let page = match unsafe { opt_str_arg(filter_json, "filter_json") }? {
            Some(text) => Page::from_json(text)?,
            None => Page::default(),
        };
        let out = out_arg(out_json, "out_json")?;
        let rejected = ing.rejected(page)?;
        write_out(out, json_string(&rejected)?);
        Ok(())
    })
}

/// Counts of outcomes answered by this handle since it was opened, and of
/// what the database holds.
///
/// @param h         the store.
/// @param out_json  receives `{"accepted", "duplicate", "conflict", "rejected",
///                  "failed", "stored_events", "stored_rejected",
///                  "evicted_rejected"}`. Owned by the
///                  caller: free with ingest_string_free().
///
/// Thread-safe.
///
/// # Safety
/// `h` is NULL or a live handle; `out_json` is NULL or valid for writing one
/// pointer.
#[no_mangle]
pub unsafe extern "C" fn ingest_stats_json(h: *const IngestHandle, out_json: *mut *mut c_char) -> IngestStatus {
    boundary(|| {
        let ing = unsafe { ingestor(h) }?;
        let out = out_arg(out_json, "out_json")?;
        let stats = ing.stats()?;
        write_out(out, json_string(&stats)?);
        Ok(())
    })
}

/// The rules in force (the built-in rules with the handle's document merged
/// over them), as a complete rules document.
///
/// @param h         the store.
/// @param out_json  receives the rules document. Owned by the caller: free
///                  with ingest_string_free().
///
/// Thread-safe.
///
/// # Safety
/// As ingest_stats_json().
#[no_mangle]
pub unsafe extern "C" fn ingest_rules_json(h: *const IngestHandle, out_json: *mut *mut c_char) -> IngestStatus {
    boundary(|| {
        let ing = unsafe { ingestor(h) }?;
        let out = out_arg(out_json, "out_json")?;
        write_out(out, json_string(&ing.rules().to_value())?);
        Ok(())
    })
}
