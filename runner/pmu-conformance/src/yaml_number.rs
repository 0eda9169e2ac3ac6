//! Whole numbers as case authors write them, read with messages that speak
//! to them: "`-1` is not a valid period: it is a whole number, at least 1",
//! not serde's "invalid u64", and never a number too large for 64 bits shown
//! back as a float.
//!
//! A [`Whole`] reads its scalar as text (serde-saphyr hands a plain scalar
//! over as written) and parses it here: decimal or `0x` hex, with `_`
//! separators, as formulas take them. What the number means, and its range,
//! is a [`Meaning`].

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// What a number stands for, for messages, and the range it must be in.
pub trait Meaning {
    /// `period`, `number of runs`, …
    const NAME: &'static str;
    const MIN: u64 = 0;
    const MAX: u64 = u64::MAX;
}

/// A whole number in `M::MIN..=M::MAX`.
pub struct Whole<M>(u64, PhantomData<M>);

impl<M> Whole<M> {
    pub fn get(&self) -> u64 {
        self.0
    }
}

impl<M> fmt::Debug for Whole<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Parses `text` as a whole number in `min..=max`, or says what it should be.
pub fn parse(text: &str, name: &str, min: u64, max: u64) -> Result<u64, String> {
    let range = match (min, max) {
        (0, u64::MAX) => "a whole number, 0 or more".to_owned(),
        (min, u64::MAX) => format!("a whole number, at least {min}"),
        (min, max) => format!("a whole number from {min} to {max}"),
    };
    let wrong = || format!("`{text}` is not a valid {name}: it is {range}");
    let digits = text.trim().replace('_', "");
    let value: Option<u128> = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() => u128::from_str_radix(hex, 16).ok(),
        Some(_) => None,
        None if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            // Past u128, a run of digits is too large just the same.
            Some(digits.parse().unwrap_or(u128::MAX))
        }
        None => None,
    };
    match value {
        Some(v) if v >= u128::from(min) && v <= u128::from(max) => Ok(v as u64),
        _ => Err(wrong()),
    }
}

impl<'de, M: Meaning> Deserialize<'de> for Whole<M> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<M>(PhantomData<M>);
        impl<M: Meaning> Visitor<'_> for V<M> {
            type Value = Whole<M>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a {}: a whole number", M::NAME)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Whole<M>, E> {
                parse(v, M::NAME, M::MIN, M::MAX)
                    .map(|n| Whole(n, PhantomData))
                    .map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Whole<M>, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Whole<M>, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_str(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Period;
    impl Meaning for Period {
        const NAME: &'static str = "period";
        const MIN: u64 = 1;
    }

    #[derive(Debug, Deserialize)]
    struct Doc {
        period: Whole<Period>,
    }

    fn read(text: &str) -> Result<u64, String> {
        serde_saphyr::from_str::<Doc>(text)
            .map(|d| d.period.get())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_read_as_written_and_wrong_ones_say_what_they_should_be() {
        assert_eq!(read("period: 100"), Ok(100));
        assert_eq!(read("period: 0x10"), Ok(16));
        assert_eq!(read("period: 1_000"), Ok(1000));
        for (text, says) in [
            (
                "period: -1",
                "`-1` is not a valid period: it is a whole number, at least 1",
            ),
            ("period: 0", "`0` is not a valid period"),
            ("period: 1.5", "`1.5` is not a valid period"),
            (
                "period: 18446744073709551616",
                "`18446744073709551616` is not a valid period",
            ),
            (
                "period: 99999999999999999999999999999999999999999",
                "is not a valid period",
            ),
            ("period: lots", "`lots` is not a valid period"),
        ] {
            let err = read(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
            assert!(!err.contains("e19") && !err.contains("u64"), "{text}: {err}");
        }
        assert_eq!(
            parse("70000", "refresh budget", 1, 65535).unwrap_err(),
            "`70000` is not a valid refresh budget: it is a whole number from 1 to 65535"
        );
    }
}
