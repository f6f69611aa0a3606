//! `submit_json` one event per call, durability normal, on a file store.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ingest_benches::gen::{Events, Spec};
use ingest_core::{Durability, Ingestor};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ing = Ingestor::builder(dir.path().join("submit.db"))
        .durability(Durability::Normal)
        .open()
        .expect("the store opens");
    // One long stream: every timed call gets a new event (or a retry, at the
    // data's 10%), never a replay of an earlier sample.
    let mut events = Events::new(Spec {
        events: 10_000_000,
        seed: 2,
    });
    let mut g = c.benchmark_group("submit");
    g.throughput(Throughput::Elements(1));
    g.bench_function("json_normal", |b| {
        b.iter_custom(|iters| {
            let texts: Vec<String> = events
                .by_ref()
                .take(iters as usize)
                .map(|e| e.raw.to_string())
                .collect();
            let t = Instant::now();
            for text in &texts {
                std::hint::black_box(ing.submit_json(text).expect("submit succeeds"));
            }
            t.elapsed()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
