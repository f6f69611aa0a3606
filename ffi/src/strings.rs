//! Crossing the boundary with text and pointers: borrowed C strings in,
//! owned C strings out, out-parameters checked before any work is done.

use std::ffi::{c_char, CStr, CString};
use std::ptr::NonNull;

use serde::Serialize;

use crate::error::FfiError;
use crate::panic::{boundary_value, boundary_void};

/// Borrow a required NUL-terminated UTF-8 argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, name: &'static str) -> Result<&'a str, FfiError> {
    opt_str_arg(p, name)?.ok_or(FfiError::Null(name))
}

/// Borrow an optional argument: NULL is `None`.
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(p: *const c_char, name: &'static str) -> Result<Option<&'a str>, FfiError> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    let text = unsafe { CStr::from_ptr(p) };
    text.to_str().map(Some).map_err(|e| FfiError::Utf8(name, e))
}

/// Check an out-parameter before the work that would fill it, so a call
/// with nowhere to put its answer does nothing at all.
pub(crate) fn out_arg<T>(p: *mut T, name: &'static str) -> Result<NonNull<T>, FfiError> {
    NonNull::new(p).ok_or(FfiError::Null(name))
}

/// JSON text of `value`, as a string the caller frees with `ingest_string_free`.
pub(crate) fn json_string<T: Serialize + ?Sized>(value: &T) -> Result<*mut c_char, FfiError> {
    let text = serde_json::to_string(value).map_err(|e| FfiError::Internal(format!("serialising the answer: {e}")))?;
    // JSON escapes every control character, so a NUL here is a bug.
    CString::new(text)
        .map(CString::into_raw)
        .map_err(|_| FfiError::Internal("the answer holds a NUL byte".into()))
}

/// Write `value` to a checked out-parameter: the last step of a successful call.
pub(crate) fn write_out<T>(out: NonNull<T>, value: T) {
    // SAFETY: `out` was checked non-NULL, and the caller's contract makes it
    // valid for writes. `write` neither reads nor drops what was there, which
    // is uninitialised memory as often as not.
    unsafe { out.as_ptr().write(value) }
}

/// Free a string returned by this library. NULL is a no-op.
///
/// # Safety
/// `s` is NULL or a string handed out by an `ingest_*` function (an
/// `out_*_json` parameter), not yet freed. Never pass it to `free()`, and
/// never pass anything else here. Thread-safe for distinct strings.
#[no_mangle]
pub unsafe extern "C" fn ingest_string_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    boundary_void(|| {
        // SAFETY: by the contract above, `s` came from `CString::into_raw`.
        drop(unsafe { CString::from_raw(s) });
    });
}

/// The version of the library loaded ("0.1.0"): compare its major number
/// with ::INGEST_VERSION_MAJOR, the header's, to check at run time that a
/// program runs with a library of the ABI it was built for.
///
/// Never NULL; a static string: do not free it. Thread-safe.
#[no_mangle]
pub extern "C" fn ingest_version() -> *const c_char {
    const VERSION: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => c"unknown",
    };
    boundary_value(c"unknown".as_ptr(), || VERSION.as_ptr())
}
