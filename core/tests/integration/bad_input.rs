//! Hostile input: any JSON value gives a rejection or a clear error, never a
//! panic, a stack overflow, or a stored half-event.

use ingest_core::{Error, Fields, Ingestor, ReasonCode};

use crate::common::{backends, Sqlite};
use proptest::prelude::*;
use serde_json::{json, Value};

fn is_arg_error(r: Result<ingest_core::Outcome, Error>) -> bool {
    matches!(r, Err(Error::InvalidArgument(_)))
}

#[test]
fn values_that_are_not_objects_are_rejected() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        for text in [
            "\"event\"",
            "42",
            "-1e308",
            "[1, 2]",
            "null",
            "true",
            "[]",
            "{\"payload\": 5}",
        ] {
            let o = ing.submit_json(text).unwrap();
            assert_eq!(o.reasons()[0].code, ReasonCode::NotAnObject, "{text}");
        }
    }
}

#[test]
fn malformed_text_is_an_argument_error() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        for text in [
            "",
            "{",
            "NaN",
            "{\"value\": Infinity}",
            "{\"a\": 1} trailing",
            "\u{0}",
            "{'a': 1}",
        ] {
            assert!(is_arg_error(ing.submit_json(text)), "{text:?}");
        }
        assert!(ing.submit_batch_json("{\"not\": \"an array\"}").is_err());
    }
}

#[test]
fn keys_serde_json_reserves_are_refused_and_the_dead_letters_stay_readable() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        let reserved = [
            // Not first: kept as a key, it would be stored first and read back
            // as a number, making every later listing fail.
            r#"{"source": "a", "$serde_json::private::Number": "1", "ts": 0}"#,
            r#"{"source": "a", "ts": 0, "amt": 1, "x": [{"y": 1, "$serde_json::private::RawValue": 2}]}"#,
            r#"{"payload": {"source": "a", "ts": 0, "amt": "x", "$serde_json::private::Number": "1"}}"#,
            r#"{"source": "a", "ts": 0, "amount": [{"a": 1, "$serde_json::private::Number": "1"}]}"#,
            // Escaped, it is the same key.
            r#"{"source": "a", "\u0024serde_json::private::Number": "1", "ts": 0}"#,
        ];
        for (i, text) in reserved.iter().enumerate() {
            let reserved_key = |o: ingest_core::Outcome| {
                assert_eq!(o.status(), "rejected", "{text}");
                assert_eq!(o.reasons()[0].code, ReasonCode::ReservedKey, "{text}: {o:?}");
            };
            reserved_key(ing.submit_json(text).unwrap());
            // Alone in its batch: the good item beside it is stored.
            let good = format!(r#"{{"source": "r{i}", "value": 1, "ts": 0}}"#);
            let batch = ing.submit_batch_json(&format!("[{text}, {good}]")).unwrap();
            assert_eq!(batch[1].status(), "accepted");
            reserved_key(batch[0].clone());
            let value: Value = serde_json::from_str(text).unwrap();
            reserved_key(ing.submit(&value).unwrap());
            reserved_key(ing.submit_batch(std::slice::from_ref(&value)).unwrap().remove(0));
            reserved_key(ing.check(&value).unwrap());
        }
        // First, serde_json would read it as a number: seen in the text, it
        // is the reserved key it is.
        let o = ing.submit_json(r#"{"$serde_json::private::Number": "1"}"#).unwrap();
        assert_eq!(o.reasons()[0].code, ReasonCode::ReservedKey);
        let stats = ing.stats().unwrap();
        assert_eq!((stats.stored_events, stats.stored_rejected), (5, 5));
        // Every dead letter reads back: the reserved ones are kept as text.
        let listed = ing.rejected(ingest_core::Page { limit: 10, offset: 0 }).unwrap();
        assert_eq!(listed.len(), 5);
        assert!(listed.iter().filter(|r| !r.raw_exact).all(|r| r.raw.is_string()));
        assert!(
            ingest_core::Rules::from_json(r#"{"aliases": {"event_id": ["$serde_json::private::Number"]}}"#)
                .unwrap_err()
                .to_string()
                .contains("reserved")
        );
    }
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        let too_deep = |o: ingest_core::Outcome| {
            assert_eq!(
                o.reasons().iter().map(|r| r.code).collect::<Vec<_>>(),
                [ReasonCode::TooDeep]
            );
        };
        let deep = format!("{}1{}", "[".repeat(20_000), "]".repeat(20_000));
        too_deep(ing.submit_json(&deep).unwrap());
        let deep_obj = format!(
            "{{\"client\":\"a\",\"value\":1,\"ts\":0,\"x\":{}1{}}}",
            "[".repeat(20_000),
            "]".repeat(20_000)
        );
        too_deep(ing.submit_json(&deep_obj).unwrap());
        too_deep(ing.check_json(&deep_obj).unwrap());
        // Just past the limit, in a batch beside a good event.
        let just = format!(
            "{{\"client\":\"a\",\"value\":1,\"ts\":0,\"x\":{}1{}}}",
            "[".repeat(128),
            "]".repeat(128)
        );
        let out = ing
            .submit_batch_json(&format!(r#"[{just}, {{"client":"b","value":1,"ts":0}}]"#))
            .unwrap();
        too_deep(out[0].clone());
        assert_eq!(out[1].status(), "accepted");
        // Built directly, not parsed: the core walks it without recursion.
        let mut v = json!(1);
        for _ in 0..20_000 {
            v = Value::Array(vec![v]);
        }
        let event = json!({"client": "a", "value": 1, "ts": 0, "x": Value::Null});
        let mut event = event.as_object().unwrap().clone();
        event.insert("x".into(), v);
        let event = Value::Object(event);
        too_deep(ing.submit(&event).unwrap());
        too_deep(ing.check(&event).unwrap());
        too_deep(ing.submit_batch(std::slice::from_ref(&event)).unwrap().remove(0));
        // Dropping it would recurse 20 000 frames deep on this thread's stack.
        std::mem::forget(event);
        let stats = ing.stats().unwrap();
        assert_eq!(stats.stored_events, 1);
        // Each kept as a bounded string of its text: the listing reads back.
        for r in ing.rejected(ingest_core::Page { limit: 10, offset: 0 }).unwrap() {
            assert!(r.raw.is_string() && !r.raw_exact, "{r:?}");
            assert!(r.raw.as_str().unwrap().len() <= ingest_core::limits::DEFAULT_MAX_DEAD_LETTER_BYTES);
        }
    }
}

#[test]
fn large_input_is_bounded() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        let ten_mb = "x".repeat(10 << 20);
        let event = json!({"client": "a", "value": 1, "ts": 0, "note": ten_mb});
        let too_large = |o: ingest_core::Outcome| {
            assert_eq!(
                o.reasons().iter().map(|r| r.code).collect::<Vec<_>>(),
                [ReasonCode::TooLarge]
            );
        };
        too_large(ing.submit(&event).unwrap());
        too_large(ing.submit_json(&event.to_string()).unwrap());
        let batch = format!(r#"[{event}, {{"client":"b","value":1,"ts":0}}]"#);
        let out = ing.submit_batch_json(&batch).unwrap();
        too_large(out[0].clone());
        assert_eq!(out[1].status(), "accepted");
        // One row, with the whole size and a bounded copy.
        let letters = ing.rejected(ingest_core::Page { limit: 10, offset: 0 }).unwrap();
        assert_eq!(letters.len(), 1, "one input, one row");
        assert_eq!(letters[0].attempts, 3);
        assert_eq!(letters[0].raw_bytes, event.to_string().len() as u64);
        assert!(letters[0].raw.as_str().unwrap().len() <= ingest_core::limits::DEFAULT_MAX_DEAD_LETTER_BYTES);
        // With a larger limit, a huge attribute is kept and a huge id is too long.
        let big = store.builder().max_event_bytes(32 << 20).open().unwrap();
        assert_eq!(big.submit(&event).unwrap().status(), "accepted");
        let o = big.submit(&json!({"client": ten_mb, "value": 1, "ts": 0})).unwrap();
        assert_eq!(o.reasons()[0].code, ReasonCode::TooLong);
        assert!(
            o.reasons()[0].message.len() < 200,
            "the message does not echo the input"
        );
    }
}

#[test]
fn numbers_at_the_edges() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        let huge_int = format!("1{}", "0".repeat(400));
        let o = ing
            .submit_json(&format!("{{\"client\":\"a\",\"value\":{huge_int},\"ts\":0}}"))
            .unwrap();
        assert_eq!(o.reasons()[0].code, ReasonCode::BadValue);
        let o = ing
            .submit_json(&format!("{{\"client\":\"a\",\"value\":1,\"ts\":{huge_int}}}"))
            .unwrap();
        assert_eq!(o.reasons()[0].code, ReasonCode::OutOfRange);
        let o = ing
            .submit_json("{\"client\":\"a\",\"value\":1e-400,\"ts\":-0.0}")
            .unwrap();
        assert_eq!(o.status(), "accepted", "underflow is zero, -0 is the epoch");
        let stored = ing
            .submit_json(&format!("{{\"client\":\"a\",\"value\":2,\"ts\":0,\"big\":{huge_int}}}"))
            .unwrap();
        assert_eq!(stored.event().unwrap().attributes["big"].to_string(), huge_int);
        for amount in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let f = Fields {
                client_id: "a",
                metric: None,
                amount,
                timestamp_ms: 0,
                event_id: None,
            };
            assert_eq!(ing.submit_fields(&f).unwrap().status(), "rejected");
        }
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,20}".prop_map(Value::from),
        prop_oneof![
            Just("source"),
            Just("payload"),
            Just("value"),
            Just("ts"),
            Just("metric"),
            Just("id"),
            Just("amt")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("source".to_string()),
                    Just("payload".to_string()),
                    Just("value".to_string()),
                    Just("ts".to_string()),
                    Just("metric".to_string()),
                    Just("eventId".to_string()),
                    ".{0,8}"
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_json_value_gets_an_outcome_or_a_clear_error(values in proptest::collection::vec(any_json(), 1..6)) {
        let ing = Ingestor::in_memory().unwrap();
        for v in &values {
            match ing.submit(v) {
                Ok(o) => prop_assert!(matches!(o.status(), "accepted" | "duplicate" | "rejected")),
                Err(e) => prop_assert!(matches!(e, Error::InvalidArgument(_)), "{e}"),
            }
            let _ = ing.check(v).unwrap();
            let _ = ing.submit_json(&v.to_string()).unwrap();
        }
        let outcomes = ing.submit_batch(&values).unwrap();
        prop_assert_eq!(outcomes.len(), values.len());
    }
}
