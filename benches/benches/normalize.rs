//! Normalisation alone: raw event to canonical event and dedup key, no I/O.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ingest_benches::gen::{Events, Spec};
use ingest_core::{dedup_key, normalize, Rules};
use serde_json::Value;

const EVENTS: usize = 1_000;

fn bench(c: &mut Criterion) {
    let rules = Rules::builtin();
    let raws: Vec<Value> = Events::new(Spec {
        events: EVENTS as u64,
        seed: 1,
    })
    .map(|g| g.raw)
    .collect();
    let texts: Vec<String> = raws.iter().map(Value::to_string).collect();
    let mut g = c.benchmark_group("normalize");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.bench_function("value", |b| {
        b.iter(|| {
            for raw in &raws {
                let e = normalize(raw, &rules).expect("generated events are valid");
                std::hint::black_box(dedup_key(&e, &rules));
            }
        })
    });
    // What a server does per event: parse the text first.
    g.bench_function("json_text", |b| {
        b.iter(|| {
            for text in &texts {
                let raw: Value = serde_json::from_str(text).expect("generated text parses");
                let e = normalize(&raw, &rules).expect("generated events are valid");
                std::hint::black_box(dedup_key(&e, &rules));
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
