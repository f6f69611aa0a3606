//! A scoped caller (a client's API key) tried as a hostile client would:
//! each test is a way a review found to break a promise of
//! `Ingestor::scoped`, kept so that it stays closed.

use ingest_core::{ErrorKind, Ingestor, Outcome, Rules};
use serde_json::json;

use crate::common::{backends, Sqlite};

/// The rules accept a `dedup_key` without `client_id`. A scoped caller's
/// event would then be deduplicated against every client's events, and a
/// conflict answers with the stored event: another client's, whole. So
/// writing as one client under such rules is refused outright (`forbidden`,
/// naming the rule), and nothing of another client is shown or stored.
#[test]
fn a_scoped_caller_never_meets_another_clients_event_through_its_dedup_key() {
    for dedup_key in [json!(["event_id"]), json!(["timestamp", "amount"])] {
        for store in backends(Sqlite::Memory) {
            let rules = Rules::from_value(&json!({ "dedup_key": dedup_key })).unwrap();
            let ing: Ingestor = store.builder().rules(rules).open().unwrap();
            let secret = json!({
                "client": "bob", "metric": "salary", "amount": 123456, "timestamp": "2024-01-01",
                "event_id": "inv-1", "note": "bob only",
            });
            let bob = ing.submit_json(&secret.to_string()).unwrap();
            assert!(matches!(bob, Outcome::Accepted { .. }), "{bob:?}");

            let eve = ing.scoped("eve").unwrap();
            let probe = json!({
                "metric": "probe", "amount": 123456, "timestamp": "2024-01-01", "event_id": "inv-1",
            });
            for answer in [
                eve.submit_json(&probe.to_string()).map(|o| vec![o]),
                eve.submit_batch_json(&format!("[{probe}]")),
                eve.submit_inputs(&[ingest_core::Input::Value(probe.clone())]),
            ] {
                let shown = format!("{answer:?}");
                assert!(
                    matches!(&answer, Err(e) if e.kind() == ErrorKind::Forbidden) && shown.contains("dedup_key"),
                    "{} dedup_key {dedup_key}: {shown}",
                    store.backend
                );
                assert!(!shown.contains("bob") && !shown.contains("salary"), "{shown}");
            }
            let stats = ing.stats().unwrap();
            assert_eq!(
                (stats.stored_events, stats.stored_rejected),
                (1, 0),
                "{}",
                store.backend
            );
        }
    }
}

/// Only the first client alias present at a level is read; a later one
/// naming another client is kept as an attribute of the caller's event,
/// where the promise is `forbidden` with nothing stored.
#[test]
fn a_scoped_caller_naming_another_client_under_a_later_alias_is_forbidden() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        let acme = ing.scoped("acme").unwrap();
        for hostile in [
            r#"{"source": "acme", "client": "evil", "amount": 1, "timestamp": 1000}"#,
            r#"{"clientId": "acme", "client_id": "evil", "amount": 2, "timestamp": 1000}"#,
            r#"{"source": "acme", "client": "evil", "payload": {"amount": 3, "timestamp": 1000}}"#,
        ] {
            let got = acme.submit_json(hostile);
            assert!(
                matches!(&got, Err(e) if e.kind() == ErrorKind::Forbidden),
                "{}: {hostile}: {got:?}",
                store.backend
            );
        }
        assert_eq!(ing.stats().unwrap().stored_events, 0, "{}", store.backend);
    }
}

/// An item naming another client that is rejected before its client is
/// compared with the caller's (an envelope whose payload is not an object,
/// or whose payload's client is unreadable; a number beyond a double) is
/// rejected alone and kept as the caller's dead letter, where the promise
/// is `forbidden` with nothing stored, not even a dead letter.
#[test]
fn a_scoped_caller_naming_another_client_in_a_rejected_item_stores_no_dead_letter() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        let acme = ing.scoped("acme").unwrap();
        for hostile in [
            r#"{"source": "evil", "payload": "x"}"#,
            r#"{"source": "evil", "payload": {"client": "", "amount": 1, "timestamp": 1000}}"#,
            r#"{"client": "evil", "amount": 1e400, "timestamp": 1000}"#,
        ] {
            let got = acme.submit_json(hostile);
            assert!(
                matches!(&got, Err(e) if e.kind() == ErrorKind::Forbidden),
                "{}: {hostile}: {got:?}",
                store.backend
            );
        }
        assert_eq!(ing.stats().unwrap().stored_rejected, 0, "{}", store.backend);
    }
}

/// With rules that give client_id a default, an event naming no client is
/// read as naming the default; a scoped caller's such event is the caller's
/// (the key's client fills it in), and one naming the default client
/// explicitly is another client's.
#[test]
fn a_scoped_caller_fills_in_a_missing_client_even_when_the_rules_have_a_default() {
    for store in backends(Sqlite::Memory) {
        let rules = Rules::from_value(&json!({
            "required": ["amount", "timestamp"],
            "defaults": {"client_id": "shared"},
        }))
        .unwrap();
        let ing: Ingestor = store.builder().rules(rules).open().unwrap();
        let acme = ing.scoped("acme").unwrap();
        for text in [
            r#"{"amount": 1, "timestamp": 1000}"#,
            r#"{"payload": {"amount": 2, "timestamp": 1000}}"#,
        ] {
            match acme.submit_json(text) {
                Ok(Outcome::Accepted { event, .. }) => assert_eq!(event.client_id, "acme", "{}", store.backend),
                other => panic!("{}: {text} as acme: {other:?}", store.backend),
            }
        }
        let named = acme.submit_json(r#"{"client": "shared", "amount": 3, "timestamp": 1000}"#);
        assert!(
            matches!(&named, Err(e) if e.kind() == ErrorKind::Forbidden),
            "{named:?}"
        );
        // Unscoped, the default still names the client.
        let plain = ing.submit_json(r#"{"amount": 4, "timestamp": 1000}"#).unwrap();
        assert!(
            matches!(&plain, Outcome::Accepted { event, .. } if event.client_id == "shared"),
            "{plain:?}"
        );
    }
}
