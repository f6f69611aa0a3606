//! Exact sums of amounts. Every finite f64 is an integer times a power of
//! two, so a sum of them is one too: [`ExactSum`] keeps it as `m × 2^e`
//! with an integer `m` of any size, adds without rounding, and rounds once,
//! to the nearest f64 (ties to even), only when an answer is read. The same
//! amounts therefore give the same total in any order and any grouping,
//! from rollups, from events or from both.
//!
//! Most totals fit an `i128` at the exponent of their smallest amount
//! (amounts of similar size, such as prices); those are added without
//! allocating, and the rest in a big integer.

use std::cmp::Ordering;

use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{Signed, ToPrimitive, Zero};

/// The smallest exponent of an f64's last bit (of the smallest subnormal).
const MIN_EXP: i32 = -1074;

/// An exact sum of f64 values: `m × 2^e`, kept with `m` odd (or zero with
/// `e == 0`), so that equal values are equal in representation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ExactSum {
    m: Mant,
    e: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mant {
    Small(i128),
    Big(BigInt),
}

impl Default for Mant {
    fn default() -> Self {
        Mant::Small(0)
    }
}

impl Mant {
    fn big(&self) -> BigInt {
        match self {
            Mant::Small(n) => BigInt::from(*n),
            Mant::Big(n) => n.clone(),
        }
    }
}

impl ExactSum {
    /// The exact value of `x`, which must be finite (amounts are: the
    /// normaliser refuses the others); a non-finite `x` counts as zero.
    pub(crate) fn of(x: f64) -> Self {
        if !x.is_finite() || x == 0.0 {
            return ExactSum::default();
        }
        let bits = x.to_bits();
        let exp_bits = ((bits >> 52) & 0x7ff) as i32;
        let frac = (bits & ((1 << 52) - 1)) as i128;
        let (m, e) = if exp_bits == 0 {
            (frac, MIN_EXP)
        } else {
            (frac | (1 << 52), exp_bits - 1075)
        };
        let m = if x < 0.0 { -m } else { m };
        normalized(m, e)
    }

    pub(crate) fn is_zero(&self) -> bool {
        matches!(self.m, Mant::Small(0))
    }

    #[cfg(test)]
    pub(crate) fn add_f64(&mut self, x: f64) {
        self.add(&ExactSum::of(x));
    }

    /// Add `other`, exactly.
    pub(crate) fn add(&mut self, other: &ExactSum) {
        if other.is_zero() {
            return;
        }
        if self.is_zero() {
            *self = other.clone();
            return;
        }
        if let (Mant::Small(a), Mant::Small(b)) = (&self.m, &other.m) {
            let e = self.e.min(other.e);
            let sum = shifted(*a, self.e - e).and_then(|a| shifted(*b, other.e - e).and_then(|b| a.checked_add(b)));
            if let Some(m) = sum {
                *self = normalized(m, e);
                return;
            }
        }
        let e = self.e.min(other.e);
        let m = (self.m.big() << (self.e - e) as usize) + (other.m.big() << (other.e - e) as usize);
        *self = normalized_big(m, e);
    }

    /// The same sum with the opposite sign, exactly: a total less a part
    /// of it (a UTC day's rollup less the hours of it that belong to another
    /// local day). The mantissa is odd or zero, so its negation fits.
    pub(crate) fn neg(&self) -> ExactSum {
        let m = match &self.m {
            Mant::Small(n) => Mant::Small(-n),
            Mant::Big(n) => Mant::Big(-n),
        };
        ExactSum { m, e: self.e }
    }

    /// The nearest f64 (ties to even); `None` when the sum is beyond the
    /// f64 range.
    pub(crate) fn to_f64(&self) -> Option<f64> {
        match &self.m {
            Mant::Small(0) => Some(0.0),
            // An odd mantissa of at most 53 bits is exact at any exponent
            // an amount had (e >= MIN_EXP always holds).
            Mant::Small(m) if m.unsigned_abs() < (1 << 53) && self.e + 53 <= 1024 => Some(ldexp(*m as f64, self.e)),
            Mant::Small(m) => round_u128(m.unsigned_abs(), *m < 0, self.e, false),
            Mant::Big(m) => round(m, self.e, false),
        }
    }

    /// The sum divided by `n`, rounded once to the nearest f64 (ties to
    /// even); `None` for `n == 0` or beyond the f64 range.
    pub(crate) fn div_to_f64(&self, n: u64) -> Option<f64> {
        if n == 0 {
            return None;
        }
        if n == 1 || self.is_zero() {
            return self.to_f64();
        }
        if let Mant::Small(m) = self.m {
            // |m| <= 2^127 and n < 2^64: shifted as below (only when
            // narrower than 56 bits more than n), it has 56 + 64 bits at
            // most, so u128 division spares the big integers (an average
            // per group of every grouped answer).
            let a = m.unsigned_abs();
            let k = (56 + (64 - n.leading_zeros()) as i64 - (128 - a.leading_zeros()) as i64).max(0) as u32;
            let num = a << k;
            let (q, r) = (num / n as u128, num % n as u128);
            return round_u128(q, m < 0, self.e - k as i32, r != 0);
        }
        let m = self.m.big();
        let n = BigInt::from(n);
        // Enough quotient bits for 53 of mantissa, a round bit and more; the
        // remainder is the sticky bit.
        let k = (56 + n.bits() as i64 - m.abs().bits() as i64).max(0) as usize;
        let num = m << k;
        let q = &num / &n;
        let sticky = !(&num % &n).is_zero();
        round(&q, self.e - k as i32, sticky)
    }

    /// Bytes for a database column: the exponent (2 bytes, little endian),
    /// then the mantissa in two's complement, little endian, shortest form.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = (self.e as i16).to_le_bytes().to_vec();
        match &self.m {
            Mant::Small(0) => {}
            Mant::Small(m) => {
                let bytes = m.to_le_bytes();
                let keep = shortest(&bytes, *m < 0);
                out.extend_from_slice(&bytes[..keep]);
            }
            Mant::Big(m) => out.extend(m.to_signed_bytes_le()),
        }
        out
    }

    /// The value [`ExactSum::to_bytes`] wrote; `None` for bytes it cannot
    /// have written.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (e, m) = bytes.split_first_chunk::<2>()?;
        let e = i16::from_le_bytes(*e) as i32;
        if m.len() > 16 {
            return Self::from_big_bytes(bytes);
        }
        // An i128 (nearly every total): read in place, without a big
        // integer, as a query reads one per rollup row. What to_bytes
        // wrote is odd (or nothing, for zero at e == 0) and shortest.
        let negative = m.last().is_some_and(|b| b & 0x80 != 0);
        let mut full = [if negative { 0xff } else { 0 }; 16];
        full[..m.len()].copy_from_slice(m);
        let v = i128::from_le_bytes(full);
        let canonical = if m.is_empty() {
            e == 0
        } else {
            v & 1 == 1 && shortest(&full, negative) == m.len()
        };
        canonical.then_some(ExactSum { m: Mant::Small(v), e })
    }

    /// [`ExactSum::from_bytes`] through a big integer, for any length.
    fn from_big_bytes(bytes: &[u8]) -> Option<Self> {
        let (e, m) = bytes.split_first_chunk::<2>()?;
        let e = i16::from_le_bytes(*e) as i32;
        let out = normalized_big(BigInt::from_signed_bytes_le(m), e);
        (out.to_bytes() == bytes).then_some(out)
    }

    /// The value as `d × 10^-s`: the digits and scale of an exact decimal
    /// (every sum of f64 values has one), as PostgreSQL's `numeric` holds it.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn to_scaled(&self) -> (BigInt, u32) {
        let m = self.m.big();
        if self.e >= 0 {
            return (m << self.e as usize, 0);
        }
        // m × 2^-s = m × 5^s / 10^s
        let s = (-self.e) as u32;
        (m * BigInt::from(5u8).pow(s), s)
    }

    /// The value `d × 10^-s`; `None` when it is not a sum of f64 values
    /// (its denominator is not a power of two).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn from_scaled(d: BigInt, s: u32) -> Option<Self> {
        let five = BigInt::from(5u8).pow(s);
        let (m, rem) = (&d / &five, &d % &five);
        rem.is_zero().then(|| normalized_big(m, -(s as i32)))
    }
}

/// `m << by`, or `None` when it does not fit.
fn shifted(m: i128, by: i32) -> Option<i128> {
    if by == 0 {
        return Some(m);
    }
    let by = u32::try_from(by).ok().filter(|b| *b < 127)?;
    let out = m.checked_shl(by)?;
    (out >> by == m).then_some(out)
}

/// The bytes of a little-endian two's complement integer worth keeping:
/// the top ones that only extend the sign go.
fn shortest(bytes: &[u8], negative: bool) -> usize {
    let fill = if negative { 0xff } else { 0 };
    let mut keep = bytes.len();
    while keep > 1 && bytes[keep - 1] == fill && (bytes[keep - 2] & 0x80 != 0) == negative {
        keep -= 1;
    }
    keep
}

fn normalized(m: i128, e: i32) -> ExactSum {
    if m == 0 {
        return ExactSum::default();
    }
    let tz = m.trailing_zeros();
    ExactSum {
        m: Mant::Small(m >> tz),
        e: e + tz as i32,
    }
}

fn normalized_big(m: BigInt, e: i32) -> ExactSum {
    let Some(tz) = m.trailing_zeros() else {
        return ExactSum::default();
    };
    let m = m >> tz as usize;
    let e = e + tz as i32;
    match m.to_i128() {
        Some(small) => ExactSum {
            m: Mant::Small(small),
            e,
        },
        None => ExactSum { m: Mant::Big(m), e },
    }
}

/// `x × 2^k` for an integer-valued `x` of at most 53 bits whose product is
/// a finite f64: exact, in two steps where `2^k` alone is not an f64.
fn ldexp(x: f64, k: i32) -> f64 {
    let pow = |k: i32| f64::from_bits(((k + 1023) as u64) << 52);
    if k < -1022 {
        x * pow(k + 600) * pow(-600)
    } else if k > 1023 {
        x * pow(k - 600) * pow(600)
    } else {
        x * pow(k)
    }
}

/// `m × 2^e` (plus less than one unit of `m`'s last place when `sticky`)
/// rounded to the nearest f64, ties to even. A magnitude wider than 128
/// bits is cut to its top 128 first, the bits cut off joining the sticky
/// bit: the result's 53 bits and its round bit lie far above them.
fn round(m: &BigInt, e: i32, sticky: bool) -> Option<f64> {
    let a: &BigUint = m.magnitude();
    let cut = a.bits().saturating_sub(128);
    let top = (a >> cut).to_u128()?;
    let dropped = cut > 0 && a.trailing_zeros().is_some_and(|z| z < cut);
    let e = i32::try_from(e as i64 + cut as i64).ok()?;
    round_u128(top, m.sign() == Sign::Minus, e, sticky || dropped)
}

/// `a × 2^e`, negated when `neg` (plus less than one unit of `a`'s last
/// place when `sticky`), rounded to the nearest f64, ties to even.
fn round_u128(a: u128, neg: bool, e: i32, sticky: bool) -> Option<f64> {
    if a == 0 {
        return Some(0.0);
    }
    let bits = (128 - a.leading_zeros()) as i64;
    // The exponent of the result's last bit.
    let last = (e as i64 + bits - 53).max(MIN_EXP as i64);
    let (q, last) = if last <= e as i64 {
        // Exact: the value has 53 bits or fewer above the smallest last bit.
        let shift = e as i64 - last;
        (u64::try_from(a).ok()?.checked_shl(shift as u32)?, last)
    } else {
        let s = (last - e as i64) as u32;
        let (q, rem) = if s >= 128 {
            (0, a)
        } else {
            (a >> s, a & ((1u128 << s) - 1))
        };
        // Past 128 bits of shift, all of `a` lies below half a last place.
        let up = s <= 128
            && match rem.cmp(&(1u128 << (s - 1))) {
                Ordering::Greater => true,
                Ordering::Equal => sticky || q & 1 == 1,
                Ordering::Less => false,
            };
        (u64::try_from(if up { q + 1 } else { q }).ok()?, last)
    };
    // 2^53 after rounding up is still exact; past 2^1024 is no f64.
    if last + 64 - q.leading_zeros() as i64 > 1024 {
        return None;
    }
    let x = ldexp(q as f64, last as i32);
    Some(if neg { -x } else { x })
}

#[cfg(test)]
#[path = "exact_tests.rs"]
mod tests;
