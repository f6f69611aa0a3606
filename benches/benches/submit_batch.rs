//! `submit_batch_json`, 1 000 events per call from JSON text, durability
//! normal, on a file store.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ingest_benches::gen::{batch_text, Events, Generated, Spec};
use ingest_core::{Durability, Ingestor};

const BATCH: usize = 1_000;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ing = Ingestor::builder(dir.path().join("batch.db"))
        .durability(Durability::Normal)
        .open()
        .expect("the store opens");
    let mut events = Events::new(Spec {
        events: 10_000_000,
        seed: 3,
    });
    let mut g = c.benchmark_group("submit_batch");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("json_1000_normal", |b| {
        b.iter_custom(|iters| {
            let texts: Vec<String> = (0..iters)
                .map(|_| batch_text(&events.by_ref().take(BATCH).collect::<Vec<Generated>>()))
                .collect();
            let t = Instant::now();
            for text in &texts {
                std::hint::black_box(ing.submit_batch_json(text).expect("submit succeeds"));
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
