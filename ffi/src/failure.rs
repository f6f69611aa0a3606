//! Failure injection: arm and disarm the core's switch by point name.

use std::ffi::c_char;

use ingest_core::FailPoint;

use crate::error::IngestStatus;
use crate::handle::{ingestor, IngestHandle};
use crate::panic::boundary;
use crate::strings::str_arg;

/// Make the next `times` calls that reach `point` fail there with
/// ::INGEST_INJECTED (`times` 0 disarms). One point is armed at a time.
///
/// @param h      the store.
/// @param point  "before_insert" (nothing written; a retry is accepted),
///               "after_insert" (rows written then rolled back; a retry is
///               accepted), "after_commit" (committed, then the answer is
///               lost; a retry is a duplicate) strike submissions and
///               reprocessing; "aggregate" strikes ingest_aggregate_json(),
///               which then answers the last result of the same query marked
///               stale, or fails. Any other name is ::INGEST_INVALID_ARGUMENT.
/// @param times  how many calls to strike.
///
/// Thread-safe.
///
/// # Safety
/// `h` is NULL or a live handle; `point` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn ingest_simulate_failure(
    h: *const IngestHandle,
    point: *const c_char,
    times: u32,
) -> IngestStatus {
    boundary(|| {
        let ing = unsafe { ingestor(h) }?;
        let point = unsafe { str_arg(point, "point") }?.parse::<FailPoint>()?;
        ing.simulate_failure(point, times);
        Ok(())
    })
}

/// Disarm any simulated failure.
///
/// Thread-safe.
///
/// # Safety
/// `h` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn ingest_clear_failure(h: *const IngestHandle) -> IngestStatus {
    boundary(|| {
        unsafe { ingestor(h) }?.clear_failure();
        Ok(())
    })
}
