//! `ingest.Outcome`: the answer to one submitted event.

use ingest_core::Outcome;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyString};

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

impl PyOutcome {
    /// `outcome` as a Python object that the cyclic garbage collector does
    /// not track. PyO3 makes every class a collected one, so each outcome
    /// counted towards the next collection, and a batch's outcomes, alive
    /// together, survived into the older generations, whose full passes
    /// walk every object the program holds (the dicts of the next batches
    /// among them): a tenth of a 10 000-event batch's time from Python.
    /// An outcome holds no Python object, so it can be in no cycle.
    pub(crate) fn untracked(py: Python<'_>, inner: Outcome) -> PyResult<Bound<'_, PyOutcome>> {
        let outcome = Bound::new(py, PyOutcome { inner })?;
        // SAFETY: a live object of a class with Py_TPFLAGS_HAVE_GC, which
        // PyO3 tracks on creation; untracking is sound for an object that
        // refers to no Python object, and its deallocation untracks only
        // what is still tracked.
        unsafe { pyo3::ffi::PyObject_GC_UnTrack(outcome.as_ptr().cast()) };
        Ok(outcome)
    }

    /// [`PyOutcome::untracked`] of each of `outcomes`, in a list.
    pub(crate) fn list(py: Python<'_>, outcomes: Vec<Outcome>) -> PyResult<Bound<'_, PyList>> {
        let list = PyList::empty(py);
        for outcome in outcomes {
            list.append(Self::untracked(py, outcome)?)?;
        }
        Ok(list)
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
