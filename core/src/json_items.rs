//! A batch's JSON text read one item at a time, so that one item JSON cannot
//! carry as a value fails alone: the slow path of `submit_batch_json` and
//! `submit_json`, taken only when the one-pass fast path stepped aside.
//!
//! [`split_batch`] finds where each item of the array starts and ends with
//! a small scanner that keeps no stack (nesting is a counter), so no input
//! can exhaust it; each item is then parsed on its own. What the scanner
//! notes lets an item be rejected with its reason rather than fail the
//! call: nesting past serde_json's limit (`too_deep`), or a `\u` escape of
//! a lone surrogate, which no Rust (or Python, or UTF-8) text can hold
//! (`invalid_text`; the item is read with U+FFFD in its place, so the dead
//! letter shows the rest of it). Text that is not JSON at all is the one
//! whole-call error, naming the item it is in.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::limits::MAX_DEPTH;

/// One item of a batch: where its text is, and what the scanner saw in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ItemText {
    pub(crate) span: Range<usize>,
    /// How many lists and objects deep it nests (0 for a scalar).
    pub(crate) depth: usize,
    /// Where each `\u` escape of a lone surrogate starts, relative to the item.
    pub(crate) lone_surrogates: Vec<usize>,
    /// An object in it has serde_json's private number key first (see
    /// [`RESERVED_KEY_PREFIX`](crate::limits::RESERVED_KEY_PREFIX)):
    /// parsed, it would read as a number, or fail. (A reserved key anywhere
    /// else survives the parse, and the limits find it there.)
    pub(crate) reserved_key: bool,
}

impl ItemText {
    /// Nested deeper than serde_json reads (and than `MAX_DEPTH` allows).
    pub(crate) fn too_deep(&self) -> bool {
        self.depth >= MAX_DEPTH
    }

    /// The item's text with each lone surrogate escape as `\uFFFD`.
    pub(crate) fn repaired(&self, item: &str) -> String {
        let mut out = String::with_capacity(item.len());
        let mut from = 0;
        for &at in &self.lone_surrogates {
            out.push_str(&item[from..at]);
            out.push_str("\\uFFFD");
            from = at + 6;
        }
        out.push_str(&item[from..]);
        out
    }
}

/// The key that makes serde_json (with `arbitrary_precision`) read an
/// object as a number when it comes first.
const PRIVATE_NUMBER: &str = "$serde_json::private::Number";

/// Whether `text` may hold a key serde_json reserves: such a string starts
/// with `$s` (`$serde_json::private::`), each character written as it is or
/// escaped. Text without such a start cannot, and takes the fast path (a
/// price like `"$5"` does not stop it); text with one is read here, where
/// keys are seen.
pub(crate) fn may_hold_reserved_key(text: &str) -> bool {
    text.contains("\"$s") || text.contains("\"$\\") || text.contains("\"\\u0024")
}

/// The items of the JSON array `text`, or why it is not one (naming the
/// item where the text stops being JSON).
pub(crate) fn split_batch(text: &str) -> Result<Vec<ItemText>> {
    let b = text.as_bytes();
    let mut at = skip_ws(b, 0);
    if b.get(at) != Some(&b'[') {
        return Err(Error::arg("a batch must be a JSON array of events"));
    }
    at = skip_ws(b, at + 1);
    let mut items = Vec::new();
    if b.get(at) == Some(&b']') {
        return end(b, at + 1).map(|()| items);
    }
    loop {
        let item = scan_value(b, at).map_err(|e| not_json(items.len(), at, &e))?;
        at = skip_ws(b, item.span.end);
        items.push(item);
        match b.get(at) {
            Some(b',') => at = skip_ws(b, at + 1),
            Some(b']') => return end(b, at + 1).map(|()| items),
            Some(_) => return Err(not_json(items.len() - 1, at, "expected `,` or `]` after the item")),
            None => return Err(not_json(items.len() - 1, at, "the text ends before the batch's `]`")),
        }
    }
}

/// The one value that is the whole of `text`, as [`split_batch`] reads an item.
pub(crate) fn split_one(text: &str) -> Result<ItemText> {
    let b = text.as_bytes();
    let at = skip_ws(b, 0);
    let item = scan_value(b, at).map_err(|e| Error::arg(format!("event is not valid JSON: {e}")))?;
    if skip_ws(b, item.span.end) != b.len() {
        return Err(Error::arg("event is not valid JSON: there is text after the event"));
    }
    Ok(item)
}

fn end(b: &[u8], at: usize) -> Result<()> {
    if skip_ws(b, at) == b.len() {
        Ok(())
    } else {
        Err(Error::arg(
            "batch is not valid JSON: there is text after the batch's `]`",
        ))
    }
}

/// The error for text that is not JSON in item `index`, which starts near
/// byte `at`.
pub(crate) fn not_json(index: usize, at: usize, why: &str) -> Error {
    Error::arg(format!("batch is not valid JSON: item {index} (near byte {at}) {why}"))
}

fn skip_ws(b: &[u8], mut at: usize) -> usize {
    while matches!(b.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// The extent of the value starting at `start`. Only what finding its end
/// needs is checked (strings close, brackets balance); the item's own parse
/// checks the rest.
fn scan_value(b: &[u8], start: usize) -> std::result::Result<ItemText, String> {
    let mut at = start;
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut lone = Vec::new();
    let mut reserved_key = false;
    // Just after a `{` (and any whitespace): the next string is the
    // object's first key.
    let mut first_key = false;
    loop {
        let Some(&c) = b.get(at) else {
            return Err("ends before the item does".into());
        };
        match c {
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
                first_key = c == b'{';
                at += 1;
                continue;
            }
            b']' | b'}' => {
                if depth == 0 {
                    return Err(format!("has `{}` where a value should be", c as char));
                }
                depth -= 1;
                at += 1;
            }
            b'"' => {
                let open = at;
                at = scan_string(b, at, start, &mut lone)?;
                let text = &b[open..at];
                let maybe = text.starts_with(b"\"$") || text.starts_with(b"\"\\u0024");
                if maybe && first_key {
                    // An object's first key that starts with `$`: decoded, to
                    // see past escapes.
                    let key = std::str::from_utf8(text)
                        .ok()
                        .and_then(|t| serde_json::from_str::<String>(t).ok());
                    reserved_key |= key.is_some_and(|k| k == PRIVATE_NUMBER);
                }
            }
            b' ' | b'\t' | b'\n' | b'\r' if depth > 0 => {
                at += 1;
                continue;
            }
            b',' | b':' if depth > 0 => at += 1,
            _ if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.') => {
                while b
                    .get(at)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.'))
                {
                    at += 1;
                }
            }
            _ => return Err(format!("has the unexpected character {:?}", char_at(b, at))),
        }
        first_key = false;
        if depth == 0 {
            return Ok(ItemText {
                span: start..at,
                depth: deepest,
                lone_surrogates: lone,
                reserved_key,
            });
        }
    }
}

fn char_at(b: &[u8], at: usize) -> char {
    // The input is a &str: `at` is on a character boundary here.
    std::str::from_utf8(&b[at..])
        .ok()
        .and_then(|s| s.chars().next())
        .unwrap_or('\u{FFFD}')
}

/// Past the string starting at `open` (its quote), noting each lone
/// surrogate escape relative to `item`.
fn scan_string(b: &[u8], open: usize, item: usize, lone: &mut Vec<usize>) -> std::result::Result<usize, String> {
    let mut at = open + 1;
    // Where a high surrogate escape waits for its low half.
    let mut high: Option<usize> = None;
    loop {
        let Some(&c) = b.get(at) else {
            return Err("has a string that never closes".into());
        };
        if c == b'\\' && b.get(at + 1) == Some(&b'u') {
            let unit = b
                .get(at + 2..at + 6)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            match unit {
                Some(0xD800..=0xDBFF) => {
                    lone.extend(high.replace(at).map(|h| h - item));
                }
                Some(0xDC00..=0xDFFF) => {
                    if high.take().is_none() {
                        lone.push(at - item);
                    }
                }
                // Not hex: the item's parse says why.
                _ => lone.extend(high.take().map(|h| h - item)),
            }
            at += 6.min(b.len() - at);
            continue;
        }
        lone.extend(high.take().map(|h| h - item));
        match c {
            b'"' => return Ok(at + 1),
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(batch: &str) -> Vec<&str> {
        split_batch(batch)
            .unwrap()
            .iter()
            .map(|i| &batch[i.span.clone()])
            .collect()
    }

    #[test]
    fn items_are_found_whatever_they_hold() {
        let batch = r#" [ {"a": "x,]}\"[", "b": [1, {"c": null}]} ,2, "s" ,[], true,-1.5e3 ] "#;
        assert_eq!(
            texts(batch),
            [
                r#"{"a": "x,]}\"[", "b": [1, {"c": null}]}"#,
                "2",
                r#""s""#,
                "[]",
                "true",
                "-1.5e3"
            ]
        );
        assert!(texts("[]").is_empty());
        assert!(texts(" [ ] ").is_empty());
    }

    #[test]
    fn depth_is_counted_without_a_stack() {
        let deep = format!("[{}{}]", "[".repeat(100_000), "]".repeat(100_000));
        let items = split_batch(&deep).unwrap();
        assert_eq!(items[0].depth, 100_000);
        assert!(items[0].too_deep());
        let items = split_batch(r#"[{"a": [[1]]}, 1]"#).unwrap();
        assert_eq!((items[0].depth, items[1].depth), (3, 0));
    }

    #[test]
    fn lone_surrogates_are_found_and_replaced() {
        let batch = r#"[{"a": "\ud800", "b": "\ud83d\ude00", "c": "\udc00x\\ud800", "d": "\ud800\ud800\udc00"}]"#;
        let items = split_batch(batch).unwrap();
        let item = &batch[items[0].span.clone()];
        let repaired = items[0].repaired(item);
        assert_eq!(
            repaired,
            r#"{"a": "\uFFFD", "b": "\ud83d\ude00", "c": "\uFFFDx\\ud800", "d": "\uFFFD\ud800\udc00"}"#
        );
        serde_json::from_str::<serde_json::Value>(&repaired).unwrap();
    }

    #[test]
    fn text_that_is_not_json_names_the_item() {
        for (text, want) in [
            ("{}", "must be a JSON array"),
            ("[1, 2", "item 1"),
            ("[1 2]", "item 0"),
            (r#"[1, {"a": "x]"#, "item 1"),
            ("[1, }", "item 1"),
            ("[1] x", "after the batch"),
            ("[1, @]", "item 1"),
            ("", "must be a JSON array"),
        ] {
            let e = split_batch(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_private_number_key_is_seen_first_in_an_object_escaped_or_not() {
        let batch = r#"[{"x": {"$serde_json::private::Number": "1"}}, { "\u0024serde_json::private::Number" : 1},
                        {"a": "$serde_json::private::Number"}, {"$other": 1},
                        {"a": 1, "$serde_json::private::Number": 2}, {"$serde_json::private::RawValue": 1}]"#;
        let flags: Vec<bool> = split_batch(batch).unwrap().iter().map(|i| i.reserved_key).collect();
        assert_eq!(flags, [true, true, false, false, false, false]);
        assert!(may_hold_reserved_key(batch));
        assert!(!may_hold_reserved_key(r#"[{"price": "$5", "note": "a $serde"}]"#));
        assert!(may_hold_reserved_key(r#"[{"$\u0073erde_json::private::Number": 1}]"#));
    }

    #[test]
    fn one_value_is_the_whole_text() {
        assert_eq!(split_one(" {\"a\": 1} ").unwrap().span, 1..9);
        assert!(split_one("{} {}").is_err());
        assert!(split_one("\"open").is_err());
    }
}
