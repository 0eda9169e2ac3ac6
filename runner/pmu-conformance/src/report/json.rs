//! The JSON report (`--json PATH`). Its schema, `pmu-conformance/report/v1`,
//! is documented in README.md ("JSON report"); change both together.

use serde_json::{Value, json};

use super::Tally;
use crate::environment::Environment;
use crate::fingerprint::Fingerprint;
use crate::harness::Record;

pub const SCHEMA: &str = "pmu-conformance/report/v1";

pub fn render(records: &[Record], environment: &Environment, probe: &str, fingerprint: Option<&Fingerprint>) -> Value {
    let cases: Vec<Value> = records
        .iter()
        .map(|r| {
            let c = &r.case;
            let o = &r.outcome;
            let gate = match &r.gate {
                crate::expectation::Gate::Differs { diff } => {
                    json!({"status": r.gate.name(), "passed": false, "diff": diff})
                }
                g => json!({"status": g.name(), "passed": !super::gate_failed(r)}),
            };
            json!({
                "id": c.id.to_string(),
                "suite": c.id.suite,
                "about": c.about,
                "check": c.check.name(),
                "event": c.event.to_string(),
                "encoding": r.event.as_ref().map(|e| e.encoding.to_string()),
                "workload": {"kind": c.workload.kind.name(), c.workload.kind.size_parameter(): c.workload.size},
                "period": c.period,
                "runs": c.runs,
                "budget": c.budget.map(|b| json!({"catch": b.rate, "probability": b.probability})),
                "catches": c.catches,
                "location": c.location,
                "verdict": o.verdict,
                "signature": o.signature,
                "reason": o.reason,
                "summary": o.summary,
                "facts": o.facts,
                "figures": o.figures,
                "proves": o.proves,
                "diagnosis": o.diagnosis,
                "gate": gate,
            })
        })
        .collect();
    json!({
        "schema": SCHEMA,
        "tool": {"name": "pmu-conformance", "version": env!("CARGO_PKG_VERSION")},
        "environment": {
            "id": environment.id.as_str(),
            "about": environment.about,
            "probe": probe,
            "fingerprint": fingerprint,
        },
        "summary": Tally::of(records),
        "cases": cases,
    })
}
