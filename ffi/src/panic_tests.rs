use std::ffi::CStr;

use super::*;
use crate::error::ingest_last_error;

fn last_error() -> String {
    unsafe { CStr::from_ptr(ingest_last_error()) }
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_panic_becomes_a_status_and_a_message() {
    let status = boundary(|| panic!("boom {}", 42));
    assert_eq!(status, IngestStatus::IngestPanic);
    assert_eq!(last_error(), "internal error: panic in ingest: boom 42");

    assert_eq!(boundary(|| Ok(())), IngestStatus::IngestOk);
    assert_eq!(last_error(), "");

    boundary_void(|| panic!("in a free"));
    assert!(last_error().contains("in a free"));
    assert_eq!(boundary_value(7, || panic!("no value")), 7);
}

#[test]
fn errors_keep_their_kind() {
    let status = boundary(|| Err(FfiError::Null("h")));
    assert_eq!(status, IngestStatus::IngestNullPointer);
    assert_eq!(last_error(), "null pointer: h must not be NULL");
    let status = boundary(|| Err("later".parse::<ingest_core::FailPoint>().unwrap_err().into()));
    assert_eq!(status, IngestStatus::IngestInvalidArgument);
    assert!(last_error().contains("\"later\""));
}
