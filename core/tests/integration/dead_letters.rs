//! Dead letters belong to a client, on both backends: a scoped caller's are
//! its client's, an unscoped one's are the client the input names (under
//! any alias), and a client lists and counts only its own, whatever the
//! paging and whoever wrote in between. Reprocessing, copying, pruning and
//! the bound keep each one's client.

use std::collections::BTreeSet;

use ingest_core::{
    DeadLetterBound, Fields, Ingestor, Input, Outcome, Page, RejectedEvent, Rules, Scoped, Timestamp, MAX_PAGE,
};
use serde_json::{json, Value};

use crate::common::{all_events, backends, Sqlite, TestStore};

const DAY: i64 = 86_400_000;

fn page(limit: usize, offset: usize) -> Page {
    Page { limit, offset }
}

/// Every dead letter `client` lists, paging `limit` at a time.
fn listed_by(client: &Scoped<'_>, limit: usize) -> Vec<RejectedEvent> {
    let mut out = Vec::new();
    loop {
        let next = client.rejected(page(limit, out.len())).unwrap();
        let done = next.len() < limit;
        out.extend(next);
        if done {
            return out;
        }
    }
}

fn all_letters(ing: &Ingestor) -> Vec<RejectedEvent> {
    ing.rejected(page(MAX_PAGE, 0)).unwrap()
}

/// `v` sent by a scoped caller, as a binding's value.
fn send(s: &Scoped<'_>, v: &Value) -> ingest_core::Result<Outcome> {
    s.submit_input(&Input::Value(v.clone()))
}

fn rejected(o: Outcome) {
    assert!(matches!(o, Outcome::Rejected { .. }), "{o:?}");
}

fn with_rules(store: &TestStore, rules: Value) -> Ingestor {
    store
        .builder()
        .rules(Rules::from_value(&rules).unwrap())
        .open()
        .unwrap()
}

#[test]
fn a_client_lists_only_its_own_dead_letters_whoever_wrote_in_between() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        let (acme, beta) = (ing.scoped("acme").unwrap(), ing.scoped("beta").unwrap());
        // Interleaved both ways, so that every page boundary falls beside
        // the other client's rows, and after them.
        for i in 0..7 {
            let junk = |who: &str| json!({"who": who, "n": i, "amount": "junk", "timestamp": 1});
            if i % 2 == 0 {
                rejected(acme.submit_input(&Input::Value(junk("a"))).unwrap());
                rejected(beta.submit_input(&Input::Value(junk("b"))).unwrap());
            } else {
                rejected(beta.submit_input(&Input::Value(junk("b"))).unwrap());
                rejected(acme.submit_input(&Input::Value(junk("a"))).unwrap());
            }
        }
        // Unscoped: the client the input names, under any alias, at either
        // level of an envelope, in the one form of names.
        for named in [
            json!({"source": "acme", "amount": "x", "timestamp": 1}),
            json!({"clientId": " acme", "amount": "x", "timestamp": 2}),
            json!({"source": "beta", "payload": {"client": " beta", "value": true, "ts": 3}}),
        ] {
            rejected(ing.submit(&named).unwrap());
        }
        // Naming none that reads as a client: nobody's.
        for nobody in [
            json!({"amount": "x", "timestamp": 1}),
            json!({"client_id": 5.5, "amount": 1, "timestamp": 1}),
            json!({"client_id": "", "amount": 1, "timestamp": 1}),
            json!({"source": "gw", "payload": {"client": "beta", "value": true, "ts": 3}}),
            json!({"client_id": "acme", "payload": 7}),
            json!([1, 2]),
        ] {
            rejected(ing.submit(&nobody).unwrap());
        }
        rejected(
            ing.submit_json(r#"{"client_id": "acme", "amount": 1, "ts": "\ud800"}"#)
                .unwrap(),
        );
        // Typed fields name their client directly.
        let fields = Fields {
            client_id: "beta",
            metric: None,
            amount: f64::NAN,
            timestamp_ms: 0,
            event_id: None,
        };
        rejected(ing.submit_fields(&fields).unwrap());

        let all = all_letters(&ing);
        let of = |c: Option<&str>| -> Vec<i64> {
            all.iter()
                .filter(|r| r.client_id.as_deref() == c)
                .map(|r| r.id)
                .collect()
        };
        assert_eq!(
            (of(Some("acme")).len(), of(Some("beta")).len(), of(None).len()),
            (9, 9, 7),
            "{}: {all:#?}",
            store.backend
        );
        for (client, want) in [(&acme, of(Some("acme"))), (&beta, of(Some("beta")))] {
            for limit in [1, 2, 3, 100] {
                let got = listed_by(client, limit);
                let ids: Vec<i64> = got.iter().map(|r| r.id).collect();
                assert_eq!(ids, want, "{}: newest first, limit {limit}", store.backend);
                assert!(got.iter().all(|r| r.client_id.as_deref() == Some(client.client_id())));
            }
            assert!(client.rejected(page(5, 100)).unwrap().is_empty());
            let stats = client.stats().unwrap();
            assert_eq!(stats.client_id, client.client_id());
            assert_eq!((stats.stored_rejected, stats.stored_events), (want.len() as u64, 0));
        }
        assert!(acme.rejected(page(0, 0)).is_err(), "paged as Ingestor::rejected");
        let nobody = ing.scoped("nobody").unwrap();
        assert!(nobody.rejected(page(MAX_PAGE, 0)).unwrap().is_empty());
        assert_eq!(ing.stats().unwrap().stored_rejected, all.len() as u64);
    }
}

#[test]
fn the_same_input_rejected_for_two_clients_is_two_dead_letters() {
    for store in backends(Sqlite::Memory) {
        let ing = store.open();
        let (acme, beta) = (ing.scoped("acme").unwrap(), ing.scoped("beta").unwrap());
        let same = r#"{"amount": "same", "timestamp": 1}"#;
        rejected(acme.submit_json(same).unwrap());
        rejected(beta.submit_json(same).unwrap());
        rejected(acme.submit_json(same).unwrap());
        rejected(ing.submit_json(same).unwrap());
        let attempts = |s: &Scoped<'_>| -> Vec<i64> { listed_by(s, 10).iter().map(|r| r.attempts).collect() };
        assert_eq!(attempts(&acme), [2], "{}: beta's try is not acme's", store.backend);
        assert_eq!(attempts(&beta), [1], "{}", store.backend);
        let all = all_letters(&ing);
        assert_eq!(all.len(), 3, "{all:#?}");
        assert_eq!(all[0].client_id, None, "unscoped, naming nobody");

        // An input naming its client is one dead letter whoever sends it:
        // unscoped, or as that client.
        let named = json!({"client": "acme", "amount": "x", "timestamp": 1});
        rejected(ing.submit(&named).unwrap());
        rejected(acme.submit_input(&Input::Value(named.clone())).unwrap());
        let top = &listed_by(&acme, 1)[0];
        assert_eq!((&top.raw, top.attempts), (&named, 2), "{}", store.backend);
        assert!(listed_by(&beta, 10).iter().all(|r| r.raw != named));
    }
}

#[test]
fn reprocessing_decides_a_dead_letter_again_as_its_clients_and_keeps_its_client() {
    for store in backends(Sqlite::File) {
        let strict = json!({"aliases": {"amount": ["amount"]}});
        let ing = with_rules(&store, strict);
        let acme = ing.scoped("acme").unwrap();
        rejected(send(&acme, &json!({"price": 3, "ts": 0})).unwrap());
        rejected(send(&acme, &json!({"amount": "junk", "ts": 0})).unwrap());
        rejected(ing.submit(&json!({"source": "beta", "price": 4, "ts": 0})).unwrap());
        rejected(ing.submit(&json!({"price": 5, "ts": 0})).unwrap());
        drop(ing);

        let ing = with_rules(&store, json!({"aliases": {"amount": ["amount", "price"]}}));
        let report = ing.reprocess_rejected().unwrap();
        assert_eq!((report.accepted, report.rejected), (2, 2), "{}", store.backend);
        let mut events: Vec<(String, f64)> = all_events(&ing)
            .into_iter()
            .map(|e| (e.event.client_id, e.event.amount))
            .collect();
        events.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            events,
            [("acme".into(), 3.0), ("beta".into(), 4.0)],
            "{}",
            store.backend
        );
        let left = all_letters(&ing);
        let clients: BTreeSet<Option<&str>> = left.iter().map(|r| r.client_id.as_deref()).collect();
        assert_eq!(clients, BTreeSet::from([None, Some("acme")]), "{left:#?}");
        let acme = ing.scoped("acme").unwrap();
        let junk = listed_by(&acme, 10);
        assert_eq!(junk.len(), 1);
        assert_eq!((junk[0].attempts, junk[0].rules_version), (1, ing.rules_version()));
        // Its next attempt counts on the same row: the row kept its digest.
        rejected(send(&acme, &json!({"amount": "junk", "ts": 0})).unwrap());
        assert_eq!(listed_by(&acme, 10)[0].attempts, 2, "{}", store.backend);
        let stats = acme.stats().unwrap();
        assert_eq!((stats.stored_events, stats.stored_rejected), (1, 1));
    }
}

#[test]
fn copying_keeps_each_dead_letters_client() {
    for target in backends(Sqlite::File) {
        let bound = DeadLetterBound {
            max_copy_bytes: 64,
            ..DeadLetterBound::default()
        };
        let src = Ingestor::builder(":memory:").dead_letters(bound).open().unwrap();
        let acme = src.scoped("acme").unwrap();
        rejected(send(&acme, &json!({"amount": "junk", "ts": 0})).unwrap());
        // Over the copy's cap: kept cut, so copied as it is, never decided again.
        let big = json!({"amount": "x".repeat(200), "ts": 0});
        rejected(send(&acme, &big).unwrap());
        rejected(
            src.submit(&json!({"client_id": "beta", "amount": [], "ts": 0}))
                .unwrap(),
        );
        rejected(src.submit(&json!({"amount": "nobody's", "ts": 0})).unwrap());

        let dst = target.builder().dead_letters(bound).open().unwrap();
        for _ in 0..2 {
            let report = src.copy_to(&dst).unwrap();
            assert_eq!(report.rejected, 4, "{}", target.backend);
        }
        let mine = |ing: &Ingestor| -> Vec<(Option<String>, Value, bool)> {
            let mut out: Vec<_> = all_letters(ing)
                .into_iter()
                .map(|r| (r.client_id, r.raw, r.raw_exact))
                .collect();
            out.sort_by_key(|r| format!("{r:?}"));
            out
        };
        assert_eq!(
            mine(&dst),
            mine(&src),
            "{}: copied again, nothing doubled",
            target.backend
        );
        let on_dst = dst.scoped("acme").unwrap();
        let listed = listed_by(&on_dst, 10);
        assert_eq!(listed.len(), 2, "{}", target.backend);
        assert!(listed.iter().any(|r| !r.raw_exact));
        // The cut copy's next attempt at the target counts on its row.
        rejected(send(&on_dst, &big).unwrap());
        let attempts: Vec<i64> = listed_by(&on_dst, 10).iter().map(|r| r.attempts).collect();
        assert_eq!(attempts.iter().sum::<i64>(), 4, "{}: {attempts:?}", target.backend);
    }
}

#[test]
fn pruning_and_the_bound_keep_each_dead_letters_client() {
    for store in backends(Sqlite::Memory) {
        let bound = DeadLetterBound {
            max_rows: 3,
            ..DeadLetterBound::default()
        };
        let ing = store
            .builder()
            .rules(Rules::from_value(&json!({"max_age": "0s"})).unwrap())
            .dead_letters(bound)
            .open()
            .unwrap();
        let (acme, beta) = (ing.scoped("acme").unwrap(), ing.scoped("beta").unwrap());
        for i in 0..3 {
            rejected(send(&acme, &json!({"n": i, "amount": "x", "timestamp": 0})).unwrap());
        }
        rejected(send(&beta, &json!({"n": 9, "amount": "x", "timestamp": 0})).unwrap());
        // The oldest (acme's first) went to keep the bound.
        assert_eq!(ing.stats().unwrap().evicted_rejected, 1, "{}", store.backend);
        let ns =
            |s: &Scoped<'_>| -> Vec<i64> { listed_by(s, 10).iter().map(|r| r.raw["n"].as_i64().unwrap()).collect() };
        assert_eq!((ns(&acme), ns(&beta)), (vec![2, 1], vec![9]), "{}", store.backend);

        std::thread::sleep(std::time::Duration::from_millis(20));
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("pruned.ndjson");
        let before = Timestamp::from_millis(Timestamp::now().millis() - 5).unwrap();
        let report = ing.prune(before, Some(&archive)).unwrap();
        assert_eq!(report.rejected, 3, "{}", store.backend);
        let text = std::fs::read_to_string(&archive).unwrap();
        let clients: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["client_id"].clone())
            .collect();
        assert_eq!(clients, [json!("acme"), json!("acme"), json!("beta")], "{text}");
        assert!(listed_by(&acme, 10).is_empty() && listed_by(&beta, 10).is_empty());
        assert_eq!(acme.stats().unwrap().stored_rejected, 0);
    }
}

/// A client's stored events, counted from its rollups where no prune
/// reached and from its events where one may have, equal what it lists.
#[test]
fn a_clients_stats_count_its_events_exactly_before_and_after_a_prune() {
    for store in backends(Sqlite::File) {
        let ing = store.open();
        let now = Timestamp::now().millis();
        let mut batch = Vec::new();
        for i in 0..40 {
            let ts = now - 30 * DAY + i * (DAY / 2 + 1_234_567);
            batch.push(json!({"client_id": "acme", "metric": "m", "amount": i, "timestamp": ts}));
            batch.push(json!({"client_id": "beta", "metric": "n", "amount": i, "timestamp": ts + 7}));
            if i % 3 == 0 {
                batch.push(json!({"client_id": "acme", "metric": "n", "amount": -i, "timestamp": ts + 9}));
            }
        }
        let outcomes = ing.submit_batch(&batch).unwrap();
        let stored = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Accepted { .. }))
            .count();
        let acme = ing.scoped("acme").unwrap();
        let count = |ing: &Ingestor| all_events(ing).iter().filter(|e| e.event.client_id == "acme").count() as u64;
        assert_eq!(acme.stats().unwrap().stored_events, count(&ing), "{}", store.backend);
        assert!(stored > 0);
        // Pruning needs a window: the same store opened with one.
        drop(ing);
        let ing = with_rules(&store, json!({"max_age": "10d"}));
        let acme = ing.scoped("acme").unwrap();
        // A horizon in the middle of a day.
        let horizon = now - 20 * DAY - 5 * 3_600_000 - 17;
        ing.prune(Timestamp::from_millis(horizon).unwrap(), None).unwrap();
        let after = count(&ing);
        assert!(after > 0 && after < 54, "{after}");
        assert_eq!(acme.stats().unwrap().stored_events, after, "{}", store.backend);
        let beta = ing.scoped("beta").unwrap().stats().unwrap();
        assert_eq!(
            beta.stored_events + after,
            ing.stats().unwrap().stored_events,
            "{}",
            store.backend
        );
        assert_eq!(beta.stored_rejected, 0);
    }
}

/// At the bound, the client holding the most dead letters loses its
/// oldest: a client flooding the store with bad input evicts its own, and
/// another client's few (and the ones naming no client) stay.
#[test]
fn a_flooding_client_evicts_its_own_dead_letters_not_anothers() {
    for store in backends(Sqlite::Memory) {
        let bound = DeadLetterBound {
            max_rows: 5,
            ..DeadLetterBound::default()
        };
        let ing = store.builder().dead_letters(bound).open().unwrap();
        let (honest, flood) = (ing.scoped("honest").unwrap(), ing.scoped("flood").unwrap());
        rejected(send(&honest, &json!({"n": 1, "amount": "x"})).unwrap());
        rejected(ing.submit(&json!({"n": 2, "amount": "x"})).unwrap()); // nobody's
        rejected(send(&honest, &json!({"n": 3, "amount": "x"})).unwrap());
        for i in 0..50 {
            rejected(send(&flood, &json!({"n": 100 + i, "amount": "x"})).unwrap());
        }
        // A batch of them at once, past the bound by more than one.
        let batch: Vec<Input> = (0..7)
            .map(|i| Input::Value(json!({"n": 200 + i, "amount": "x"})))
            .collect();
        for o in flood.submit_inputs(&batch).unwrap() {
            rejected(o);
        }
        let ns =
            |s: &Scoped<'_>| -> Vec<i64> { listed_by(s, 10).iter().map(|r| r.raw["n"].as_i64().unwrap()).collect() };
        assert_eq!(ns(&honest), [3, 1], "{}", store.backend);
        // Two of the batch's (a batch's dead letters are stored in digest order).
        let kept = ns(&flood);
        assert!(
            kept.len() == 2 && kept.iter().all(|n| (200..207).contains(n)),
            "{kept:?}"
        );
        let stats = ing.stats().unwrap();
        assert_eq!(
            (stats.stored_rejected, stats.evicted_rejected),
            (5, 55),
            "{}",
            store.backend
        );
        assert!(all_letters(&ing)
            .iter()
            .any(|r| r.raw["n"] == 2 && r.client_id.is_none()));

        // Once the honest client holds the most, its own oldest go.
        for n in [4, 5, 6] {
            rejected(send(&honest, &json!({"n": n, "amount": "x"})).unwrap());
        }
        assert_eq!(ns(&honest), [6, 5], "{}", store.backend);
        assert_eq!(ns(&flood), kept, "{}", store.backend);
    }
}
