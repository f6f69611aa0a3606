//! Opening and closing a store: the opaque, thread-safe [`IngestHandle`].

use std::ffi::c_char;
use std::time::Duration;

use ingest_core::{Durability, Ingestor, Rules};

use crate::error::{FfiError, IngestStatus};
use crate::panic::{boundary, boundary_void};
use crate::strings::{json_string, opt_str_arg, out_arg, str_arg, write_out};

/// An open store. Opaque: C only holds pointers to it.
///
/// Thread-safe: one handle may be used by any number of threads at once.
/// Several handles (in one or several processes) may open the same file.
pub struct IngestHandle {
    pub(crate) ingestor: Ingestor,
}

/// The shape of the entry points that take one JSON text and answer one:
/// check the handle, the input and the out-pointer (in that order), run `f`,
/// and write its answer as JSON only on success.
///
/// # Safety
/// As those entry points': `h` is NULL or a live handle, `input.0` NULL or
/// NUL-terminated, `out.0` NULL or valid for writing one pointer.
pub(crate) unsafe fn json_call<T: serde::Serialize>(
    h: *const IngestHandle,
    input: (*const c_char, &'static str),
    out: (*mut *mut c_char, &'static str),
    f: impl FnOnce(&Ingestor, &str) -> Result<T, ingest_core::Error>,
) -> IngestStatus {
    boundary(|| {
        let ing = unsafe { ingestor(h) }?;
        let text = unsafe { str_arg(input.0, input.1) }?;
        let out = out_arg(out.0, out.1)?;
        write_out(out, json_string(&f(ing, text)?)?);
        Ok(())
    })
}

/// Borrow the store behind a handle.
///
/// # Safety
/// `h` is NULL or a live handle from `ingest_open*`.
pub(crate) unsafe fn ingestor<'a>(h: *const IngestHandle) -> Result<&'a Ingestor, FfiError> {
    // SAFETY: non-NULL handles are live by the caller's contract.
    unsafe { h.as_ref() }.map(|h| &h.ingestor).ok_or(FfiError::Null("h"))
}

/// Options for ingest_open_with_options(). A zeroed struct (`{0}`) means
/// every default.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    /// JSON rules document merged over the built-in rules; NULL for the
    /// built-in rules. Borrowed for the call.
    pub rules_json: *const c_char,
    /// "full" (every commit synced: survives power loss; the default) or
    /// "normal" (survives a crash of the process); NULL for the default.
    pub durability: *const c_char,
    /// How long a write waits for another connection's lock before failing
    /// with ::INGEST_BUSY, in milliseconds; 0 keeps the default (5 s).
    pub busy_timeout_ms: u32,
    /// The largest event accepted, in bytes of JSON; 0 keeps the default (1 MiB).
    pub max_event_bytes: usize,
}

/// Open (creating and migrating as needed) the store at `path`, with the
/// built-in rules and full durability.
///
/// @param path       SQLite file path, ":memory:" for a private in-memory store,
///                   or a postgres:// URL (built in by default; ?schema=NAME).
/// @param rules_json JSON rules document merged over the built-in rules, or
///                   NULL for the built-in rules. A bad document is
///                   ::INGEST_INVALID_RULES, with the key named.
/// @param out        receives the handle on success. Owned by the caller:
///                   close it with ingest_close().
///
/// Thread-safe: any thread may open handles, also on the same file.
///
/// # Safety
/// `path` and `rules_json` are NULL or NUL-terminated strings; `out` is NULL
/// or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn ingest_open(
    path: *const c_char,
    rules_json: *const c_char,
    out: *mut *mut IngestHandle,
) -> IngestStatus {
    let options = IngestOptions {
        rules_json,
        durability: std::ptr::null(),
        busy_timeout_ms: 0,
        max_event_bytes: 0,
    };
    // SAFETY: the same contract as ours.
    unsafe { ingest_open_with_options(path, &options, out) }
}

/// Open the store at `path` with options (rules, durability, busy timeout,
/// size limit).
///
/// @param path    SQLite file path, ":memory:" for a private in-memory store,
///                or a postgres:// URL (built in by default; ?schema=NAME).
/// @param options the options, borrowed for the call; NULL for every default.
/// @param out     receives the handle on success. Owned by the caller: close
///                it with ingest_close().
///
/// Thread-safe: any thread may open handles, also on the same file.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `options` is NULL or points to
/// an ::IngestOptions whose strings are NULL or NUL-terminated; `out` is NULL
/// or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn ingest_open_with_options(
    path: *const c_char,
    options: *const IngestOptions,
    out: *mut *mut IngestHandle,
) -> IngestStatus {
    boundary(|| {
        let path = unsafe { str_arg(path, "path") }?;
        // SAFETY: NULL or a valid IngestOptions by the contract.
        let options = unsafe { options.as_ref() };
        let rules_json = options.map_or(std::ptr::null(), |o| o.rules_json);
        let durability = options.map_or(std::ptr::null(), |o| o.durability);
        let rules_json = unsafe { opt_str_arg(rules_json, "rules_json") }?;
        let durability = unsafe { opt_str_arg(durability, "durability") }?;
        let out = out_arg(out, "out")?;

        let mut builder = Ingestor::builder(path);
        if let Some(text) = rules_json {
            builder = builder.rules(Rules::from_json(text)?);
        }
        if let Some(name) = durability {
            builder = builder.durability(name.parse::<Durability>()?);
        }
        if let Some(o) = options {
            if o.busy_timeout_ms > 0 {
                builder = builder.busy_timeout(Duration::from_millis(o.busy_timeout_ms.into()));
            }
            if o.max_event_bytes > 0 {
                builder = builder.max_event_bytes(o.max_event_bytes);
            }
        }
        let handle = Box::new(IngestHandle {
            ingestor: builder.open()?,
        });
        write_out(out, Box::into_raw(handle));
        Ok(())
    })
}

/// Close a handle and free it. NULL is a no-op.
///
/// # Safety
/// `h` is NULL or a handle from `ingest_open*` not yet closed. This must be
/// the last call on `h`: no other thread may be using it, and it must not be
/// used afterwards.
#[no_mangle]
pub unsafe extern "C" fn ingest_close(h: *mut IngestHandle) {
    if h.is_null() {
        return;
    }
    boundary_void(|| {
        // SAFETY: by the contract, `h` came from Box::into_raw and is unused.
        drop(unsafe { Box::from_raw(h) });
    });
}
