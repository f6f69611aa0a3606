//! Inputs the fuzz targets (core/fuzz) found failing, replayed on every
//! `cargo test` against the same invariants, so a fixed bug stays fixed.

use std::path::{Path, PathBuf};

use ingest_core::{normalize, Event, Rules};
use serde_json::{json, Value};

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    files
}

/// The rule sets the normalize target runs under (rule_sets.json, shared
/// with core/fuzz/src/lib.rs).
fn rule_sets() -> Vec<Rules> {
    let sets: Value = serde_json::from_str(include_str!("../rule_sets.json")).unwrap();
    sets["shared"]
        .as_array()
        .unwrap()
        .iter()
        .map(|doc| Rules::from_json(&doc.to_string()).unwrap())
        .collect()
}

fn as_flat(e: &Event) -> Value {
    json!({"client_id": e.client_id, "metric": e.metric, "amount": e.amount,
           "timestamp": e.timestamp.to_string(), "event_id": e.event_id})
}

#[test]
fn normalize_inputs_keep_their_invariants() {
    for file in inputs("normalize") {
        let raw: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for rules in rule_sets() {
            let Ok(event) = normalize(&raw, &rules) else { continue };
            for text in [Some(&event.client_id), Some(&event.metric), event.event_id.as_ref()]
                .into_iter()
                .flatten()
            {
                assert!(
                    text.chars().count() <= rules.max_text_len(),
                    "{}: {text:?} is too long",
                    file.display()
                );
            }
            let again = normalize(&as_flat(&event), &rules)
                .unwrap_or_else(|r| panic!("{}: the stored event is refused: {r:?}", file.display()));
            assert_eq!(
                (&again.client_id, &again.metric, again.amount, again.timestamp),
                (&event.client_id, &event.metric, event.amount, event.timestamp)
            );
        }
    }
}

#[test]
fn rules_inputs_round_trip() {
    for file in inputs("rules") {
        let Ok(rules) = Rules::from_json(&std::fs::read_to_string(&file).unwrap()) else {
            continue;
        };
        let again = Rules::from_value(&rules.to_value())
            .unwrap_or_else(|e| panic!("{}: the rules' own document is refused: {e}", file.display()));
        assert_eq!(again, rules, "{}", file.display());
    }
}
