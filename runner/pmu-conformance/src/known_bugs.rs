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
    /// The hypervisors that ship it, by the names fingerprints give them
    /// (`xen`, `kvm`, …), or `any`.
    pub hypervisors: Vec<String>,
    /// Which versions, in words.
    pub affected: String,
    /// Where it is written down, each in one of [`check_source`]'s forms.
    pub sources: Vec<String>,
    /// Why part of the claim is not borne out by the sources, if it is not.
    pub unverified: Option<String>,
    pub shows: Vec<Shows>,
}

/// The hypervisor names a bug may give, as fingerprints name them.
pub const HYPERVISORS: [&str; 6] = ["any", "xen", "kvm", "vmware", "parallels", "hyper-v"];

/// Checks that `source` is one of the forms a claim's source may take: an
/// upstream commit (`owner/repo@hash`), file:line at a named revision
/// (`owner/repo@rev:path:line[-line]`), a function at a named revision
/// (`owner/repo@rev:path (function)`), an issue (`owner/repo#N`), or an SDM
/// or APM section.
pub fn check_source(source: &str) -> Result<(), String> {
    let form = "a source is `owner/repo@<commit>`, `owner/repo@<revision>:<path>:<line>[-<line>]`, \
                `owner/repo@<revision>:<path> (<function>)`, `owner/repo#<number>`, or `SDM …`/`APM …`";
    if source.starts_with("SDM ") || source.starts_with("APM ") {
        return Ok(());
    }
    let repo_ok = |r: &str| {
        let mut parts = r.split('/');
        matches!((parts.next(), parts.next(), parts.next()), (Some(o), Some(n), None) if !o.is_empty() && !n.is_empty())
    };
    let hex = |h: &str| h.len() >= 7 && h.len() <= 40 && h.chars().all(|c| c.is_ascii_hexdigit());
    if let Some((repo, number)) = source.split_once('#') {
        if repo_ok(repo) && !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()) {
            return Ok(());
        }
        return Err(format!("`{source}`: {form}"));
    }
    let Some((repo, rest)) = source.split_once('@') else {
        return Err(format!("`{source}`: {form}"));
    };
    if !repo_ok(repo) {
        return Err(format!("`{source}`: {form}"));
    }
    let Some((revision, place)) = rest.split_once(':') else {
        return if hex(rest) {
            Ok(())
        } else {
            Err(format!("`{source}`: {form}"))
        };
    };
    if !hex(revision) {
        return Err(format!("`{source}`: the revision `{revision}` is not a commit hash"));
    }
    let line_ok = |l: &str| {
        let mut ends = l.splitn(2, '-');
        ends.all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    };
    let ok = match place.split_once(" (") {
        Some((path, function)) => !path.is_empty() && function.ends_with(')') && function.len() > 1,
        None => place
            .rsplit_once(':')
            .is_some_and(|(path, line)| !path.is_empty() && line_ok(line)),
    };
    if ok { Ok(()) } else { Err(format!("`{source}`: {form}")) }
}

impl KnownBug {
    /// Whether this bug can be at work under `hypervisor`.
    pub fn applies_under(&self, hypervisor: Option<&str>) -> bool {
        self.hypervisors
            .iter()
            .any(|h| h == "any" || Some(h.as_str()) == hypervisor)
    }

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
            hypervisors: Vec<serde_saphyr::Spanned<String>>,
            affected: String,
            sources: Vec<serde_saphyr::Spanned<String>>,
            unverified: Option<String>,
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
            if r.sources.is_empty() {
                errors.push(source.error_at(&r.id, "a known bug needs `sources`: where it is written down"));
            }
            for s in &r.sources {
                if let Err(why) = check_source(&s.value) {
                    errors.push(source.error_at(s, why));
                }
            }
            if r.hypervisors.is_empty() {
                errors.push(source.error_at(&r.id, "a known bug needs `hypervisors`: who ships it, or `any`"));
            }
            for h in &r.hypervisors {
                if !HYPERVISORS.contains(&h.value.as_str()) {
                    errors.push(source.error_at(
                        h,
                        format!("unknown hypervisor `{}`; known: {}", h.value, HYPERVISORS.join(", ")),
                    ));
                }
            }
            bugs.push(KnownBug {
                id: r.id.value,
                about: r.about,
                magnitude: r.magnitude,
                hypervisors: r.hypervisors.into_iter().map(|h| h.value).collect(),
                affected: r.affected,
                sources: r.sources.into_iter().map(|s| s.value).collect(),
                unverified: r.unverified,
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

    /// The known bugs a failing outcome shows, among those that can apply
    /// under `hypervisor` (the fingerprint's; `None` on bare metal, where only
    /// `any` bugs can): among those its case says it catches, if any of them
    /// fits; otherwise among all. An unverified bug says so.
    pub fn diagnose(&self, outcome: &Outcome, catches: &[String], hypervisor: Option<&str>) -> Vec<String> {
        let shown: Vec<&KnownBug> = self
            .0
            .iter()
            .filter(|b| b.applies_under(hypervisor) && b.shown_by(outcome))
            .collect();
        let expected: Vec<&KnownBug> = shown.iter().copied().filter(|b| catches.contains(&b.id)).collect();
        let named = if expected.is_empty() { shown } else { expected };
        named
            .iter()
            .map(|b| match &b.unverified {
                None => format!("matches {}: {} ({})", b.id, b.magnitude, b.affected),
                Some(why) => format!("matches {}: {} ({}; unverified: {why})", b.id, b.magnitude, b.affected),
            })
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
        let quirk = bugs.diagnose(
            &fail(SignatureKind::Overcount, "+1 per PMI in every run"),
            &none,
            Some("xen"),
        );
        assert_eq!(quirk.len(), 1, "{quirk:?}");
        assert!(quirk[0].starts_with("matches xen-pmc-quirk: +1 per PMI that landed on zero (Xen from"));
        // An unverified claim says so.
        assert!(quirk[0].contains("unverified: the history commits"), "{quirk:?}");
        let parallels = bugs.diagnose(
            &fail(SignatureKind::Overcount, "+2147483648 in every run"),
            &none,
            Some("parallels"),
        );
        assert!(
            parallels[0].starts_with("matches parallels-2^31-offset: +2^31"),
            "{parallels:?}"
        );
        // "counted 0" could be either; a case that catches one of them narrows it.
        let dead = fail(SignatureKind::Undercount, "counted 0 in every run");
        assert!(bugs.diagnose(&dead, &none, Some("kvm")).len() >= 2);
        let txcp = vec!["kvm-in-txcp-drop".to_owned()];
        assert_eq!(bugs.diagnose(&dead, &txcp, Some("kvm")).len(), 1);
        assert!(bugs.diagnose(&Outcome::pass("ok"), &none, Some("kvm")).is_empty());
    }

    #[test]
    fn diagnosis_suggests_only_the_bugs_of_the_hypervisor_the_fingerprint_shows() {
        let bugs = KnownBugs::builtin();
        let none: Vec<String> = Vec::new();
        let extra = fail(SignatureKind::PmiExtra, "1 PMI before acknowledgement and unmask");
        let ids = |hypervisor| -> Vec<String> {
            bugs.diagnose(&extra, &none, hypervisor)
                .iter()
                .map(|d| d.split(':').next().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            ids(Some("kvm")),
            ["matches kvm-lvtpc-never-masked", "matches kvm-duplicate-pmi"]
        );
        // No KVM bug is suggested on Xen, nor on bare metal.
        assert!(ids(Some("xen")).is_empty());
        assert!(ids(None).is_empty());
        // A bug of `any` hypervisor is suggested everywhere.
        let lost = fail(SignatureKind::PmiLost, "3 boundaries never notified");
        assert!(
            bugs.diagnose(&lost, &none, None)
                .iter()
                .any(|d| d.starts_with("matches lost-pmi"))
        );
    }

    #[test]
    fn sources_take_one_of_the_stated_forms() {
        for good in [
            "torvalds/linux@a16eb25b09c0",
            "xen-project/xen@c447b730:xen/arch/x86/cpu/vpmu_intel.c:84-128",
            "xen-project/xen@c447b730:xen/arch/x86/cpu/vpmu.c:372",
            "torvalds/linux@004a0aa5:arch/x86/kvm/pmu.c (pmc_reprogram_counter)",
            "rr-debugger/rr#1952",
            "SDM Vol. 3A 11.5.1",
        ] {
            assert_eq!(check_source(good), Ok(()), "{good}");
        }
        for bad in [
            "xen-project/xen:xen/arch/x86/cpu/vpmu_intel.c (handle_pmc_quirk)",
            "torvalds/linux 73554b29bd70",
            "rr-debugger/rr#",
            "torvalds/linux@main:arch/x86/kvm/pmu.c:1",
            "torvalds/linux@004a0aa5:arch/x86/kvm/pmu.c",
            "a Xen report",
        ] {
            assert!(check_source(bad).is_err(), "{bad}");
        }
    }
}
