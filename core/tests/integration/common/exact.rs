//! An exact oracle for sums of f64 values, independent of the library's:
//! a sum in units of 2^-1074 (an integer for every finite f64), rounded by
//! Rust's own correctly rounded parse of its exact decimal text.

use num_bigint::BigInt;
use num_traits::{Signed, Zero};

/// `x` in units of 2^-1074.
pub fn units(x: f64) -> BigInt {
    assert!(x.is_finite());
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64;
    let frac = bits & ((1 << 52) - 1);
    let (m, shift) = if exp == 0 {
        (frac, 0)
    } else {
        (frac | (1 << 52), exp - 1)
    };
    let m = BigInt::from(m) << shift as usize;
    if x.is_sign_negative() {
        -m
    } else {
        m
    }
}

/// The f64 nearest to `n` units (ties to even).
pub fn nearest(n: &BigInt) -> f64 {
    let digits = format!("{:0>1075}", (n.abs() * BigInt::from(5u8).pow(1074)).to_string());
    let (int, frac) = digits.split_at(digits.len() - 1074);
    let sign = if n.is_negative() { "-" } else { "" };
    format!("{sign}{int}.{frac}").parse().unwrap()
}

/// Whether `avg` is the f64 nearest to `total / n` units (ties to even).
pub fn is_nearest_quotient(total: &BigInt, n: u64, avg: f64) -> bool {
    let off = |y: f64| (total - units(y) * BigInt::from(n)).abs();
    [next_up(avg), -next_up(-avg)]
        .into_iter()
        .filter(|o| o.is_finite())
        .all(|o| {
            let (d, od) = (off(avg), off(o));
            d < od || (d == od && avg.to_bits() % 2 == 0)
        })
}

/// The exact sum of `xs`, in units.
pub fn sum(xs: impl IntoIterator<Item = f64>) -> BigInt {
    xs.into_iter().map(units).fold(BigInt::zero(), |a, b| a + b)
}

/// The next f64 above `x` (`f64::next_up`, newer than this crate's MSRV).
fn next_up(x: f64) -> f64 {
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f64::from_bits(1);
    }
    let bits = x.to_bits();
    f64::from_bits(if x > 0.0 { bits + 1 } else { bits - 1 })
}
