use num_bigint::BigInt;
use num_traits::Zero;
use proptest::prelude::*;

use super::*;

// The exact oracle the integration tests use, independent of this
// module's arithmetic: units of 2^-1074 from the f64's bits, rounded by
// Rust's own correctly rounded parse.
#[path = "../tests/integration/common/exact.rs"]
mod oracle;
use oracle::{is_nearest_quotient, nearest, sum};

/// Decimal text, as a reader of `to_scaled` would write it.
fn decimal(s: &ExactSum) -> String {
    let (d, scale) = s.to_scaled();
    let digits = format!("{:0>width$}", d.abs().to_string(), width = scale as usize + 1);
    let (int, frac) = digits.split_at(digits.len() - scale as usize);
    let sign = if d < BigInt::zero() { "-" } else { "" };
    format!("{sign}{int}.{frac}").trim_end_matches('.').to_string()
}

/// The value of decimal text, through `from_scaled`.
fn from_decimal(text: &str) -> Option<ExactSum> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    ExactSum::from_scaled(format!("{int}{frac}").parse().ok()?, frac.len() as u32)
}

fn sum_of(xs: &[f64]) -> ExactSum {
    let mut s = ExactSum::default();
    for x in xs {
        s.add_f64(*x);
    }
    s
}

#[test]
fn the_cases_that_floats_get_wrong() {
    assert_eq!(sum_of(&[0.1; 10]).to_f64(), Some(1.0));
    assert_eq!(sum_of(&[1e16, 1.0, 1.0, 1.0, 1.0, -1e16]).to_f64(), Some(4.0));
    let mut sixteen = vec![0.1; 10];
    sixteen.extend([1e16, 1.0, 1.0, 1.0, 1.0, -1e16]);
    assert_eq!(sum_of(&sixteen).to_f64(), Some(5.0));
    assert_eq!(sum_of(&[1e308, 1e308]).to_f64(), None, "beyond f64, said so");
    assert_eq!(sum_of(&[1e308, 1e308, -1e308]).to_f64(), Some(1e308));
    assert_eq!(
        sum_of(&[f64::MIN_POSITIVE / 4.0, 5e-324]).to_f64(),
        Some(f64::MIN_POSITIVE / 4.0 + 5e-324)
    );
    assert_eq!(sum_of(&[-0.0, 0.0]).to_f64(), Some(0.0));
    assert_eq!(sum_of(&[0.1; 3]).div_to_f64(3), Some(0.1));
    assert_eq!(sum_of(&[1.0, 2.0]).div_to_f64(2), Some(1.5));
    assert_eq!(sum_of(&[]).div_to_f64(0), None);
}

#[test]
fn bytes_and_decimals_read_back() {
    for xs in [
        &[][..],
        &[0.1][..],
        &[-3.5, 1e300, -1e-300][..],
        &[5e-324][..],
        &[f64::MAX][..],
    ] {
        let s = sum_of(xs);
        assert_eq!(ExactSum::from_bytes(&s.to_bytes()), Some(s.clone()), "{xs:?}");
        assert_eq!(from_decimal(&decimal(&s)), Some(s.clone()), "{xs:?}");
        let d = decimal(&s);
        let padded = if d.contains('.') { d + "000" } else { d + ".000" };
        assert_eq!(
            from_decimal(&padded),
            Some(s.clone()),
            "trailing zeros, as numeric keeps them"
        );
    }
    assert_eq!(decimal(&ExactSum::of(0.5)), "0.5");
    assert_eq!(decimal(&ExactSum::of(-2.0)), "-2");
    assert_eq!(from_decimal("12.50"), Some(ExactSum::of(12.5)));
    assert_eq!(from_decimal("0.1"), None, "not a sum of f64 values");
    for junk in [&[][..], &[1][..], &[0, 0, 0][..], &[2, 0, 2][..]] {
        assert_eq!(ExactSum::from_bytes(junk), None, "{junk:?}");
    }
}

/// Finite f64 values across the whole range: any exponent, any sign,
/// subnormals, and values that cancel.
fn amount() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>()
            .prop_map(f64::from_bits)
            .prop_filter("finite", |x| x.is_finite()),
        (-1e6f64..1e6).prop_map(|x| (x * 100.0).round() / 100.0),
        prop::sample::select(vec![0.1, 1e16, -1e16, 1e308, -1e308, 5e-324, -5e-324, 1.0]),
    ]
}

proptest! {
    /// Reading an i128 in place answers as the big-integer reading does,
    /// for any bytes: the same value, or the same refusal.
    #[test]
    fn bytes_read_in_place_as_through_a_big_integer(bytes in prop::collection::vec(any::<u8>(), 0..20)) {
        prop_assert_eq!(ExactSum::from_bytes(&bytes), ExactSum::from_big_bytes(&bytes));
    }

    #[test]
    fn any_order_and_grouping_gives_the_once_rounded_exact_sum(
        xs in prop::collection::vec(amount(), 0..40),
        cut in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        let exact = sum(xs.iter().copied());
        let want = nearest(&exact);
        let s = sum_of(&xs);
        prop_assert_eq!(s.to_f64().unwrap_or(f64::INFINITY.copysign(want)), want);
        // Any order.
        let mut shuffled = xs.clone();
        let mut r = seed;
        for i in (1..shuffled.len()).rev() {
            r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (r >> 33) as usize % (i + 1));
        }
        prop_assert_eq!(&sum_of(&shuffled), &s);
        // Any grouping: two partial sums, stored and read back, then merged.
        let at = if xs.is_empty() { 0 } else { cut.index(xs.len() + 1) };
        let mut merged = ExactSum::from_bytes(&sum_of(&xs[..at]).to_bytes()).unwrap();
        merged.add(&from_decimal(&decimal(&sum_of(&xs[at..]))).unwrap());
        prop_assert_eq!(&merged, &s);
        // A part taken out again: the sum of the rest, to the last bit.
        let mut rest = s.clone();
        rest.add(&sum_of(&xs[..at]).neg());
        prop_assert_eq!(&rest, &sum_of(&xs[at..]));
    }

    #[test]
    fn the_average_is_rounded_once(xs in prop::collection::vec(amount(), 1..20)) {
        let s = sum_of(&xs);
        let n = xs.len() as u64;
        let Some(avg) = s.div_to_f64(n) else {
            return Ok(());
        };
        // No f64 is nearer to the exact S / n, and a tie goes to the even one.
        let total = sum(xs.iter().copied());
        prop_assert!(is_nearest_quotient(&total, n, avg), "{avg}");
    }
}

/// A mantissa and exponent: any i128, or a wider integer, at exponents
/// from the smallest to past the f64 range.
fn mantissa() -> impl Strategy<Value = BigInt> {
    prop_oneof![
        any::<i128>().prop_map(BigInt::from),
        (any::<i128>(), any::<u64>(), 0u32..200).prop_map(|(hi, lo, shift)| (BigInt::from(hi) << (64 + shift)) + lo),
        (any::<i64>(), 0u32..120).prop_map(|(m, shift)| BigInt::from(m) << shift),
    ]
}

proptest! {
    /// Rounding in native width answers as the oracle does, for mantissas
    /// that fit 128 bits and for wider ones cut to their top 128 bits.
    #[test]
    fn rounding_is_to_the_nearest_f64(m in mantissa(), e in MIN_EXP..1100) {
        let units = &m << (e - MIN_EXP) as usize;
        let want = nearest(&units);
        let got = round(&m, e, false).unwrap_or(f64::INFINITY.copysign(want));
        prop_assert_eq!(got.to_bits(), if want == 0.0 { 0.0f64.to_bits() } else { want.to_bits() }, "{} × 2^{}", m, e);
    }

    /// Averages of sums that fit an i128 (the native division) and of
    /// wider ones, by any count.
    #[test]
    fn the_average_by_any_count_is_rounded_once(xs in prop::collection::vec(amount(), 1..20), n in 1u64..) {
        let s = sum_of(&xs);
        let Some(avg) = s.div_to_f64(n) else {
            return Ok(());
        };
        let total = sum(xs.iter().copied());
        prop_assert!(is_nearest_quotient(&total, n, avg), "{avg} for n = {n}");
    }
}

#[test]
fn bits_below_the_top_128_still_break_a_tie() {
    // q + 1/2 in the top bits, then a one 200 bits lower: above the tie,
    // so up, though q is even.
    let q = BigInt::from(1u64 << 52);
    let m = (((&q << 1u32) + 1) << 200u32) + 1;
    assert_eq!(round(&m, 0, false), Some(ldexp(((1u64 << 52) + 1) as f64, 201)));
    // Without it, the tie goes to the even q.
    let tie = ((&q << 1u32) + 1) << 200u32;
    assert_eq!(round(&tie, 0, false), Some(ldexp((1u64 << 52) as f64, 201)));
}
