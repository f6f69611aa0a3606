//! `ingest._ingest`: the compiled half of the Python package `ingest`.
//!
//! A thin adapter over `ingest-core`: it converts Python values to JSON and
//! back ([`convert`]), core errors to exceptions ([`errors`]), and releases
//! the GIL around every core call ([`ingestor`]). Every rule lives in the core.

mod convert;
mod errors;
mod ingestor;
mod outcome;
mod read;

use pyo3::prelude::*;

#[pymodule]
fn _ingest(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ingestor::PyIngestor>()?;
    m.add_class::<outcome::PyOutcome>()?;
    errors::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("CORE_VERSION", ingest_core::VERSION)?;
    m.add("MAX_DEPTH", ingest_core::limits::MAX_DEPTH)?;
    Ok(())
}
