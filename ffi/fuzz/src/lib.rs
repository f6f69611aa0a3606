//! The fuzz harness of the C ABI: the input is cut at its NUL bytes into
//! C strings (any bytes, invalid UTF-8 included), and each string goes to
//! every JSON entry point on one fresh in-memory handle, called as C calls
//! them. Every returned string is checked and freed with
//! `ingest_string_free`; the function panics when a contract breaks.

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use ingest::{
    ingest_aggregate_json, ingest_check_json, ingest_close, ingest_events_json, ingest_last_error, ingest_open,
    ingest_rejected_json, ingest_stats_json, ingest_string_free, ingest_submit_batch_json, ingest_submit_json,
    IngestHandle, IngestStatus,
};
use serde_json::Value;

/// At most this many strings per input: enough for a few calls that build
/// on each other, few enough to keep executions fast.
const MAX_STRINGS: usize = 8;

type JsonEntry = unsafe extern "C" fn(*const IngestHandle, *const c_char, *mut *mut c_char) -> IngestStatus;

/// Call one entry point with `arg` and take its answer: the status, and the
/// returned JSON (parsed, then freed) on success.
fn call(name: &str, f: JsonEntry, h: *const IngestHandle, arg: *const c_char) -> (IngestStatus, Option<Value>) {
    let mut out: *mut c_char = ptr::null_mut();
    // SAFETY: `h` is a live handle, `arg` NULL or NUL-terminated, `out` writable.
    let status = unsafe { f(h, arg, &mut out) };
    assert_ne!(status, IngestStatus::IngestPanic, "{name}: {}", last_error());
    assert_ne!(status, IngestStatus::IngestNullPointer, "{name}: {}", last_error());
    if status != IngestStatus::IngestOk {
        assert!(
            out.is_null(),
            "{name} failed with {status:?} but wrote its out-parameter"
        );
        assert!(
            !last_error().is_empty(),
            "{name} failed with {status:?} without a message"
        );
        return (status, None);
    }
    assert!(out.is_null() == false, "{name} succeeded without an answer");
    assert!(last_error().is_empty(), "{name} succeeded but left an error message");
    // SAFETY: a successful call wrote a NUL-terminated string it allocated.
    let text = unsafe { CStr::from_ptr(out) }.to_str().map(str::to_owned);
    // SAFETY: freed exactly once, with the library's own free.
    unsafe { ingest_string_free(out) };
    let text = text.unwrap_or_else(|e| panic!("{name} answered invalid UTF-8: {e}"));
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} answered invalid JSON ({e}): {text}"));
    (status, Some(value))
}

fn last_error() -> String {
    // SAFETY: never NULL, valid until the next call on this thread.
    unsafe { CStr::from_ptr(ingest_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// An in-memory handle shared by consecutive inputs (opening one per input
/// would cost more than the input itself), and how many events it accepted.
struct Handle {
    h: *mut IngestHandle,
    accepted: u64,
    inputs: u32,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle is live and used by nothing else.
        unsafe { ingest_close(self.h) };
    }
}

/// Inputs per handle before a fresh one, which keeps memory flat.
const INPUTS_PER_HANDLE: u32 = 100;

thread_local! {
    static HANDLE: std::cell::RefCell<Option<Handle>> = const { std::cell::RefCell::new(None) };
}

/// Fuzz target `c_json`.
pub fn c_json(data: &[u8]) {
    HANDLE.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.as_ref().is_none_or(|s| s.inputs >= INPUTS_PER_HANDLE) {
            *slot = None;
            let mut h: *mut IngestHandle = ptr::null_mut();
            // SAFETY: static NUL-terminated strings and a writable out-parameter.
            let status = unsafe { ingest_open(c":memory:".as_ptr(), ptr::null(), &mut h) };
            assert_eq!(status, IngestStatus::IngestOk, "open: {}", last_error());
            *slot = Some(Handle {
                h,
                accepted: 0,
                inputs: 0,
            });
        }
        let handle = slot.as_mut().expect("just opened");
        handle.inputs += 1;
        calls(handle.h, &mut handle.accepted, data, handle.inputs % 64 == 0);
    });
}

/// Each NUL-separated piece of `data` through every JSON entry point of `h`,
/// which has accepted `accepted` events so far; then a check of the whole
/// store, listing with NULL filters (the first 100) when `full_listing`.
fn calls(h: *mut IngestHandle, accepted: &mut u64, data: &[u8], full_listing: bool) {
    let hc = h as *const IngestHandle;
    for piece in data.split(|&b| b == 0).take(MAX_STRINGS) {
        let arg = CString::new(piece).expect("no NUL inside a piece");
        let p = arg.as_ptr();
        let utf8 = std::str::from_utf8(piece).is_ok();

        let check = call("ingest_check_json", ingest_check_json, hc, p);
        let submit = call("ingest_submit_json", ingest_submit_json, hc, p);
        let again = call("ingest_check_json", ingest_check_json, hc, p);
        let batch = call("ingest_submit_batch_json", ingest_submit_batch_json, hc, p);
        let aggregate = call("ingest_aggregate_json", ingest_aggregate_json, hc, p);
        let events = call("ingest_events_json", ingest_events_json, hc, p);
        let rejected = call("ingest_rejected_json", ingest_rejected_json, hc, p);

        if !utf8 {
            for (status, _) in [&check, &submit, &again, &batch, &aggregate, &events, &rejected] {
                assert_eq!(
                    *status,
                    IngestStatus::IngestInvalidUtf8,
                    "invalid UTF-8 was not refused as such"
                );
            }
            continue;
        }
        // The dry run predicts the submission; a check after it sees it stored.
        assert_eq!(check.0, submit.0, "check and submit answer different statuses");
        assert_eq!(submit.0, again.0);
        if let (Some(c), Some(s), Some(a)) = (&check.1, &submit.1, &again.1) {
            let status = |v: &Value| v["status"].as_str().expect("an outcome has a status").to_owned();
            match (status(c).as_str(), status(s).as_str(), status(a).as_str()) {
                ("accepted", "accepted", "duplicate") => {
                    assert!(c["id"].is_null(), "a dry run answered an id");
                    assert_eq!(s["id"], a["id"], "the check after submit names another id");
                    *accepted += 1;
                }
                ("duplicate", "duplicate", "duplicate") => assert_eq!(c["id"], s["id"]),
                ("conflict", "conflict", "conflict") => {
                    assert_eq!((&c["id"], &c["reasons"]), (&s["id"], &s["reasons"]));
                    assert_eq!(s, a, "a conflict changes nothing");
                }
                ("rejected", "rejected", "rejected") => assert_eq!(c["reasons"], s["reasons"]),
                other => panic!("check, submit, check answered {other:?}"),
            }
            assert_eq!(c["event"], s["event"], "check and submit normalise differently");
            assert_eq!(s["event"], a["event"]);
        }
        if let Some(outcomes) = &batch.1 {
            let outcomes = outcomes.as_array().expect("a batch answers an array");
            *accepted += outcomes.iter().filter(|o| o["status"] == "accepted").count() as u64;
        }
        if let Some(a) = &aggregate.1 {
            assert!(a["count"].as_u64().is_some(), "an aggregate has a count: {a}");
        }
        if let Some(e) = &events.1 {
            assert!(e.is_array(), "events answer an array");
        }
        if let Some(r) = &rejected.1 {
            assert!(r.is_array(), "rejections answer an array");
        }
    }

    // The store holds what was accepted; NULL filters are the defaults.
    let everything = CString::new("{}").expect("no NUL");
    let (_, total) = call("ingest_aggregate_json", ingest_aggregate_json, hc, everything.as_ptr());
    let total = total.expect("the aggregate of everything succeeds");
    assert_eq!(
        total["count"].as_u64(),
        Some(*accepted),
        "aggregate count != accepted events"
    );
    let (filter, expected) = if full_listing {
        (None, (*accepted).min(100))
    } else {
        (
            Some(CString::new(r#"{"limit": 3}"#).expect("no NUL")),
            (*accepted).min(3),
        )
    };
    let filter_ptr = filter.as_ref().map_or(ptr::null(), |f| f.as_ptr());
    let (_, events) = call("ingest_events_json", ingest_events_json, hc, filter_ptr);
    let listed = events.expect("events with the default or a small filter succeed");
    assert_eq!(listed.as_array().map(Vec::len), Some(expected as usize));
    let (_, rejected) = call("ingest_rejected_json", ingest_rejected_json, hc, filter_ptr);
    assert!(rejected
        .expect("rejected with the default or a small page succeeds")
        .is_array());
    let mut out: *mut c_char = ptr::null_mut();
    // SAFETY: a live handle and a writable out-parameter.
    assert_eq!(unsafe { ingest_stats_json(hc, &mut out) }, IngestStatus::IngestOk);
    // SAFETY: as in `call`.
    let stats: Value = serde_json::from_str(unsafe { CStr::from_ptr(out) }.to_str().expect("UTF-8")).expect("JSON");
    // SAFETY: freed once.
    unsafe { ingest_string_free(out) };
    assert_eq!(
        stats["stored_events"].as_u64(),
        Some(*accepted),
        "stored events != accepted events"
    );
}
