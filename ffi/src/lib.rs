//! `ingest-ffi`: the C ABI over [`ingest_core`], built as `libingest.so` and
//! `libingest.a`, described by the generated `include/ingest.h`.
//!
//! This crate only converts: C strings to `&str`, JSON text to the core's
//! types through the core's own parsers, results to JSON text with the core's
//! `Serialize` impls, and [`ingest_core::Error`] to an [`IngestStatus`]. Every
//! rule lives in the core.
//!
//! Where to find what:
//! - [`error`]: the status codes and the per-thread last error;
//! - `panic`: the boundary every `extern "C"` function runs inside;
//! - [`strings`]: borrowed C strings in, owned C strings out;
//! - [`handle`]: opening and closing a store;
//! - [`submit`]: submissions, dry runs, reprocessing;
//! - [`query`]: aggregates, listings, stats, rules;
//! - [`failure`]: failure injection;
//! - [`version`]: the ABI's version, in the header and at run time.

// Declared in the order the header lists them: cbindgen follows it.
pub mod version;

pub mod handle;

pub mod submit;

pub mod query;

pub mod failure;

pub mod error;

pub mod strings;

mod panic;

pub use error::{ingest_last_error, ingest_status_name, IngestStatus};
pub use failure::{ingest_clear_failure, ingest_simulate_failure};
pub use handle::{ingest_close, ingest_open, ingest_open_with_options, IngestHandle, IngestOptions};
pub use query::{
    ingest_aggregate_json, ingest_events_json, ingest_rejected_json, ingest_rules_json, ingest_stats_json,
};
pub use strings::{ingest_string_free, ingest_version};
pub use submit::{
    ingest_check_json, ingest_prune_json, ingest_reprocess_rejected_json, ingest_submit_batch_json,
    ingest_submit_fields, ingest_submit_json, IngestOutcome, IngestOutcomeStatus,
};
