//! Contender (c), `ingest` itself: batches from JSON text, one by one, and
//! many threads one by one. Every run starts from a new store, times only
//! the calls into `ingest` (generating the data is not timed), and checks
//! every answer against what the data holds.

use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ingest_core::{Durability, Ingestor};

use crate::gen::{batch_text, Events, Generated, Spec};
use crate::measure::{fail, Latencies, Rate, Res, Tally};

/// Generated between two stretches of timed one-by-one calls.
const CHUNK: usize = 1_000;

/// The turns [`side_by_side`] runs take.
pub const ROUNDS: usize = 8;

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

/// `submit_json` one event at a time on one shared `Ingestor` per entry of
/// `threads` (1 and 8, say), each store at `paths` in the same order, over
/// the first `n` events of `spec`, dealt out round robin to the threads.
///
/// The sides take turns in `rounds` stretches of the events, in the order
/// A B, B A, A B..., so that a drift of the machine during the run (a disk
/// that syncs slower for a while) strikes every side alike: their ratio is
/// what the run measures. Each stretch opens its store and closes it after,
/// so no side's background work (a checkpoint still copying the log) runs
/// into another side's stretch. Each side's rate is over the sum of its
/// stretches' wall times, from the common start to the last answer.
pub fn side_by_side(
    spec: Spec,
    n: u64,
    threads: &[usize],
    rounds: usize,
    durability: Durability,
    paths: &[&Path],
) -> Res<Vec<(Rate, Latencies)>> {
    let mut gen = Events::new(spec);
    let texts: Arc<Vec<String>> = Arc::new(gen.by_ref().take(n as usize).map(|g| g.raw.to_string()).collect());
    let mut sides: Vec<(Tally, Latencies, Duration)> = threads
        .iter()
        .map(|_| (Tally::default(), Latencies::with_capacity(n as usize), Duration::ZERO))
        .collect();
    let rounds = rounds.clamp(1, texts.len().max(1));
    for r in 0..rounds {
        let range = texts.len() * r / rounds..texts.len() * (r + 1) / rounds;
        let mut order: Vec<usize> = (0..threads.len()).collect();
        if r % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let ing = Arc::new(open(paths[i], durability)?);
            let (tally, lat, wall) = stretch(&ing, &texts, range.clone(), threads[i])?;
            let side = &mut sides[i];
            side.0.merge(tally);
            for d in lat.iter() {
                side.1.push(d);
            }
            side.2 += wall;
        }
    }
    let mut out = Vec::with_capacity(sides.len());
    for ((path, &t), (tally, lat, wall)) in paths.iter().zip(threads).zip(sides) {
        let who = format!("{t} thread(s) submit");
        tally.check(&who, n, gen.unique())?;
        check_stored(&who, &open(path, durability)?, gen.unique())?;
        out.push((Rate { events: n, busy: wall }, lat));
    }
    Ok(out)
}

/// `threads` threads submitting `texts[range]` one at a time: what they
/// answered, each call's latency, and the wall time from their common
/// start to the last answer.
fn stretch(
    ing: &Arc<Ingestor>,
    texts: &Arc<Vec<String>>,
    range: Range<usize>,
    threads: usize,
) -> Res<(Tally, Latencies, Duration)> {
    let start = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|k| {
            let (ing, texts, start, range) = (ing.clone(), texts.clone(), start.clone(), range.clone());
            std::thread::spawn(move || -> Res<(Tally, Latencies, Instant)> {
                let mut tally = Tally::default();
                let mut lat = Latencies::with_capacity(range.len() / threads + 1);
                start.wait();
                for text in texts[range].iter().skip(k).step_by(threads) {
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
    let mut all = Latencies::with_capacity(range.len());
    let mut last = began;
    for w in workers {
        let (t, lat, done) = w.join().map_err(|_| "a submitting thread panicked")??;
        tally.merge(t);
        last = last.max(done);
        for d in lat.iter() {
            all.push(d);
        }
    }
    Ok((tally, all, last - began))
}
