//! API keys on both backends: made, listed, checked and revoked through one
//! store, and seen the same by another process over it.

use ingest_core::{ErrorKind, Ingestor, KeyScope};

use crate::common::{backends, Sqlite};

#[test]
fn keys_are_made_checked_listed_and_revoked_for_every_process_over_the_store() {
    for store in backends(Sqlite::File) {
        let ing = store.open();
        let other = store.open();
        let client = ing.add_key(KeyScope::client(" acme ").unwrap()).unwrap();
        let admin = ing.add_key(KeyScope::admin("ops").unwrap()).unwrap();
        assert_ne!(client.token, admin.token);
        assert_eq!(client.scope.client_id(), Some("acme"), "{}", store.backend);

        // Any process over the store knows both.
        let who = other.authenticate(&client.token).unwrap().unwrap();
        assert_eq!((who.key_id.as_str(), &who.scope), (client.id.as_str(), &client.scope));
        let who = other.authenticate(&admin.token).unwrap().unwrap();
        assert_eq!(who.scope, KeyScope::admin("ops").unwrap());

        // Every wrong token gets the same answer.
        let wrong_secret = format!("{}{}", &client.token[..client.token.len() - 1], {
            if client.token.ends_with('0') {
                '1'
            } else {
                '0'
            }
        });
        let unknown_id = format!("ik_{}_{}", "0".repeat(16), &client.token[20..]);
        for bad in [wrong_secret.as_str(), unknown_id.as_str(), "", "Bearer", "ik_x_y"] {
            assert_eq!(other.authenticate(bad).unwrap(), None, "{}: {bad:?}", store.backend);
        }

        // The list holds no secret, and says what each key is.
        let listed = other.keys().unwrap();
        let mut ids: Vec<(&str, &KeyScope, bool)> = listed
            .iter()
            .map(|k| (k.id.as_str(), &k.scope, k.revoked_at.is_none()))
            .collect();
        ids.sort();
        let mut want = vec![
            (client.id.as_str(), &client.scope, true),
            (admin.id.as_str(), &admin.scope, true),
        ];
        want.sort();
        assert_eq!(ids, want, "{}", store.backend);
        let text = serde_json::to_string(&listed).unwrap();
        assert!(!text.contains(&client.token[20..]), "no secret in {text}");

        // Revoked in one process: refused by the other at once.
        assert!(ing.revoke_key(&client.id.to_uppercase()).unwrap());
        assert!(!ing.revoke_key(&client.id).unwrap(), "revoked already");
        assert_eq!(other.authenticate(&client.token).unwrap(), None, "{}", store.backend);
        assert!(other.authenticate(&admin.token).unwrap().is_some());
        let revoked = other.keys().unwrap().into_iter().find(|k| k.id == client.id).unwrap();
        assert!(revoked.revoked_at.is_some());
        assert_eq!(
            ing.revoke_key("not an id").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert!(!ing.revoke_key(&"f".repeat(16)).unwrap(), "no such key");

        // Keys survive a reopen (they are in the store, not the process).
        drop((ing, other));
        let again: Ingestor = store.open();
        assert!(again.authenticate(&admin.token).unwrap().is_some());
    }
}

/// A client's key writes only as its client: an event naming no client is
/// its own, one naming another (under any alias, in an envelope's payload
/// or around it) refuses the whole call with nothing stored; it reads only
/// its own events and aggregates.
#[test]
fn a_scoped_caller_writes_and_reads_as_its_client_only() {
    use ingest_core::{EventFilter, Input, Outcome, Query};
    use serde_json::json;
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        ing.submit(&json!({"client_id": "other", "amount": 7, "timestamp": 1_000}))
            .unwrap();
        let acme = ing.scoped("acme").unwrap();
        let none = json!({"amount": 1, "timestamp": 2_000});
        let own = json!({"clientId": "acme", "amount": 2, "timestamp": 3_000});
        let outs = acme
            .submit_inputs(&[Input::Value(none.clone()), Input::Value(own)])
            .unwrap();
        for o in &outs {
            match o {
                Outcome::Accepted { event, .. } => assert_eq!(event.client_id, "acme", "{}", store.backend),
                other => panic!("{}: {other:?}", store.backend),
            }
        }
        // The text path reads the same.
        let text = r#"[{"amount": 3, "timestamp": 4000}, {"source": "acme", "amount": 4, "timestamp": 5000}]"#;
        assert!(acme
            .submit_batch_json(text)
            .unwrap()
            .iter()
            .all(|o| matches!(o, Outcome::Accepted { .. })));

        let stored = ing.stats().unwrap().stored_events;
        for hostile in [
            r#"[{"amount": 5, "timestamp": 6000}, {"client_id": "other", "amount": 5, "timestamp": 6001}]"#,
            r#"[{"source": "Other ", "amount": 5, "timestamp": 6002}]"#,
            r#"[{"source": "gw", "payload": {"client_id": "other", "amount": 5, "timestamp": 6003}}]"#,
            r#"[{"payload": {"client_id": "other", "amount": 5, "timestamp": 6004}}]"#,
            r#"[{"client_id": "other", "amount": "not a number", "timestamp": 6005}]"#,
        ] {
            let err = acme.submit_batch_json(hostile).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Forbidden, "{}: {hostile}: {err}", store.backend);
            assert_eq!(ing.stats().unwrap().stored_events, stored, "nothing stored: {hostile}");
        }
        let err = acme
            .submit_json(r#"{"client": "other", "amount": 1, "timestamp": 1}"#)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Forbidden);
        assert_eq!(ing.stats().unwrap().stored_rejected, 0, "no dead letter either");

        // A rejection that names no client is the caller's, rejected alone.
        let bad = acme.submit_json(r#"{"amount": "lots", "timestamp": 1}"#).unwrap();
        assert!(matches!(bad, Outcome::Rejected { .. }), "{bad:?}");

        // Reads: its own only.
        let events = acme.events(&EventFilter::default()).unwrap();
        assert_eq!(events.len(), 4, "{}", store.backend);
        assert!(events.iter().all(|e| e.event.client_id == "acme"));
        let totals = acme.aggregate(&Query::default()).unwrap().totals;
        assert_eq!((totals.count, totals.sum), (4, 10.0));
        let other = Query {
            client_id: Some("other".into()),
            ..Query::default()
        };
        assert_eq!(acme.aggregate(&other).unwrap_err().kind(), ErrorKind::Forbidden);
        let other_events = EventFilter {
            client_id: Some("other".into()),
            ..EventFilter::default()
        };
        assert_eq!(acme.events(&other_events).unwrap_err().kind(), ErrorKind::Forbidden);
        assert_eq!(
            ing.aggregate(&Query::default()).unwrap().totals.count,
            5,
            "the store sees all"
        );
        assert!(ing.scoped(" acme").is_err(), "names in their one form only");
        // A client no event could name (too long, a NUL) is no scope and no
        // key: the events written as it would carry a name the rules refuse.
        let long = "a".repeat(100_000);
        for bad in [long.as_str(), "ac\0me"] {
            assert_eq!(ing.scoped(bad).unwrap_err().kind(), ErrorKind::InvalidArgument);
            let err = ing.add_key(KeyScope::client(bad).unwrap()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{}", store.backend);
        }
    }
}
