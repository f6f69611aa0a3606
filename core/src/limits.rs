//! Limits on the shape of raw input, checked before anything else looks at it.
//!
//! Input nested deeper than [`MAX_DEPTH`] or larger than the configured byte
//! limit is an [`Error::InvalidArgument`], not a rejection: it cannot be kept
//! in the dead-letter store as JSON that parses again, and walking it
//! recursively could exhaust the stack. The walk here is iterative.

use serde_json::Value;

use crate::error::{Error, Result};

/// The deepest nesting accepted; the same as serde_json's parser limit, so
/// every accepted value also parses back from its stored text.
pub const MAX_DEPTH: usize = 128;

/// The default limit on one event's size in bytes of JSON.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// Check `raw` against the depth limit and (approximately, within a few bytes
/// per value) against `max_bytes` of JSON text, without recursion.
pub fn check_shape(raw: &Value, max_bytes: usize) -> Result<()> {
    let mut stack: Vec<(&Value, usize)> = vec![(raw, 1)];
    let mut bytes = 0usize;
    while let Some((v, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(Error::arg(format!("event is nested deeper than {MAX_DEPTH} levels")));
        }
        bytes += match v {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(_) => 8,
            Value::String(s) => s.len() + 2,
            Value::Array(items) => {
                stack.extend(items.iter().map(|i| (i, depth + 1)));
                items.len() + 2
            }
            Value::Object(map) => {
                for (k, item) in map {
                    bytes += k.len() + 4;
                    stack.push((item, depth + 1));
                }
                2
            }
        };
        if bytes > max_bytes {
            return Err(too_large(max_bytes));
        }
    }
    Ok(())
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
}
