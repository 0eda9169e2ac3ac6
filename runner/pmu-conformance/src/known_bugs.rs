//! The catalogue of known PMU bugs (`known-bugs.yaml`).
//!
//! Cases name the bugs they are meant to catch, and validation rejects a name
//! that is not here. An outcome is diagnosed against the same entries: each
//! bug says how an outcome `shows` it, as structured data: a failure's
//! signature kind, optionally its magnitude's unit and amount, or the code of
//! the reason a case could not run (a hypervisor's refusal is catalogued too).
//! The reference model has one fault per failing entry under the same id.
//! There is one hand-kept list of bugs, not three.

use serde::Deserialize;

use crate::input_error::{InputErrors, SourceText};
use crate::outcome::{Outcome, ReasonCode, SignatureKind, Unit, Verdict};

pub const BUILTIN_PATH: &str = "runner/pmu-conformance/known-bugs.yaml";
pub const BUILTIN_TEXT: &str = include_str!("../known-bugs.yaml");

/// How an outcome shows a bug: a failure of this kind (of this unit, of
/// this amount, where given), or a case not run for this reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shows {
    Failure {
        kind: SignatureKind,
        unit: Option<Unit>,
        amount: Option<i64>,
    },
    Reason(ReasonCode),
}

impl Shows {
    fn matches(&self, outcome: &Outcome) -> bool {
        match (self, outcome.verdict) {
            (Shows::Failure { kind, unit, amount }, Verdict::Fail) => outcome.signature.as_ref().is_some_and(|s| {
                s.kind == *kind
                    && unit.is_none_or(|u| u == s.magnitude.unit)
                    && amount.is_none_or(|a| a == s.magnitude.amount)
            }),
            (Shows::Reason(code), Verdict::Unsupported | Verdict::Error) => {
                outcome.reason.as_ref().is_some_and(|r| r.code == *code)
            }
            _ => false,
        }
    }
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
        self.shows.iter().any(|s| s.matches(outcome))
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
            signature: Option<serde_saphyr::Spanned<String>>,
            unit: Option<serde_saphyr::Spanned<String>>,
            amount: Option<i64>,
            reason: Option<serde_saphyr::Spanned<String>>,
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
                match (s.signature, s.reason) {
                    (Some(signature), None) => {
                        let kind = SignatureKind::from_name(&signature.value);
                        if kind.is_none() {
                            errors
                                .push(source.error_at(&signature, format!("unknown signature `{}`", signature.value)));
                        }
                        let unit = s.unit.as_ref().map(|u| (u, Unit::from_name(&u.value)));
                        if let Some((at, None)) = &unit {
                            let known: Vec<&str> = Unit::ALL.iter().map(|u| u.name()).collect();
                            errors.push(
                                source
                                    .error_at(at, format!("unknown unit `{}`; known: {}", at.value, known.join(", "))),
                            );
                        }
                        if s.amount.is_some() && unit.is_none() {
                            errors.push(source.error_at(&signature, "an `amount` needs its `unit`"));
                        }
                        if let Some(kind) = kind {
                            shows.push(Shows::Failure {
                                kind,
                                unit: unit.and_then(|(_, u)| u),
                                amount: s.amount,
                            });
                        }
                    }
                    (None, Some(reason)) => {
                        if s.unit.is_some() || s.amount.is_some() {
                            errors.push(source.error_at(&reason, "a reason has no `unit` or `amount`"));
                        }
                        match ReasonCode::from_name(&reason.value) {
                            Some(code) => shows.push(Shows::Reason(code)),
                            None => {
                                let known: Vec<&str> = ReasonCode::ALL.iter().map(|c| c.name()).collect();
                                errors.push(source.error_at(
                                    &reason,
                                    format!("unknown reason code `{}`; known: {}", reason.value, known.join(", ")),
                                ));
                            }
                        }
                    }
                    _ => errors.push(source.error_at(
                        &r.id,
                        "each of a bug's `shows` gives either a `signature` (with an optional `unit` and `amount`) \
                         or a `reason` code",
                    )),
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

    /// The known bugs an outcome shows, among those that can apply
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
    use crate::outcome::{Magnitude, Reason, Signature};

    fn fail(kind: SignatureKind, amount: i64, unit: Unit) -> Outcome {
        Outcome::fail(
            Signature::new(kind, Magnitude::new(amount, unit), "words are never matched"),
            "",
        )
    }

    #[test]
    fn the_builtin_catalogue_loads() {
        let bugs = KnownBugs::builtin();
        assert_eq!(
            bugs.get("xen-pmc-quirk").unwrap().shows[0],
            Shows::Failure {
                kind: SignatureKind::Overcount,
                unit: Some(Unit::EventsPerPmi),
                amount: Some(1)
            }
        );
    }

    #[test]
    fn diagnosis_follows_the_signature_and_its_magnitude() {
        let bugs = KnownBugs::builtin();
        let none: Vec<String> = Vec::new();
        let quirk = bugs.diagnose(
            &fail(SignatureKind::Overcount, 1, Unit::EventsPerPmi),
            &none,
            Some("xen"),
        );
        assert_eq!(quirk.len(), 1, "{quirk:?}");
        assert!(quirk[0].starts_with("matches xen-pmc-quirk: +1 per PMI that landed on zero (Xen from"));
        // An unverified claim says so.
        assert!(quirk[0].contains("unverified: the history commits"), "{quirk:?}");
        // The same unit with another amount is another fault.
        assert!(
            bugs.diagnose(
                &fail(SignatureKind::Overcount, 2, Unit::EventsPerPmi),
                &none,
                Some("xen")
            )
            .is_empty()
        );
        let parallels = bugs.diagnose(
            &fail(SignatureKind::Overcount, 2_147_483_648, Unit::EventsPerRun),
            &none,
            Some("parallels"),
        );
        assert!(
            parallels[0].starts_with("matches parallels-2^31-offset: +2^31"),
            "{parallels:?}"
        );
        // A dead counter could be any of several; a case that catches one of them narrows it.
        let dead = fail(SignatureKind::Undercount, 0, Unit::PercentCounted);
        assert!(bugs.diagnose(&dead, &none, Some("kvm")).len() >= 2);
        let txcp = vec!["kvm-in-txcp-drop".to_owned()];
        assert_eq!(bugs.diagnose(&dead, &txcp, Some("kvm")).len(), 1);
        assert!(bugs.diagnose(&Outcome::pass("ok"), &none, Some("kvm")).is_empty());
        // The MSR that faulted is matched as a number.
        let status_set = fail(SignatureKind::UnexpectedGp, 0xc000_0303, Unit::Msr);
        assert!(bugs.diagnose(&status_set, &none, Some("kvm"))[0].starts_with("matches kvm-amd-status-set-gp"));
        assert!(
            bugs.diagnose(&fail(SignatureKind::UnexpectedGp, 0x38f, Unit::Msr), &none, Some("kvm"))
                .is_empty()
        );
    }

    #[test]
    fn a_refusal_is_diagnosed_by_its_reason_code() {
        let bugs = KnownBugs::builtin();
        let none: Vec<String> = Vec::new();
        let refused = |code| Outcome::unsupported(Reason::new(code, "words are never matched"));
        let hybrid = bugs.diagnose(&refused(ReasonCode::KvmHybridHost), &none, Some("kvm"));
        assert!(hybrid[0].starts_with("matches kvm-hybrid-no-vpmu"), "{hybrid:?}");
        let xen = bugs.diagnose(&refused(ReasonCode::XenNoVpmu), &none, Some("xen"));
        assert!(xen[0].starts_with("matches xen-vpmu-refused"), "{xen:?}");
        // A plain missing PMU names no one's refusal.
        assert!(
            bugs.diagnose(&refused(ReasonCode::NoPmu), &none, Some("kvm"))
                .is_empty()
        );
    }

    #[test]
    fn diagnosis_suggests_only_the_bugs_of_the_hypervisor_the_fingerprint_shows() {
        let bugs = KnownBugs::builtin();
        let none: Vec<String> = Vec::new();
        let early = fail(SignatureKind::PmiExtra, 1, Unit::PmisBeforeRearm);
        let twice = fail(SignatureKind::PmiExtra, 2, Unit::PmisPerOverflow);
        let ids = |outcome: &Outcome, hypervisor| -> Vec<String> {
            bugs.diagnose(outcome, &none, hypervisor)
                .iter()
                .map(|d| d.split(':').next().unwrap().to_owned())
                .collect()
        };
        assert_eq!(ids(&early, Some("kvm")), ["matches kvm-lvtpc-never-masked"]);
        assert_eq!(ids(&twice, Some("kvm")), ["matches kvm-duplicate-pmi"]);
        // No KVM bug is suggested on Xen, nor on bare metal.
        assert!(ids(&early, Some("xen")).is_empty());
        assert!(ids(&early, None).is_empty());
        // A bug of `any` hypervisor is suggested everywhere.
        let lost = fail(SignatureKind::PmiLost, 3, Unit::OverflowsLost);
        assert!(
            bugs.diagnose(&lost, &none, None)
                .iter()
                .any(|d| d.starts_with("matches lost-pmi"))
        );
    }

    #[test]
    fn shows_are_checked_as_data() {
        let bad = "- id: b\n  about: a\n  magnitude: m\n  hypervisors: [any]\n  affected: a\n  sources: [SDM Vol. 3B 20.1]\n  shows:\n    - {signature: overcount, unit: furlongs}\n    - {signature: overcount, amount: 1}\n    - {reason: no-such-code}\n    - {reason: no-pmu, unit: msr}\n    - {}\n";
        let errors = KnownBugs::load(&SourceText::new("k.yaml", bad))
            .unwrap_err()
            .to_string();
        for expected in [
            "unknown unit `furlongs`",
            "an `amount` needs its `unit`",
            "unknown reason code `no-such-code`",
            "a reason has no `unit` or `amount`",
            "either a `signature`",
        ] {
            assert!(errors.contains(expected), "{expected}: {errors}");
        }
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
