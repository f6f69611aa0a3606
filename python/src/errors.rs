//! The exception hierarchy, and the one place a core error becomes a Python
//! exception.

use ingest_core::{Error, ErrorKind};
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use pyo3::{create_exception, PyTypeInfo};

create_exception!(
    ingest,
    IngestError,
    PyException,
    "Base class of every error raised by ingest. Rejected events are not errors: they are outcomes."
);
create_exception!(
    ingest,
    RulesError,
    IngestError,
    "The rules document is malformed; the message names the key."
);

/// `InvalidArgument(IngestError, ValueError)`: an `except ValueError` that
/// guards a call with bad input catches it too, as Python code expects.
/// `create_exception!` takes one base, so the class is made as Python's
/// `class` statement would make it, once per interpreter.
fn invalid_argument_type(py: Python<'_>) -> Bound<'_, PyType> {
    static TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    TYPE.get_or_init(py, || {
        let make = || -> PyResult<Py<PyType>> {
            let bases = PyTuple::new(py, [py.get_type::<IngestError>(), py.get_type::<PyValueError>()])?;
            let namespace = PyDict::new(py);
            namespace.set_item("__module__", "ingest")?;
            namespace.set_item(
                "__doc__",
                "An argument is malformed: JSON that does not parse, a bad query or failure point, \
                 a value JSON cannot hold (NaN, infinity), input nested too deep or too large.",
            )?;
            let class = py
                .get_type::<PyType>()
                .call1(("InvalidArgument", bases, namespace))?
                .cast_into::<PyType>()?;
            Ok(class.unbind())
        };
        // Making a class from two built-in exception bases cannot fail short
        // of the interpreter running out of memory.
        make().expect("creating ingest.InvalidArgument")
    })
    .bind(py)
    .clone()
}
create_exception!(
    ingest,
    InjectedFailure,
    IngestError,
    "A failure armed with Ingestor.simulate_failure struck this call."
);
create_exception!(
    ingest,
    StorageError,
    IngestError,
    "The database failed. Nothing of the call was kept; the same call may be retried."
);
create_exception!(
    ingest,
    BusyError,
    StorageError,
    "Another connection held a lock past the busy timeout. Retry later."
);
create_exception!(
    ingest,
    IoError,
    StorageError,
    "The operating system reported an I/O error, or the file cannot be opened."
);
create_exception!(
    ingest,
    CorruptError,
    StorageError,
    "The file is not a database, or its contents are damaged."
);
create_exception!(
    ingest,
    FullError,
    StorageError,
    "The disk or the database's size limit is full."
);
create_exception!(
    ingest,
    ReadOnlyError,
    StorageError,
    "The database (or its directory) cannot be written."
);

create_exception!(
    ingest,
    UnavailableError,
    StorageError,
    "The database server cannot be reached, or is not the primary any more (a restart or a failover). The call may have been committed just before the connection was lost; retrying it is safe (a stored event answers duplicate). Retry later."
);

create_exception!(
    ingest,
    Forbidden,
    IngestError,
    "The caller may not do this: a client's key named another client. Nothing was kept."
);

/// Every core error kind and its exception class. Exhaustive on purpose: a
/// new kind in the core fails to compile here until it has a class.
fn class_of(py: Python<'_>, kind: ErrorKind) -> Bound<'_, PyType> {
    match kind {
        ErrorKind::InvalidRules => RulesError::type_object(py),
        ErrorKind::InvalidArgument => invalid_argument_type(py),
        ErrorKind::Injected => InjectedFailure::type_object(py),
        ErrorKind::Busy => BusyError::type_object(py),
        ErrorKind::Io => IoError::type_object(py),
        ErrorKind::Corrupt => CorruptError::type_object(py),
        ErrorKind::Full => FullError::type_object(py),
        ErrorKind::ReadOnly => ReadOnlyError::type_object(py),
        ErrorKind::Storage => StorageError::type_object(py),
        ErrorKind::Forbidden => Forbidden::type_object(py),
        ErrorKind::Unavailable => UnavailableError::type_object(py),
    }
}

/// The Python exception for a core error, with `kind` set to the core's
/// stable name of its kind, and `point` to the failure point that struck
/// for an InjectedFailure.
pub fn to_py(err: Error) -> PyErr {
    Python::attach(|py| {
        let kind = err.kind();
        let exc = with_kind(py, PyErr::from_type(class_of(py, kind), err.to_string()), kind.as_str());
        if let Error::Injected(point) = err {
            // As with `kind`: cannot fail in practice on a fresh instance.
            let _ = exc.value(py).setattr("point", point.as_str());
        }
        exc
    })
}

/// Extension for `Result<T, ingest_core::Error>`: `.py()?` raises the mapped exception.
pub trait IntoPyResult<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, Error> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// A malformed argument found while converting Python values (a value JSON
/// cannot hold, input too deep): the class the core uses for its own.
pub fn invalid_argument(message: impl Into<String>) -> PyErr {
    Python::attach(|py| {
        with_kind(
            py,
            PyErr::from_type(invalid_argument_type(py), message.into()),
            "invalid_argument",
        )
    })
}

/// Use of an `Ingestor` after `close()`.
pub fn closed() -> PyErr {
    Python::attach(|py| with_kind(py, IngestError::new_err("this Ingestor is closed"), "closed"))
}

/// Use of an `Ingestor` in a process forked from the one that opened it: a
/// SQLite connection must never cross `fork`.
pub fn forked(opened_in: u32, now_in: u32) -> PyErr {
    let message = format!(
        "this Ingestor was opened in process {opened_in} and cannot be used in forked process {now_in}; \
         open a new Ingestor after forking"
    );
    Python::attach(|py| with_kind(py, IngestError::new_err(message), "forked"))
}

/// A result the binding could not convert: a bug, reported rather than
/// hidden.
pub fn internal(message: impl Into<String>) -> PyErr {
    let message = format!("internal error in the ingest binding: {}", message.into());
    Python::attach(|py| with_kind(py, IngestError::new_err(message), "internal"))
}

/// Every exception raised here carries `kind`, so handlers can branch on a
/// stable name as well as on the class.
fn with_kind(py: Python<'_>, exc: PyErr, kind: &str) -> PyErr {
    // Setting an attribute on a fresh exception instance cannot fail in
    // practice; if it did, the exception would still be the right class.
    let _ = exc.value(py).setattr("kind", kind);
    exc
}

/// Register the exception classes on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("IngestError", py.get_type::<IngestError>())?;
    m.add("RulesError", py.get_type::<RulesError>())?;
    m.add("InvalidArgument", invalid_argument_type(py))?;
    m.add("InjectedFailure", py.get_type::<InjectedFailure>())?;
    m.add("StorageError", py.get_type::<StorageError>())?;
    m.add("BusyError", py.get_type::<BusyError>())?;
    m.add("IoError", py.get_type::<IoError>())?;
    m.add("CorruptError", py.get_type::<CorruptError>())?;
    m.add("FullError", py.get_type::<FullError>())?;
    m.add("ReadOnlyError", py.get_type::<ReadOnlyError>())?;
    m.add("UnavailableError", py.get_type::<UnavailableError>())?;
    m.add("Forbidden", py.get_type::<Forbidden>())?;
    Ok(())
}
