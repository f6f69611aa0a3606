//! Python values to `serde_json::Value` and back, faithfully: integers of any
//! size stay exact (the workspace builds serde_json with
//! `arbitrary_precision`, so a `Number` holds its decimal text), and what
//! JSON cannot hold is an error rather than a silent change.

use std::str::FromStr;

use ingest_core::limits::MAX_DEPTH;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::errors::{internal, invalid_argument};

/// Convert a Python value to JSON. Accepts dict (str keys), list, tuple,
/// str, int, float, bool, None, and `datetime.date`/`datetime.datetime`
/// (as ISO 8601 text; a naive datetime is read as UTC by the core).
pub fn to_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    value_at(obj, 1)
}

// Recursion is bounded by MAX_DEPTH (the core's own limit, checked before any
// work), so neither a deep nor a self-referencing structure can overflow the
// stack; depth counts like the core's: the outermost value is level 1.
fn value_at(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(invalid_argument(format!(
            "value is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    // bool before int: in Python, bool is a subclass of int.
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        return int_value(i);
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let v = f.value();
        return Number::from_f64(v).map(Value::Number).ok_or_else(|| {
            invalid_argument(format!(
                "float {v} is not a JSON number: NaN and infinity cannot be stored"
            ))
        });
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(text(s)?));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (k, v) in d.iter() {
            let key = k.cast::<PyString>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "dict keys must be str to convert to JSON, not {}",
                    type_name(&k)
                ))
            })?;
            map.insert(text(key)?, value_at(&v, depth + 1)?);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l.iter().map(|item| value_at(&item, depth + 1)).collect();
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t.iter().map(|item| value_at(&item, depth + 1)).collect();
    }
    // Last, because it costs an import lookup: dates and datetimes become the
    // ISO 8601 text the core parses (datetime is a subclass of date).
    if obj.is_instance(date_type(obj.py())?)? {
        return Ok(Value::String(obj.call_method0("isoformat")?.extract::<String>()?));
    }
    Err(PyTypeError::new_err(format!(
        "cannot convert {} to JSON; expected dict, list, tuple, str, int, float, bool, None, date or datetime",
        type_name(obj)
    )))
}

/// A Python str as Rust text. A str holding a lone surrogate (`"\ud800"`)
/// has no UTF-8 form: that is bad input, like malformed JSON, not a crash of
/// some other kind.
pub fn text(s: &Bound<'_, PyString>) -> PyResult<String> {
    s.to_cow()
        .map(|t| t.into_owned())
        .map_err(|e| invalid_argument(format!("text is not valid Unicode (a lone surrogate?): {e}")))
}

fn int_value(i: &Bound<'_, PyInt>) -> PyResult<Value> {
    if let Ok(v) = i.extract::<i64>() {
        return Ok(Value::from(v));
    }
    if let Ok(v) = i.extract::<u64>() {
        return Ok(Value::from(v));
    }
    // Beyond 64 bits: the exact decimal text, kept as is by arbitrary_precision.
    // int.__repr__ rather than str(): a subclass (IntEnum) may print a name.
    let text: String = i.py().get_type::<PyInt>().call_method1("__repr__", (i,))?.extract()?;
    Number::from_str(&text)
        .map(Value::Number)
        .map_err(|e| invalid_argument(format!("integer {text} is not a JSON number: {e}")))
}

fn date_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static DATE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    DATE.import(py, "datetime", "date")
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "an unknown type".to_string())
}

/// Convert JSON to the natural Python value: objects to dict, arrays to
/// list, integers (of any size) to int, other numbers to float.
pub fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => number_to_py(py, n)?,
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let items = items.iter().map(|i| to_py(py, i)).collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        Value::Object(map) => {
            let d = PyDict::new(py);
            for (k, item) in map {
                d.set_item(k, to_py(py, item)?)?;
            }
            d.into_any()
        }
    })
}

fn number_to_py<'py>(py: Python<'py>, n: &Number) -> PyResult<Bound<'py, PyAny>> {
    if let Some(i) = n.as_i64() {
        return Ok(i.into_pyobject(py)?.into_any());
    }
    if let Some(u) = n.as_u64() {
        return Ok(u.into_pyobject(py)?.into_any());
    }
    let text = n.as_str();
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return py.get_type::<PyInt>().call1((text,));
    }
    match n.as_f64() {
        Some(f) => Ok(PyFloat::new(py, f).into_any()),
        // Valid JSON beyond a double (1e400, kept as sent in attributes):
        // Python's own float() of the text, inf or -inf, as json.loads gives.
        None => py.get_type::<PyFloat>().call1((text,)),
    }
}

/// Serialise a core result and convert it to Python.
pub fn serialize_to_py<'py, T: Serialize + ?Sized>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(value).map_err(|e| internal(format!("cannot serialise a result: {e}")))?;
    to_py(py, &v)
}
