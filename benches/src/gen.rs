//! A seeded generator of realistic raw events, the data set every contender
//! shares.
//!
//! What it produces, per [`Spec`]: `events` raw events from 100 clients and
//! 10 metrics, timestamps mostly increasing over one year (2025, UTC) with
//! up to an hour of lateness, and about 10% exact retries interleaved: the
//! same event sent again, either byte for byte or in another spelling that
//! normalises to the same key. The spellings are those of DESIGN.md, mixed:
//! flat objects and `{"source", "payload"}` envelopes, every alias of amount
//! and timestamp, RFC 3339 with offsets, `YYYY-MM-DD HH:MM:SS`, epoch seconds
//! and milliseconds as numbers and as strings, amounts as numbers and as
//! numeric strings (some padded with spaces), metric names in several cases.
//!
//! Every event is valid under the built-in rules, and no two new events share
//! a key, so a prefix of `n` events holds exactly [`Events::unique`] distinct
//! events: every contender can be checked against that number.
//!
//! The generator is an iterator that holds only a small window of recent
//! events, so 10M events never sit in memory at once.

use std::collections::{HashSet, VecDeque};

use chrono::{DateTime, FixedOffset, Utc};
use ingest_core::{dedup_key, normalize, Event, Rules};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde_json::{Map, Number, Value};

/// Distinct clients.
pub const CLIENTS: u32 = 100;

/// The metrics, as the rules store them (lower case); clients send them in
/// other cases too.
pub const METRICS: [&str; 10] = [
    "page_views",
    "clicks",
    "signups",
    "sales",
    "revenue",
    "refunds",
    "latency_ms",
    "errors",
    "cart_adds",
    "temperature",
];

/// 2025-01-01T00:00:00Z: the data covers this year.
pub const YEAR_START_MS: i64 = 1_735_689_600_000;
pub const DAY_MS: i64 = 86_400_000;
pub const YEAR_MS: i64 = 365 * DAY_MS;
/// The most an event's timestamp lags behind the steady clock of the stream.
pub const MAX_JITTER_MS: i64 = 3_600_000;

/// The seed used unless told otherwise.
pub const DEFAULT_SEED: u64 = 6;

/// Retries re-send one of this many most recent new events.
const RETRY_WINDOW: usize = 256;

/// Which events: the first `events` of the stream of `seed`. A smaller spec
/// with the same seed is not a prefix of a larger one (the clock spreads
/// `events` over the whole year); use [`Events::take`] for prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Spec {
    pub events: u64,
    pub seed: u64,
}

/// One generated raw event.
#[derive(Debug, Clone)]
pub struct Generated {
    pub raw: Value,
    /// True when this is a re-send of an earlier event: it must come out as
    /// a duplicate.
    pub retry: bool,
}

/// The content of one event before it is spelled: what makes it the same
/// event whatever the spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Truth {
    client: u32,
    metric: usize,
    ts_ms: i64,
    cents: i64,
    /// 0: no attributes; otherwise selects a region and an app version.
    attrs: u8,
    /// Some clients send an idempotency key; the built-in rules keep it but
    /// deduplicate by content.
    event_id: Option<u64>,
}

impl Truth {
    fn key(&self) -> (u32, usize, i64, i64) {
        (self.client, self.metric, self.ts_ms, self.cents)
    }
}

/// The stream of raw events for a [`Spec`]; see the module documentation.
pub struct Events {
    rng: ChaCha8Rng,
    spec: Spec,
    emitted: u64,
    new_events: u64,
    /// The steady clock advances by this much per new event, so that the
    /// expected number of new events spans the year.
    step_ms: f64,
    recent: VecDeque<(Truth, Value)>,
    /// Keys of the new events that a fresh event could still collide with
    /// (those within the jitter window), to keep every new event distinct.
    live_keys: HashSet<(u32, usize, i64, i64)>,
    live_order: VecDeque<(u32, usize, i64, i64)>,
    live_cap: usize,
}

impl Events {
    pub fn new(spec: Spec) -> Self {
        let expected_new = (spec.events as f64 * 0.9).max(1.0);
        let step_ms = YEAR_MS as f64 / expected_new;
        // Events whose steady clocks lie within the jitter of each other.
        let live_cap = ((2.0 * MAX_JITTER_MS as f64 / step_ms).ceil() as usize)
            .min(usize::try_from(spec.events).unwrap_or(usize::MAX))
            .saturating_add(16);
        Events {
            rng: ChaCha8Rng::seed_from_u64(spec.seed),
            spec,
            emitted: 0,
            new_events: 0,
            step_ms,
            recent: VecDeque::with_capacity(RETRY_WINDOW),
            live_keys: HashSet::with_capacity(live_cap),
            live_order: VecDeque::with_capacity(live_cap),
            live_cap,
        }
    }

    /// Distinct events emitted so far: the number a correct store holds
    /// after ingesting everything emitted.
    pub fn unique(&self) -> u64 {
        self.new_events
    }

    /// Events emitted so far.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    fn fresh(&mut self) -> Truth {
        let k = self.new_events;
        let steady = YEAR_START_MS + (k as f64 * self.step_ms) as i64;
        loop {
            let metric = self.rng.random_range(0..METRICS.len());
            let mut ts_ms = steady - self.rng.random_range(0..MAX_JITTER_MS);
            // Half the clients send whole seconds only.
            if self.rng.random_bool(0.5) {
                ts_ms -= ts_ms.rem_euclid(1000);
            }
            let truth = Truth {
                client: self.rng.random_range(0..CLIENTS),
                metric,
                ts_ms,
                cents: amount_cents(&mut self.rng, metric),
                attrs: self.rng.random_range(0..8u8),
                event_id: self.rng.random_ratio(1, 5).then_some(k),
            };
            if self.live_keys.insert(truth.key()) {
                self.live_order.push_back(truth.key());
                if self.live_order.len() > self.live_cap {
                    if let Some(old) = self.live_order.pop_front() {
                        self.live_keys.remove(&old);
                    }
                }
                return truth;
            }
        }
    }
}

impl Iterator for Events {
    type Item = Generated;

    fn next(&mut self) -> Option<Generated> {
        if self.emitted >= self.spec.events {
            return None;
        }
        self.emitted += 1;
        if !self.recent.is_empty() && self.rng.random_ratio(1, 10) {
            let i = self.rng.random_range(0..self.recent.len());
            let (truth, raw) = &self.recent[i];
            let (truth, raw) = (*truth, raw.clone());
            let raw = if self.rng.random_bool(0.5) {
                raw
            } else {
                spell(&truth, &mut self.rng)
            };
            return Some(Generated { raw, retry: true });
        }
        let truth = self.fresh();
        self.new_events += 1;
        let raw = spell(&truth, &mut self.rng);
        if self.recent.len() == RETRY_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back((truth, raw.clone()));
        Some(Generated { raw, retry: false })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.spec.events - self.emitted) as usize;
        (left, Some(left))
    }
}

/// Amounts in hundredths, shaped per metric: counts for the counting
/// metrics, money for the money ones, signed readings for temperature.
fn amount_cents(rng: &mut ChaCha8Rng, metric: usize) -> i64 {
    match METRICS[metric] {
        "page_views" => rng.random_range(1..=40) * 100,
        "clicks" => rng.random_range(1..=10) * 100,
        "signups" => 100,
        "sales" => rng.random_range(99..=250_000),
        "revenue" => rng.random_range(100..=1_000_000),
        "refunds" => rng.random_range(100..=50_000),
        "latency_ms" => rng.random_range(50..=300_000),
        "errors" => rng.random_range(1..=5) * 100,
        "cart_adds" => rng.random_range(1..=3) * 100,
        _ => rng.random_range(-2_000..=4_000),
    }
}

const CLIENT_KEYS: [&str; 5] = ["source", "client", "clientId", "client_id", "clientID"];
const METRIC_KEYS: [&str; 4] = ["metric", "name", "event", "type"];
const AMOUNT_KEYS: [&str; 6] = ["value", "amount", "amt", "val", "count", "qty"];
const TIME_KEYS: [&str; 6] = ["timestamp", "ts", "time", "date", "datetime", "occurred_at"];
const EVENT_ID_KEYS: [&str; 3] = ["event_id", "eventId", "idempotency_key"];
const REGIONS: [&str; 4] = ["eu-west", "us-east", "apac", "sa"];
const VERSIONS: [&str; 3] = ["1.4.2", "1.5.0", "2.0.0-beta.3"];
/// Offsets clients write their local time in, in seconds east of UTC.
const OFFSETS: [i32; 6] = [0, 3600, 7200, -5 * 3600, 19_800, -12_600];

/// Write `t` the way some client might: any alias, any accepted form.
fn spell(t: &Truth, rng: &mut ChaCha8Rng) -> Value {
    let mut fields = Map::new();
    let metric = METRICS[t.metric];
    let metric_text = match rng.random_range(0..10) {
        0..=5 => metric.to_string(),
        6 => metric.to_uppercase(),
        7 => title_case(metric),
        8 => format!("  {metric} "),
        _ => format!("{} ", title_case(metric)),
    };
    let metric_key = match rng.random_range(0..10) {
        0..=6 => "metric",
        k => METRIC_KEYS[k - 6],
    };
    fields.insert(metric_key.into(), Value::String(metric_text));
    fields.insert(pick(rng, &AMOUNT_KEYS).into(), spell_amount(t.cents, rng));
    fields.insert(pick(rng, &TIME_KEYS).into(), spell_time(t.ts_ms, rng));
    if let Some(id) = t.event_id {
        fields.insert(pick(rng, &EVENT_ID_KEYS).into(), Value::String(format!("evt-{id:x}")));
    }
    if t.attrs > 0 {
        fields.insert(
            "region".into(),
            Value::String(REGIONS[t.attrs as usize % REGIONS.len()].into()),
        );
        fields.insert(
            "app_version".into(),
            Value::String(VERSIONS[t.attrs as usize % VERSIONS.len()].into()),
        );
    }
    let client = Value::String(format!("client-{:03}", t.client));
    if rng.random_bool(0.4) {
        let mut envelope = Map::new();
        envelope.insert("source".into(), client);
        envelope.insert("payload".into(), Value::Object(fields));
        Value::Object(envelope)
    } else {
        fields.insert(pick(rng, &CLIENT_KEYS).into(), client);
        Value::Object(fields)
    }
}

fn pick<'a>(rng: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn title_case(s: &str) -> String {
    s.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("_")
}

fn amount_text(cents: i64) -> String {
    if cents % 100 == 0 {
        (cents / 100).to_string()
    } else {
        // Shortest text that reads back as the same f64 as the number form.
        (cents as f64 / 100.0).to_string()
    }
}

fn spell_amount(cents: i64, rng: &mut ChaCha8Rng) -> Value {
    match rng.random_range(0..10) {
        0..=5 if cents % 100 == 0 => Value::from(cents / 100),
        0..=5 => Number::from_f64(cents as f64 / 100.0).map_or(Value::Null, Value::Number),
        6..=8 => Value::String(amount_text(cents)),
        _ => Value::String(format!(" {} ", amount_text(cents))),
    }
}

fn spell_time(ms: i64, rng: &mut ChaCha8Rng) -> Value {
    let whole = ms % 1000 == 0;
    let utc: DateTime<Utc> = DateTime::from_timestamp_millis(ms).unwrap_or_default();
    let frac = if whole { "" } else { "%.3f" };
    match rng.random_range(0..8) {
        0 => Value::String(utc.format(&format!("%Y-%m-%dT%H:%M:%S{frac}Z")).to_string()),
        1 | 2 => {
            let east = OFFSETS[rng.random_range(0..OFFSETS.len())];
            let zone = FixedOffset::east_opt(east).unwrap_or(FixedOffset::east_opt(0).expect("UTC is an offset"));
            let local = utc.with_timezone(&zone);
            Value::String(local.format(&format!("%Y-%m-%dT%H:%M:%S{frac}%:z")).to_string())
        }
        3 => Value::String(utc.format(&format!("%Y-%m-%d %H:%M:%S{frac}")).to_string()),
        4 if whole => Value::from(ms / 1000),
        // Seconds with a fraction: f64 holds 13 significant digits exactly
        // enough to round back to the same millisecond.
        4 => Number::from_f64(ms as f64 / 1000.0).map_or(Value::Null, Value::Number),
        5 if whole => Value::String((ms / 1000).to_string()),
        5 => Value::String(format!("{}.{:03}", ms / 1000, ms % 1000)),
        6 => Value::from(ms),
        _ => Value::String(ms.to_string()),
    }
}

/// An event already normalised, ready for a plain INSERT: what the floor
/// contender writes.
#[derive(Debug, Clone)]
pub struct Row {
    pub key: Vec<u8>,
    pub event: Event,
    /// The attributes as the JSON text the events table stores.
    pub attributes: String,
}

/// Normalise `raw` under `rules` as the core does, with its dedup key.
/// Generated events are always valid; anything else is a generator bug.
pub fn normalised(raw: &Value, rules: &Rules) -> Row {
    let event = match normalize(raw, rules) {
        Ok(e) => e,
        Err(reasons) => panic!("generated event {raw} was rejected: {reasons:?}"),
    };
    Row {
        key: dedup_key(&event, rules),
        attributes: Value::Object(event.attributes.clone()).to_string(),
        event,
    }
}

/// The JSON text of an array of events, as a client would post a batch.
pub fn batch_text(events: &[Generated]) -> String {
    let mut text = String::with_capacity(events.len() * 160);
    text.push('[');
    for (i, g) in events.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&g.raw.to_string());
    }
    text.push(']');
    text
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_stream_is_seeded_and_exact_about_retries() {
        let spec = Spec {
            events: 20_000,
            seed: 1,
        };
        let a: Vec<String> = Events::new(spec).map(|g| g.raw.to_string()).collect();
        let b: Vec<String> = Events::new(spec).map(|g| g.raw.to_string()).collect();
        assert_eq!(a, b);

        let rules = Rules::builtin();
        let mut gen = Events::new(spec);
        let mut keys: HashMap<Vec<u8>, Event> = HashMap::new();
        let mut retries = 0;
        for g in gen.by_ref() {
            let row = normalised(&g.raw, &rules);
            match keys.get(&row.key) {
                Some(first) => {
                    assert!(g.retry, "a new event collided with {first:?}");
                    assert_eq!(first.attributes, row.event.attributes, "a retry changed attributes");
                    retries += 1;
                }
                None => {
                    assert!(!g.retry, "a retry normalised to a new key: {}", g.raw);
                    keys.insert(row.key, row.event);
                }
            }
        }
        assert_eq!(keys.len() as u64, gen.unique());
        assert!((1500..2500).contains(&retries), "about 10% retries, got {retries}");
        let (lo, hi) = keys.values().fold((i64::MAX, i64::MIN), |(lo, hi), e| {
            (lo.min(e.timestamp.millis()), hi.max(e.timestamp.millis()))
        });
        assert!(lo >= YEAR_START_MS - MAX_JITTER_MS && hi <= YEAR_START_MS + YEAR_MS + DAY_MS);
        assert!(hi - lo > YEAR_MS - 30 * DAY_MS, "the data spans about a year");
    }

    #[test]
    fn spellings_are_mixed() {
        let text: String = Events::new(Spec { events: 5_000, seed: 2 })
            .map(|g| g.raw.to_string())
            .collect();
        for needle in [
            "\"payload\"",
            "\"clientID\"",
            "\"occurred_at\"",
            "\"qty\"",
            "+05:30",
            "PAGE_VIEWS",
            "\" 1",
        ] {
            assert!(text.contains(needle), "no {needle} in the data");
        }
    }
}
