//! Rates, latencies, outcome tallies and the process's peak memory.

use std::time::Duration;

use ingest_core::Outcome;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Res<T> = Result<T, BoxError>;

/// Fail the run with `msg`: for disagreements, which must never pass quietly.
pub fn fail<T>(msg: impl Into<String>) -> Res<T> {
    Err(msg.into().into())
}

/// Events processed in a measured time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rate {
    pub events: u64,
    pub busy: Duration,
}

impl Rate {
    pub fn per_sec(&self) -> f64 {
        self.events as f64 / self.busy.as_secs_f64().max(1e-9)
    }
}

/// Per-call times of one contender, in nanoseconds.
#[derive(Debug, Clone, Default)]
pub struct Latencies(Vec<u64>);

impl Latencies {
    pub fn with_capacity(n: usize) -> Self {
        Latencies(Vec::with_capacity(n))
    }

    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_nanos().min(u64::MAX as u128) as u64);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Duration> + '_ {
        self.0.iter().map(|&n| Duration::from_nanos(n))
    }

    pub fn total(&self) -> Duration {
        Duration::from_nanos(self.0.iter().sum())
    }

    /// The `p`-th percentile (0 to 100) in microseconds, by nearest rank.
    pub fn percentile_us(&self, p: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort_unstable();
        percentile(&v, p) as f64 / 1000.0
    }

    pub fn median_us(&self) -> f64 {
        self.percentile_us(50.0)
    }

    pub fn p99_us(&self) -> f64 {
        self.percentile_us(99.0)
    }
}

/// Nearest-rank percentile of sorted values; 0 for none.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What a contender answered, to check against what the data holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub accepted: u64,
    pub duplicate: u64,
    pub conflict: u64,
    pub rejected: u64,
}

impl Tally {
    pub fn add(&mut self, outcomes: &[Outcome]) {
        for o in outcomes {
            match o {
                Outcome::Accepted { .. } => self.accepted += 1,
                Outcome::Duplicate { .. } => self.duplicate += 1,
                Outcome::Conflict { .. } => self.conflict += 1,
                Outcome::Rejected { .. } => self.rejected += 1,
            }
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.accepted += other.accepted;
        self.duplicate += other.duplicate;
        self.conflict += other.conflict;
        self.rejected += other.rejected;
    }

    /// Every distinct event accepted once, every retry a duplicate, nothing
    /// rejected: otherwise the contender is wrong and its speed means nothing.
    pub fn check(&self, who: &str, events: u64, unique: u64) -> Res<()> {
        let want = Tally {
            accepted: unique,
            duplicate: events - unique,
            conflict: 0,
            rejected: 0,
        };
        if *self != want {
            return fail(format!(
                "{who}: answered {self:?} for {events} events; expected {want:?}"
            ));
        }
        Ok(())
    }
}

/// The process's peak resident set (VmHWM), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Start the peak over from the current resident set, so that a later
/// [`peak_rss_kib`] covers only what ran since (Linux 4.0+). False when the
/// kernel refused: the peak then covers the whole process.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}
