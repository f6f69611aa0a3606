//! Every scenario file (the repository's `tests/scenarios/*.json`, and
//! those of `$INGEST_SHARED/scenarios` when present: see
//! `common::scenario_files`), run through the Rust API on every backend.

use ingest_core::{Error, FailPoint, Ingestor, Outcome, Query};
use serde_json::Value;

use crate::common::{all_events, backends, close, scenario_files, Sqlite};

#[test]
fn every_shared_scenario_passes() {
    for file in scenario_files() {
        let text = std::fs::read_to_string(&file.path).unwrap_or_else(|e| panic!("{}: {e}", file.label));
        let steps: Vec<Value> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.label));
        for store in backends(Sqlite::Memory) {
            let ing = store.open();
            for (i, step) in steps.iter().enumerate() {
                let at = format!("{} step {i} on {}", file.label, store.backend);
                run_step(&ing, step, &at);
            }
        }
    }
}

fn run_step(ing: &Ingestor, step: &Value, at: &str) {
    if let Some(raw) = step.get("submit") {
        match (step.get("expect"), step.get("expect_error")) {
            (Some(expect), _) => check_outcome(&ing.submit(raw).unwrap(), expect, at),
            (None, Some(kind)) => {
                let err = ing.submit(raw).unwrap_err();
                assert_eq!(kind, "injected", "{at}: unknown expect_error");
                assert!(matches!(err, Error::Injected(_)), "{at}: {err}");
            }
            _ => panic!("{at}: submit without expectation"),
        }
    } else if let Some(raws) = step.get("submit_batch") {
        let outcomes = ing.submit_batch(raws.as_array().unwrap()).unwrap();
        let expects = step["expect"].as_array().unwrap();
        assert_eq!(outcomes.len(), expects.len(), "{at}");
        for (o, e) in outcomes.iter().zip(expects) {
            check_outcome(o, e, at);
        }
    } else if let Some(arm) = step.get("fail_next") {
        let point: FailPoint = arm["point"].as_str().unwrap().parse().unwrap();
        ing.simulate_failure(point, arm.get("times").and_then(Value::as_u64).unwrap_or(1) as u32);
    } else if let Some(q) = step.get("aggregate") {
        let result = ing.aggregate(&Query::from_value(q).unwrap()).unwrap();
        let e = &step["expect"];
        let t = result.totals;
        assert_eq!(t.count, e["count"].as_u64().unwrap(), "{at}: count");
        for (name, got) in [("sum", Some(t.sum)), ("avg", t.avg()), ("min", t.min), ("max", t.max)] {
            if let Some(want) = e.get(name).and_then(Value::as_f64) {
                assert!(close(got.unwrap(), want), "{at}: {name} {got:?} != {want}");
            }
        }
    } else if let Some(n) = step.get("count_events") {
        assert_eq!(all_events(ing).len() as u64, n.as_u64().unwrap(), "{at}: count_events");
    } else {
        panic!("{at}: unknown step {step}");
    }
}

fn check_outcome(o: &Outcome, expect: &Value, at: &str) {
    assert_eq!(o.status(), expect["status"].as_str().unwrap(), "{at}: {o:?}");
    if let Some(fields) = expect.get("event").and_then(Value::as_object) {
        let got = serde_json::to_value(o.event().unwrap()).unwrap();
        for (k, want) in fields {
            let same = match (want.as_f64(), got[k].as_f64()) {
                (Some(a), Some(b)) => close(a, b),
                _ => &got[k] == want,
            };
            assert!(same, "{at}: event.{k} is {} not {want}", got[k]);
        }
    }
    if let Some(reasons) = expect.get("reasons").and_then(Value::as_array) {
        for want in reasons {
            assert!(
                o.reasons()
                    .iter()
                    .any(|r| r.code.as_str() == want["code"] && r.field == want["field"]),
                "{at}: missing reason {want} in {:?}",
                o.reasons()
            );
        }
    }
}
