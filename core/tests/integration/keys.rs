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
