//! Status codes, the error type of this crate, and the per-thread last
//! error message (as libgit2's `git_error_last`).

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::str::Utf8Error;

use ingest_core::ErrorKind;

use crate::panic::boundary_value;

/// The status every fallible function returns.
///
/// The values are part of the ABI: they never change meaning, and new codes
/// are only appended. Codes 1 to 9 are the error kinds of the core, in order.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
// The C names must read INGEST_OK, INGEST_BUSY, ...: cbindgen spells the
// variants in screaming snake case without the type's name.
#[allow(clippy::enum_variant_names)]
pub enum IngestStatus {
    /// Success; the out-parameters are written.
    IngestOk = 0,
    /// The rules document is malformed; the message names the key.
    IngestInvalidRules = 1,
    /// An argument is malformed: JSON that does not parse, a bad query or
    /// filter, an unknown failure point or durability, input nested too deep
    /// or too large.
    IngestInvalidArgument = 2,
    /// A failure armed with ingest_simulate_failure() struck this call.
    /// Nothing was kept, except after `after_commit` (stored, answer lost).
    IngestInjected = 3,
    /// The database stayed locked by another connection past the busy
    /// timeout. Nothing was kept; retry later.
    IngestBusy = 4,
    /// The operating system reported an I/O error, or the file cannot be opened.
    IngestIo = 5,
    /// The file is not a database, or its contents are damaged.
    IngestCorrupt = 6,
    /// The disk or the database's size limit is full.
    IngestFull = 7,
    /// The database (or its directory) cannot be written.
    IngestReadOnly = 8,
    /// Any other failure reported by the database.
    IngestStorage = 9,
    /// A required pointer argument is NULL; the message names it.
    IngestNullPointer = 10,
    /// A string argument is not valid UTF-8; the message names it.
    IngestInvalidUtf8 = 11,
    /// An internal error (a bug in ingest, such as a caught panic). The
    /// handle stays usable; please report the message.
    IngestPanic = 12,
    /// The caller may not do this (a client's key naming another client).
    /// Nothing was kept.
    IngestForbidden = 13,
    /// The database server cannot be reached, or is not the primary any
    /// more (a restart or a failover). The call may have been committed
    /// just before the connection was lost; retrying it is safe (a stored
    /// event answers duplicate). Retry later.
    IngestUnavailable = 14,
}

/// Every status, in order of value. A function, not a constant: cbindgen
/// would copy a constant into the header.
fn all_statuses() -> [IngestStatus; 15] {
    [
        IngestStatus::IngestOk,
        IngestStatus::IngestInvalidRules,
        IngestStatus::IngestInvalidArgument,
        IngestStatus::IngestInjected,
        IngestStatus::IngestBusy,
        IngestStatus::IngestIo,
        IngestStatus::IngestCorrupt,
        IngestStatus::IngestFull,
        IngestStatus::IngestReadOnly,
        IngestStatus::IngestStorage,
        IngestStatus::IngestNullPointer,
        IngestStatus::IngestInvalidUtf8,
        IngestStatus::IngestPanic,
        IngestStatus::IngestForbidden,
        IngestStatus::IngestUnavailable,
    ]
}

impl IngestStatus {
    /// The C name, as a static NUL-terminated string.
    pub fn name(self) -> &'static CStr {
        match self {
            IngestStatus::IngestOk => c"INGEST_OK",
            IngestStatus::IngestInvalidRules => c"INGEST_INVALID_RULES",
            IngestStatus::IngestInvalidArgument => c"INGEST_INVALID_ARGUMENT",
            IngestStatus::IngestInjected => c"INGEST_INJECTED",
            IngestStatus::IngestBusy => c"INGEST_BUSY",
            IngestStatus::IngestIo => c"INGEST_IO",
            IngestStatus::IngestCorrupt => c"INGEST_CORRUPT",
            IngestStatus::IngestFull => c"INGEST_FULL",
            IngestStatus::IngestReadOnly => c"INGEST_READ_ONLY",
            IngestStatus::IngestStorage => c"INGEST_STORAGE",
            IngestStatus::IngestNullPointer => c"INGEST_NULL_POINTER",
            IngestStatus::IngestInvalidUtf8 => c"INGEST_INVALID_UTF8",
            IngestStatus::IngestPanic => c"INGEST_PANIC",
            IngestStatus::IngestForbidden => c"INGEST_FORBIDDEN",
            IngestStatus::IngestUnavailable => c"INGEST_UNAVAILABLE",
        }
    }
}

impl From<ErrorKind> for IngestStatus {
    // Exhaustive on purpose: a kind added to the core does not compile here
    // until it has its own, appended, code.
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::InvalidRules => IngestStatus::IngestInvalidRules,
            ErrorKind::InvalidArgument => IngestStatus::IngestInvalidArgument,
            ErrorKind::Injected => IngestStatus::IngestInjected,
            ErrorKind::Busy => IngestStatus::IngestBusy,
            ErrorKind::Io => IngestStatus::IngestIo,
            ErrorKind::Corrupt => IngestStatus::IngestCorrupt,
            ErrorKind::Full => IngestStatus::IngestFull,
            ErrorKind::ReadOnly => IngestStatus::IngestReadOnly,
            ErrorKind::Storage => IngestStatus::IngestStorage,
            ErrorKind::Forbidden => IngestStatus::IngestForbidden,
            ErrorKind::Unavailable => IngestStatus::IngestUnavailable,
        }
    }
}

/// Why a call failed on this side of the boundary, or in the core.
#[derive(Debug)]
pub(crate) enum FfiError {
    Core(ingest_core::Error),
    /// The named argument is NULL.
    Null(&'static str),
    /// The named argument is not UTF-8.
    Utf8(&'static str, Utf8Error),
    /// A bug in this library: it should never happen.
    Internal(String),
}

impl From<ingest_core::Error> for FfiError {
    fn from(e: ingest_core::Error) -> Self {
        FfiError::Core(e)
    }
}

impl FfiError {
    pub(crate) fn status(&self) -> IngestStatus {
        match self {
            FfiError::Core(e) => e.kind().into(),
            FfiError::Null(_) => IngestStatus::IngestNullPointer,
            FfiError::Utf8(..) => IngestStatus::IngestInvalidUtf8,
            FfiError::Internal(_) => IngestStatus::IngestPanic,
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            FfiError::Core(e) => e.to_string(),
            FfiError::Null(name) => format!("null pointer: {name} must not be NULL"),
            FfiError::Utf8(name, e) => format!("invalid UTF-8 in {name}: {e}"),
            FfiError::Internal(msg) => format!("internal error: {msg}"),
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Record `message` as this thread's last error.
pub(crate) fn set_last_error(message: &str) {
    // A message quoting the caller's input may hold a NUL; C would cut it
    // there, so it is made visible instead.
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // try_with: during thread teardown the slot may be gone; losing the
    // message then is better than aborting.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = Some(text));
}

/// Forget this thread's last error: each call reports its own outcome only.
pub(crate) fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = None);
}

/// The message of the last failed call made on this thread, or "" when the
/// last call on this thread succeeded.
///
/// Never NULL. The text is owned by the library: do not free it. It stays
/// valid until the next call into the library on the same thread; copy it to
/// keep it. Each thread has its own message, so this is thread-safe.
#[no_mangle]
pub extern "C" fn ingest_last_error() -> *const c_char {
    boundary_value(c"".as_ptr(), || {
        LAST_ERROR
            .try_with(|slot| slot.borrow().as_ref().map(|s| s.as_ptr()))
            .ok()
            .flatten()
            .unwrap_or(c"".as_ptr())
    })
}

/// The C name of a status code ("INGEST_BUSY"), or "INGEST_UNKNOWN" for a
/// value that is not one.
///
/// Never NULL; a static string: do not free it. Thread-safe.
#[no_mangle]
pub extern "C" fn ingest_status_name(status: c_int) -> *const c_char {
    boundary_value(c"INGEST_UNKNOWN".as_ptr(), || {
        all_statuses()
            .into_iter()
            .find(|s| *s as c_int == status)
            .map_or(c"INGEST_UNKNOWN", IngestStatus::name)
            .as_ptr()
    })
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
