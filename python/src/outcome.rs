//! `ingest.Outcome`: the answer to one submitted event.

use ingest_core::Outcome;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyString};

use crate::convert::serialize_to_py;

/// The answer to one submitted event: `status` is "accepted", "duplicate",
/// "conflict" or "rejected"; `id` the stored event's id (None when rejected,
/// or accepted by a dry run); `event` the event stored (by this call, or
/// before it for a duplicate or a conflict; None when rejected); `reasons`
/// every reason for a rejection, or each field a conflict differs in (empty
/// otherwise).
#[pyclass(module = "ingest", name = "Outcome", frozen, eq)]
#[derive(PartialEq)]
pub struct PyOutcome {
    inner: Outcome,
}

impl From<Outcome> for PyOutcome {
    fn from(inner: Outcome) -> Self {
        PyOutcome { inner }
    }
}

#[pymethods]
impl PyOutcome {
    #[getter]
    fn status(&self) -> &'static str {
        self.inner.status()
    }

    #[getter]
    fn id(&self) -> Option<i64> {
        self.inner.id()
    }

    /// A new dict each time: client_id, metric, amount, timestamp,
    /// attributes, event_id.
    #[getter]
    fn event<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner.event().map(|e| serialize_to_py(py, e)).transpose()
    }

    /// A new list each time, of dicts with code, field and message: why it
    /// was rejected, or (a conflict) each field that differs from the
    /// stored event, with both values.
    #[getter]
    fn reasons<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serialize_to_py(py, self.inner.reasons())
    }

    /// {"status", "id", "event", "reasons"}, the same four keys whatever the
    /// status: the shape the server answers with.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        Ok(serialize_to_py(py, &self.inner)?.cast_into::<PyDict>()?)
    }

    /// The status and what matters for it: the id and the event's key
    /// fields, or every reason as `code:field`. Values are shown as Python
    /// shows them.
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(match &self.inner {
            Outcome::Conflict { id, reasons, .. } => {
                let fields: Vec<&str> = reasons.iter().map(|r| r.field.as_str()).collect();
                format!("<Outcome conflict id={id} fields=[{}]>", fields.join(", "))
            }
            Outcome::Rejected { reasons } => {
                let reasons: Vec<String> = reasons
                    .iter()
                    .map(|r| match r.field.as_str() {
                        "" => r.code.to_string(),
                        field => format!("{}:{field}", r.code),
                    })
                    .collect();
                format!("<Outcome rejected reasons=[{}]>", reasons.join(", "))
            }
            other => {
                let id = other.id().map_or_else(|| "None".to_string(), |id| id.to_string());
                let event = match other.event() {
                    None => String::new(),
                    Some(e) => format!(
                        " client_id={} metric={} amount={} timestamp={}",
                        PyString::new(py, &e.client_id).repr()?,
                        PyString::new(py, &e.metric).repr()?,
                        PyFloat::new(py, e.amount).repr()?,
                        e.timestamp
                    ),
                };
                format!("<Outcome {} id={id}{event}>", other.status())
            }
        })
    }
}
