//! A linux case on each core type of a hybrid part.
//!
//! Linux drives a hybrid Intel part's P- and E-cores with separate PMUs
//! (`cpu_core`, `cpu_atom`), whose events are encoded differently, so a case
//! on a hardware event runs once on each core type, and its outcome reports
//! each one. One trial still judges the case: it carries the worst of them
//! (a failure, then an error, then a pass, then unsupported), with that core
//! type named in its words, and every core type's verdict, signature or
//! reason code, and facts are facts of the case, so expectations hold each.

use std::collections::BTreeMap;

use crate::outcome::{Outcome, Verdict};

/// Runs a case on each of `core_types` with `run`, and reports them as one
/// outcome; with a single core type, its outcome as it is.
pub fn run_on_each(core_types: &[String], mut run: impl FnMut(&str) -> Outcome) -> Outcome {
    let mut per: Vec<(String, Outcome)> = core_types.iter().map(|c| (c.clone(), run(c))).collect();
    if per.len() == 1 {
        return per.remove(0).1;
    }
    combine(per)
}

/// One outcome for a case run on each core type.
pub fn combine(per: Vec<(String, Outcome)>) -> Outcome {
    let rank = |v: Verdict| match v {
        Verdict::Fail => 0,
        Verdict::Error => 1,
        Verdict::Pass => 2,
        Verdict::Unsupported => 3,
    };
    let (worst_core, worst) = per
        .iter()
        .min_by_key(|(_, o)| rank(o.verdict))
        .expect("a case runs on at least one core type");
    let mut out = worst.clone();
    if let Some(s) = &mut out.signature {
        s.detail = format!("{worst_core}: {}", s.detail);
    }
    if let Some(r) = &mut out.reason {
        r.message = format!("{worst_core}: {}", r.message);
    }
    out.summary = per
        .iter()
        .map(|(c, o)| format!("{c}: {}", o.summary))
        .collect::<Vec<_>>()
        .join("; ");
    out.facts = BTreeMap::new();
    out.figures = BTreeMap::new();
    for (core, o) in &per {
        out.facts.insert(format!("{core}.verdict"), o.verdict.name().into());
        if let Some(s) = &o.signature {
            out.facts.insert(format!("{core}.signature"), s.kind.name().into());
            out.facts
                .insert(format!("{core}.magnitude"), s.magnitude.to_string().into());
        }
        if let Some(r) = &o.reason {
            out.facts.insert(format!("{core}.reason"), r.code.name().into());
        }
        for (k, v) in &o.facts {
            out.facts.insert(format!("{core}.{k}"), v.clone());
        }
        for (k, v) in &o.figures {
            out.figures.insert(format!("{core}.{k}"), v.clone());
        }
    }
    out.diagnosis = per.iter().flat_map(|(_, o)| o.diagnosis.clone()).collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Magnitude, Reason, ReasonCode, Signature, SignatureKind, Unit};

    #[test]
    fn the_worst_core_type_judges_the_case_and_every_one_is_reported() {
        let p = Outcome::pass("100000 in all 20 runs").fact("expected", 100_000);
        let e = Outcome::fail(
            Signature::new(
                SignatureKind::Undercount,
                Magnitude::new(0, Unit::PercentCounted),
                "counted 0",
            ),
            "0",
        )
        .fact("expected", 100_000);
        let o = combine(vec![("cpu_core".into(), p.clone()), ("cpu_atom".into(), e)]);
        assert_eq!(o.verdict, Verdict::Fail);
        assert_eq!(o.signature.as_ref().unwrap().detail, "cpu_atom: counted 0");
        assert_eq!(o.summary, "cpu_core: 100000 in all 20 runs; cpu_atom: 0");
        assert_eq!(o.facts["cpu_core.verdict"], "pass");
        assert_eq!(o.facts["cpu_atom.verdict"], "fail");
        assert_eq!(o.facts["cpu_atom.magnitude"], "0 percent-counted");
        assert_eq!(o.facts["cpu_atom.expected"], 100_000);
        // A pass on the P-cores beside an E-core that cannot run the case is a
        // pass, with the E-cores' reason among its facts.
        let u = Outcome::unsupported(Reason::new(ReasonCode::NoEncoding, "no encoding"));
        let o = combine(vec![("cpu_core".into(), p), ("cpu_atom".into(), u)]);
        assert_eq!(o.verdict, Verdict::Pass);
        assert_eq!(o.facts["cpu_atom.reason"], "no-encoding");
    }

    #[test]
    fn one_core_type_is_reported_as_it_is() {
        let o = run_on_each(&["cpu".to_owned()], |_| Outcome::pass("fine").fact("runs", 3));
        assert_eq!((o.summary.as_str(), o.facts["runs"].as_u64()), ("fine", Some(3)));
    }
}
