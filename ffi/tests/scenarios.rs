//! The scenarios (the repository's `tests/scenarios/*.json`, then those of
//! `$INGEST_SHARED/scenarios` when that folder exists) run through the C ABI:
//! every step goes through the same `extern "C"` functions a C program
//! calls, with C strings in and JSON text out. A missing or empty repository
//! folder fails the test: a suite that silently runs nothing proves nothing.

use std::ffi::{c_char, CStr, CString};
use std::path::Path;
use std::ptr;

use ingest::*;
use serde_json::Value;

#[path = "../../tests/scenarios/files.rs"]
mod files;
use files::{file_name, scenario_files};

/// A handle, closed when dropped.
struct Store(*mut IngestHandle);

impl Drop for Store {
    fn drop(&mut self) {
        unsafe { ingest_close(self.0) };
    }
}

/// A failed call: its status name ("INGEST_INJECTED") and message.
type CallError = (String, String);

fn c(text: &str) -> CString {
    CString::new(text).expect("scenario text holds no NUL")
}

/// Run one call that hands out a JSON string; parse and free it.
fn call_json(f: impl FnOnce(*mut *mut c_char) -> IngestStatus) -> Result<Value, CallError> {
    let mut out: *mut c_char = ptr::null_mut();
    let status = f(&mut out);
    if status != IngestStatus::IngestOk {
        assert!(out.is_null(), "an out-parameter was written on failure");
        return Err(last_error(status));
    }
    assert!(!out.is_null());
    let text = unsafe { CStr::from_ptr(out) }.to_str().expect("UTF-8 out").to_owned();
    unsafe { ingest_string_free(out) };
    Ok(serde_json::from_str(&text).expect("the library hands out valid JSON"))
}

fn last_error(status: IngestStatus) -> CallError {
    let name = unsafe { CStr::from_ptr(ingest_status_name(status as i32)) };
    let message = unsafe { CStr::from_ptr(ingest_last_error()) };
    (
        name.to_string_lossy().into_owned(),
        message.to_string_lossy().into_owned(),
    )
}

/// The status name a scenario's `expect_error` ("injected") stands for.
fn status_name(kind: &str) -> String {
    format!("INGEST_{}", kind.to_uppercase())
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Canonical values compare by meaning: `1200` and `1200.0` are one amount.
fn same(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Number(w), Value::Number(g)) => match (w.as_f64(), g.as_f64()) {
            (Some(w), Some(g)) => close(w, g),
            _ => false,
        },
        _ => want == got,
    }
}

fn check_outcome(want: &Value, got: &Value, at: &str) {
    assert_eq!(got["status"], want["status"], "{at}: outcome {got}");
    if let Some(fields) = want.get("event").and_then(Value::as_object) {
        for (key, value) in fields {
            assert!(
                same(value, &got["event"][key]),
                "{at}: event.{key} is {}, want {value}",
                got["event"][key]
            );
        }
    }
    if let Some(reasons) = want.get("reasons").and_then(Value::as_array) {
        let have = got["reasons"].as_array().cloned().unwrap_or_default();
        for r in reasons {
            let found = have.iter().any(|h| h["code"] == r["code"] && h["field"] == r["field"]);
            assert!(found, "{at}: reason {r} missing from {}", got["reasons"]);
        }
    }
}

fn check_error(result: Result<Value, CallError>, want: &Value, at: &str) {
    let kind = want.as_str().expect("expect_error is a kind name");
    match result {
        Ok(v) => panic!("{at}: expected error {kind}, got {v}"),
        Err((name, message)) => {
            assert_eq!(name, status_name(kind), "{at}: {message}");
            assert!(!message.is_empty(), "{at}: an error comes with a message");
        }
    }
}

fn stored_events(store: &Store) -> u64 {
    let stats = call_json(|out| unsafe { ingest_stats_json(store.0, out) }).expect("stats");
    stats["stored_events"].as_u64().expect("stored_events")
}

fn run_step(store: &Store, step: &Value, at: &str) {
    let obj = step.as_object().unwrap_or_else(|| panic!("{at}: a step is an object"));
    if let Some(raw) = obj.get("submit") {
        let event = c(&raw.to_string());
        let result = call_json(|out| unsafe { ingest_submit_json(store.0, event.as_ptr(), out) });
        match (obj.get("expect"), obj.get("expect_error")) {
            (Some(want), None) => check_outcome(want, &result.unwrap_or_else(|e| panic!("{at}: {e:?}")), at),
            (None, Some(kind)) => check_error(result, kind, at),
            _ => panic!("{at}: a submit step has expect or expect_error"),
        }
    } else if let Some(raws) = obj.get("submit_batch") {
        let batch = c(&raws.to_string());
        let result = call_json(|out| unsafe { ingest_submit_batch_json(store.0, batch.as_ptr(), out) });
        match (obj.get("expect"), obj.get("expect_error")) {
            (Some(Value::Array(wants)), None) => {
                let got = result.unwrap_or_else(|e| panic!("{at}: {e:?}"));
                let got = got.as_array().expect("a batch answers an array");
                assert_eq!(got.len(), wants.len(), "{at}: one outcome per input");
                for (i, (w, g)) in wants.iter().zip(got).enumerate() {
                    check_outcome(w, g, &format!("{at}[{i}]"));
                }
            }
            (None, Some(kind)) => check_error(result, kind, at),
            _ => panic!("{at}: a submit_batch step has an expect list or expect_error"),
        }
    } else if let Some(fail) = obj.get("fail_next") {
        let point = c(fail["point"].as_str().expect("fail_next.point"));
        let times = u32::try_from(fail["times"].as_u64().unwrap_or(1)).expect("fail_next.times");
        let status = unsafe { ingest_simulate_failure(store.0, point.as_ptr(), times) };
        assert_eq!(status, IngestStatus::IngestOk, "{at}: {:?}", last_error(status));
    } else if let Some(query) = obj.get("aggregate") {
        let query = c(&query.to_string());
        let result = call_json(|out| unsafe { ingest_aggregate_json(store.0, query.as_ptr(), out) });
        match (obj.get("expect"), obj.get("expect_error")) {
            (Some(want), None) => {
                let got = result.unwrap_or_else(|e| panic!("{at}: {e:?}"));
                for (key, value) in want.as_object().expect("aggregate expect is an object") {
                    assert!(same(value, &got[key]), "{at}: {key} is {}, want {value}", got[key]);
                }
            }
            (None, Some(kind)) => check_error(result, kind, at),
            _ => panic!("{at}: an aggregate step has expect or expect_error"),
        }
    } else if let Some(n) = obj.get("count_events") {
        assert_eq!(Some(stored_events(store)), n.as_u64(), "{at}: stored events");
    } else {
        // A new kind of step must be taught here, not skipped.
        panic!("{at}: unknown step {step}");
    }
}

fn run_file(label: &str, path: &Path, dir: &Path, n: usize) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{label}: {e}"));
    let steps: Vec<Value> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{label}: {e}"));
    // Numbered: a shared file may have the name of a repository one.
    let db = c(&dir.join(format!("{n}-{}.db", file_name(path))).to_string_lossy());
    let mut h = ptr::null_mut();
    let status = unsafe { ingest_open(db.as_ptr(), ptr::null(), &mut h) };
    assert_eq!(
        status,
        IngestStatus::IngestOk,
        "{label}: open: {:?}",
        last_error(status)
    );
    let store = Store(h);
    for (i, step) in steps.iter().enumerate() {
        run_step(&store, step, &format!("{label} step {i}"));
    }
    steps.len()
}

#[test]
fn shared_scenarios_pass_through_the_c_abi() {
    let files = scenario_files();
    let scratch = tempfile::tempdir().expect("temp dir");
    let steps: usize = files
        .iter()
        .enumerate()
        .map(|(n, s)| run_file(&s.label, &s.path, scratch.path(), n))
        .sum();
    assert!(steps > 0);
    eprintln!("{} scenario files, {steps} steps, through the C ABI", files.len());
}
