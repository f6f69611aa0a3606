//! Python values to `serde_json::Value` and back, faithfully: integers of any
//! size stay exact (the workspace builds serde_json with
//! `arbitrary_precision`, so a `Number` holds its decimal text), and what
//! JSON cannot hold is an error rather than a silent change.

use std::str::FromStr;

use ingest_core::limits::MAX_DEPTH;
use ingest_core::{Ingestor, Input, Reason, ReasonCode};
use num_bigint::BigInt;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{IntoPyDict, PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::errors::{internal, invalid_argument};
use crate::read::read_dict;

/// Convert a Python value to JSON. Accepts dict (str keys), list, tuple,
/// str, int, float, bool, None, and `datetime.date`/`datetime.datetime`
/// (as ISO 8601 text; a naive datetime is read as UTC by the core). Where
/// the input cannot be read (see [`to_input`]), an error naming it.
pub fn to_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    let mut reader = Reader {
        path: Vec::new(),
        problems: Vec::new(),
    };
    let value = reader.value(obj, 1)?;
    match reader.problems.first() {
        None => Ok(value),
        Some(p) if p.code == ReasonCode::UnsupportedType => Err(PyTypeError::new_err(p.reason().message)),
        Some(p) => Err(invalid_argument(p.reason().message)),
    }
}

/// One event as the core takes it: a dict read straight into `ing`'s
/// event reader where it can be (see `read.rs`), JSON text (a str), a JSON
/// value, or,
/// where part of it has no JSON form (a float NaN or infinity, a str with a
/// lone surrogate, bytes, a set, a dict key that is not a str, nesting past
/// `MAX_DEPTH`), the closest JSON with a reason for each kind of problem:
/// the core rejects that item alone and keeps the stand-in as its dead
/// letter.
pub fn to_input(ing: &Ingestor, obj: &Bound<'_, PyAny>) -> PyResult<Input> {
    if let Ok(d) = obj.cast::<PyDict>() {
        if let Some(input) = read_dict(ing, d) {
            return Ok(input);
        }
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(match s.to_cow() {
            Ok(text) => Input::Text(text.into_owned()),
            Err(_) => Input::Unreadable {
                copy: Value::String(s.to_string_lossy().into_owned()),
                reasons: vec![Reason::unreadable(ReasonCode::InvalidText, "", "the event's text")],
            },
        });
    }
    let mut reader = Reader {
        path: Vec::new(),
        problems: Vec::new(),
    };
    let copy = reader.value(obj, 1)?;
    Ok(match reader.problems.is_empty() {
        true => Input::Value(copy),
        false => Input::Unreadable {
            copy,
            reasons: reader.problems.iter().map(Problem::reason).collect(),
        },
    })
}

/// What a [`Reader`] could not read, first of its kind, and how many more.
struct Problem {
    code: ReasonCode,
    path: String,
    what: String,
    more: usize,
}

impl Problem {
    fn reason(&self) -> Reason {
        let what = match self.more {
            0 => self.what.clone(),
            n => format!("{} (and {n} more like it)", self.what),
        };
        Reason::unreadable(self.code, &self.path, &what)
    }
}

/// A walk of a Python value into JSON that notes what it cannot read and
/// goes on, with a stand-in in its place.
struct Reader<'py> {
    /// Where the walk is: dict keys and list indexes from the top (the
    /// keys as Python objects: only a problem makes them text).
    path: Vec<Step<'py>>,
    problems: Vec<Problem>,
}

enum Step<'py> {
    Key(Bound<'py, PyAny>),
    Index(usize),
}

/// How much of one dict key a path shows.
const KEY_SHOWN: usize = 40;

impl<'py> Reader<'py> {
    fn problem(&mut self, code: ReasonCode, what: impl FnOnce() -> String) {
        if let Some(p) = self.problems.iter_mut().find(|p| p.code == code) {
            p.more += 1;
            return;
        }
        let mut path = String::new();
        for step in &self.path {
            match step {
                Step::Key(k) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    let text = k.str().map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
                    let shown: String = text.chars().take(KEY_SHOWN).collect();
                    path.push_str(&shown);
                    if shown.len() < text.len() {
                        path.push_str("...");
                    }
                }
                Step::Index(i) => path.push_str(&format!("[{i}]")),
            }
        }
        self.problems.push(Problem {
            code,
            path,
            what: what(),
            more: 0,
        });
    }

    // Recursion is bounded by MAX_DEPTH (the core's own limit), so neither a
    // deep nor a self-referencing structure can overflow the stack; depth
    // counts like the core's: the outermost value is level 1.
    fn value(&mut self, obj: &Bound<'py, PyAny>, depth: usize) -> PyResult<Value> {
        if depth > MAX_DEPTH {
            self.problem(ReasonCode::TooDeep, || {
                format!("a value nested deeper than {MAX_DEPTH} levels")
            });
            return Ok(Value::Null);
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
            return Ok(match Number::from_f64(v) {
                Some(n) => Value::Number(n),
                None => {
                    self.problem(ReasonCode::NotFinite, || format!("the float {v}"));
                    Value::Null
                }
            });
        }
        if let Ok(s) = obj.cast::<PyString>() {
            return Ok(Value::String(self.text(s)));
        }
        if let Ok(d) = obj.cast::<PyDict>() {
            let mut map = Map::new();
            for (k, v) in d.iter() {
                let key = match k.cast::<PyString>() {
                    Ok(key) => self.text(key),
                    Err(_) => {
                        let kind = type_name(&k);
                        self.problem(ReasonCode::UnsupportedType, || format!("a dict key of type {kind}"));
                        format!("<{kind} key>")
                    }
                };
                self.path.push(Step::Key(k.clone()));
                let value = self.value(&v, depth + 1);
                self.path.pop();
                map.insert(key, value?);
            }
            return Ok(Value::Object(map));
        }
        if let Ok(l) = obj.cast::<PyList>() {
            return self.items(l.iter(), depth);
        }
        if let Ok(t) = obj.cast::<PyTuple>() {
            return self.items(t.iter(), depth);
        }
        // Last, because it costs an import lookup: dates and datetimes become the
        // ISO 8601 text the core parses (datetime is a subclass of date).
        if obj.is_instance(date_type(obj.py())?)? {
            return Ok(Value::String(obj.call_method0("isoformat")?.extract::<String>()?));
        }
        let kind = type_name(obj);
        self.problem(ReasonCode::UnsupportedType, || {
            format!(
                "a value of type {kind} (expected dict, list, tuple, str, int, float, bool, None, date or datetime)"
            )
        });
        Ok(Value::String(format!("<{kind}>")))
    }

    fn items(&mut self, items: impl Iterator<Item = Bound<'py, PyAny>>, depth: usize) -> PyResult<Value> {
        let mut out = Vec::new();
        for (i, item) in items.enumerate() {
            self.path.push(Step::Index(i));
            let value = self.value(&item, depth + 1);
            self.path.pop();
            out.push(value?);
        }
        Ok(Value::Array(out))
    }

    /// A Python str as Rust text; one holding a lone surrogate (`"\ud800"`)
    /// has no UTF-8 form, and stands in with U+FFFD in its place.
    fn text(&mut self, s: &Bound<'py, PyString>) -> String {
        match s.to_cow() {
            Ok(t) => t.into_owned(),
            Err(_) => {
                self.problem(ReasonCode::InvalidText, || "text with a lone surrogate".to_string());
                s.to_string_lossy().into_owned()
            }
        }
    }
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
    // Beyond 64 bits: the exact decimal text, kept as is by arbitrary_precision,
    // made from the int's bytes (decimal text of more than 4300 digits is
    // refused by Python itself).
    let bits: usize = i.call_method0("bit_length")?.extract()?;
    let kwargs = [("signed", true)].into_py_dict(i.py())?;
    let bytes = i.call_method("to_bytes", (bits / 8 + 1, "little"), Some(&kwargs))?;
    let text = BigInt::from_signed_bytes_le(bytes.cast::<PyBytes>()?.as_bytes()).to_string();
    Number::from_str(&text)
        .map(Value::Number)
        .map_err(|e| invalid_argument(format!("an integer is not a JSON number: {e}")))
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
        // Through bytes, as `int_value` reads them: no limit on the digits.
        if let Ok(n) = BigInt::from_str(text) {
            let kwargs = [("signed", true)].into_py_dict(py)?;
            let bytes = PyBytes::new(py, &n.to_signed_bytes_le());
            return py
                .get_type::<PyInt>()
                .call_method("from_bytes", (bytes, "little"), Some(&kwargs));
        }
    }
    match n.as_f64() {
        Some(f) => Ok(PyFloat::new(py, f).into_any()),
        // Valid JSON beyond a double (1e400, kept as sent in attributes):
        // Python's own float() of the text, inf or -inf, as json.loads gives.
        None => py.get_type::<PyFloat>().call1((text,)),
    }
}

/// Convert a core result that holds no JSON from a caller (an aggregate:
/// names, counts and floats) straight to Python objects. Results that may
/// (events, rejections) take [`serialize_to_py`], whose numbers keep any
/// number of digits.
pub fn typed_to_py<'py, T: Serialize + ?Sized>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    pythonize::pythonize(py, value).map_err(|e| internal(format!("cannot convert a result: {e}")))
}

/// Serialise a core result and convert it to Python.
pub fn serialize_to_py<'py, T: Serialize + ?Sized>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(value).map_err(|e| internal(format!("cannot serialise a result: {e}")))?;
    to_py(py, &v)
}
