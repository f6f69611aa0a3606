//! The core's integration tests: one test binary (one link, one copy of the
//! bundled SQLite) whose modules are the suites. Run one suite with a name
//! filter, e.g. `cargo test -p ingest-core --test integration crash::`.
//!
//! Data the suites read stays beside this folder: `../rule_sets.json`
//! (shared with core/fuzz), `../fuzz_regressions/`, and
//! `../proptest-regressions/` (where proptest, finding this `main.rs`, keeps
//! the shrunk failures of each module: `properties.rs` reads and writes
//! `../proptest-regressions/properties.txt`).
//!
//! `crash` and `concurrency` run this binary again as child processes that
//! run only their own test: see `common::child_test`.

mod common;

mod bad_input;
mod concurrency;
mod copy;
mod crash;
mod dead_letters;
mod exact_totals;
mod failover;
mod failures;
mod fast_path;
mod faults;
mod fuzz_regressions;
mod hostile_items;
mod keys;
mod lifecycle;
mod local_time;
mod properties;
mod scenarios;
mod scope_attacks;
mod storage;
