//! The fuzz harnesses of `ingest-core`: one function per fuzz target, each a
//! plain function of the input bytes that panics when an invariant breaks.
//! The targets in `fuzz_targets/` only call these, so a crashing input can be
//! replayed by an ordinary test as well as by the fuzzer.

use std::collections::HashMap;
use std::sync::OnceLock;

use ingest_core::limits::check_shape;
use ingest_core::timestamp::{MAX_MS, MIN_MS};
use ingest_core::{
    dedup_key, fast_read_batch, fast_read_event, normalize as normalize_raw, normalize_fields, Error, Event,
    EventFilter, FastRead, Field, Fields, Ingestor, Outcome, Page, Query, ReasonCode, Rules, Timestamp,
};
use serde_json::{Map, Number, Value};

/// Rule sets every event is normalised under (core/tests/rule_sets.json):
/// the built-in rules, renamed aliases, preserved case, short texts, allowed
/// metrics, an amount range, defaults, and an event_id dedup key; with
/// `fast_path`, also the input names of that target.
fn rule_docs(group: &str) -> Vec<Rules> {
    let sets: Value = serde_json::from_str(include_str!("../../tests/rule_sets.json")).expect("rule_sets.json parses");
    sets[group]
        .as_array()
        .expect("a list of rule sets")
        .iter()
        .map(|doc| Rules::from_json(&doc.to_string()).expect("the fuzz rule sets are valid"))
        .collect()
}

fn rule_sets() -> &'static [Rules] {
    static SETS: OnceLock<Vec<Rules>> = OnceLock::new();
    SETS.get_or_init(|| rule_docs("shared"))
}

/// Fuzz target `normalize`: bytes parsed as JSON, then normalised under each
/// rule set; accepted events must satisfy the event invariants and
/// normalise to themselves again.
pub fn normalize(data: &[u8]) {
    let Ok(raw) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for rules in rule_sets() {
        check_normalize(&raw, rules);
    }
}

/// Normalise `raw` under `rules` and check everything that must hold of the
/// answer, whatever it is.
pub fn check_normalize(raw: &Value, rules: &Rules) {
    let first = normalize_raw(raw, rules);
    assert_eq!(first, normalize_raw(raw, rules), "normalisation is not deterministic");
    match first {
        Ok(event) => check_event(&event, rules),
        Err(reasons) => {
            assert!(!reasons.is_empty(), "rejected without a reason");
            for r in &reasons {
                assert!(
                    ["", "client_id", "metric", "amount", "timestamp", "event_id", "payload"]
                        .contains(&r.field.as_str()),
                    "reason names an unknown field: {r:?}"
                );
                assert!(!r.message.is_empty(), "reason without a message: {r:?}");
            }
        }
    }
}

fn check_text(what: &str, text: &str, rules: &Rules) {
    assert!(!text.is_empty(), "{what} is empty");
    assert_eq!(text, text.trim(), "{what} is not trimmed");
    let len = text.chars().count();
    assert!(
        len <= rules.max_text_len(),
        "{what} {text:?} has {len} characters, over max_text_len {}",
        rules.max_text_len()
    );
}

/// The invariants of an accepted event under `rules`.
pub fn check_event(e: &Event, rules: &Rules) {
    assert!(e.amount.is_finite(), "amount {} is not finite", e.amount);
    assert!(
        e.amount.abs() <= ingest_core::normalize::MAX_AMOUNT,
        "amount {} beyond MAX_AMOUNT: a total could leave f64",
        e.amount
    );
    assert!(e.amount != 0.0 || e.amount.is_sign_positive(), "-0.0 is stored as 0.0");
    if let Some((lo, hi)) = rules.amount_range() {
        assert!(
            (lo..=hi).contains(&e.amount),
            "amount {} outside [{lo}, {hi}]",
            e.amount
        );
    }
    check_text("client_id", &e.client_id, rules);
    check_text("metric", &e.metric, rules);
    if let Some(id) = &e.event_id {
        check_text("event_id", id, rules);
    }
    assert_eq!(
        rules.normalize_metric(&e.metric),
        e.metric,
        "the stored metric is not in normal form: casing it again changes it"
    );
    if let Some(allowed) = rules.allowed_metrics() {
        assert!(allowed.contains(&e.metric), "metric {:?} is not allowed", e.metric);
    }
    let ms = e.timestamp.millis();
    assert!((MIN_MS..=MAX_MS).contains(&ms), "timestamp {ms} out of range");
    assert_eq!(
        Timestamp::parse(&e.timestamp.to_string()),
        Ok(e.timestamp),
        "the shown timestamp does not parse back"
    );
    assert!(serde_json::to_string(e).is_ok(), "the event does not serialise");

    // Normalising the canonical event again gives the same event (and key),
    // flat and as an envelope.
    if let Some(fields) = canonical_fields(e, rules) {
        let key = dedup_key(e, rules);
        let mut forms = vec![Value::Object(Map::from_iter([(
            "payload".to_string(),
            Value::Object(fields.clone()),
        )]))];
        if !fields.contains_key("payload") {
            forms.push(Value::Object(fields));
        }
        for form in forms {
            let again = normalize_raw(&form, rules).unwrap_or_else(|r| {
                panic!("normalising the event again rejects it: {r:?}\nevent: {e:?}\nform: {form}")
            });
            assert_eq!(&again, e, "normalising twice changes the event\nform: {form}");
            assert_eq!(dedup_key(&again, rules), key, "normalising twice changes the key");
        }
    }

    // The typed path (the C fast path) gives the same event, without attributes.
    let fields = Fields {
        client_id: &e.client_id,
        metric: Some(&e.metric),
        amount: e.amount,
        timestamp_ms: ms,
        event_id: e.event_id.as_deref(),
    };
    let typed = normalize_fields(&fields, rules)
        .unwrap_or_else(|r| panic!("the typed path rejects an accepted event: {r:?}\nevent: {e:?}"));
    let expected = Event {
        attributes: Map::new(),
        ..e.clone()
    };
    assert_eq!(typed, expected, "the typed path normalises differently");
}

/// The event's fields as a raw object: its attributes, plus each canonical
/// field under the first alias that no attribute already uses. `None` when
/// some field has no free alias (then the event cannot be spelled again).
fn canonical_fields(e: &Event, rules: &Rules) -> Option<Map<String, Value>> {
    let mut m = e.attributes.clone();
    let values = [
        (Field::ClientId, Some(Value::from(e.client_id.as_str()))),
        (Field::Metric, Some(Value::from(e.metric.as_str()))),
        (Field::Amount, Number::from_f64(e.amount).map(Value::Number)),
        (Field::Timestamp, Some(Value::from(e.timestamp.to_string()))),
        (Field::EventId, e.event_id.as_deref().map(Value::from)),
    ];
    for (field, value) in values {
        let Some(value) = value else { continue };
        let name = rules.aliases(field).iter().find(|n| !m.contains_key(n.as_str()))?;
        m.insert(name.clone(), value);
    }
    Some(m)
}

/// Fuzz target `submit_json`: text through `check_json`, `submit_json` and
/// `submit_batch_json` on an in-memory store (a fresh one every
/// `INPUTS_PER_STORE` inputs; one per size limit). `check` must predict
/// `submit`, a retry must be a duplicate, the store must hold exactly the
/// accepted events, and nothing may panic.
pub fn submit_json(data: &[u8]) {
    // A small size limit on some inputs, so that path is fuzzed too.
    let small = data.len() % 4 == 3;
    STORES.with(|stores| {
        let mut stores = stores.borrow_mut();
        let slot = &mut stores[usize::from(small)];
        let store = Store::next_input(slot, if small { 200 } else { 1 << 20 });
        submit_text(&store.ing, &mut store.stored, &String::from_utf8_lossy(data));
    });
}

/// An in-memory store shared by consecutive inputs (opening one per input
/// would cost more than the input itself), and the events it accepted.
struct Store {
    ing: Ingestor,
    stored: HashMap<i64, Event>,
    inputs: u32,
}

impl Store {
    /// The store in `slot` for one more input: a fresh one with the byte
    /// limit `max_event_bytes` every `INPUTS_PER_STORE` inputs.
    fn next_input(slot: &mut Option<Store>, max_event_bytes: usize) -> &mut Store {
        if slot.as_ref().is_none_or(|s| s.inputs >= INPUTS_PER_STORE) {
            let ing = Ingestor::builder(":memory:")
                .max_event_bytes(max_event_bytes)
                .open()
                .expect("an in-memory store opens");
            *slot = Some(Store {
                ing,
                stored: HashMap::new(),
                inputs: 0,
            });
        }
        let store = slot.as_mut().expect("just opened");
        store.inputs += 1;
        store
    }
}

/// Inputs per store before a fresh one, which keeps memory flat.
const INPUTS_PER_STORE: u32 = 2000;

thread_local! {
    static STORES: std::cell::RefCell<[Option<Store>; 2]> = const { std::cell::RefCell::new([None, None]) };
}

/// One input's text through `ing`; `stored` is every event `ing` accepted.
fn submit_text(ing: &Ingestor, stored: &mut HashMap<i64, Event>, text: &str) {
    // One event: check, submit, check again, submit again.
    let predicted = ing.check_json(text);
    let submitted = ing.submit_json(text);
    match (&predicted, &submitted) {
        (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind(), "check and submit fail differently: {a} / {b}"),
        (Ok(Outcome::Rejected { reasons: a }), Ok(Outcome::Rejected { reasons: b })) => {
            assert_eq!(a, b, "check and submit reject for different reasons")
        }
        (Ok(Outcome::Accepted { id: None, event: a }), Ok(Outcome::Accepted { id: Some(id), event: b })) => {
            assert_eq!(a, b, "check and submit normalise differently");
            assert!(!stored.contains_key(id), "a new event reuses id {id}");
            check_event(b, ing.rules());
            stored.insert(*id, b.clone());
        }
        (Ok(Outcome::Duplicate { id: a, event: x }), Ok(Outcome::Duplicate { id: b, event: y })) => {
            assert_eq!((a, x), (b, y), "check and submit name different duplicates");
            assert_eq!(stored.get(a), Some(x), "a duplicate answers with the stored event");
        }
        (
            Ok(Outcome::Conflict {
                id: a,
                event: x,
                reasons: r,
            }),
            Ok(Outcome::Conflict {
                id: b,
                event: y,
                reasons: q,
            }),
        ) => {
            assert_eq!((a, x, r), (b, y, q), "check and submit name different conflicts");
            assert_eq!(stored.get(a), Some(x), "a conflict answers with the stored event");
            assert!(!r.is_empty(), "a conflict names the fields that differ");
        }
        (a, b) => panic!("check predicted {a:?}, submit answered {b:?}"),
    }
    let retry_check = ing.check_json(text);
    let retry = ing.submit_json(text);
    for (what, again) in [("check", &retry_check), ("submit", &retry)] {
        match (&submitted, again) {
            (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind(), "a retried {what} fails differently"),
            (Ok(Outcome::Rejected { reasons: a }), Ok(Outcome::Rejected { reasons: b })) => assert_eq!(a, b),
            (
                Ok(Outcome::Accepted { id: Some(id), event: a } | Outcome::Duplicate { id, event: a }),
                Ok(Outcome::Duplicate { id: again, event: b }),
            ) => {
                assert_eq!((id, a), (again, b), "a retried {what} is not the same duplicate")
            }
            (Ok(first @ Outcome::Conflict { .. }), Ok(again)) => {
                assert_eq!(first, again, "a retried {what} is not the same conflict")
            }
            (a, b) => panic!("first submit answered {a:?}, a retried {what} {b:?}"),
        }
    }

    // A batch: predicted item by item with check, a repeat inside the batch
    // being a duplicate of its first occurrence.
    let parsed = serde_json::from_str::<Value>(text);
    let predicted: Option<Result<Vec<Outcome>, Error>> = match &parsed {
        Ok(Value::Array(items)) => Some(items.iter().map(|item| ing.check(item)).collect()),
        _ => None,
    };
    let batch = ing.submit_batch_json(text);
    match predicted {
        Some(predicted) => {
            match (&predicted, &batch) {
                (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind(), "check and batch fail differently: {a} / {b}"),
                (Ok(p), Ok(outcomes)) => {
                    assert_eq!(p.len(), outcomes.len(), "one outcome per input");
                    // Keys first accepted in this batch: a repeat is their duplicate.
                    let mut firsts: HashMap<Vec<u8>, i64> = HashMap::new();
                    for (p, o) in p.iter().zip(outcomes) {
                        match (p, o) {
                            (Outcome::Rejected { reasons: a }, Outcome::Rejected { reasons: b }) => assert_eq!(a, b),
                            (Outcome::Duplicate { id: a, event: x }, Outcome::Duplicate { id: b, event: y }) => {
                                assert_eq!((a, x), (b, y), "batch duplicate differs from its prediction")
                            }
                            (p @ Outcome::Conflict { .. }, o) => {
                                assert_eq!(p, o, "batch conflict differs from its prediction")
                            }
                            (Outcome::Accepted { id: None, event: x }, o) => {
                                let key = dedup_key(x, ing.rules());
                                match (firsts.get(&key), o) {
                                    (None, Outcome::Accepted { id: Some(id), event: y }) => {
                                        assert_eq!(x, y, "batch event differs from its check");
                                        assert!(!stored.contains_key(id), "a new event reuses id {id}");
                                        check_event(y, ing.rules());
                                        stored.insert(*id, y.clone());
                                        firsts.insert(key, *id);
                                    }
                                    // Answered with the stored event, the first of
                                    // its key: the repeat itself when it is the
                                    // same, else (other attributes) the first.
                                    (Some(first), Outcome::Duplicate { id, event: y }) => {
                                        assert_eq!(first, id, "a repeat inside the batch");
                                        assert_eq!(stored.get(id), Some(y), "a repeat answers with the stored event");
                                    }
                                    // The same key with other fields: measured
                                    // against the first, which is what is stored.
                                    (Some(first), Outcome::Conflict { id, event: y, .. }) => {
                                        assert_eq!(first, id, "a conflict inside the batch");
                                        assert_eq!(stored.get(id), Some(y), "a conflict answers with the stored event");
                                    }
                                    (first, o) => {
                                        panic!("batch item checked {p:?} (first in batch: {first:?}), answered {o:?}")
                                    }
                                }
                            }
                            (p, o) => panic!("check predicted {p:?} in the batch, the batch answered {o:?}"),
                        }
                    }
                }
                (a, b) => panic!("check predicted {a:?} for the batch, the batch answered {b:?}"),
            }
            // The whole batch again: nothing new.
            if let Ok(first) = &batch {
                let again = ing.submit_batch_json(text).expect("a repeated batch succeeds");
                for (a, b) in first.iter().zip(&again) {
                    assert!(b.status() != "accepted", "a repeated batch stored {b:?} again");
                    assert_eq!(a.event(), b.event());
                    assert_eq!(a.reasons(), b.reasons());
                }
            }
        }
        // Not an array serde_json reads: text that is not JSON fails the
        // call; an array whose items are read one by one (one nested too
        // deep, one with a lone surrogate escape) answers each alone.
        None => match &batch {
            Err(e) => assert!(
                matches!(e, Error::InvalidArgument(_)),
                "a batch that is not JSON answered {e}"
            ),
            Ok(outcomes) => {
                assert!(
                    text.trim_start().starts_with('['),
                    "a batch that is not an array answered {outcomes:?}"
                );
                for o in outcomes {
                    if let Outcome::Accepted { id: Some(id), event } = o {
                        assert!(!stored.contains_key(id), "a new event reuses id {id}");
                        check_event(event, ing.rules());
                        stored.insert(*id, event.clone());
                    }
                }
            }
        },
    }

    check_store(ing, stored);
}

/// The store holds exactly the accepted events, unchanged, and aggregates count them.
fn check_store(ing: &Ingestor, stored: &HashMap<i64, Event>) {
    let stats = ing.stats().expect("stats");
    assert_eq!(
        stats.stored_events,
        stored.len() as u64,
        "stored events != accepted events"
    );
    let total = ing.aggregate(&Query::default()).expect("aggregate").totals;
    assert_eq!(total.count, stored.len() as u64, "aggregate count != accepted events");
    let min = stored.values().map(|e| e.amount).reduce(f64::min);
    let max = stored.values().map(|e| e.amount).reduce(f64::max);
    assert_eq!((total.min, total.max), (min, max), "aggregate min/max");
    // The newest events (this input's among them) read back as accepted.
    let newest = EventFilter {
        limit: 8,
        ..EventFilter::default()
    };
    let listed = ing.events(&newest).expect("events");
    assert_eq!(listed.len(), stored.len().min(8));
    for s in &listed {
        let e = stored
            .get(&s.id)
            .unwrap_or_else(|| panic!("listed event {} was never accepted", s.id));
        assert_eq!(&s.event, e, "the stored event reads back differently");
    }
    for r in ing.rejected(Page { limit: 2, offset: 0 }).expect("rejected") {
        assert!(!r.reasons.is_empty() && r.attempts >= 1, "dead letter {r:?}");
    }
}

/// Fuzz target `rules`: text through `Rules::from_json`; rules that parse
/// round-trip through their document, and normalise the sample events.
pub fn rules(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(rules) = Rules::from_json(&text) else {
        return;
    };
    let doc = rules.to_value();
    let back = Rules::from_value(&doc).unwrap_or_else(|e| panic!("the rules' own document is refused: {e}\n{doc}"));
    assert_eq!(back, rules, "rules do not round-trip through to_value\n{doc}");
    let back = Rules::from_json(&doc.to_string()).expect("the rules' document as text");
    assert_eq!(back, rules, "rules do not round-trip through their JSON text");
    assert!(!rules.dedup_key().is_empty());
    assert!((1..=1_048_576).contains(&rules.max_text_len()));
    for sample in SAMPLES {
        let raw: Value = serde_json::from_str(sample).expect("the samples are JSON");
        check_normalize(&raw, &rules);
    }
}

/// Events normalised under every fuzzed rule set.
const SAMPLES: [&str; 4] = [
    r#"{"source": "clientA", "payload": {"metric": "sales", "value": 1200, "timestamp": "2024-01-01"}}"#,
    r#"{"client_id": " c ", "metric": "Views", "amount": "-0", "ts": 1704153600, "id": 7, "extra": [1]}"#,
    r#"{"user": "u", "price": 1e3, "t": "2024-01-02T10:00:00+02:00", "m": "İx", "event_id": "e"}"#,
    r#"{"payload": {"clientId": 42, "amt": "12.5", "date": "2024-02-29 10:00", "name": null, "type": "X"}}"#,
];

/// Fuzz target `fast_path`: the text as one event and inside batches through
/// the fast JSON path of `submit_json` and `submit_batch_json`, under every
/// rule set: where it answers, it answers what the `Value` path answers (the
/// same event with its attributes or the same reasons, the same value, the
/// same size against the byte limit); where it steps aside, the `Value` path
/// answers instead, so any answer is right.
pub fn fast_path(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let batches = [format!("[{text}]"), format!("[{text},{text}]")];
    for rules in fast_rule_sets() {
        if let Some(fast) = fast_read_event(&text, rules) {
            let value = serde_json::from_str::<Value>(&text)
                .unwrap_or_else(|e| panic!("the fast path read text serde_json refuses: {e}"));
            check_fast(&fast, &value, rules);
        }
        for batch in &batches {
            let Some(fast) = fast_read_batch(batch, rules) else {
                continue;
            };
            let parsed = serde_json::from_str::<Value>(batch);
            let Ok(Value::Array(values)) = parsed else {
                panic!("the fast path read a batch serde_json reads as {parsed:?}");
            };
            assert_eq!(fast.len(), values.len(), "one event per item");
            for (f, v) in fast.iter().zip(&values) {
                check_fast(f, v, rules);
            }
        }
    }
}

/// The rule sets of the other targets, and two whose input names need
/// escapes, list a name twice, or are close to serde_json's private key.
fn fast_rule_sets() -> &'static [Rules] {
    static SETS: OnceLock<Vec<Rules>> = OnceLock::new();
    SETS.get_or_init(|| [rule_docs("shared"), rule_docs("fast_path")].concat())
}

fn check_fast(fast: &FastRead, value: &Value, rules: &Rules) {
    assert_eq!(&fast.value, value, "the fast path rebuilt another value");
    assert_eq!(
        fast.normalized,
        normalize_raw(value, rules),
        "the fast path normalised differently\n{value}"
    );
    assert!(
        !too_large(value, fast.bytes),
        "the fast path counted {} bytes, too few",
        fast.bytes
    );
    assert!(
        too_large(value, fast.bytes - 1),
        "the fast path counted {} bytes, too many",
        fast.bytes
    );
}

/// Whether `value` is over `max_bytes` as the size limit counts.
fn too_large(value: &Value, max_bytes: usize) -> bool {
    check_shape(value, max_bytes).is_err_and(|reasons| reasons.iter().any(|r| r.code == ReasonCode::TooLarge))
}

/// Fuzz target `hostile_batch`: the bytes script a batch that mixes good
/// events with every kind of hostile item (a lone surrogate escape, `1e400`,
/// nesting past the limit, a reserved key, not an object, too large, a leap
/// second, an envelope whose payload names another client), with the input
/// itself as text inside some of them. Every good item must be stored once
/// and answered as such, every hostile one rejected alone with its code, on
/// the first submission and on a retry of the whole batch.
pub fn hostile_batch(data: &[u8]) {
    HOSTILE.with(|slot| {
        let mut slot = slot.borrow_mut();
        let store = Store::next_input(&mut slot, 4096);
        hostile_batch_on(&store.ing, store.inputs, data);
    });
}

thread_local! {
    static HOSTILE: std::cell::RefCell<Option<Store>> = const { std::cell::RefCell::new(None) };
}

fn hostile_batch_on(ing: &Ingestor, input: u32, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // The input as a JSON string: any text, escaped.
    let quoted = serde_json::to_string(&*text).expect("text serialises");
    let mut items: Vec<(String, Option<ReasonCode>)> = Vec::new();
    for (i, &b) in data.iter().take(64).enumerate() {
        let good =
            |extra: &str| format!(r#"{{"client_id": "g{input}-{i}", "amount": {b}, "ts": {i}, "note": {extra}}}"#);
        let hostile = |code: ReasonCode, body: String| (body, Some(code));
        items.push(match b % 10 {
            0 | 1 => (good(&quoted), None),
            2 => (good("\"plain\""), None),
            3 => hostile(
                ReasonCode::InvalidText,
                good(&format!(r#""x\ud{:03x}y""#, 0x800 + usize::from(b))),
            ),
            4 => hostile(
                ReasonCode::NotFinite,
                good(&format!("{}e{}", b % 9 + 1, 309 + usize::from(b))),
            ),
            5 => {
                let depth = 128 + usize::from(b) % 64;
                hostile(
                    ReasonCode::TooDeep,
                    good(&format!("{}{quoted}{}", "[".repeat(depth), "]".repeat(depth))),
                )
            }
            6 => hostile(
                ReasonCode::ReservedKey,
                good(&format!(r#"{{"a": 1, "$serde_json::private::{b}": {quoted}}}"#)),
            ),
            7 => hostile(ReasonCode::NotAnObject, format!("[{quoted}, {b}]")),
            8 => hostile(
                ReasonCode::TooLarge,
                good(&serde_json::to_string(&"y".repeat(4096 + usize::from(b))).unwrap()),
            ),
            _ if b % 20 == 9 => hostile(
                ReasonCode::BadTimestamp,
                format!(
                    r#"{{"client_id": "l{input}-{i}", "amount": 1, "ts": "2016-12-31T23:59:{}Z"}}"#,
                    60 + b % 2
                ),
            ),
            _ => hostile(
                ReasonCode::ConflictingFields,
                format!(
                    r#"{{"source": "A{i}", "payload": {{"source": "C{i}", "amount": 1, "ts": 0, "x": {quoted}}}}}"#
                ),
            ),
        });
    }
    if items.is_empty() {
        return;
    }
    let batch = format!(
        "[{}]",
        items.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join(",")
    );
    let before = ing.stats().expect("stats").stored_events;
    let first = ing
        .submit_batch_json(&batch)
        .unwrap_or_else(|e| panic!("the batch failed as a whole: {e}\n{batch}"));
    assert_eq!(first.len(), items.len(), "one outcome per item");
    let mut good = 0;
    for ((item, want), o) in items.iter().zip(&first) {
        match want {
            None => {
                assert_eq!(o.status(), "accepted", "a good item answered {o:?}\n{item}");
                good += 1;
            }
            Some(code) => {
                assert_eq!(o.status(), "rejected", "a hostile item answered {o:?}\n{item}");
                assert!(
                    o.reasons().iter().any(|r| r.code == *code),
                    "wanted {code}, got {:?}",
                    o.reasons()
                );
            }
        }
    }
    assert_eq!(
        ing.stats().expect("stats").stored_events,
        before + good,
        "every good item stored once"
    );
    // The whole batch again: every good item a duplicate of itself.
    let again = ing.submit_batch_json(&batch).expect("a retried batch succeeds");
    for (a, b) in first.iter().zip(&again) {
        match a {
            Outcome::Accepted { id, event } => {
                assert_eq!(
                    (b.status(), b.id(), b.event()),
                    ("duplicate", *id, Some(event)),
                    "a retried good item"
                );
            }
            _ => assert_eq!(a, b, "a retried hostile item answers the same"),
        }
    }
    assert_eq!(
        ing.stats().expect("stats").stored_events,
        before + good,
        "a retry stores nothing"
    );
    // Nothing stored reads back as anything but JSON.
    let letters = ing
        .rejected(Page { limit: 50, offset: 0 })
        .expect("dead letters read back");
    let listing = serde_json::to_string(&letters).expect("the listing serialises");
    assert!(
        !listing.contains("Infinity") && !listing.contains("NaN"),
        "the listing holds a non-finite number"
    );
}
