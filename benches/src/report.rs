//! The tables `compare` prints and writes to BENCHMARKS.md. Only formatting
//! of figures already measured: nothing here times or checks a contender.

use ingest_core::Durability;

use crate::measure::{Latencies, Rate};

/// One row of the ingest table.
pub struct Row {
    pub contender: String,
    pub n: u64,
    pub setting: String,
    pub rate: Rate,
    pub per_call: Option<Latencies>,
}

/// A ratio the issue sets a target for.
pub struct Target {
    pub what: String,
    pub value: String,
    pub goal: String,
    pub met: bool,
}

/// A peak resident set, and what the process had done when it was read.
pub struct Rss {
    pub what: String,
    pub events: u64,
    pub kib: Option<u64>,
    /// Whether the peak was reset just before, so it covers only `what`.
    pub scoped: bool,
}

pub fn durability_name(d: Durability) -> &'static str {
    match d {
        Durability::Full => "full",
        Durability::Normal => "normal",
    }
}

/// `1234567.8` as `1 234 568`: wide numbers stay readable in a table.
pub fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    if x < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// A ratio: two decimals below 10, whole above.
pub fn ratio(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2}")
    } else {
        thousands(x)
    }
}

/// Microseconds: one decimal below 100, whole above.
pub fn us(x: f64) -> String {
    if x < 100.0 {
        format!("{x:.1}")
    } else {
        thousands(x)
    }
}
