//! Issue 16: hostile input one item at a time. Bad items are rejected alone
//! with their reasons, dead letters stay bounded and readable, a key that
//! matches a different stored event is a conflict, and names and instants
//! have one form. Every test runs on SQLite and PostgreSQL.

use ingest_core::{DeadLetterBound, Error, Input, Outcome, Page, Reason, ReasonCode, Rules};
use serde_json::{json, Value};

use crate::common::{all_events, backends, Sqlite};

fn codes(o: &Outcome) -> Vec<ReasonCode> {
    o.reasons().iter().map(|r| r.code).collect()
}

fn good(i: usize) -> String {
    format!(r#"{{"client_id": "good{i}", "metric": "sales", "amount": 1, "ts": "2024-01-01T00:00:00Z"}}"#)
}

/// Every kind of hostile item as JSON text, with the code it is rejected with.
fn hostile_texts() -> Vec<(String, ReasonCode)> {
    let deep = format!(
        r#"{{"client_id": "d", "amount": 1, "ts": 0, "x": {}1{}}}"#,
        "[".repeat(130),
        "]".repeat(130)
    );
    vec![
        (
            r#"{"client_id": "s", "amount": 1, "ts": 0, "note": "\ud800"}"#.into(),
            ReasonCode::InvalidText,
        ),
        (
            r#"{"client_id": "\udc00x", "amount": 1, "ts": 0}"#.into(),
            ReasonCode::InvalidText,
        ),
        (
            r#"{"client_id": "n", "amount": 1, "ts": 0, "x": 1e400}"#.into(),
            ReasonCode::NotFinite,
        ),
        (
            r#"{"client_id": "n", "amount": -1e400, "ts": 0}"#.into(),
            ReasonCode::NotFinite,
        ),
        (deep, ReasonCode::TooDeep),
        (
            r#"{"client_id": "r", "amount": 1, "ts": 0, "x": {"a": 1, "$serde_json::private::Number": "1"}}"#.into(),
            ReasonCode::ReservedKey,
        ),
        ("[1, 2]".into(), ReasonCode::NotAnObject),
        ("42".into(), ReasonCode::NotAnObject),
        (
            r#"{"client_id": "o", "amount": 1, "ts": 0, "pad": "PAD"}"#.replace("PAD", &"x".repeat(2 << 20)),
            ReasonCode::TooLarge,
        ),
    ]
}

#[test]
fn each_bad_item_is_rejected_alone_and_every_good_one_stored() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        let hostile = hostile_texts();
        let mut items = Vec::new();
        for (i, (text, _)) in hostile.iter().enumerate() {
            items.push(good(i));
            items.push(text.clone());
        }
        let batch = format!("[{}]", items.join(", "));
        let out = ing.submit_batch_json(&batch).unwrap();
        assert_eq!(out.len(), items.len());
        for (i, (text, code)) in hostile.iter().enumerate() {
            assert_eq!(out[2 * i].status(), "accepted", "{}", out[2 * i].status());
            assert_eq!(codes(&out[2 * i + 1]), [*code], "{}", &text[..text.len().min(80)]);
            // The same item alone is the same rejection, and so is a dry run.
            let alone = ing.submit_json(text).unwrap();
            assert_eq!(codes(&alone), [*code], "{}", &text[..text.len().min(80)]);
            assert_eq!(codes(&ing.check_json(text).unwrap()), [*code]);
        }
        assert_eq!(all_events(&ing).len(), hostile.len(), "{}", store.backend);
        // Nothing stored makes a listing invalid JSON, or reads as infinity.
        let letters = ing.rejected(Page { limit: 100, offset: 0 }).unwrap();
        assert_eq!(letters.len(), hostile.len(), "one row per distinct input");
        assert!(
            letters.iter().all(|r| r.attempts == 2),
            "the batch's and the lone call's attempt"
        );
        let listing = serde_json::to_string(&letters).unwrap();
        assert!(
            !listing.contains("Infinity") && !listing.contains("1e400"),
            "{}",
            &listing[..200]
        );
        for r in &letters {
            serde_json::from_str::<Value>(&r.raw.to_string()).unwrap();
            assert!(r.raw.to_string().len() <= 64 << 10);
        }
        let events = serde_json::to_string(&all_events(&ing)).unwrap();
        serde_json::from_str::<Value>(&events).unwrap();
    }
}

#[test]
fn items_given_as_values_are_rejected_alone_too() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        let mut deep = json!(1);
        for _ in 0..200 {
            deep = Value::Array(vec![deep]);
        }
        let huge: Value = serde_json::from_str("1e400").unwrap();
        let batch = vec![
            json!({"client_id": "a", "amount": 1, "ts": 0}),
            json!({"client_id": "b", "amount": 1, "ts": 0, "x": deep}),
            json!({"client_id": "c", "amount": 1, "ts": 0, "x": huge}),
            json!({"client_id": "d", "amount": 1, "ts": 0, "$serde_json::private::Number": "1"}),
            json!("text"),
            json!({"client_id": "e", "amount": 1, "ts": 0, "big": "x".repeat(2 << 20)}),
            json!({"client_id": "f", "amount": 1, "ts": 0}),
        ];
        let out = ing.submit_batch(&batch).unwrap();
        let got: Vec<Vec<ReasonCode>> = out.iter().map(codes).collect();
        use ReasonCode::*;
        assert_eq!(
            got,
            [
                vec![],
                vec![TooDeep],
                vec![NotFinite],
                vec![ReservedKey],
                vec![NotAnObject],
                vec![TooLarge],
                vec![]
            ]
        );
        assert_eq!(all_events(&ing).len(), 2);
        // What a binding could not read as JSON, rejected with its reasons.
        let stand_in = json!({"client_id": "g", "amount": null, "ts": 0});
        let why = Reason::unreadable(ReasonCode::NotFinite, "amount", "the float nan");
        let inputs = [
            Input::Value(json!({"client_id": "h", "amount": 1, "ts": 0})),
            Input::Unreadable {
                copy: stand_in.clone(),
                reasons: vec![why.clone()],
            },
        ];
        let out = ing.submit_inputs(&inputs).unwrap();
        assert_eq!(out[0].status(), "accepted");
        assert_eq!(out[1].reasons(), [why]);
        let letter = ing.rejected(Page { limit: 1, offset: 0 }).unwrap().remove(0);
        assert_eq!((letter.raw, letter.raw_exact), (stand_in, false));
        // A stand-in is never decided again: the input itself is gone.
        let report = ing.reprocess_rejected().unwrap();
        assert_eq!(report.accepted, 0);
    }
}

#[test]
fn only_text_that_is_not_json_fails_the_call_and_the_error_names_the_item() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        for (text, index) in [
            (format!("[{}, {{\"a\": 1,}}]", good(0)), "item 1"),
            (format!("[{}, {}, {{\"a\" 1}}]", good(0), good(1)), "item 2"),
            (format!("[{}, {{\"a\": tru}}]", good(0)), "item 1"),
            (format!("[{}", good(0)), "item 0"),
        ] {
            let e = ing.submit_batch_json(&text).unwrap_err();
            assert!(
                matches!(&e, Error::InvalidArgument(m) if m.contains(index)),
                "{text}: {e}"
            );
        }
        assert_eq!(all_events(&ing).len(), 0, "nothing of a failed call is kept");
    }
}

#[test]
fn the_size_limit_counts_json_text() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        // 130 000 zeros: about 260 KB of text, under the 1 MiB limit.
        let zeros = vec!["0"; 130_000].join(",");
        let text = format!(r#"{{"client_id": "z", "amount": 1, "ts": 0, "zeros": [{zeros}]}}"#);
        assert_eq!(ing.submit_json(&text).unwrap().status(), "accepted");
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(ing.submit(&value).unwrap().status(), "duplicate");
    }
}

#[test]
fn dead_letters_are_bounded_by_count_and_copy_size() {
    for store in backends(Sqlite::File) {
        let bound = DeadLetterBound {
            max_rows: 3,
            max_copy_bytes: 1024,
        };
        let ing = store.builder().dead_letters(bound).open().unwrap();
        let junk = |i: usize| json!({"client_id": format!("j{i}"), "blob": "y".repeat(10_000)});
        for i in 0..10 {
            assert_eq!(ing.submit(&junk(i)).unwrap().status(), "rejected");
        }
        // Retries of a kept one count as attempts, not rows.
        ing.submit(&junk(9)).unwrap();
        let stats = ing.stats().unwrap();
        assert_eq!(
            (stats.stored_rejected, stats.evicted_rejected),
            (3, 7),
            "{}",
            store.backend
        );
        let letters = ing.rejected(Page { limit: 10, offset: 0 }).unwrap();
        let kept: Vec<i64> = letters.iter().map(|r| r.attempts).collect();
        assert_eq!(kept, [2, 1, 1], "the newest three, newest first");
        for r in &letters {
            assert!(!r.raw_exact && r.raw.as_str().unwrap().len() <= 1024, "{r:?}");
            assert_eq!(r.raw_bytes, junk(0).to_string().len() as u64);
        }
        // The bound holds across a reopen and for every writer of the store.
        drop(ing);
        let again = store.builder().dead_letters(bound).open().unwrap();
        again.submit(&junk(11)).unwrap();
        let stats = again.stats().unwrap();
        assert_eq!((stats.stored_rejected, stats.evicted_rejected), (3, 8));
        assert!(store
            .builder()
            .dead_letters(DeadLetterBound {
                max_rows: 0,
                max_copy_bytes: 1024
            })
            .open()
            .is_err());
    }
}

#[test]
fn a_key_that_matches_a_different_stored_event_is_a_conflict() {
    for store in backends(Sqlite::Memory) {
        let rules = Rules::from_value(&json!({"dedup_key": ["client_id", "event_id"]})).unwrap();
        let ing = store.builder().rules(rules).open().unwrap();
        let first = json!({"client_id": "c", "metric": "sales", "amount": 10, "ts": "2025-01-01", "event_id": "e1"});
        let id = ing.submit(&first).unwrap().id().unwrap();
        let other =
            json!({"client_id": "c", "metric": "refunds", "amount": 99999, "ts": "2025-05-05", "event_id": "e1"});
        for o in [ing.submit(&other).unwrap(), ing.check(&other).unwrap()] {
            assert_eq!((o.status(), o.id()), ("conflict", Some(id)));
            let fields: Vec<&str> = o.reasons().iter().map(|r| r.field.as_str()).collect();
            assert_eq!(fields, ["metric", "amount", "timestamp"]);
            assert!(o.reasons().iter().all(|r| r.code == ReasonCode::Conflict));
            assert!(
                o.reasons()[1].message.contains("stored 10, sent 99999"),
                "{:?}",
                o.reasons()
            );
            // The stored event, not the discarded one.
            assert_eq!(o.event().unwrap().metric, "sales");
        }
        // A retry with other attributes is a duplicate, answered with the stored event.
        let retry =
            json!({"client_id": "c", "metric": "sales", "amount": 10, "ts": "2025-01-01", "event_id": "e1", "try": 2});
        let o = ing.submit(&retry).unwrap();
        assert_eq!((o.status(), o.id()), ("duplicate", Some(id)));
        assert!(
            o.event().unwrap().attributes.is_empty(),
            "the stored event's attributes"
        );
        // Within one batch: the second of a key is measured against the first.
        let out = ing
            .submit_batch(&[
                json!({"client_id": "c", "amount": 1, "ts": 0, "event_id": "e2"}),
                json!({"client_id": "c", "amount": 2, "ts": 0, "event_id": "e2"}),
                json!({"client_id": "c", "amount": 1, "ts": 0, "event_id": "e2"}),
            ])
            .unwrap();
        let statuses: Vec<&str> = out.iter().map(|o| o.status()).collect();
        assert_eq!(statuses, ["accepted", "conflict", "duplicate"]);
        assert_eq!(out[1].event().unwrap().amount, 1.0);
        let stats = ing.stats().unwrap();
        assert_eq!((stats.accepted, stats.duplicate, stats.conflict), (2, 2, 2));
        assert_eq!(all_events(&ing).len(), 2, "a conflict changes nothing");
        let total = ing.aggregate(&ingest_core::Query::default()).unwrap();
        assert_eq!(total.totals.sum, 11.0);
    }
}

#[test]
fn names_that_look_the_same_are_one_client_metric_and_event() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        let spellings = [
            "caf\u{e9}",
            "cafe\u{301}",
            "caf\u{e9}\u{200b}",
            " \u{feff}caf\u{e9}\u{3000}",
        ];
        let mut statuses = Vec::new();
        for s in spellings {
            let o = ing
                .submit(&json!({"client_id": s, "metric": s, "amount": 1, "ts": 0}))
                .unwrap();
            statuses.push(o.status());
            assert_eq!(o.event().unwrap().client_id, "caf\u{e9}");
        }
        assert_eq!(statuses, ["accepted", "duplicate", "duplicate", "duplicate"]);
        // Queries and filters find it however it is spelled.
        let q = ingest_core::Query {
            client_id: Some("cafe\u{301}\u{200d}".into()),
            metric: Some("CAF\u{c9}".into()),
            ..Default::default()
        };
        assert_eq!(ing.aggregate(&q).unwrap().totals.count, 1);
        let f = ingest_core::EventFilter {
            client_id: Some("caf\u{e9}\u{2060}".into()),
            ..Default::default()
        };
        assert_eq!(ing.events(&f).unwrap().len(), 1);
        // Nothing but invisible characters is empty.
        let o = ing
            .submit(&json!({"client_id": "\u{200b}", "amount": 1, "ts": 0}))
            .unwrap();
        assert_eq!(codes(&o), [ReasonCode::BadValue]);
    }
}

#[test]
fn one_instant_is_one_event_however_it_is_written() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        let text = ing
            .submit_json(r#"{"client_id": "t", "amount": 1, "ts": "2023-11-14T22:13:20.9999Z"}"#)
            .unwrap();
        assert_eq!(text.event().unwrap().timestamp.to_string(), "2023-11-14T22:13:20.999Z");
        for ts in ["1700000000.9999", "\"1700000000.9999\"", "1700000000999.5"] {
            let o = ing
                .submit_json(&format!(r#"{{"client_id": "t", "amount": 1, "ts": {ts}}}"#))
                .unwrap();
            assert_eq!((o.status(), o.id()), ("duplicate", text.id()), "{ts}");
        }
        // The last moment of an hour stays in its hour, day and month.
        let o = ing
            .submit_json(r#"{"client_id": "t", "amount": 1, "ts": 1704067199.9999}"#)
            .unwrap();
        assert_eq!(o.event().unwrap().timestamp.to_string(), "2023-12-31T23:59:59.999Z");
    }
}

#[test]
fn a_leap_second_is_rejected_never_merged_or_moved() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        let real = ing
            .submit(&json!({"client_id": "l", "amount": 1, "ts": "2017-01-01T00:00:00Z"}))
            .unwrap();
        assert_eq!(real.status(), "accepted");
        for ts in ["2016-12-31T23:59:60Z", "2024-01-02T10:30:60Z", "2016-12-31 23:59:60.5"] {
            let o = ing.submit(&json!({"client_id": "l", "amount": 1, "ts": ts})).unwrap();
            assert_eq!(codes(&o), [ReasonCode::BadTimestamp], "{ts}");
            assert!(o.reasons()[0].message.contains("leap second"), "{:?}", o.reasons());
        }
        assert_eq!(all_events(&ing).len(), 1);
    }
}

#[test]
fn an_envelope_source_cannot_be_overridden_by_its_payload() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        let o = ing
            .submit_json(r#"{"source": "A", "payload": {"source": "C", "metric": "m", "value": 1, "ts": 0}}"#)
            .unwrap();
        assert_eq!(codes(&o), [ReasonCode::ConflictingFields]);
        assert_eq!(o.reasons()[0].field, "client_id");
        let o = ing
            .submit_json(
                r#"{"source": "A", "region": "eu", "payload": {"region": "us", "metric": "m", "value": 1, "ts": 0}}"#,
            )
            .unwrap();
        assert_eq!(o.status(), "accepted");
        let attributes = Value::Object(o.event().unwrap().attributes.clone());
        assert_eq!(attributes, json!({"region": "us", "envelope": {"region": "eu"}}));
    }
}

#[test]
fn an_empty_list_at_the_last_level_is_too_deep_so_listings_read_back() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        // 127 lists around an empty one: serde_json reads back 127 at most.
        let mut deep = json!([]);
        for _ in 0..127 {
            deep = Value::Array(vec![deep]);
        }
        let o = ing
            .submit(&json!({"client_id": "c", "amount": 1, "ts": 1, "extra": deep}))
            .unwrap();
        assert_eq!(codes(&o), [ReasonCode::TooDeep], "{}", store.backend);
        ing.events(&ingest_core::EventFilter::default()).unwrap();
        ing.rejected(Page { limit: 10, offset: 0 }).unwrap();
        ing.reprocess_rejected().unwrap();
    }
}

#[test]
fn a_reserved_key_first_in_an_object_is_rejected_not_read_as_a_number() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        for (i, inner) in [r#""12""#, r#""nan""#, "5", r#""abc""#].iter().enumerate() {
            for key in [
                "$serde_json::private::Number",
                "\\u0024serde_json::private::Number",
                "$\\u0073erde_json::private::Number",
            ] {
                let bad = format!(r#"{{"client_id": "r{i}", "amount": 1, "ts": 0, "x": {{"{key}": {inner}}}}}"#);
                let o = ing.submit_json(&bad).unwrap();
                assert_eq!(codes(&o), [ReasonCode::ReservedKey], "{bad}");
                let batch = format!("[{}, {bad}]", good(i));
                let out = ing.submit_batch_json(&batch).unwrap();
                assert!(
                    codes(&out[0]).is_empty(),
                    "the good item beside it is stored: {:?}",
                    out[0]
                );
                assert_eq!(codes(&out[1]), [ReasonCode::ReservedKey], "{bad}");
                // The same as an amount: never read as the number inside.
                let amount = format!(r#"{{"client_id": "a{i}", "amount": {{"{key}": {inner}}}, "ts": 0}}"#);
                assert_eq!(
                    codes(&ing.submit_json(&amount).unwrap()),
                    [ReasonCode::ReservedKey],
                    "{amount}"
                );
            }
        }
        // A price written with a dollar sign is ordinary text.
        let o = ing
            .submit_json(r#"{"client_id": "p", "amount": 1, "ts": 0, "price": "$5", "$note": "$sign"}"#)
            .unwrap();
        assert_eq!(o.status(), "accepted");
        ing.rejected(Page { limit: 100, offset: 0 }).unwrap();
    }
}

#[test]
fn a_dead_letter_that_now_conflicts_stays_a_dead_letter() {
    for store in backends(Sqlite::File) {
        let by_id = json!({"dedup_key": ["client_id", "event_id"]});
        let stored_and_letter = {
            let ing = store
                .builder()
                .rules(Rules::from_value(&by_id).unwrap())
                .open()
                .unwrap();
            ing.submit(&json!({"client_id": "c", "amount": 10, "ts": 0, "event_id": "e1"}))
                .unwrap();
            let letter = ing
                .submit(&json!({"client_id": "c", "price": 5, "ts": 0, "event_id": "e1"}))
                .unwrap();
            assert_eq!(letter.status(), "rejected");
            ing.stats().unwrap().stored_rejected
        };
        assert_eq!(stored_and_letter, 1);
        let mut rules = by_id.clone();
        rules["aliases"] = json!({"amount": ["amount", "price"]});
        let ing = store
            .builder()
            .rules(Rules::from_value(&rules).unwrap())
            .open()
            .unwrap();
        let report = ing.reprocess_rejected().unwrap();
        assert_eq!((report.conflict, report.accepted), (1, 0), "{}", store.backend);
        let stats = ing.stats().unwrap();
        assert_eq!(
            (stats.stored_events, stats.stored_rejected),
            (1, 1),
            "nothing of it is lost"
        );
    }
}

#[test]
fn a_query_bound_given_as_a_number_is_read_from_its_digits_like_an_event() {
    // More digits than a double holds: read through a float, the start
    // would round up into the next second.
    let q = ingest_core::Query::from_json(r#"{"start": 1700000000.99999999999, "end": 1700000001}"#).unwrap();
    assert_eq!(q.start.unwrap().to_string(), "2023-11-14T22:13:20.999Z");
    assert_eq!(q.end.unwrap().to_string(), "2023-11-14T22:13:21.000Z");
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        ing.submit_json(r#"{"client_id": "q", "amount": 1, "ts": 1700000000.99999999999}"#)
            .unwrap();
        assert_eq!(ing.aggregate(&q).unwrap().totals.count, 1, "{}", store.backend);
    }
}
