//! The catalogue of known PMU bugs (`known-bugs.yaml`).
//!
//! Cases name the bugs they are meant to catch, and validation rejects a name
//! that is not here. A failing outcome is diagnosed against the same entries:
//! each bug says how an outcome `shows` it (a signature, and a phrase its
//! magnitude contains), and the reference model has one fault per entry under
//! the same id. There is one hand-kept list of bugs, not three.

use serde::Deserialize;

use crate::input_error::{InputErrors, SourceText};
use crate::outcome::{Outcome, SignatureKind, Verdict};

pub const BUILTIN_PATH: &str = "runner/pmu-conformance/known-bugs.yaml";
pub const BUILTIN_TEXT: &str = include_str!("../known-bugs.yaml");

/// How an outcome shows a bug.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shows {
    pub signature: SignatureKind,
    /// A phrase the signature's magnitude contains, if any particular one.
    pub magnitude: Option<String>,
}

#[derive(Clone, Debug)]
pub struct KnownBug {
    pub id: String,
    pub about: String,
    /// Its size, in words, for diagnoses.
    pub magnitude: String,
    pub source: String,
    pub shows: Vec<Shows>,
}

impl KnownBug {
    fn shown_by(&self, outcome: &Outcome) -> bool {
        let Some(s) = outcome.signature.as_ref().filter(|_| outcome.verdict == Verdict::Fail) else {
            return false;
        };
        self.shows.iter().any(|m| {
            m.signature == s.kind
                && m.magnitude
                    .as_ref()
                    .is_none_or(|phrase| s.magnitude.contains(phrase.as_str()))
        })
    }
}

#[derive(Clone, Debug)]
pub struct KnownBugs(pub Vec<KnownBug>);

impl KnownBugs {
    /// The catalogue compiled into the binary; this crate's tests load it.
    pub fn builtin() -> KnownBugs {
        KnownBugs::load(&SourceText::new(BUILTIN_PATH, BUILTIN_TEXT))
            .unwrap_or_else(|errors| panic!("the built-in known-bug catalogue is invalid:\n{errors}"))
    }

    pub fn load(source: &SourceText) -> Result<KnownBugs, InputErrors> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            id: serde_saphyr::Spanned<String>,
            about: String,
            magnitude: String,
            source: String,
            shows: Vec<RawShows>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawShows {
            signature: serde_saphyr::Spanned<String>,
            magnitude: Option<String>,
        }
        let raw: Vec<Raw> = source.parse_yaml()?;
        let mut errors = InputErrors::default();
        let mut bugs: Vec<KnownBug> = Vec::new();
        for r in raw {
            if bugs.iter().any(|b| b.id == r.id.value) {
                errors.push(source.error_at(&r.id, format!("known bug `{}` is listed twice", r.id.value)));
            }
            if r.shows.is_empty() {
                errors.push(source.error_at(&r.id, "a known bug needs `shows`: how an outcome shows it"));
            }
            let mut shows = Vec::new();
            for s in r.shows {
                match SignatureKind::from_name(&s.signature.value) {
                    Some(signature) => shows.push(Shows {
                        signature,
                        magnitude: s.magnitude,
                    }),
                    None => {
                        errors.push(source.error_at(&s.signature, format!("unknown signature `{}`", s.signature.value)))
                    }
                }
            }
            bugs.push(KnownBug {
                id: r.id.value,
                about: r.about,
                magnitude: r.magnitude,
                source: r.source,
                shows,
            });
        }
        errors.or_ok(KnownBugs(bugs))
    }

    pub fn get(&self, id: &str) -> Option<&KnownBug> {
        self.0.iter().find(|b| b.id == id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|b| b.id.as_str())
    }

    /// The known bugs a failing outcome shows: among those its case says it
    /// catches, if any of them fits; otherwise among all.
    pub fn diagnose(&self, outcome: &Outcome, catches: &[String]) -> Vec<String> {
        let shown: Vec<&KnownBug> = self.0.iter().filter(|b| b.shown_by(outcome)).collect();
        let expected: Vec<&KnownBug> = shown.iter().copied().filter(|b| catches.contains(&b.id)).collect();
        let named = if expected.is_empty() { shown } else { expected };
        named
            .iter()
            .map(|b| format!("matches {}: {}", b.id, b.magnitude))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Signature;

    fn fail(kind: SignatureKind, magnitude: &str) -> Outcome {
        Outcome::fail(
            Signature {
                kind,
                magnitude: magnitude.into(),
            },
            "",
        )
    }

    #[test]
    fn the_builtin_catalogue_loads() {
        let bugs = KnownBugs::builtin();
        assert_eq!(
            bugs.get("xen-pmc-quirk").unwrap().shows[0].signature,
            SignatureKind::Overcount
        );
    }

    #[test]
    fn diagnosis_follows_the_signature_and_its_magnitude() {
        let bugs = KnownBugs::builtin();
        let none: Vec<String> = Vec::new();
        assert_eq!(
            bugs.diagnose(&fail(SignatureKind::Overcount, "+1 per PMI in every run"), &none),
            vec!["matches xen-pmc-quirk: +1 per PMI that landed on zero"]
        );
        assert_eq!(
            bugs.diagnose(&fail(SignatureKind::Overcount, "+2147483648 in every run"), &none),
            vec!["matches parallels-2^31-offset: +2^31"]
        );
        // "counted 0" could be either; a case that catches one of them narrows it.
        let dead = fail(SignatureKind::Undercount, "counted 0 in every run");
        assert!(bugs.diagnose(&dead, &none).len() >= 2);
        let txcp = vec!["kvm-in-txcp-drop".to_owned()];
        assert_eq!(bugs.diagnose(&dead, &txcp).len(), 1);
        assert!(bugs.diagnose(&Outcome::pass("ok"), &none).is_empty());
    }
}
