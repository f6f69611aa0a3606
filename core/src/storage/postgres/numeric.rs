//! Exact sums as PostgreSQL `numeric`, in its binary wire format: four
//! 16-bit header fields (digit count, weight of the first digit in powers
//! of 10 000, sign, display scale), then the digits in base 10 000, most
//! significant first.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use num_bigint::BigInt;
use num_traits::{Signed, Zero};
use postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

use crate::exact::ExactSum;

const POSITIVE: u16 = 0x0000;
const NEGATIVE: u16 = 0x4000;

/// An [`ExactSum`] bound to a `numeric`.
#[derive(Debug)]
pub(super) struct Numeric<'a>(pub &'a ExactSum);

/// An [`ExactSum`] read from a `numeric`.
#[derive(Debug)]
pub(super) struct Exact(pub ExactSum);

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for Numeric<'_> {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let (d, s) = self.0.to_scaled();
        // A scale that is a whole number of base-10 000 digits.
        let pad = (4 - s % 4) % 4;
        let d = d * BigInt::from(10u8).pow(pad);
        let frac_digits = ((s + pad) / 4) as i64;
        let text = d.abs().to_string();
        let text = format!("{text:0>width$}", width = text.len().div_ceil(4) * 4);
        let mut digits: Vec<i16> = text
            .as_bytes()
            .chunks(4)
            .map(|c| c.iter().fold(0i16, |n, b| n * 10 + (b - b'0') as i16))
            .collect();
        let mut weight = digits.len() as i64 - frac_digits - 1;
        let lead = digits.iter().take_while(|&&g| g == 0).count();
        digits.drain(..lead);
        weight -= lead as i64;
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            weight = 0;
        }
        let sign = if d.is_negative() { NEGATIVE } else { POSITIVE };
        out.put_i16(i16::try_from(digits.len())?);
        out.put_i16(i16::try_from(weight)?);
        out.put_u16(sign);
        out.put_u16(u16::try_from(s + pad)?);
        for g in digits {
            out.put_i16(g);
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Exact {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let field = |i: usize| -> Result<u16, BoxError> {
            let b = raw.get(2 * i..2 * i + 2).ok_or("a numeric cut short")?;
            Ok(u16::from_be_bytes([b[0], b[1]]))
        };
        let count = field(0)? as usize;
        let weight = field(1)? as i16 as i64;
        let sign = field(2)?;
        if sign != POSITIVE && sign != NEGATIVE {
            return Err("a numeric that is not a number".into());
        }
        let mut d = BigInt::zero();
        for i in 0..count {
            let g = field(4 + i)?;
            if g >= 10_000 {
                return Err("a numeric digit out of range".into());
            }
            d = d * 10_000u32 + g;
        }
        if sign == NEGATIVE {
            d = -d;
        }
        // The last digit's power of 10 000.
        let last = weight - count as i64 + 1;
        let sum = if last >= 0 {
            let shift = u32::try_from(4 * last)?;
            ExactSum::from_scaled(d * BigInt::from(10u8).pow(shift), 0)
        } else {
            ExactSum::from_scaled(d, u32::try_from(-4 * last)?)
        };
        sum.map(Exact)
            .ok_or_else(|| "a numeric that is no sum of floats".into())
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(x: &ExactSum) -> ExactSum {
        let mut out = BytesMut::new();
        Numeric(x).to_sql(&Type::NUMERIC, &mut out).unwrap();
        Exact::from_sql(&Type::NUMERIC, &out).unwrap().0
    }

    #[test]
    fn sums_read_back_as_written() {
        for xs in [
            &[][..],
            &[0.5][..],
            &[-1234.5678, 1e-300][..],
            &[1e300, 5e-324][..],
            &[-7.0, 10000.0][..],
        ] {
            let mut s = ExactSum::default();
            for x in xs {
                s.add_f64(*x);
            }
            assert_eq!(round_trip(&s), s, "{xs:?}");
        }
        // 12.5: one digit 12 at weight 0, then 5000 (scale 4).
        let mut out = BytesMut::new();
        Numeric(&ExactSum::of(12.5)).to_sql(&Type::NUMERIC, &mut out).unwrap();
        assert_eq!(&out[..], &[0, 2, 0, 0, 0, 0, 0, 4, 0, 12, 0x13, 0x88]);
        assert!(
            Exact::from_sql(&Type::NUMERIC, &[0, 0, 0, 0, 0xC0, 0, 0, 0]).is_err(),
            "NaN"
        );
        assert!(Exact::from_sql(&Type::NUMERIC, &[0, 1]).is_err(), "cut short");
    }
}
