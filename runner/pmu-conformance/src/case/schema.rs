//! The YAML shape of a suite file, exactly as written, with source spans.
//!
//! These types only parse: unknown fields, wrong types and duplicate keys are
//! rejected here by serde-saphyr with their location. Everything that needs
//! knowledge (is this event known, can this period overflow) is checked in
//! `validate.rs`, which turns these into [`super::Case`]s.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

use crate::yaml_number::{Meaning, Whole};

/// The numbers a case writes, and what each must be.
macro_rules! meanings {
    ($($(#[$doc:meta])* $name:ident: $text:literal, $min:expr, $max:expr;)*) => {$(
        $(#[$doc])*
        pub struct $name;
        impl Meaning for $name {
            const NAME: &'static str = $text;
            const MIN: u64 = $min;
            const MAX: u64 = $max;
        }
    )*};
}

meanings! {
    /// Events per overflow notification.
    Period: "period", 1, u64::MAX;
    /// IOC_REFRESH's budget, an int in the kernel's ABI.
    Refresh: "refresh budget", 0, i32::MAX as u64;
    /// A case's deadline: a second to a day.
    Timeout: "timeout in seconds", 1, 86_400;
    Iterations: "number of iterations", 0, u64::MAX;
    Branches: "number of branches", 0, u64::MAX;
    Pages: "number of pages", 0, u64::MAX;
    Above: "tolerance above", 0, u64::MAX;
    Below: "tolerance below", 0, u64::MAX;
    RawConfig: "raw perf config", 0, u64::MAX;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    pub about: String,
    pub cases: Vec<CaseEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CaseEntry {
    pub id: Spanned<String>,
    pub about: String,
    pub probe: Spanned<String>,
    pub check: Spanned<String>,
    /// Required by the linux probe; the kernel probe defaults to `branches`.
    pub event: Option<Spanned<EventEntry>>,
    /// Required by the linux probe; the kernel probe defaults to a branch loop of 1000.
    pub workload: Option<WorkloadEntry>,
    pub period: Option<Spanned<Whole<Period>>>,
    pub refresh: Option<Spanned<Whole<Refresh>>>,
    pub runs: Spanned<RunsEntry>,
    pub expect: Option<ExpectEntry>,
    pub tolerance: Option<Spanned<ToleranceEntry>>,
    #[serde(default)]
    pub catches: Vec<Spanned<String>>,
    /// Seconds.
    pub timeout: Option<Spanned<Whole<Timeout>>>,
    /// `read` (the default) or `rdpmc`.
    pub read_with: Option<Spanned<String>>,
    /// Kernel probe: the counter, `gp<n>` or `fixed<n>` (default `gp0`).
    pub counter: Option<Spanned<String>>,
    /// Kernel probe: set the counter's INT (PMI) bit (default true).
    pub int: Option<Spanned<bool>>,
}

/// `event: retired-conditional-branches` or `event: {raw: 0x5101c4}`.
#[derive(Debug)]
pub enum EventEntry {
    Named(String),
    Raw(u64),
}

// Written by hand rather than as an untagged enum: serde's untagged enums
// buffer their input and so lose the span that `Spanned` records.
impl<'de> Deserialize<'de> for EventEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EventEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an event name, or `{raw: <perf config>}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EventEntry, E> {
                Ok(EventEntry::Named(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EventEntry, A::Error> {
                let mut raw = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "raw" if raw.is_none() => raw = Some(map.next_value::<Whole<RawConfig>>()?.get()),
                        "raw" => return Err(de::Error::duplicate_field("raw")),
                        other => return Err(de::Error::unknown_field(other, &["raw"])),
                    }
                }
                raw.map(EventEntry::Raw).ok_or_else(|| de::Error::missing_field("raw"))
            }
        }
        d.deserialize_any(V)
    }
}

/// `runs: 100`, or a budget sized to catch a fault of a given rate:
/// `runs: {catch: 0.001, probability: 0.999}`.
#[derive(Debug)]
pub enum RunsEntry {
    Count(u64),
    Budget { catch: f64, probability: f64 },
}

// By hand, not an untagged enum: serde's untagged enums lose `Spanned`'s location.
impl<'de> Deserialize<'de> for RunsEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RunsEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of runs, or `{catch: <rate>, probability: <p>}`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RunsEntry, E> {
                Ok(RunsEntry::Count(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RunsEntry, E> {
                Err(E::custom(format!(
                    "`{v}` is not a valid number of runs: it cannot be negative; write a count (`runs: 100`)"
                )))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RunsEntry, E> {
                // YAML reads a number too large for 64 bits as a float; say so without showing one.
                Err(E::custom(if v.fract() == 0.0 {
                    "this number is too large to be a number of runs; write a count (`runs: 100`)".to_owned()
                } else {
                    format!("`{v}` is not a valid number of runs: it is a whole number")
                }))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RunsEntry, E> {
                Err(E::custom(format!(
                    "`{v}` is not a number of runs; write a count (`runs: 100`) or a budget \
                     (`runs: {{catch: 0.001, probability: 0.999}}`)"
                )))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RunsEntry, A::Error> {
                let (mut catch, mut probability) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "catch" => catch = Some(map.next_value::<f64>()?),
                        "probability" => probability = Some(map.next_value::<f64>()?),
                        other => return Err(de::Error::unknown_field(other, &["catch", "probability"])),
                    }
                }
                Ok(RunsEntry::Budget {
                    catch: catch.ok_or_else(|| de::Error::missing_field("catch"))?,
                    probability: probability.ok_or_else(|| de::Error::missing_field("probability"))?,
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadEntry {
    pub kind: Spanned<String>,
    pub iterations: Option<Spanned<Whole<Iterations>>>,
    pub branches: Option<Spanned<Whole<Branches>>>,
    pub pages: Option<Spanned<Whole<Pages>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectEntry {
    pub count: Spanned<FormulaText>,
}

/// A formula as written: YAML reads `500` as a number and `branches - 2` as a
/// string; both are formulas.
#[derive(Debug)]
pub struct FormulaText(pub String);

impl<'de> Deserialize<'de> for FormulaText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FormulaText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a count: a number or a formula such as `4 * iterations + 7`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FormulaText, E> {
                Ok(FormulaText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FormulaText, E> {
                Err(E::custom(format!("a count cannot be negative ({v})")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FormulaText, E> {
                Ok(FormulaText(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToleranceEntry {
    /// Events above the expected count that still pass.
    pub above: Option<Whole<Above>>,
    /// Events below the expected count that still pass.
    pub below: Option<Whole<Below>>,
    pub reason: Option<String>,
}
