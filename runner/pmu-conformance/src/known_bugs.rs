//! The catalogue of known PMU bugs (`known-bugs.yaml`).
//!
//! Cases name the bugs they are meant to catch, and validation rejects a name
//! that is not here. A failing outcome is diagnosed against the same entries,
//! so there is one hand-kept list of bugs, not two.

use serde::Deserialize;

use crate::input_error::{InputErrors, SourceText};
use crate::outcome::{Outcome, SignatureKind, Verdict};

pub const BUILTIN_PATH: &str = "runner/pmu-conformance/known-bugs.yaml";
pub const BUILTIN_TEXT: &str = include_str!("../known-bugs.yaml");

#[derive(Clone, Debug)]
pub struct KnownBug {
    pub id: String,
    pub about: String,
    pub signature: SignatureKind,
    pub magnitude: String,
    pub source: String,
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
            signature: serde_saphyr::Spanned<String>,
            magnitude: String,
            source: String,
        }
        let raw: Vec<Raw> = source.parse_yaml()?;
        let mut errors = InputErrors::default();
        let mut bugs: Vec<KnownBug> = Vec::new();
        for r in raw {
            if bugs.iter().any(|b| b.id == r.id.value) {
                errors.push(source.error_at(&r.id, format!("known bug `{}` is listed twice", r.id.value)));
            }
            let Some(signature) = SignatureKind::from_name(&r.signature.value) else {
                errors.push(source.error_at(&r.signature, format!("unknown signature `{}`", r.signature.value)));
                continue;
            };
            bugs.push(KnownBug {
                id: r.id.value,
                about: r.about,
                signature,
                magnitude: r.magnitude,
                source: r.source,
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

    /// The bugs, among those a case `catches`, whose signature a failing outcome shows.
    pub fn diagnose(&self, outcome: &Outcome, catches: &[String]) -> Vec<String> {
        let Some(signature) = outcome.signature.as_ref().filter(|_| outcome.verdict == Verdict::Fail) else {
            return Vec::new();
        };
        catches
            .iter()
            .filter_map(|id| self.get(id))
            .filter(|bug| bug.signature == signature.kind)
            .map(|bug| format!("matches {}: {}", bug.id, bug.magnitude))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Signature;

    #[test]
    fn the_builtin_catalogue_loads() {
        let bugs = KnownBugs::builtin();
        assert_eq!(bugs.get("xen-pmc-quirk").unwrap().signature, SignatureKind::Overcount);
    }

    #[test]
    fn diagnosis_matches_on_signature_among_the_bugs_a_case_catches() {
        let bugs = KnownBugs::builtin();
        let over = Outcome::fail(
            Signature {
                kind: SignatureKind::Overcount,
                magnitude: "+1 per PMI".into(),
            },
            "",
        );
        let catches = vec!["xen-pmc-quirk".to_owned(), "lost-pmi".to_owned()];
        assert_eq!(
            bugs.diagnose(&over, &catches),
            vec!["matches xen-pmc-quirk: +1 per PMI that landed on zero"]
        );
        assert!(bugs.diagnose(&Outcome::pass("ok"), &catches).is_empty());
    }
}
