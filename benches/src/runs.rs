//! Contender (c), `ingest` itself: batches from JSON text, one by one, and
//! many threads one by one. Every run starts from a new store, times only
//! the calls into `ingest` (generating the data is not timed), and checks
//! every answer against what the data holds.

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use ingest_core::{Durability, Ingestor};

use crate::gen::{batch_text, Events, Generated, Spec};
use crate::measure::{fail, Latencies, Rate, Res, Tally};

/// Generated between two stretches of timed one-by-one calls.
const CHUNK: usize = 1_000;

pub fn open(path: &Path, durability: Durability) -> Res<Ingestor> {
    Ok(Ingestor::builder(path).durability(durability).open()?)
}

/// The store holds exactly the distinct events: the answers were not lying.
fn check_stored(who: &str, ing: &Ingestor, unique: u64) -> Res<()> {
    let stored = ing.stats()?.stored_events;
    if stored != unique {
        return fail(format!("{who}: the store holds {stored} events; expected {unique}"));
    }
    Ok(())
}

/// `submit_batch_json` of the first `n` events of `spec`, `batch` per call.
pub fn batches(spec: Spec, n: u64, batch: usize, durability: Durability, path: &Path) -> Res<(Rate, Latencies)> {
    let who = format!("submit_batch_json({batch})");
    let ing = open(path, durability)?;
    let mut gen = Events::new(spec);
    let mut buf: Vec<Generated> = Vec::with_capacity(batch);
    let mut lat = Latencies::with_capacity((n as usize).div_ceil(batch));
    let mut tally = Tally::default();
    let mut left = n;
    while left > 0 {
        buf.clear();
        buf.extend(gen.by_ref().take(batch.min(left as usize)));
        left -= buf.len() as u64;
        let text = batch_text(&buf);
        let t = Instant::now();
        let outcomes = ing.submit_batch_json(&text)?;
        lat.push(t.elapsed());
        tally.add(&outcomes);
    }
    tally.check(&who, n, gen.unique())?;
    check_stored(&who, &ing, gen.unique())?;
    Ok((
        Rate {
            events: n,
            busy: lat.total(),
        },
        lat,
    ))
}

/// How one-by-one calls hand the event over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `submit_json(text)`: the raw JSON text, as a server receives it.
    Json,
    /// `submit(&Value)`: an already parsed value, the same call the Python
    /// binding makes after converting a dict.
    Value,
}

/// `submit` of the first `n` events of `spec`, one call per event.
pub fn one_by_one(spec: Spec, n: u64, durability: Durability, call: Call, path: &Path) -> Res<(Rate, Latencies)> {
    let ing = open(path, durability)?;
    let mut gen = Events::new(spec);
    let mut chunk: Vec<Generated> = Vec::with_capacity(CHUNK);
    let mut texts: Vec<String> = Vec::with_capacity(CHUNK);
    let mut lat = Latencies::with_capacity(n as usize);
    let mut tally = Tally::default();
    let mut left = n;
    while left > 0 {
        chunk.clear();
        chunk.extend(gen.by_ref().take(CHUNK.min(left as usize)));
        left -= chunk.len() as u64;
        texts.clear();
        if call == Call::Json {
            texts.extend(chunk.iter().map(|g| g.raw.to_string()));
        }
        for i in 0..chunk.len() {
            let t = Instant::now();
            let outcome = match call {
                Call::Json => ing.submit_json(&texts[i])?,
                Call::Value => ing.submit(&chunk[i].raw)?,
            };
            lat.push(t.elapsed());
            tally.add(std::slice::from_ref(&outcome));
        }
    }
    tally.check("submit", n, gen.unique())?;
    check_stored("submit", &ing, gen.unique())?;
    Ok((
        Rate {
            events: n,
            busy: lat.total(),
        },
        lat,
    ))
}

/// `threads` threads calling `submit_json` one event at a time on one shared
/// `Ingestor`, the first `n` events of `spec` dealt out round robin. The
/// rate is over the wall time from the common start to the last answer.
pub fn threads(spec: Spec, n: u64, threads: usize, durability: Durability, path: &Path) -> Res<(Rate, Latencies)> {
    let ing = Arc::new(open(path, durability)?);
    let mut gen = Events::new(spec);
    let texts: Vec<String> = gen.by_ref().take(n as usize).map(|g| g.raw.to_string()).collect();
    let texts = Arc::new(texts);
    let start = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|k| {
            let (ing, texts, start) = (ing.clone(), texts.clone(), start.clone());
            std::thread::spawn(move || -> Res<(Tally, Latencies, Instant)> {
                let mut tally = Tally::default();
                let mut lat = Latencies::with_capacity(texts.len() / threads + 1);
                start.wait();
                for text in texts.iter().skip(k).step_by(threads) {
                    let t = Instant::now();
                    let outcome = ing.submit_json(text)?;
                    lat.push(t.elapsed());
                    tally.add(std::slice::from_ref(&outcome));
                }
                Ok((tally, lat, Instant::now()))
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    let mut tally = Tally::default();
    let mut all = Latencies::with_capacity(n as usize);
    let mut last = began;
    for w in workers {
        let (t, lat, done) = w.join().map_err(|_| "a submitting thread panicked")??;
        tally.merge(t);
        last = last.max(done);
        for d in lat.iter() {
            all.push(d);
        }
    }
    let who = format!("{threads} threads submit");
    tally.check(&who, n, gen.unique())?;
    check_stored(&who, &ing, gen.unique())?;
    Ok((
        Rate {
            events: n,
            busy: last - began,
        },
        all,
    ))
}
