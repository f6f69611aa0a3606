//! Instants at millisecond precision, and the accepted ways of writing them.
//!
//! Accepted forms (all end up as milliseconds since the Unix epoch, UTC):
//! - RFC 3339 with any offset: `2024-01-02T10:00:00.5+02:00`, `...Z`;
//! - date and time without an offset, taken as UTC: `2024-01-02 10:00:00`,
//!   `2024-01-02T10:00:00.123`, `2024-01-02T10:00`;
//! - a date alone, midnight UTC: `2024-01-02`;
//! - epoch numbers, as JSON numbers or numeric strings. **The rule that tells
//!   seconds from milliseconds:** a magnitude below 100 000 000 000 is seconds
//!   (that is every instant up to the year 5138), anything larger is
//!   milliseconds (so millisecond values before 1973-03-03 are read as
//!   seconds). Fractions are rounded to the nearest millisecond.
//!
//! Finer precision in text (micro-, nanoseconds) is truncated to the
//! millisecond. Instants must fall in the years 0001 to 9999.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Epoch values with a magnitude below this are seconds; larger are milliseconds.
pub const EPOCH_SECONDS_BELOW: f64 = 1e11;

/// 0001-01-01T00:00:00.000Z
pub const MIN_MS: i64 = -62_135_596_800_000;
/// 9999-12-31T23:59:59.999Z
pub const MAX_MS: i64 = 253_402_300_799_999;

/// An instant in UTC with millisecond precision, shown as
/// `2024-01-02T00:00:00.000Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Why a value is not an accepted instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampError {
    /// Not one of the accepted forms.
    Unparseable,
    /// A valid instant, but outside the years 0001 to 9999.
    OutOfRange,
}

impl Timestamp {
    /// The instant `ms` milliseconds after the epoch, if within the years 0001 to 9999.
    pub fn from_millis(ms: i64) -> Option<Self> {
        (MIN_MS..=MAX_MS).contains(&ms).then_some(Timestamp(ms))
    }

    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// The current time, truncated to the millisecond.
    pub fn now() -> Self {
        Timestamp(Utc::now().timestamp_millis())
    }

    /// Parse any accepted text form (see the module documentation).
    ///
    /// ```
    /// use ingest_core::Timestamp;
    /// let a = Timestamp::parse("2024-01-02").unwrap();
    /// let b = Timestamp::parse("2024-01-02T02:00:00+02:00").unwrap();
    /// let c = Timestamp::parse("1704153600").unwrap();
    /// assert_eq!(a, b);
    /// assert_eq!(a, c);
    /// assert_eq!(a.to_string(), "2024-01-02T00:00:00.000Z");
    /// ```
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        let s = text.trim();
        if s.is_empty() {
            return Err(TimestampError::Unparseable);
        }
        if looks_numeric(s) {
            let n: f64 = s.parse().map_err(|_| TimestampError::Unparseable)?;
            return Self::from_epoch(n);
        }
        if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
            return Self::from_datetime(dt.with_timezone(&Utc));
        }
        for fmt in NAIVE_FORMATS {
            if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
                return Self::from_datetime(Utc.from_utc_datetime(&dt));
            }
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            let dt = d.and_hms_opt(0, 0, 0).ok_or(TimestampError::Unparseable)?;
            return Self::from_datetime(Utc.from_utc_datetime(&dt));
        }
        Err(TimestampError::Unparseable)
    }

    /// An epoch number: seconds below [`EPOCH_SECONDS_BELOW`], milliseconds above.
    pub fn from_epoch(n: f64) -> Result<Self, TimestampError> {
        if !n.is_finite() {
            return Err(TimestampError::Unparseable);
        }
        let ms = if n.abs() < EPOCH_SECONDS_BELOW {
            (n * 1000.0).round()
        } else {
            n.round()
        };
        // Bounds checked in f64 first: the cast saturates, which would wrap
        // a huge value onto a valid-looking one.
        if !(MIN_MS as f64..=MAX_MS as f64).contains(&ms) {
            return Err(TimestampError::OutOfRange);
        }
        Self::from_millis(ms as i64).ok_or(TimestampError::OutOfRange)
    }

    fn from_datetime(dt: DateTime<Utc>) -> Result<Self, TimestampError> {
        Self::from_millis(dt.timestamp_millis()).ok_or(TimestampError::OutOfRange)
    }

    pub(crate) fn to_datetime(self) -> DateTime<Utc> {
        // In range by construction, so this never falls back.
        DateTime::from_timestamp_millis(self.0).unwrap_or_default()
    }
}

/// Formats without an offset, read as UTC. Seconds fractions are optional.
const NAIVE_FORMATS: [&str; 4] = [
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
];

/// Digits with an optional sign and fraction: the epoch forms. Checked
/// before handing to `f64::parse`, which would also take `inf` and `1e3`.
fn looks_numeric(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let mut parts = body.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    !int.is_empty() && digits(int) && frac.is_none_or(|f| !f.is_empty() && digits(f))
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_datetime().format("%Y-%m-%dT%H:%M:%S%.3fZ"))
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        Timestamp::parse(s).unwrap().millis()
    }

    #[test]
    fn every_text_form_of_one_instant_agrees() {
        let want = 1_704_189_600_000; // 2024-01-02T10:00:00Z
        for s in [
            "2024-01-02T10:00:00Z",
            "2024-01-02T10:00:00.000Z",
            "2024-01-02t10:00:00z",
            "2024-01-02T12:00:00+02:00",
            "2024-01-02T05:30:00-04:30",
            "2024-01-02 10:00:00",
            "2024-01-02T10:00:00",
            "2024-01-02T10:00",
            "2024-01-02 10:00",
            " 2024-01-02T10:00:00Z ",
            "1704189600",
            "1704189600000",
            "1704189600.0",
        ] {
            assert_eq!(ms(s), want, "{s}");
        }
        assert_eq!(ms("2024-01-02"), 1_704_153_600_000);
    }

    #[test]
    fn seconds_and_millis_are_told_apart_by_magnitude() {
        assert_eq!(
            Timestamp::from_epoch(99_999_999_999.0).unwrap().millis(),
            99_999_999_999_000
        );
        assert_eq!(
            Timestamp::from_epoch(100_000_000_000.0).unwrap().millis(),
            100_000_000_000
        );
        assert_eq!(Timestamp::from_epoch(-1.5).unwrap().millis(), -1500);
        assert_eq!(
            Timestamp::from_epoch(1704189600.1234).unwrap().millis(),
            1_704_189_600_123
        );
    }

    #[test]
    fn sub_millisecond_text_is_truncated() {
        assert_eq!(ms("2024-01-02T10:00:00.1239Z") % 1000, 123);
    }

    #[test]
    fn rejects_what_is_not_an_instant() {
        for s in [
            "",
            "  ",
            "yesterday",
            "2024-13-01",
            "2024-02-30",
            "1e9",
            "inf",
            "NaN",
            "0x10",
            "12.",
            ".5",
            "--1",
        ] {
            assert_eq!(Timestamp::parse(s), Err(TimestampError::Unparseable), "{s:?}");
        }
        assert_eq!(Timestamp::from_epoch(f64::NAN), Err(TimestampError::Unparseable));
        assert_eq!(Timestamp::from_epoch(1e300), Err(TimestampError::OutOfRange));
        assert!(Timestamp::parse("+10000-01-01T00:00:00Z").is_err());
    }

    #[test]
    fn displays_canonically_across_the_range() {
        assert_eq!(
            Timestamp::from_millis(0).unwrap().to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_millis(MIN_MS).unwrap().to_string(),
            "0001-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_millis(MAX_MS).unwrap().to_string(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(Timestamp::from_millis(MAX_MS + 1), None);
        assert_eq!(
            Timestamp::from_millis(-1).unwrap().to_string(),
            "1969-12-31T23:59:59.999Z"
        );
    }
}
