//! The benchmark harness of issue 6: a seeded data set, the contenders that
//! `ingest` is compared with, and the measuring helpers shared by the
//! criterion benches and the `compare` program.

pub mod aggregates;
pub mod duckdb;
pub mod floor;
pub mod gen;
pub mod machine;
pub mod measure;
pub mod original;
pub mod pg_floor;
pub mod postgres;
pub mod python;
pub mod report;
pub mod runs;
