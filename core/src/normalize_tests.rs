use serde_json::json;

use super::*;

fn ok(raw: Value) -> Event {
    normalize(&raw, &Rules::builtin()).unwrap()
}

fn codes(raw: Value, rules: &Rules) -> Vec<(ReasonCode, String)> {
    let mut c: Vec<_> = normalize(&raw, rules)
        .unwrap_err()
        .into_iter()
        .map(|r| (r.code, r.field))
        .collect();
    c.sort();
    c
}

fn builtin_codes(raw: Value) -> Vec<(ReasonCode, String)> {
    codes(raw, &Rules::builtin())
}

#[test]
fn an_envelope_and_its_payload_must_agree_on_canonical_fields() {
    // A gateway's authenticated source cannot be overridden from the payload,
    // under the same name or another name of the field.
    for payload in [
        json!({"source": "C"}),
        json!({"client_id": "C"}),
        json!({"clientId": " C "}),
    ] {
        let mut p = payload.as_object().unwrap().clone();
        p.extend(json!({"metric": "m", "value": 1, "ts": 0}).as_object().unwrap().clone());
        let reasons = codes(json!({"source": "A", "payload": p}), &Rules::builtin());
        assert_eq!(
            reasons,
            [(ReasonCode::ConflictingFields, "client_id".to_string())],
            "{payload}"
        );
    }
    // The same value in both places (once normalised) is one value.
    let e = ok(json!({"source": "a", "metric": "Sales", "payload": {"metric": "sales ", "value": 1, "ts": 0}}));
    assert_eq!((e.client_id.as_str(), e.metric.as_str()), ("a", "sales"));
    let e = ok(json!({"source": "a", "ts": "1970-01-01", "payload": {"value": 1, "ts": 0}}));
    assert_eq!(e.timestamp.millis(), 0);
    let reasons = codes(
        json!({"source": "a", "value": 2, "payload": {"amount": 1, "ts": 0}}),
        &Rules::builtin(),
    );
    assert_eq!(reasons, [(ReasonCode::ConflictingFields, "amount".to_string())]);
    // A bad value on either side is reported as it is.
    let reasons = codes(
        json!({"source": "a", "value": "x", "payload": {"amount": 1, "ts": 0}}),
        &Rules::builtin(),
    );
    assert_eq!(reasons, [(ReasonCode::BadValue, "amount".to_string())]);
}

#[test]
fn an_envelope_attribute_the_payload_gives_another_value_is_kept_not_dropped() {
    let e = ok(
        json!({"source": "a", "region": "eu", "zone": 1, "payload": {"region": "us", "zone": 1, "value": 1, "ts": 0, "extra": [1]}}),
    );
    assert_eq!(
        Value::Object(e.attributes),
        json!({"region": "us", "zone": 1, "extra": [1], "envelope": {"region": "eu"}})
    );
    // Flat events and agreeing envelopes have no such attribute.
    let e = ok(json!({"source": "a", "region": "eu", "payload": {"value": 1, "ts": 0}}));
    assert_eq!(Value::Object(e.attributes), json!({"region": "eu"}));
    // Never silently dropped: when the name is taken, the event is rejected.
    let reasons = codes(
        json!({"source": "a", "region": "eu", "payload": {"region": "us", "envelope": 1, "value": 1, "ts": 0}}),
        &Rules::builtin(),
    );
    assert_eq!(reasons, [(ReasonCode::ConflictingFields, String::new())]);
}

#[test]
fn first_alias_found_wins_and_the_rest_are_kept_as_attributes() {
    let e = ok(json!({"client": "c1", "clientId": "c2", "amount": 2, "value": 1, "time": 0}));
    assert_eq!(e.client_id, "c1");
    assert_eq!(e.amount, 1.0);
    assert_eq!(e.attributes.len(), 2);
    assert!(e.attributes.contains_key("clientId") && e.attributes.contains_key("amount"));
}

#[test]
fn null_counts_as_absent() {
    let e = ok(json!({"client_id": "a", "value": null, "amt": 3, "ts": 0, "metric": null}));
    assert_eq!((e.amount, e.metric.as_str()), (3.0, "unknown"));
}

#[test]
fn amounts_in_every_accepted_spelling() {
    for v in [
        json!(1200),
        json!(1200.0),
        json!("1200"),
        json!(" 1200 "),
        json!("1.2e3"),
        json!("+1200"),
    ] {
        assert_eq!(ok(json!({"client": "a", "value": v, "ts": 0})).amount, 1200.0, "{v}");
    }
    let z = ok(json!({"client": "a", "value": -0.0, "ts": 0})).amount;
    assert!(z == 0.0 && z.is_sign_positive());
    let z = ok(json!({"client": "a", "value": "-0", "ts": 0})).amount;
    assert!(z.is_sign_positive());
}

#[test]
fn amounts_that_are_not_numbers_are_rejected() {
    let bad_value = vec![(ReasonCode::BadValue, "amount".to_string())];
    for v in [
        "NaN",
        "inf",
        "-Infinity",
        "",
        "  ",
        "1,200",
        "12abc",
        "0x10",
        "e",
        "1e999",
    ] {
        assert_eq!(
            builtin_codes(json!({"client": "a", "value": v, "ts": 0})),
            bad_value,
            "{v:?}"
        );
    }
    let huge: Value =
        serde_json::from_str(&format!("{{\"client\":\"a\",\"value\":1{},\"ts\":0}}", "0".repeat(400))).unwrap();
    assert_eq!(builtin_codes(huge), bad_value);
    let bad_type = vec![(ReasonCode::BadType, "amount".to_string())];
    for v in [json!(true), json!([1]), json!({"v": 1})] {
        assert_eq!(
            builtin_codes(json!({"client": "a", "value": v, "ts": 0})),
            bad_type,
            "{v}"
        );
    }
}

#[test]
fn huge_integers_survive_in_attributes() {
    let raw: Value =
        serde_json::from_str(r#"{"client":"a","value":1,"ts":0,"big":123456789012345678901234567890}"#).unwrap();
    let e = normalize(&raw, &Rules::builtin()).unwrap();
    assert_eq!(e.attributes["big"].to_string(), "123456789012345678901234567890");
}

#[test]
fn every_reason_is_reported_not_only_the_first() {
    let got = builtin_codes(json!({"client": "", "metric": {"a": 1}, "value": false, "ts": "soon", "id": 1.5}));
    assert_eq!(
        got,
        vec![
            (ReasonCode::BadType, "amount".into()),
            (ReasonCode::BadType, "event_id".into()),
            (ReasonCode::BadType, "metric".into()),
            (ReasonCode::BadValue, "client_id".into()),
            (ReasonCode::BadTimestamp, "timestamp".into()),
        ]
    );
}

#[test]
fn missing_amount_and_timestamp_are_never_guessed() {
    assert_eq!(
        builtin_codes(json!({"source": "clientC", "payload": {"metric": "views"}})),
        vec![
            (ReasonCode::MissingField, "amount".into()),
            (ReasonCode::MissingField, "timestamp".into()),
        ]
    );
    assert_eq!(
        builtin_codes(json!({"value": 1, "ts": 0})),
        vec![(ReasonCode::MissingField, "client_id".into())]
    );
}

#[test]
fn not_an_object() {
    for raw in [json!(null), json!(1), json!("x"), json!([]), json!({"payload": "x"})] {
        assert_eq!(builtin_codes(raw.clone())[0].0, ReasonCode::NotAnObject, "{raw}");
    }
}

#[test]
fn rules_shape_the_result() {
    let rules = Rules::from_value(&json!({
        "aliases": {"amount": ["price"]},
        "required": ["client_id", "amount", "timestamp", "metric"],
        "allowed_metrics": ["Sales"],
        "amount_range": [0, 100],
        "max_text_len": 8,
        "metric_case": "lower",
    }))
    .unwrap();
    assert_eq!(
        codes(json!({"client": "a", "value": 5, "ts": 0}), &rules),
        vec![
            (ReasonCode::MissingField, "amount".into()),
            (ReasonCode::MissingField, "metric".into())
        ]
    );
    assert_eq!(
        codes(
            json!({"client": "abcdefghi", "price": 500, "ts": 0, "metric": "views"}),
            &rules
        ),
        vec![
            (ReasonCode::OutOfRange, "amount".into()),
            (ReasonCode::TooLong, "client_id".into()),
            (ReasonCode::NotAllowed, "metric".into()),
        ]
    );
    let e = normalize(&json!({"client": "a", "price": 5, "ts": 0, "metric": " SALES"}), &rules).unwrap();
    assert_eq!(e.metric, "sales");
    let keep = Rules::from_value(&json!({"metric_case": "preserve"})).unwrap();
    assert_eq!(
        normalize(&json!({"client": "a", "value": 5, "ts": 0, "metric": " Sales "}), &keep)
            .unwrap()
            .metric,
        "Sales"
    );
}

#[test]
fn integer_ids_become_text() {
    let e = ok(json!({"client": 42, "value": 1, "ts": 0, "eventId": 7}));
    assert_eq!((e.client_id.as_str(), e.event_id.as_deref()), ("42", Some("7")));
}

#[test]
fn timestamps_out_of_range_and_unparseable() {
    assert_eq!(
        builtin_codes(json!({"client": "a", "value": 1, "ts": 1e18})),
        vec![(ReasonCode::OutOfRange, "timestamp".into())]
    );
    assert_eq!(
        builtin_codes(json!({"client": "a", "value": 1, "ts": [2024]})),
        vec![(ReasonCode::BadType, "timestamp".into())]
    );
}

#[test]
fn long_values_are_previewed_not_echoed() {
    let long = "x".repeat(100_000);
    let reasons = normalize(&json!({"client": "a", "value": long, "ts": 0}), &Rules::builtin()).unwrap_err();
    assert!(reasons[0].message.len() < 200);
}

#[test]
fn typed_fields_follow_the_same_rules() {
    let rules = Rules::builtin();
    let f = Fields {
        client_id: " a ",
        metric: Some("Sales"),
        amount: -0.0,
        timestamp_ms: 0,
        event_id: None,
    };
    let e = normalize_fields(&f, &rules).unwrap();
    assert_eq!(e, normalize(&f.to_raw(), &rules).unwrap());
    assert_eq!((e.client_id.as_str(), e.metric.as_str()), ("a", "sales"));
    let bad = Fields {
        client_id: "",
        metric: None,
        amount: f64::NAN,
        timestamp_ms: i64::MAX,
        event_id: None,
    };
    assert_eq!(normalize_fields(&bad, &rules).unwrap_err().len(), 3);
}

#[test]
fn a_nul_in_a_text_field_is_rejected_with_its_reason() {
    let reasons = normalize(
        &json!({"client_id": "a\u{0}b", "metric": "x\u{0}", "event_id": "\u{0}", "amount": 1, "ts": 0}),
        &Rules::builtin(),
    )
    .unwrap_err();
    let fields: Vec<&str> = reasons.iter().map(|r| r.field.as_str()).collect();
    assert_eq!(fields, ["client_id", "metric", "event_id"]);
    assert!(reasons
        .iter()
        .all(|r| r.code == ReasonCode::BadValue && r.message.contains("NUL")));
    // Elsewhere a NUL is data like any other: attributes keep it.
    assert_eq!(
        ok(json!({"client": "a", "value": 1, "ts": 0, "note": "x\u{0}"})).attributes["note"],
        "x\u{0}"
    );
}

#[test]
fn a_dead_letter_is_the_client_the_input_names_or_the_callers() {
    let rules = Rules::builtin();
    let open = Window::default();
    let of = |raw: Value| dead_letter_client(Some(&raw), &rules, &open);
    assert_eq!(
        of(json!({"clientID": " acme\u{200b}", "amount": "x"})).as_deref(),
        Some("acme")
    );
    assert_eq!(
        of(json!({"source": "a", "payload": {"client": "a"}})).as_deref(),
        Some("a")
    );
    assert_eq!(
        of(json!({"payload": {"client_id": 7}})).as_deref(),
        Some("7"),
        "as events read it"
    );
    for nobody in [
        json!({"amount": 1}),
        json!({"source": "a", "payload": {"client": "b"}}),
        json!({"source": "a", "payload": "b"}),
        json!({"client_id": true}),
        json!({"client_id": "ac\u{0}me"}),
        json!({"client_id": "x".repeat(300)}),
        json!("acme"),
    ] {
        assert_eq!(of(nobody.clone()), None, "{nobody}");
    }
    // A default of the rules is not a client the input names.
    let defaulted = Rules::from_value(&json!({"defaults": {"client_id": "anon"}})).unwrap();
    assert_eq!(dead_letter_client(Some(&json!({"amount": 1})), &defaulted, &open), None);
    // A scoped caller's, whatever the input says or whether it was read.
    let scoped = Window::default().for_client("acme");
    assert_eq!(dead_letter_client(None, &rules, &scoped).as_deref(), Some("acme"));
    assert_eq!(
        dead_letter_client(Some(&json!({"amount": 1})), &rules, &scoped).as_deref(),
        Some("acme")
    );
    assert_eq!(dead_letter_client(None, &rules, &open), None);
}
