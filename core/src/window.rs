//! The acceptance window: how far back and ahead of now an event's time may
//! be (the rules' `max_age` and `max_future`), and the prune horizon below
//! which nothing is accepted again.
//!
//! The window is what makes pruning safe: an event removed by
//! [`Ingestor::prune`](crate::Ingestor::prune) is one the window already
//! rejects, so its retry can never be counted a second time.

use std::fmt;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::event::{Reason, ReasonCode};
use crate::timestamp::Timestamp;

/// A length of time in whole seconds, as the rules write it: a number of
/// seconds, or text such as `"90d"`, `"12h"`, `"30m"`, `"45s"`.
///
/// ```
/// use ingest_core::Age;
/// assert_eq!(Age::parse_text("90d").unwrap().seconds(), 90 * 86_400);
/// assert!(Age::parse_text("3 weeks").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Age(u64);

/// The longest age the rules take: 10 000 years, beyond the span of any
/// timestamp, so that `now - age` never overflows.
const MAX_AGE_SECONDS: u64 = 10_000 * 366 * 86_400;

impl Age {
    /// An age of `seconds` seconds, if within 10 000 years.
    pub fn from_seconds(seconds: u64) -> Option<Age> {
        (seconds <= MAX_AGE_SECONDS).then_some(Age(seconds))
    }

    /// Read `"90d"`, `"12h"`, `"30m"` or `"45s"` (a whole number and one unit).
    pub fn parse_text(text: &str) -> Result<Age> {
        Age::read(text).ok_or_else(|| Error::rules(not_an_age(text)))
    }

    fn read(text: &str) -> Option<Age> {
        let t = text.trim();
        let per = match t.chars().last()? {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        let digits = &t[..t.len() - 1];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<u64>().ok()?.checked_mul(per).and_then(Age::from_seconds)
    }

    /// The rules' value of `key`: a whole number of seconds, a text such as
    /// `"90d"`, or `null` for no bound.
    pub(crate) fn from_rules(v: &Value, key: &str) -> Result<Option<Age>> {
        let bad = |why: String| Error::rules(format!("{key}: {why}"));
        match v {
            Value::Null => Ok(None),
            Value::Number(n) => n.as_u64().and_then(Age::from_seconds).map(Some).ok_or_else(|| {
                bad("expected whole seconds from 0 to 10 000 years, text such as \"90d\", or null".into())
            }),
            Value::String(s) => Age::read(s).map(Some).ok_or_else(|| bad(not_an_age(s))),
            _ => Err(bad("expected seconds as a number, text such as \"90d\", or null".into())),
        }
    }

    /// The length in seconds.
    pub fn seconds(self) -> u64 {
        self.0
    }

    fn millis(self) -> i64 {
        // At most 10 000 years: far inside i64 milliseconds.
        self.0 as i64 * 1000
    }
}

fn not_an_age(text: &str) -> String {
    format!("{text:?} is not a length of time; expected seconds as a number, or a whole number with d, h, m or s such as \"90d\"")
}

/// The shortest text for the age: `"90d"` when it is whole days, and so on.
impl fmt::Display for Age {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        for (per, unit) in [(86_400, 'd'), (3_600, 'h'), (60, 'm')] {
            if s > 0 && s % per == 0 {
                return write!(f, "{}{unit}", s / per);
            }
        }
        write!(f, "{s}s")
    }
}

/// What a call admits: the times an event may have at one moment, and,
/// for a caller that writes as one client (an API key's), that client.
/// Decided once per call and applied to each event of it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Window {
    /// Events before this are `too_old`, and why.
    oldest: Option<(i64, Floor)>,
    /// Events after this are `in_future`: now plus `max_future`.
    latest: Option<(i64, Age)>,
    /// The one client every event of the call is from: an event naming no
    /// client is from it, one naming another is not allowed.
    client: Option<std::sync::Arc<str>>,
}

/// What sets the window's lower edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Floor {
    /// now minus the rules' `max_age`.
    MaxAge(Age),
    /// The prune horizon: events before it were removed, and a retry of one
    /// must not be counted again.
    Pruned,
}

impl Window {
    /// The window at `now` for `max_age` and `max_future` (each `None` for
    /// no bound) and the store's prune horizon, if it was pruned.
    pub(crate) fn at(now: Timestamp, max_age: Option<Age>, max_future: Option<Age>, pruned: Option<i64>) -> Window {
        let now = now.millis();
        let by_age = max_age.map(|a| (now - a.millis(), Floor::MaxAge(a)));
        let by_prune = pruned.map(|p| (p, Floor::Pruned));
        let oldest = match (by_age, by_prune) {
            (Some(a), Some(p)) => Some(if p.0 > a.0 { p } else { a }),
            (a, p) => a.or(p),
        };
        Window {
            oldest,
            latest: max_future.map(|f| (now + f.millis(), f)),
            client: None,
        }
    }

    /// The same window for a caller that writes as `client` only (in the
    /// one form of names).
    pub(crate) fn for_client(self, client: &str) -> Window {
        Window {
            client: Some(client.into()),
            ..self
        }
    }

    /// The client every event of the call is from, if the caller is one.
    pub(crate) fn client(&self) -> Option<&str> {
        self.client.as_deref()
    }

    /// The window's lower edge, if it has one.
    pub(crate) fn floor(&self) -> Option<Timestamp> {
        self.oldest.and_then(|(ms, _)| Timestamp::from_millis(ms))
    }

    /// The reason an event at `t` is outside the window, if it is.
    pub(crate) fn check(&self, t: Timestamp) -> Option<Reason> {
        let ms = t.millis();
        if let Some((oldest, floor)) = self.oldest {
            if ms < oldest {
                let edge = Timestamp::from_millis(oldest).map_or_else(|| oldest.to_string(), |e| e.to_string());
                let why = match floor {
                    Floor::MaxAge(age) => format!("older than max_age ({age}): nothing before {edge} is accepted"),
                    Floor::Pruned => format!(
                        "before {edge}, where the store was pruned: a retry of a pruned event must not be counted again"
                    ),
                };
                return Some(Reason::new(
                    ReasonCode::TooOld,
                    "timestamp",
                    format!("timestamp {t} is {why}"),
                ));
            }
        }
        if let Some((latest, ahead)) = self.latest {
            if ms > latest {
                let edge = Timestamp::from_millis(latest).map_or_else(|| latest.to_string(), |e| e.to_string());
                return Some(Reason::new(
                    ReasonCode::InFuture,
                    "timestamp",
                    format!("timestamp {t} is more than max_future ({ahead}) ahead of now: nothing after {edge} is accepted"),
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ages_read_numbers_and_units() {
        assert_eq!(Age::parse_text("45s").unwrap().seconds(), 45);
        assert_eq!(Age::parse_text("30m").unwrap().seconds(), 1800);
        assert_eq!(Age::parse_text(" 12h ").unwrap().seconds(), 43_200);
        assert_eq!(Age::from_rules(&json!(0), "max_age").unwrap(), Age::from_seconds(0));
        assert_eq!(Age::from_rules(&json!(null), "max_age").unwrap(), None);
        for bad in ["", "d", "90", "-1d", "1.5h", "90D", "1w", "9999999999999999999d", "٣d"] {
            assert!(Age::parse_text(bad).is_err(), "{bad:?}");
        }
        for bad in [json!(-1), json!(1.5), json!(true), json!([1]), json!(1e300)] {
            let e = Age::from_rules(&bad, "max_future").unwrap_err().to_string();
            assert!(e.contains("max_future"), "{e}");
        }
        assert_eq!(Age::from_seconds(90 * 86_400).unwrap().to_string(), "90d");
        assert_eq!(Age::from_seconds(5400).unwrap().to_string(), "90m");
        assert_eq!(Age::from_seconds(61).unwrap().to_string(), "61s");
        assert_eq!(Age::from_seconds(0).unwrap().to_string(), "0s");
    }

    #[test]
    fn the_window_keeps_its_edges_and_says_why() {
        let now = Timestamp::from_millis(1_000_000_000_000).unwrap();
        let day = Age::parse_text("1d").unwrap();
        let w = Window::at(now, Some(day), Some(Age::parse_text("5m").unwrap()), None);
        let at = |ms: i64| w.check(Timestamp::from_millis(ms).unwrap());
        assert!(
            at(1_000_000_000_000 - 86_400_000).is_none(),
            "the edge itself is inside"
        );
        let old = at(1_000_000_000_000 - 86_400_001).unwrap();
        assert_eq!(old.code, ReasonCode::TooOld);
        assert!(old.message.contains("max_age (1d)"), "{}", old.message);
        assert!(at(1_000_000_000_000 + 300_000).is_none());
        assert_eq!(at(1_000_000_000_000 + 300_001).unwrap().code, ReasonCode::InFuture);
        // A horizon above now - max_age raises the floor, and says so.
        let w = Window::at(now, Some(day), None, Some(1_000_000_000_000 - 1000));
        let r = w
            .check(Timestamp::from_millis(1_000_000_000_000 - 1001).unwrap())
            .unwrap();
        assert!(r.message.contains("pruned"), "{}", r.message);
        assert!(Window::default().check(Timestamp::from_millis(0).unwrap()).is_none());
    }
}
