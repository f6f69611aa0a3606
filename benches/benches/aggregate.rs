//! `aggregate` for each query shape of issue 6 on a prefilled file store.
//! The store is small so the bench starts quickly; `compare` measures the
//! shapes at 10M events.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ingest_benches::aggregates::Shape;
use ingest_benches::gen::{batch_text, Events, Generated, Spec};
use ingest_core::{Durability, Ingestor, Query};
use rand::rngs::ChaCha8Rng;
use rand::SeedableRng;

const EVENTS: u64 = 200_000;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ing = Ingestor::builder(dir.path().join("aggregate.db"))
        .durability(Durability::Normal)
        .open()
        .expect("the store opens");
    let mut events = Events::new(Spec {
        events: EVENTS,
        seed: 4,
    });
    loop {
        let batch: Vec<Generated> = events.by_ref().take(10_000).collect();
        if batch.is_empty() {
            break;
        }
        ing.submit_batch_json(&batch_text(&batch)).expect("prefill succeeds");
    }
    let mut g = c.benchmark_group("aggregate");
    for shape in Shape::ALL {
        let mut rng = ChaCha8Rng::seed_from_u64(shape as u64);
        // Many queries of the shape, cycled: no single lucky range.
        let queries: Vec<Query> = (0..64).map(|_| shape.query(&mut rng).0).collect();
        let mut i = 0;
        g.bench_function(shape.label(), |b| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                std::hint::black_box(ing.aggregate(&queries[i]).expect("aggregate succeeds"))
            })
        });
    }
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
