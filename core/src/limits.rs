//! Limits on the shape of raw input, checked before anything else looks at it.
//!
//! Input nested deeper than [`MAX_DEPTH`] or larger than the configured byte
//! limit is an [`Error::InvalidArgument`], not a rejection: it cannot be kept
//! in the dead-letter store as JSON that parses again, and walking it
//! recursively could exhaust the stack. The walk here is iterative.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::normalize::Scalar;

/// The deepest nesting accepted; the same as serde_json's parser limit, so
/// every accepted value also parses back from its stored text.
pub const MAX_DEPTH: usize = 128;

/// The default limit on one event's size in bytes of JSON.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// Keys serde_json gives a private meaning: with its `arbitrary_precision`
/// feature an object whose first key is `$serde_json::private::Number` reads
/// as a number. Such a key anywhere in an event would be stored first (keys
/// are kept sorted), and the stored text would then not read back: one
/// client could make the dead letters (or the events) unreadable. So input
/// holding one is refused, like input too deep or too large.
pub(crate) const RESERVED_KEY_PREFIX: &str = "$serde_json::private::";

/// Check `raw` against the depth limit, (approximately, within a few bytes
/// per value) against `max_bytes` of JSON text, and for keys that serde_json
/// reserves (starting with `$serde_json::private::`), without recursion.
///
/// The depth limit cannot fail for a value parsed from text: serde_json's own
/// limit is stricter (see the tests), which the fast JSON path of
/// `submit_json` and `submit_batch_json` relies on.
pub fn check_shape(raw: &Value, max_bytes: usize) -> Result<()> {
    let mut stack: Vec<(&Value, usize)> = vec![(raw, 1)];
    let mut bytes = 0usize;
    while let Some((v, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(Error::arg(format!("event is nested deeper than {MAX_DEPTH} levels")));
        }
        bytes += own_bytes(v);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Object(map) => {
                if let Some(k) = map.keys().find(|k| is_reserved(k)) {
                    return Err(reserved_key(k));
                }
                stack.extend(map.values().map(|i| (i, depth + 1)));
            }
            _ => {}
        }
        if bytes > max_bytes {
            return Err(too_large(max_bytes));
        }
    }
    Ok(())
}

pub(crate) fn is_reserved(key: &str) -> bool {
    key.starts_with(RESERVED_KEY_PREFIX)
}

fn reserved_key(key: &str) -> Error {
    Error::arg(format!(
        "event has the key {key:?}: keys starting with {RESERVED_KEY_PREFIX:?} are reserved by the JSON library and cannot be stored"
    ))
}

/// `v` and every value inside it, depth first, without recursion (and
/// without allocating for a scalar, which most attributes are).
fn values(v: &Value) -> impl Iterator<Item = &Value> {
    let mut next = Some(v);
    let mut stack = Vec::new();
    std::iter::from_fn(move || {
        let v = next.take().or_else(|| stack.pop())?;
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
        Some(v)
    })
}

/// True when an object anywhere in `v` has a [reserved](RESERVED_KEY_PREFIX)
/// key.
pub(crate) fn has_reserved_key(v: &Value) -> bool {
    values(v).any(|v| matches!(v, Value::Object(map) if map.keys().any(|k| is_reserved(k))))
}

/// What [`check_shape`] counts for `v` and everything in it: the size
/// compared with the byte limit.
pub(crate) fn approx_bytes(v: &Value) -> usize {
    values(v).fold(0, |bytes, v| bytes.saturating_add(own_bytes(v)))
}

/// What one value counts apart from the values inside it (an object's keys
/// are its own): about the bytes of its JSON text.
fn own_bytes(v: &Value) -> usize {
    match v {
        Value::Array(items) => items.len() + 2,
        Value::Object(map) => OBJECT_BYTES + map.keys().map(|k| entry_bytes(k, 0)).sum::<usize>(),
        scalar => value_bytes(Scalar::from(scalar)),
    }
}

// The counts below are the only ones: the fast path, which counts an event it
// never builds as a `Value`, adds them up from its own parts through these.

/// What [`check_shape`] counts for an object apart from its entries.
pub(crate) const OBJECT_BYTES: usize = 2;

/// What [`check_shape`] counts for an object's entry under `key` whose value
/// counts `value`.
pub(crate) fn entry_bytes(key: &str, value: usize) -> usize {
    key.len() + 4 + value
}

/// What [`check_shape`] counts for `v` and everything inside it.
pub(crate) fn value_bytes(v: Scalar<'_>) -> usize {
    match v {
        Scalar::Null | Scalar::Bool(_) => 5,
        Scalar::Number(_) => 8,
        Scalar::Text(s) => s.len() + 2,
        Scalar::Compound(v) => approx_bytes(v),
    }
}

pub(crate) fn too_large(max_bytes: usize) -> Error {
    Error::arg(format!("event is larger than the limit of {max_bytes} bytes"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let mut v = json!(1);
        for _ in 0..MAX_DEPTH - 1 {
            v = Value::Array(vec![v]);
        }
        check_shape(&v, usize::MAX).unwrap();
        let deeper = Value::Array(vec![v]);
        assert!(check_shape(&deeper, usize::MAX)
            .unwrap_err()
            .to_string()
            .contains("deeper"));
        // Too deep to drop recursively on a small stack: leak it instead.
        let mut very = json!(1);
        for _ in 0..20_000 {
            very = Value::Array(vec![very]);
        }
        assert!(check_shape(&very, usize::MAX).is_err());
        std::mem::forget(very);
    }

    #[test]
    fn size_is_bounded() {
        let v = json!({"s": "x".repeat(1000)});
        check_shape(&v, 2000).unwrap();
        assert!(check_shape(&v, 500).unwrap_err().to_string().contains("500 bytes"));
    }

    #[test]
    fn the_size_limit_strikes_just_above_the_counted_size() {
        let v = json!({"a": [1, null, true, "xy", {"b": {}}, []], "payload": {"c": 1.5}});
        let n = approx_bytes(&v);
        check_shape(&v, n).unwrap();
        assert!(check_shape(&v, n - 1).unwrap_err().to_string().contains("larger"));
    }

    #[test]
    fn what_serde_json_parses_is_never_too_deep() {
        // serde_json refuses 128 nested lists or objects, one level short of
        // MAX_DEPTH with a value inside: the depth limit only strikes values
        // built in code, so the fast path never checks depth.
        for (open, leaf, close) in [("[", "1", "]"), ("{\"k\":", "1", "}")] {
            let nested = |n: usize| format!("{}{leaf}{}", open.repeat(n), close.repeat(n));
            let deepest: Value = serde_json::from_str(&nested(127)).unwrap();
            check_shape(&deepest, usize::MAX).unwrap();
            assert!(serde_json::from_str::<Value>(&nested(128)).is_err());
        }
    }
}
