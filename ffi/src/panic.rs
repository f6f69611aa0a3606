//! The panic boundary (after rustls-ffi's `panic.rs`): every `extern "C"`
//! function runs its body inside one of these, so a Rust panic becomes
//! `INGEST_PANIC` and a message instead of aborting the host process.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{clear_last_error, set_last_error, FfiError, IngestStatus};

/// Run a fallible body: clear this thread's last error, then turn its error
/// or panic into a status and a message.
pub(crate) fn boundary(body: impl FnOnce() -> Result<(), FfiError>) -> IngestStatus {
    clear_last_error();
    // AssertUnwindSafe: what a panic could leave half-done is either inside
    // a SQLite transaction (rolled back when dropped during the unwind) or
    // behind a mutex the core recovers from poisoning; the handle stays usable.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => IngestStatus::IngestOk,
        Ok(Err(e)) => {
            set_last_error(&e.message());
            e.status()
        }
        Err(payload) => {
            set_last_error(&panic_message(payload.as_ref()));
            IngestStatus::IngestPanic
        }
    }
}

/// Run a body that cannot report a status (a free, a close): a panic is only
/// recorded as this thread's last error.
pub(crate) fn boundary_void(body: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(body)) {
        set_last_error(&panic_message(payload.as_ref()));
    }
}

/// Run an infallible body that returns a value; `fallback` if it panics.
pub(crate) fn boundary_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown cause");
    format!("internal error: panic in ingest: {what}")
}

#[cfg(test)]
#[path = "panic_tests.rs"]
mod tests;
