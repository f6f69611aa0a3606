//! Limits on the shape of raw input, checked before anything else looks at it.
//!
//! An event nested deeper than [`MAX_DEPTH`], larger than the configured
//! byte limit, holding a [reserved key](RESERVED_KEY_PREFIX) or a number no
//! double can hold is rejected with the reasons [`check_shape`] gives, alone
//! in its batch: the rules never see it, and the dead-letter store keeps a
//! bounded copy of it (`raw_copy`). Every walk here is iterative, so no
//! input can exhaust the stack.

use serde_json::{Number, Value};
use sha2::{Digest, Sha256};

use crate::event::{Reason, ReasonCode};
use crate::normalize::Scalar;
use crate::rules::PAYLOAD;

/// The deepest nesting accepted; the same as serde_json's parser limit, so
/// every accepted value also parses back from its stored text.
pub const MAX_DEPTH: usize = 128;

/// The default limit on one event's size in bytes of JSON.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// Keys serde_json gives a private meaning: with its `arbitrary_precision`
/// feature an object whose first key is `$serde_json::private::Number` reads
/// as a number. Such a key anywhere in an event would be stored first (keys
/// are kept sorted), and the stored text would then not read back: one
/// client could make the dead letters (or the events) unreadable. So an
/// event holding one is rejected (`reserved_key`).
pub const RESERVED_KEY_PREFIX: &str = "$serde_json::private::";

/// The reasons `raw` breaks a limit on its shape, none when it keeps them:
/// nesting past [`MAX_DEPTH`] (`too_deep`), a [reserved key](RESERVED_KEY_PREFIX)
/// (`reserved_key`), a number beyond any double (`not_finite`), more than
/// `max_bytes` of compact JSON text (`too_large`). At most one reason of
/// each kind, naming the first place found.
///
/// The depth limit cannot strike a value parsed from text: serde_json's own
/// limit is stricter (see the tests), which the fast JSON path of
/// `submit_json` and `submit_batch_json` relies on.
pub fn check_shape(raw: &Value, max_bytes: usize) -> Result<(), Vec<Reason>> {
    // Each value with its depth and the entry of the event (or of its
    // payload) it is under, for the messages.
    let mut stack: Vec<(&Value, usize, Option<&str>)> = vec![(raw, 1, None)];
    let mut bytes = 0usize;
    let mut reasons: Vec<Reason> = Vec::new();
    let found = |code: ReasonCode, reasons: &mut Vec<Reason>, message: &dyn Fn() -> String| {
        if !reasons.iter().any(|r| r.code == code) {
            reasons.push(Reason::new(code, "", message()));
        }
    };
    while let Some((v, depth, under)) = stack.pop() {
        bytes = bytes.saturating_add(own_bytes(v));
        match v {
            // A list or object at the last level, even empty: serde_json
            // reads at most MAX_DEPTH - 1 of them nested, so the stored text
            // would not read back.
            Value::Array(_) | Value::Object(_) if depth >= MAX_DEPTH => {
                found(ReasonCode::TooDeep, &mut reasons, &|| {
                    format!("the event is nested deeper than {MAX_DEPTH} levels{}", place(under))
                });
                bytes = bytes.saturating_add(approx_bytes(v).saturating_sub(own_bytes(v)));
            }
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1, under))),
            Value::Object(map) => {
                if let Some(k) = map.keys().find(|k| is_reserved(k)) {
                    found(ReasonCode::ReservedKey, &mut reasons, &|| {
                        format!(
                            "the key {k:?}{} starts with {RESERVED_KEY_PREFIX:?}, which the JSON library reserves",
                            place(under)
                        )
                    });
                }
                let top = depth == 1 || (depth == 2 && under == Some(PAYLOAD));
                stack.extend(
                    map.iter()
                        .map(|(k, i)| (i, depth + 1, if top { Some(k.as_str()) } else { under })),
                );
            }
            Value::Number(n) if !finite(n) => found(ReasonCode::NotFinite, &mut reasons, &|| {
                format!(
                    "the number {}{} is beyond the largest double, so it would read back as infinity",
                    preview_number(n),
                    place(under)
                )
            }),
            _ => {}
        }
    }
    if bytes > max_bytes {
        reasons.push(Reason::new(
            ReasonCode::TooLarge,
            "",
            format!("the event is about {bytes} bytes of JSON; the limit is {max_bytes}"),
        ));
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

/// ` (under "x")`: where in the event a problem is, by the entry of the
/// event or of its payload that holds it.
fn place(under: Option<&str>) -> String {
    under.map_or_else(String::new, |k| format!(" (under {:?})", preview_text(k)))
}

fn preview_text(s: &str) -> String {
    shorten(s, 60)
}

/// At most `max` characters of `s`, with `...` when cut: untrusted input
/// must not make a message itself huge.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    let mut cut: String = s.chars().take(max).collect();
    if cut.len() < s.len() {
        cut.push_str("...");
    }
    cut
}

fn preview_number(n: &Number) -> String {
    preview_text(n.as_str())
}

/// Whether `n` is finite wherever it is read: an integer of any size (kept
/// exactly, and read back as an integer), or a number a double holds. (The
/// workspace builds serde_json with `arbitrary_precision`, so a `Number` is
/// its text, which may be `1e400`.) Short text without an exponent is a
/// finite double without a parse.
pub(crate) fn finite(n: &Number) -> bool {
    let s = n.as_str();
    let digits = s.strip_prefix('-').unwrap_or(s);
    (s.len() < 300 && !s.bytes().any(|b| b == b'e' || b == b'E'))
        || digits.bytes().all(|b| b.is_ascii_digit())
        || n.as_f64().is_some()
}

/// Whether `key` starts with [`RESERVED_KEY_PREFIX`].
pub fn is_reserved(key: &str) -> bool {
    key.starts_with(RESERVED_KEY_PREFIX)
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

/// What [`check_shape`] counts for `v` and everything in it, and whether
/// every number in it is [finite]: the fast path's whole check.
pub(crate) fn measure(v: &Value) -> Measure {
    values(v).fold(Measure::default(), |m, v| Measure {
        bytes: m.bytes.saturating_add(own_bytes(v)),
        finite: m.finite && !matches!(v, Value::Number(n) if !finite(n)),
    })
}

/// What [`check_shape`] counts for `v` and everything in it: the size
/// compared with the byte limit.
pub(crate) fn approx_bytes(v: &Value) -> usize {
    measure(v).bytes
}

/// A size in bytes of JSON text, and whether every number counted was finite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Measure {
    pub(crate) bytes: usize,
    pub(crate) finite: bool,
}

impl Default for Measure {
    fn default() -> Self {
        Measure { bytes: 0, finite: true }
    }
}

impl std::ops::Add for Measure {
    type Output = Measure;

    fn add(self, other: Measure) -> Measure {
        Measure {
            bytes: self.bytes.saturating_add(other.bytes),
            finite: self.finite && other.finite,
        }
    }
}

/// What one value counts apart from the values inside it (an object's keys
/// are its own): the bytes of its compact JSON text, counting an escape in
/// text as one byte.
fn own_bytes(v: &Value) -> usize {
    match v {
        Value::Array(items) => items.len().max(1) + 1,
        Value::Object(map) => OBJECT_BYTES + map.keys().map(|k| entry_bytes(k, 0)).sum::<usize>(),
        scalar => value_bytes(Scalar::from(scalar)).bytes,
    }
}

// The counts below are the only ones: the fast path, which counts an event it
// never builds as a `Value`, adds them up from its own parts through these.

/// What [`check_shape`] counts for an object apart from its entries: the
/// braces, less the comma its first entry does not need.
pub(crate) const OBJECT_BYTES: usize = 1;

/// What [`check_shape`] counts for an object's entry under `key` whose value
/// counts `value`: `,"key":value`.
pub(crate) fn entry_bytes(key: &str, value: usize) -> usize {
    key.len() + 4 + value
}

/// What [`check_shape`] counts for `v` and everything inside it.
pub(crate) fn value_bytes(v: Scalar<'_>) -> Measure {
    match v {
        Scalar::Null | Scalar::Bool(true) => Measure { bytes: 4, finite: true },
        Scalar::Bool(false) => Measure { bytes: 5, finite: true },
        Scalar::Number(n) => Measure {
            bytes: n.as_str().len(),
            finite: finite(n),
        },
        Scalar::Text(s) => Measure {
            bytes: s.len() + 2,
            finite: true,
        },
        Scalar::Compound(v) => measure(v),
    }
}

/// The default cap on the raw copy a dead letter keeps, in bytes.
pub const DEFAULT_MAX_DEAD_LETTER_BYTES: usize = 64 << 10;

/// What the dead-letter store keeps of a rejected input: its compact JSON
/// text when that fits in the cap (`exact`), else a JSON string holding the
/// text's first bytes; always valid JSON. The digest and size are those of
/// the whole text, so a retry of a large input still counts as an attempt
/// on its one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawCopy {
    pub(crate) text: String,
    pub(crate) bytes: usize,
    pub(crate) digest: [u8; 32],
    pub(crate) exact: bool,
}

impl RawCopy {
    /// The copy as the dead letter of `client`: its digest, the dead
    /// letter's identity, becomes that of the client and the input's digest
    /// together. The same input rejected for two clients is then two dead
    /// letters, each counting its own client's attempts, and neither client
    /// can learn from its own row that the other sent it. Without a client
    /// the digest stays the input's own, as every row stored before clients
    /// were recorded has it.
    pub(crate) fn owned_by(mut self, client: Option<&str>) -> Self {
        if let Some(client) = client {
            let mut h = Sha256::new();
            h.update(b"ingest dead letter of a client\0");
            h.update((client.len() as u64).to_be_bytes());
            h.update(client.as_bytes());
            h.update(self.digest);
            self.digest = h.finalize().into();
        }
        self
    }

    /// The copy of input that is only text (it is not JSON a `Value` can
    /// hold: a lone surrogate, nesting past serde_json's limit): a JSON
    /// string of it, within the cap.
    pub(crate) fn of_text(text: &str, cap: usize) -> Self {
        let digest = Sha256::digest(text.as_bytes()).into();
        RawCopy {
            text: quote_within(text, cap).0,
            bytes: text.len(),
            digest,
            exact: false,
        }
    }
}

/// `text` as a JSON string of at most `cap` bytes (never less than its
/// first character), and whether it had to be cut.
fn quote_within(text: &str, cap: usize) -> (String, bool) {
    let quote = |t: &str| serde_json::to_string(t).unwrap_or_else(|_| "\"\"".into());
    let whole = quote(text);
    if whole.len() <= cap {
        return (whole, false);
    }
    // Escapes make the quoted text longer than the text: cut, then cut more
    // until the quoted prefix fits.
    let mut end = cap.min(text.len());
    loop {
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let cut = quote(&text[..end]);
        if cut.len() <= cap || end == 0 {
            return (cut, true);
        }
        end = end.saturating_sub((cut.len() - cap).max(1));
    }
}

/// The copy a dead letter keeps of `raw` (see [`RawCopy`]): written without
/// recursion, whatever the nesting, and never more than `cap` bytes kept.
/// `as_text` keeps it as a JSON string of its text even when it fits: for
/// input that breaks a [shape](check_shape) limit, whose text read back as
/// a value would break the listing (nesting past the parser's limit, a
/// reserved key, a number that reads as infinity).
pub(crate) fn raw_copy(raw: &Value, cap: usize, as_text: bool) -> RawCopy {
    let mut out = CopySink {
        hasher: Sha256::new(),
        kept: Vec::new(),
        bytes: 0,
        cap,
    };
    write_compact(raw, &mut out);
    let digest = out.hasher.finalize().into();
    if out.bytes <= cap && !as_text {
        // serde_json's own writer made every piece: UTF-8, valid JSON.
        let text = String::from_utf8(out.kept).unwrap_or_default();
        return RawCopy {
            text,
            bytes: out.bytes,
            digest,
            exact: true,
        };
    }
    let prefix = String::from_utf8_lossy(&out.kept);
    let (text, _) = quote_within(&prefix, cap);
    RawCopy {
        text,
        bytes: out.bytes,
        digest,
        exact: false,
    }
}

struct CopySink {
    hasher: Sha256,
    kept: Vec<u8>,
    bytes: usize,
    cap: usize,
}

impl CopySink {
    fn put(&mut self, piece: &[u8]) {
        self.hasher.update(piece);
        self.bytes = self.bytes.saturating_add(piece.len());
        // One byte past the cap tells the copy was cut.
        let room = (self.cap + 1).saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&piece[..piece.len().min(room)]);
    }
}

impl std::io::Write for CopySink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.put(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `v` as serde_json's compact text (sorted keys, as its `Map` keeps
/// them), written piece by piece with an explicit stack.
fn write_compact(v: &Value, out: &mut CopySink) {
    enum Step<'a> {
        Value(&'a Value),
        Entry(&'a str, &'a Value),
        Text(&'static [u8]),
    }
    let mut stack = vec![Step::Value(v)];
    while let Some(step) = stack.pop() {
        let v = match step {
            Step::Text(t) => {
                out.put(t);
                continue;
            }
            Step::Entry(k, v) => {
                // Text always serialises.
                let _ = serde_json::to_writer(&mut *out, k);
                out.put(b":");
                v
            }
            Step::Value(v) => v,
        };
        match v {
            Value::Array(items) => {
                out.put(b"[");
                stack.push(Step::Text(b"]"));
                for (i, item) in items.iter().enumerate().rev() {
                    stack.push(Step::Value(item));
                    if i > 0 {
                        stack.push(Step::Text(b","));
                    }
                }
            }
            Value::Object(map) => {
                out.put(b"{");
                stack.push(Step::Text(b"}"));
                for (i, (k, item)) in map.iter().enumerate().collect::<Vec<_>>().into_iter().rev() {
                    stack.push(Step::Entry(k, item));
                    if i > 0 {
                        stack.push(Step::Text(b","));
                    }
                }
            }
            Value::Null => out.put(b"null"),
            Value::Bool(true) => out.put(b"true"),
            Value::Bool(false) => out.put(b"false"),
            Value::Number(n) => out.put(n.as_str().as_bytes()),
            Value::String(s) => {
                let _ = serde_json::to_writer(&mut *out, s);
            }
        }
    }
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
        assert_eq!(codes(check_shape(&deeper, usize::MAX)), [ReasonCode::TooDeep]);
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
        let reasons = check_shape(&v, 500).unwrap_err();
        assert_eq!(reasons[0].code, ReasonCode::TooLarge);
        assert!(reasons[0].message.contains("limit is 500"), "{reasons:?}");
    }

    #[test]
    fn the_size_limit_strikes_just_above_the_counted_size() {
        let v = json!({"a": [1, null, true, "xy", {"b": {}}, []], "payload": {"c": 1.5}});
        let n = approx_bytes(&v);
        check_shape(&v, n).unwrap();
        assert_eq!(codes(check_shape(&v, n - 1)), [ReasonCode::TooLarge]);
    }

    fn codes(r: Result<(), Vec<Reason>>) -> Vec<ReasonCode> {
        r.err().unwrap_or_default().iter().map(|r| r.code).collect()
    }

    #[test]
    fn the_size_counts_json_text_so_numbers_count_their_digits() {
        // 130 000 zeros: about 260 KB of text, well under 1 MiB.
        let zeros = Value::Array(vec![json!(0); 130_000]);
        let v = json!({"client_id": "a", "zeros": zeros});
        let text = v.to_string();
        let n = approx_bytes(&v);
        assert!(n <= text.len() && text.len() - n < 8, "{n} vs {}", text.len());
        check_shape(&v, DEFAULT_MAX_EVENT_BYTES).unwrap();
        for compact in [
            json!([]),
            json!({}),
            json!([1, 2.5, "x"]),
            json!({"a": {"b": [true, false, null]}}),
        ] {
            let t = compact.to_string().len();
            assert!(
                approx_bytes(&compact) <= t && t - approx_bytes(&compact) <= 1,
                "{compact}"
            );
        }
    }

    #[test]
    fn every_kind_of_shape_problem_is_named_once_with_its_place() {
        let raw: Value = serde_json::from_str(
            r#"{"a": 1e400, "b": [2e999], "payload": {"x": {"$serde_json::private::y": 1}, "c": -1E309}}"#,
        )
        .unwrap();
        let reasons = check_shape(&raw, usize::MAX).unwrap_err();
        let mut got = codes(Err(reasons.clone()));
        got.sort();
        assert_eq!(got, [ReasonCode::NotFinite, ReasonCode::ReservedKey]);
        let reserved = reasons.iter().find(|r| r.code == ReasonCode::ReservedKey).unwrap();
        assert!(reserved.message.contains("(under \"x\")"), "{reserved:?}");
        // Large but finite numbers, and integers of any size, are fine.
        let huge = format!("-1{}", "0".repeat(400));
        let fine: Value = serde_json::from_str(&format!(r#"{{"a": 1.7976931348623157e308, "b": {huge}}}"#)).unwrap();
        check_shape(&fine, usize::MAX).unwrap();
    }

    #[test]
    fn a_raw_copy_is_the_compact_text_or_a_bounded_string_of_it() {
        let v = json!({"b": [1, "x\"y", null], "a": {"c": false}});
        let copy = raw_copy(&v, 1000, false);
        assert_eq!(copy.text, v.to_string());
        assert_eq!((copy.bytes, copy.exact), (v.to_string().len(), true));
        let digest: [u8; 32] = Sha256::digest(v.to_string().as_bytes()).into();
        assert_eq!(copy.digest, digest);
        let cut = raw_copy(&v, 10, false);
        assert!(!cut.exact && cut.text.len() <= 10, "{cut:?}");
        assert_eq!((cut.bytes, cut.digest), (copy.bytes, copy.digest));
        let back: Value = serde_json::from_str(&cut.text).unwrap();
        assert!(v.to_string().starts_with(back.as_str().unwrap()));
        // Escapes grow text: the cut still fits, and is valid JSON.
        let controls = json!("\u{1}".repeat(100));
        let cut = raw_copy(&controls, 50, false);
        assert!(
            cut.text.len() <= 50 && serde_json::from_str::<Value>(&cut.text).is_ok(),
            "{cut:?}"
        );
        let t = RawCopy::of_text("é\u{1}".repeat(40).as_str(), 33);
        assert!(!t.exact && t.text.len() <= 33 && serde_json::from_str::<Value>(&t.text).is_ok());
    }

    #[test]
    fn a_clients_copy_has_a_digest_of_its_own() {
        let copy = raw_copy(&json!({"amount": "x"}), 64, false);
        let plain = copy.clone().owned_by(None);
        let (a, b) = (copy.clone().owned_by(Some("a")), copy.clone().owned_by(Some("b")));
        assert_eq!(plain, copy, "no client: the input's own digest");
        assert!(a.digest != copy.digest && a.digest != b.digest);
        assert_eq!(a.digest, copy.clone().owned_by(Some("a")).digest);
        assert_eq!((a.text, a.bytes, a.exact), (copy.text, copy.bytes, copy.exact));
    }

    #[test]
    fn a_raw_copy_of_deep_nesting_needs_no_recursion() {
        let mut very = json!(1);
        for _ in 0..100_000 {
            very = Value::Array(vec![very]);
        }
        let copy = raw_copy(&very, 64, false);
        let whole = raw_copy(&json!([[1]]), 64, true);
        assert_eq!((whole.text.as_str(), whole.exact), ("\"[[1]]\"", false));
        assert_eq!((copy.bytes, copy.exact), (200_001, false));
        std::mem::forget(very);
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

    #[test]
    fn what_is_accepted_reads_back_even_empty_at_the_last_level() {
        // 127 lists around an empty one: 128 levels of containers, which
        // serde_json cannot read back; built in code, it must be refused.
        let mut v = json!([]);
        for _ in 0..MAX_DEPTH - 1 {
            v = Value::Array(vec![v]);
        }
        assert!(serde_json::from_str::<Value>(&v.to_string()).is_err());
        assert_eq!(codes(check_shape(&v, usize::MAX)), [ReasonCode::TooDeep]);
        let Value::Array(mut inner) = v else { unreachable!() };
        let one_less = inner.pop().unwrap();
        serde_json::from_str::<Value>(&one_less.to_string()).unwrap();
        check_shape(&one_less, usize::MAX).unwrap();
    }
}
