//! The fast JSON path (`submit_json`, `submit_batch_json`: core/src/raw_event.rs)
//! answers exactly what the `Value` path answers: the same event with the
//! same attributes, or the same reasons, the same raw input kept for a
//! rejection, the same size counted against the limit, the same error.
//!
//! Events are written as text by hand, so that they can have duplicate keys,
//! escapes in keys and strings, numbers in every form, whitespace, envelopes
//! with odd payloads and values that are not objects at all.

use ingest_core::limits::check_shape;
use ingest_core::{
    fast_read_batch, fast_read_event, normalize, FastRead, Ingestor, Input, Outcome, Page, ReasonCode, Rules,
};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::Value;

/// The rule sets every text is read under (rule_sets.json): the built-in
/// rules, those of the fuzz targets, and names that need escapes, a name
/// listed twice and one close to serde_json's private key.
fn rule_sets() -> Vec<Rules> {
    let sets: Value = serde_json::from_str(include_str!("../rule_sets.json")).unwrap();
    ["shared", "fast_path"]
        .iter()
        .flat_map(|k| sets[k].as_array().unwrap().clone())
        .map(|doc| Rules::from_json(&doc.to_string()).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------
// JSON written by hand

/// A JSON value as it will be written: objects keep duplicate keys and their
/// order, numbers are literal text, strings say which characters to escape.
#[derive(Debug, Clone)]
enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(Text),
    Arr(Vec<J>),
    Obj(Vec<(Text, J)>),
}

#[derive(Debug, Clone)]
struct Text {
    s: String,
    /// Bit `i % 8` set: write the `i`th character as an escape.
    escapes: u8,
}

fn write_text(t: &Text, out: &mut String) {
    out.push('"');
    for (i, c) in t.s.chars().enumerate() {
        let escape = t.escapes & (1 << (i % 8)) != 0;
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' if escape => out.push_str("\\n"),
            c if (c as u32) < 0x20 || escape => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `ws` picks the whitespace written around tokens.
fn space(ws: &mut u32, out: &mut String) {
    *ws = ws.wrapping_mul(1_103_515_245).wrapping_add(12_345);
    out.push_str(["", "", " ", "\n\t ", ""][(*ws >> 16) as usize % 5]);
}

fn write(j: &J, ws: &mut u32, out: &mut String) {
    match j {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Num(n) => out.push_str(n),
        J::Str(t) => write_text(t, out),
        J::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                space(ws, out);
                write(item, ws, out);
            }
            space(ws, out);
            out.push(']');
        }
        J::Obj(fields) => {
            out.push('{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                space(ws, out);
                write_text(k, out);
                space(ws, out);
                out.push(':');
                space(ws, out);
                write(v, ws, out);
            }
            space(ws, out);
            out.push('}');
        }
    }
}

fn text_of(j: &J, ws: u32) -> String {
    let mut out = String::new();
    write(j, &mut { ws }, &mut out);
    out
}

fn text(s: impl Strategy<Value = String>) -> impl Strategy<Value = Text> {
    (s, prop_oneof![3 => Just(0u8), 1 => any::<u8>()]).prop_map(|(s, escapes)| Text { s, escapes })
}

/// Numbers in every form JSON has, and then some that no f64 or u64 holds.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "0",
            "-0",
            "1",
            "-1",
            "1200",
            "12.5",
            "-0.0",
            "0.0",
            "1e3",
            "1E+3",
            "1.5e-7",
            "2.5E2",
            "1e-400",
            "1e400",
            "-1e400",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "123456789012345678901234567890",
            "1704153600",
            "1704153600000",
            "1704153600.5",
            "99999999999",
            "100000000000",
            "253402300799999",
            "253402300800000",
            "-62135596800000",
            "0.30000000000000004",
        ])
        .prop_map(str::to_string),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (-1e15f64..1e15).prop_map(|f| f.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
    ]
}

/// Strings the canonical fields read: amounts, instants, metrics, ids.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            " ",
            "1200",
            " 1200.5 ",
            "+1",
            "-0",
            "1e3",
            ".5",
            "12.",
            "inf",
            "NaN",
            "infinity",
            "0x10",
            "2024-01-02",
            "2024-01-02T10:00:00Z",
            "2024-01-02T10:00:00.123456+02:00",
            " 2024-01-02 10:00:00 ",
            "2024-01-02T10:00",
            "2024-13-01",
            "0000-12-31T23:59:59Z",
            "1704153600",
            "1704153600000",
            "1704153600.5",
            "Sales",
            " sales ",
            "ΣUM",
            "İx",
            "a",
            "B",
            "views",
            "a\u{0}b",
            "x\"y\\z",
            "clientA",
            "\u{1F600}",
            "evt-1",
        ])
        .prop_map(str::to_string),
        "\\PC{0,12}",
        "[ -~]{0,300}",
    ]
}

/// The input names of every rule set above, per canonical field.
const NAMES: [&[&str]; 5] = [
    &["source", "client", "clientId", "client_id", "clientID", "user", "ü\n"],
    &["metric", "name", "event", "type", "m", "payload2"],
    &["value", "amount", "amt", "val", "count", "qty", "price", "v", "é"],
    &[
        "timestamp",
        "ts",
        "time",
        "date",
        "datetime",
        "occurred_at",
        "t",
        "t\"q",
    ],
    &[
        "event_id",
        "eventId",
        "id",
        "idempotency_key",
        "eid",
        "$serde_json::private",
    ],
];

/// Keys: every input name, the envelope's key, attribute names, serde_json's
/// private keys and anything else.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => prop::sample::select(NAMES.concat()).prop_map(str::to_string),
        1 => Just("payload".to_string()),
        4 => prop::sample::select(vec!["region", "x", "", "nested", "Payload"]).prop_map(str::to_string),
        1 => prop::sample::select(vec!["$serde_json::private::RawValue", "$serde_json::private::Number"])
            .prop_map(str::to_string),
        1 => "\\PC{0,6}",
    ]
}

/// A value `field` is likely to accept (or to reject for its range, length
/// or allowed list under some rule set).
fn good_value(field: usize) -> BoxedStrategy<J> {
    let texts = |xs: &[&'static str]| prop::sample::select(xs.to_vec()).prop_map(|s| s.to_string());
    let str_of = |xs: &[&'static str]| text(texts(xs)).prop_map(J::Str).boxed();
    let num_of = |xs: &[&'static str]| texts(xs).prop_map(J::Num).boxed();
    match field {
        0 => prop_oneof![4 => str_of(&["clientA", " c ", "u", "anon", "ab"]), 1 => num_of(&["42", "-7"])].boxed(),
        1 => str_of(&["Sales", "views", "a", "B", " İx ", "ΣUM", "u", "sales"]),
        2 => prop_oneof![
            num_of(&["1200", "12.5", "-0", "1e3", "5", "0.1", "-2000"]),
            str_of(&[" 12.5 ", "1200", "-0", "1E2"]),
        ]
        .boxed(),
        3 => prop_oneof![
            str_of(&[
                "2024-01-02",
                "2024-01-02T10:00:00Z",
                "2024-01-02 10:00:00",
                "1704153600000",
                " 1704153600.5"
            ]),
            num_of(&["1704153600", "1704153600000", "0", "1704153600.25"]),
        ]
        .boxed(),
        _ => prop_oneof![str_of(&["e1", " e2 ", "abcd"]), num_of(&["7"])].boxed(),
    }
}

/// Fields that make an event likely to be accepted: each canonical field
/// under one of its names, with probability `p`.
fn canonical_fields(p: f64) -> impl Strategy<Value = Vec<(Text, J)>> {
    let one = |f: usize| {
        let name = prop::sample::select(NAMES[f].to_vec()).prop_map(|s| s.to_string());
        prop::option::weighted(p, (text(name), good_value(f)))
    };
    (one(0), one(1), one(2), one(3), one(4))
        .prop_map(|fs| [fs.0, fs.1, fs.2, fs.3, fs.4].into_iter().flatten().collect::<Vec<_>>())
}

fn leaf() -> impl Strategy<Value = J> {
    prop_oneof![
        1 => Just(J::Null),
        1 => any::<bool>().prop_map(J::Bool),
        4 => number().prop_map(J::Num),
        4 => text(string()).prop_map(J::Str),
    ]
}

/// Any value, nested a few levels, with objects keyed as events are.
fn value() -> impl Strategy<Value = J> {
    leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(J::Arr),
            prop::collection::vec((text(key()), inner), 0..6).prop_map(J::Obj),
        ]
    })
}

/// Canonical fields (with probability `p` each) and any others, in any
/// order: few distinct keys, so duplicates are common.
fn fields(p: f64) -> impl Strategy<Value = Vec<(Text, J)>> {
    (canonical_fields(p), prop::collection::vec((text(key()), value()), 0..4)).prop_flat_map(|(mut a, b)| {
        a.extend(b);
        Just(a).prop_shuffle()
    })
}

/// An event: mostly an object, often an envelope, sometimes anything.
fn event() -> impl Strategy<Value = J> {
    let payload = prop_oneof![
        8 => fields(0.9).prop_map(J::Obj),
        1 => value(),
    ];
    let envelope = (fields(0.3), payload, any::<prop::sample::Index>()).prop_map(|(mut top, p, at)| {
        let at = at.index(top.len() + 1);
        top.insert(
            at,
            (
                Text {
                    s: "payload".into(),
                    escapes: 0,
                },
                p,
            ),
        );
        J::Obj(top)
    });
    prop_oneof![
        6 => fields(0.95).prop_map(J::Obj),
        6 => envelope,
        1 => value(),
    ]
}

// ---------------------------------------------------------------------------
// The sameness checks

/// The fast path's reading of one event agrees with the `Value` path.
fn same_event(fast: &FastRead, value: &Value, rules: &Rules) -> Result<(), TestCaseError> {
    prop_assert_eq!(&fast.value, value, "the rebuilt value differs");
    prop_assert_eq!(&fast.normalized, &normalize(value, rules), "normalised differently");
    prop_assert!(!too_large(value, fast.bytes), "counted {} bytes, fewer", fast.bytes);
    prop_assert!(too_large(value, fast.bytes - 1), "counted {} bytes, more", fast.bytes);
    Ok(())
}

/// Whether `value` is over `max_bytes` as the size limit counts.
fn too_large(value: &Value, max_bytes: usize) -> bool {
    check_shape(value, max_bytes).is_err_and(|reasons| reasons.iter().any(|r| r.code == ReasonCode::TooLarge))
}

/// Where the fast path may step aside: not JSON, not an object, a payload
/// that is not one object, or a key serde_json reserves anywhere.
fn may_decline(j: &J) -> bool {
    let J::Obj(fields) = j else { return true };
    let payloads: Vec<&J> = fields
        .iter()
        .filter(|(k, _)| k.s == "payload")
        .map(|(_, v)| v)
        .collect();
    reserved_anywhere(j) || payloads.len() > 1 || payloads.iter().any(|p| !matches!(p, J::Obj(_)))
}

fn reserved_anywhere(j: &J) -> bool {
    match j {
        J::Arr(items) => items.iter().any(reserved_anywhere),
        J::Obj(fields) => fields
            .iter()
            .any(|(k, v)| k.s.starts_with("$serde_json::private::") || reserved_anywhere(v)),
        _ => false,
    }
}

fn check_one(j: &J, ws: u32, rules: &[Rules]) -> Result<(), TestCaseError> {
    let text = text_of(j, ws);
    let parsed = serde_json::from_str::<Value>(&text);
    for r in rules {
        match (fast_read_event(&text, r), &parsed) {
            (Some(fast), Ok(value)) => same_event(&fast, value, r)?,
            (Some(_), Err(e)) => prop_assert!(false, "the fast path read text serde_json refuses ({e}): {text}"),
            (None, Err(_)) => {}
            (None, Ok(_)) => prop_assert!(may_decline(j), "the fast path stepped aside from {text}"),
        }
    }
    Ok(())
}

fn check_batch(items: &[J], ws: u32, rules: &[Rules]) -> Result<(), TestCaseError> {
    let text = text_of(&J::Arr(items.to_vec()), ws);
    let parsed = serde_json::from_str::<Value>(&text);
    for r in rules {
        match (fast_read_batch(&text, r), &parsed) {
            (Some(fast), Ok(Value::Array(values))) => {
                prop_assert_eq!(fast.len(), values.len());
                for (f, v) in fast.iter().zip(values) {
                    same_event(f, v, r)?;
                }
            }
            (Some(_), other) => prop_assert!(false, "the fast path read a batch as {other:?}: {text}"),
            (None, Err(_)) => {}
            (None, Ok(_)) => prop_assert!(items.iter().any(may_decline), "the fast path stepped aside from {text}"),
        }
    }
    Ok(())
}

/// Two stores, one fed the text (fast path), one fed the parsed values
/// (`Value` path): the same outcomes or errors, and the same dead letters.
fn check_stores(items: &[J], ws: u32, rules: &Rules, max_bytes: usize) -> Result<(), TestCaseError> {
    let open = || {
        Ingestor::builder(":memory:")
            .rules(rules.clone())
            .max_event_bytes(max_bytes)
            .open()
            .unwrap()
    };
    let (fast, slow) = (open(), open());
    let answer = |r: ingest_core::Result<Vec<Outcome>>| r.map_err(|e| e.to_string());
    let mut kept_as_text = false;
    for j in items {
        let text = text_of(j, ws);
        let got = fast.submit_json(&text).map_err(|e| e.to_string());
        // What submit_json does without the fast path: the text's length,
        // then the parse, then submit. (Text far over the limit is kept as
        // text unread, which the `Value` path cannot match: its dead letters
        // differ.)
        if text.len() > max_bytes * 16 {
            let refused = got
                .as_ref()
                .is_ok_and(|o| o.reasons().iter().any(|r| r.code == ReasonCode::TooLarge));
            prop_assert!(refused, "{} bytes of text answered {:?}", text.len(), got);
            kept_as_text = true;
        } else if let Ok(v) = serde_json::from_str::<Value>(&text) {
            let by_value = slow.submit(&v).map_err(|e| e.to_string());
            if reserved_anywhere(j) && got != by_value {
                // A reserved key serde_json reads as a number without
                // complaint (`{"$serde_json::private::Number": "-0"}` parses
                // to -0): its `Value` no longer shows the key, the text does.
                let reserved = got
                    .as_ref()
                    .is_ok_and(|o| o.reasons().iter().any(|r| r.code == ReasonCode::ReservedKey));
                prop_assert!(reserved, "submit_json {} answered {:?}", text, got);
                kept_as_text = true;
            } else {
                prop_assert_eq!(got, by_value, "submit_json {}", text);
            }
        } else {
            // Text serde_json refuses as a whole: not JSON (an error), or an
            // event read on its own and rejected for what it holds (the
            // reserved key serde_json reads as a number).
            let read_alone = got.as_ref().is_ok_and(|o| {
                o.reasons()
                    .iter()
                    .any(|r| [ReasonCode::ReservedKey, ReasonCode::InvalidText, ReasonCode::TooDeep].contains(&r.code))
            });
            prop_assert!(got.is_err() || read_alone, "{:?}", got);
            kept_as_text |= read_alone;
        }
    }
    let text = text_of(&J::Arr(items.to_vec()), ws);
    let by_value = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(vs)) if !items.iter().any(reserved_anywhere) => answer(slow.submit_batch(&vs)),
        _ => answer(slow.submit_batch_json(&text)),
    };
    prop_assert_eq!(answer(fast.submit_batch_json(&text)), by_value, "batch {}", text);
    // The dead letters, but when they arrived.
    let dead = |ing: &Ingestor| {
        let page = Page { limit: 100, offset: 0 };
        let rows = ing.rejected(page).map_err(|e| e.to_string())?.into_iter();
        Ok::<_, String>(rows.map(|r| (r.id, r.raw, r.reasons, r.attempts)).collect::<Vec<_>>())
    };
    let kept = dead(&fast);
    prop_assert!(kept.is_ok(), "the dead letters do not read back: {:?}", kept);
    if !kept_as_text {
        prop_assert_eq!(kept, dead(&slow), "dead letters");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_fast_path_reads_every_event_as_the_value_path(j in event(), ws in any::<u32>()) {
        check_one(&j, ws, &rule_sets())?;
    }

    #[test]
    fn the_fast_path_reads_every_batch_as_the_value_path(items in prop::collection::vec(event(), 0..6), ws in any::<u32>()) {
        check_batch(&items, ws, &rule_sets())?;
    }
}

/// [`Ingestor::read_input`] with a `Value` as its deserializer (what a
/// binding's reader over its own values does): each item read where it can
/// be and given as the value where the reading steps aside, in one batch, is
/// answered as `submit_batch` answers the values, dead letters and all.
fn check_read_inputs(items: &[J], ws: u32, rules: &Rules) -> Result<(), TestCaseError> {
    // The values as that deserializer gives them: it writes some numbers
    // anew (`-0` as 0), which a deserializer may, as long as the value it
    // stands for is the one it gives.
    let values: Vec<Value> = items
        .iter()
        .filter(|j| !reserved_anywhere(j))
        .filter_map(|j| serde_json::from_str::<Value>(&text_of(j, ws)).ok())
        .map(|v| Value::deserialize(v).unwrap())
        .collect();
    let open = || Ingestor::builder(":memory:").rules(rules.clone()).open().unwrap();
    let (read, by_value) = (open(), open());
    let inputs: Vec<Input> = values
        .iter()
        .map(|v| read.read_input(v.clone()).unwrap_or_else(|_| Input::Value(v.clone())))
        .collect();
    let answer = |r: ingest_core::Result<Vec<Outcome>>| r.map_err(|e| e.to_string());
    prop_assert_eq!(
        answer(read.submit_inputs(&inputs)),
        answer(by_value.submit_batch(&values))
    );
    let dead = |ing: &Ingestor| {
        let rows = ing.rejected(Page { limit: 100, offset: 0 }).unwrap().into_iter();
        rows.map(|r| (r.id, r.raw, r.reasons, r.attempts)).collect::<Vec<_>>()
    };
    prop_assert_eq!(dead(&read), dead(&by_value));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn submitting_text_answers_as_submitting_values(
        items in prop::collection::vec(event(), 1..6),
        ws in any::<u32>(),
        rules in 0..rule_sets().len(),
        small in any::<bool>(),
    ) {
        // A small limit strikes some events, a large one none.
        let max_bytes = if small { 150 } else { 1 << 20 };
        check_stores(&items, ws, &rule_sets()[rules], max_bytes)?;
    }

    #[test]
    fn events_read_through_a_deserializer_answer_as_values(
        items in prop::collection::vec(event(), 1..6),
        ws in any::<u32>(),
        rules in 0..rule_sets().len(),
    ) {
        check_read_inputs(&items, ws, &rule_sets()[rules])?;
    }
}

#[test]
fn escaped_keys_and_duplicates_read_as_serde_json_reads_them() {
    let rules = rule_sets();
    for text in [
        // The last of duplicate keys wins, at each level; the payload wins.
        r#"{"ts": 1, "ts": "2024-01-02", "source": "a", "value": 1, "value": null, "amt": 2}"#,
        r#"{"payload": {"ts": null, "amt": 3}, "ts": 0, "source": "a", "amt": 1}"#,
        r#"{"source": "a", "payload": {"source": null, "client": "b", "x": 1}, "x": 2, "ts": 0, "amt": 1}"#,
        // An escaped alias is the alias; an escaped payload key is the envelope.
        r#"{"t\u0073": 0, "\u0073ource": "a\u0041", "am\u0074": "1", "p\u0061yload": {"x": "\u00e9"}}"#,
        // Attributes of every kind, nested, with the key "payload" inside the payload.
        r#"{"source": "a", "ts": 0, "amt": 1, "payload": {"payload": {"a": [1, {"b": null}]}, "n": 1e400}}"#,
        // An unused alias (even null) is an attribute.
        r#"{"source": "a", "client": null, "ts": 0, "time": "x", "amt": 1, "qty": [1]}"#,
    ] {
        let j: Value = serde_json::from_str(text).unwrap();
        for r in &rules {
            let fast = fast_read_event(text, r).unwrap_or_else(|| panic!("stepped aside from {text}"));
            same_event(&fast, &j, r).unwrap();
        }
    }
}

#[test]
fn the_fast_path_steps_aside_where_the_value_path_answers() {
    let rules = Rules::builtin();
    for text in [
        "",
        "{",
        r#"{"a": 1} x"#,
        "[1]",
        "5",
        r#"{"payload": 1, "source": "a"}"#,
        r#"{"payload": {}, "payload": {"ts": 0}}"#,
        r#"{"$serde_json::private::Number": "1"}"#,
        r#"{"payload": {"$serde_json::private::Number": "1"}}"#,
        // serde_json's private keys anywhere: the Value path refuses them.
        r#"{"source": "a", "$serde_json::private::Number": "1", "ts": 0, "amt": 1}"#,
        r#"{"source": "a", "ts": 0, "amt": 1, "x": [{"y": 1, "$serde_json::private::RawValue": 2}]}"#,
        r#"{"source": "a", "ts": 0, "amount": [{"$serde_json::private::Number": "1", "b": 2}]}"#,
        r#"{"s": "\ud800"}"#,
    ] {
        assert!(fast_read_event(text, &rules).is_none(), "{text}");
    }
    assert!(fast_read_batch(r#"[{"source": "a"}, 1]"#, &rules).is_none());
    assert!(fast_read_batch(r#"{"source": "a"}"#, &rules).is_none());
    assert_eq!(fast_read_batch("[]", &rules), Some(vec![]));
}

#[test]
fn an_event_read_under_other_rules_is_decided_as_the_value_it_stands_for() {
    // "price" is an amount under the first store's rules only: read there,
    // it is an attribute to the built-in rules, as the value's would be.
    let priced = Rules::from_json(r#"{"aliases": {"amount": ["price"]}}"#).unwrap();
    let reader = Ingestor::builder(":memory:").rules(priced).open().unwrap();
    let value = serde_json::json!({"client_id": "c", "price": 5, "amount": 1, "ts": 0});
    let read = reader.read_input(value.clone()).unwrap();
    let builtin = Ingestor::in_memory().unwrap();
    let answers = |ing: &Ingestor, input: &Input| ing.check_input(input).unwrap();
    assert_eq!(answers(&builtin, &read), builtin.check(&value).unwrap());
    assert_eq!(answers(&reader, &read), reader.check(&value).unwrap());
    let amount = |o: Outcome| o.event().map(|e| e.amount);
    assert_eq!(amount(answers(&builtin, &read)), Some(1.0));
    assert_eq!(amount(answers(&reader, &read)), Some(5.0));
}
