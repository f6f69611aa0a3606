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
//!   seconds). Numbers are read from their decimal digits, never through a
//!   float: `1700000000.9999` is 1700000000999 ms exactly.
//!
//! One rule for precision: digits finer than the millisecond are truncated
//! (towards the earlier instant), in text (`.9999Z` is `.999Z`) and in epoch
//! numbers alike, so one instant is one event however it is written, and
//! never crosses into the next second, hour, day or month.
//!
//! A leap second (`:60`) is refused: at millisecond precision in UTC every
//! place it could go is another instant (`:59.999`, or the next minute's
//! `:00`), and rounding it either way would merge it with a different event
//! or move it across a minute, hour, day or month boundary. Instants must
//! fall in the years 0001 to 9999.

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};

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
    /// A leap second (`:60`), which has no place of its own (see the module).
    LeapSecond,
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
            return Self::from_epoch_decimal(s);
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

    /// An epoch number: seconds below [`EPOCH_SECONDS_BELOW`], milliseconds
    /// above; read from its shortest decimal form, as
    /// [`Timestamp::from_epoch_decimal`] reads text.
    pub fn from_epoch(n: f64) -> Result<Self, TimestampError> {
        if !n.is_finite() {
            return Err(TimestampError::Unparseable);
        }
        // Rust writes the shortest digits that read back as `n`: the number
        // as it was most likely written.
        Self::from_epoch_decimal(&n.to_string())
    }

    /// An epoch number written in decimal (`-12.5`, `1.7e9`, as JSON writes
    /// numbers), read exactly from its digits: seconds below
    /// [`EPOCH_SECONDS_BELOW`], milliseconds above, digits finer than the
    /// millisecond truncated towards the earlier instant.
    pub fn from_epoch_decimal(text: &str) -> Result<Self, TimestampError> {
        let d = Decimal::parse(text).ok_or(TimestampError::Unparseable)?;
        // Past 10^19 in either unit is far beyond the year 9999.
        if d.len() as i64 + d.exp > 19 {
            return Err(TimestampError::OutOfRange);
        }
        let (whole, _) = d.shifted(0);
        let places = if whole < EPOCH_SECONDS_BELOW as i128 { 3 } else { 0 };
        let (ms, cut) = d.shifted(places);
        let ms = match d.negative {
            // The floor: -0.0005 s is the millisecond before the epoch.
            true => -ms - i128::from(cut),
            false => ms,
        };
        i64::try_from(ms)
            .ok()
            .and_then(Self::from_millis)
            .ok_or(TimestampError::OutOfRange)
    }

    fn from_datetime(dt: DateTime<Utc>) -> Result<Self, TimestampError> {
        // chrono keeps a leap second as a fraction of a second past 1.
        if dt.timestamp_subsec_nanos() >= 1_000_000_000 {
            return Err(TimestampError::LeapSecond);
        }
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

/// A decimal number as written: `(-1)^negative × digits × 10^exp`, where
/// `digits` are the integer and fraction digits read together, leading
/// zeros skipped. Borrowed from the text: no allocation per timestamp.
struct Decimal<'a> {
    negative: bool,
    int: &'a [u8],
    frac: &'a [u8],
    /// How many leading zeros of `int` then `frac` are skipped.
    zeros: usize,
    exp: i64,
}

impl<'a> Decimal<'a> {
    /// JSON's number form, with a leading `+` also allowed.
    fn parse(text: &'a str) -> Option<Decimal<'a>> {
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exp) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !all_digits(int) || !all_digits(frac) || (mantissa.contains('.') && frac.is_empty()) {
            return None;
        }
        let exp = match exp {
            None => 0,
            Some(e) => {
                let body = e.strip_prefix(['+', '-']).unwrap_or(e);
                if body.is_empty() || !all_digits(body) {
                    return None;
                }
                // Beyond any instant either way: keep the sign, bound the size.
                let size = body.parse::<i64>().unwrap_or(i64::MAX).min(100_000);
                if e.starts_with('-') {
                    -size
                } else {
                    size
                }
            }
        };
        let (int, frac) = (int.as_bytes(), frac.as_bytes());
        let zeros = int.iter().chain(frac).take_while(|&&d| d == b'0').count();
        Some(Decimal {
            negative,
            int,
            frac,
            zeros,
            exp: exp - frac.len() as i64,
        })
    }

    /// The digits, leading zeros skipped, as numbers.
    fn digits(&self) -> impl Iterator<Item = u8> + 'a {
        self.int.iter().chain(self.frac).skip(self.zeros).map(|d| d - b'0')
    }

    fn len(&self) -> usize {
        self.int.len() + self.frac.len() - self.zeros
    }

    /// The magnitude times 10^`places`, truncated to an integer, and
    /// whether anything nonzero was cut. Only called when the result has at
    /// most 22 digits (see `from_epoch_decimal`).
    fn shifted(&self, places: i64) -> (i128, bool) {
        let p = self.exp + places;
        let len = self.len() as i64;
        let keep = (len + p).clamp(0, len) as usize;
        let whole = self.digits().take(keep).fold(0i128, |n, d| n * 10 + i128::from(d));
        let scale = (0..p.max(0)).fold(whole, |n, _| n * 10);
        let cut = self.digits().skip(keep).any(|d| d != 0);
        (scale, cut)
    }
}

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
        let t = self.to_datetime().naive_utc();
        let mut out = [0u8; 24];
        // Years 0001 to 9999 by construction: always four digits.
        out[..19].copy_from_slice(&civil(&t).unwrap_or(*b"0000-00-00T00:00:00"));
        out[19] = b'.';
        digits(&mut out[20..23], self.0.rem_euclid(1000) as u32);
        out[23] = b'Z';
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

/// `2024-01-02T10:00:00+01:00`: a local time and its offset from UTC, as
/// chrono's `%Y-%m-%dT%H:%M:%S%:z` writes it (the offset rounded to the
/// minute), for the local start of a bucket.
pub(crate) fn local_text(t: &DateTime<FixedOffset>) -> String {
    let Some(date_time) = civil(&t.naive_local()) else {
        // A local year beyond four digits, at the edges of the range.
        return t.format("%Y-%m-%dT%H:%M:%S%:z").to_string();
    };
    let off = t.offset().local_minus_utc();
    let minutes = (off.unsigned_abs() + 30) / 60;
    let mut out = [0u8; 25];
    out[..19].copy_from_slice(&date_time);
    out[19] = if off < 0 { b'-' } else { b'+' };
    digits(&mut out[20..22], minutes / 60);
    out[22] = b':';
    digits(&mut out[23..25], minutes % 60);
    String::from_utf8_lossy(&out).into_owned()
}

/// `YYYY-MM-DDTHH:MM:SS`, digit by digit; `None` for a year outside 0 to
/// 9999. Grouped answers write one of these per group, and chrono's
/// `format` reads its pattern anew on every call, which cost more than the
/// query behind a cached answer.
fn civil(t: &NaiveDateTime) -> Option<[u8; 19]> {
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let mut out = *b"0000-00-00T00:00:00";
    digits(&mut out[0..4], year);
    digits(&mut out[5..7], t.month());
    digits(&mut out[8..10], t.day());
    digits(&mut out[11..13], t.hour());
    digits(&mut out[14..16], t.minute());
    digits(&mut out[17..19], t.second());
    Some(out)
}

/// `n` in decimal, zero-padded to fill `out`.
fn digits(out: &mut [u8], mut n: u32) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
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
    fn epoch_numbers_are_read_from_their_digits_and_truncated_like_text() {
        let text = Timestamp::parse("2023-11-14T22:13:20.9999Z").unwrap();
        for n in [
            "1700000000.9999",
            "1700000000999.9",
            "1.7000000009999e9",
            "17000000009999E-4",
        ] {
            assert_eq!(Timestamp::from_epoch_decimal(n).unwrap(), text, "{n}");
        }
        assert_eq!(Timestamp::from_epoch(1_700_000_000.999_9).unwrap(), text);
        // The last millisecond of an hour stays in it.
        let last = Timestamp::from_epoch_decimal("1700002799.9999").unwrap();
        assert_eq!(last.to_string(), "2023-11-14T22:59:59.999Z");
        // Towards the earlier instant, before 1970 too, as text is.
        assert_eq!(Timestamp::from_epoch_decimal("-0.0005").unwrap().millis(), -1);
        assert_eq!(ms("1969-12-31T23:59:59.9995Z"), -1);
        assert_eq!(Timestamp::from_epoch_decimal("-1.5").unwrap().millis(), -1500);
        assert_eq!(Timestamp::from_epoch_decimal("-0").unwrap().millis(), 0);
        assert_eq!(
            Timestamp::from_epoch_decimal("0.00000000000000000000001")
                .unwrap()
                .millis(),
            0
        );
        assert_eq!(Timestamp::from_epoch_decimal("1e-100000000").unwrap().millis(), 0);
        assert_eq!(Timestamp::from_epoch_decimal("1e400"), Err(TimestampError::OutOfRange));
        assert_eq!(Timestamp::from_epoch_decimal("-1e18"), Err(TimestampError::OutOfRange));
        assert_eq!(
            Timestamp::from_epoch_decimal("253402300799999").unwrap().millis(),
            MAX_MS
        );
        assert_eq!(
            Timestamp::from_epoch_decimal("253402300800000"),
            Err(TimestampError::OutOfRange)
        );
        for bad in ["", "-", "1.", ".5", "1e", "1e+", "0x1", "1.2.3", "--1", "1e5.5"] {
            assert_eq!(
                Timestamp::from_epoch_decimal(bad),
                Err(TimestampError::Unparseable),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_leap_second_is_refused_in_every_form() {
        for s in [
            "2016-12-31T23:59:60Z",
            "2016-12-31T23:59:60.5Z",
            "2017-01-01T00:59:60+01:00",
            "2024-01-02T10:30:60Z",
            "2024-01-02 10:30:60",
            "2024-01-02T10:30:60.000",
        ] {
            assert_eq!(Timestamp::parse(s), Err(TimestampError::LeapSecond), "{s}");
        }
        assert_eq!(ms("2017-01-01T00:00:00Z") - ms("2016-12-31T23:59:59.999Z"), 1);
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

    proptest::proptest! {
        // The digit-by-digit writers answer what chrono's format does,
        // over the whole range and every offset a zone has had (local mean
        // times have seconds, which `%:z` rounds to the minute).
        #[test]
        fn text_is_what_chrono_formats(ms in MIN_MS..=MAX_MS, off in -86_399i32..=86_399) {
            let t = Timestamp::from_millis(ms).unwrap();
            proptest::prop_assert_eq!(
                t.to_string(),
                t.to_datetime().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            );
            let local = t.to_datetime().with_timezone(&FixedOffset::east_opt(off).unwrap());
            proptest::prop_assert_eq!(local_text(&local), local.format("%Y-%m-%dT%H:%M:%S%:z").to_string());
        }
    }

    #[test]
    fn local_text_at_the_edges() {
        for (ms, off) in [
            (MIN_MS, -3600),
            (MAX_MS, 14 * 3600),
            (0, 0),
            (0, -1),
            (0, 29),
            (0, 30),
            (0, -30),
        ] {
            let local = Timestamp::from_millis(ms)
                .unwrap()
                .to_datetime()
                .with_timezone(&FixedOffset::east_opt(off).unwrap());
            assert_eq!(
                local_text(&local),
                local.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
                "{ms} {off}"
            );
        }
    }
}
