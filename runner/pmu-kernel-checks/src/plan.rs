//! The cases the host asks the probe kernel to run, as its command line
//! carries them.
//!
//! `pmuc=<case>;<case>…`, each case `<id>,<check>[,<key>=<value>…]`, e.g.
//! `pmuc=ovf-ack/basic,ovf-ack;kernel/pmi,pmi-iff-int,counter=fixed0,int=0`.
//! Ids and values never contain `,`, `;`, `=` or spaces; [`Plan::to_cmdline`]
//! refuses to write one that does.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::checks::KernelCheck;
use crate::pmu::{ArchEvent, Counter};

/// A check's parameters. Every check reads only those it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub counter: Counter,
    /// Set the counter's INT (PMI) bit.
    pub int: bool,
    pub event: ArchEvent,
    /// Loop passes in each window.
    pub iterations: u64,
    pub runs: u32,
    /// For `exact-count`: the expected count, and how far it may stray.
    pub expect: Option<u64>,
    pub above: u64,
    pub below: u64,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            counter: Counter::Gp(0),
            int: true,
            event: ArchEvent::Branches,
            iterations: 1000,
            runs: 1,
            expect: None,
            above: 0,
            below: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseRequest {
    pub id: String,
    pub check: KernelCheck,
    pub params: Params,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub cases: Vec<CaseRequest>,
}

/// `gp0`, `fixed1`: a counter as plans and messages name it.
pub fn counter_name(c: Counter) -> String {
    match c {
        Counter::Gp(i) => format!("gp{i}"),
        Counter::Fixed(i) => format!("fixed{i}"),
    }
}

pub fn parse_counter(s: &str) -> Option<Counter> {
    if let Some(i) = s.strip_prefix("gp") {
        return i.parse().ok().map(Counter::Gp);
    }
    s.strip_prefix("fixed").and_then(|i| i.parse().ok()).map(Counter::Fixed)
}

pub fn event_name(e: ArchEvent) -> &'static str {
    match e {
        ArchEvent::Instructions => "instructions",
        ArchEvent::Branches => "branches",
    }
}

pub fn parse_event(s: &str) -> Option<ArchEvent> {
    match s {
        "instructions" => Some(ArchEvent::Instructions),
        "branches" => Some(ArchEvent::Branches),
        _ => None,
    }
}

impl Plan {
    /// Finds `pmuc=` among the command line's words and parses it.
    pub fn from_cmdline(cmdline: &str) -> Result<Plan, String> {
        let Some(spec) = cmdline.split_ascii_whitespace().find_map(|w| w.strip_prefix("pmuc=")) else {
            return Err("no `pmuc=` on the command line".into());
        };
        let mut cases = Vec::new();
        for case in spec.split(';').filter(|c| !c.is_empty()) {
            let mut fields = case.split(',');
            let id = fields
                .next()
                .filter(|id| !id.is_empty())
                .ok_or_else(|| format!("`{case}`: no case id"))?;
            let check = fields
                .next()
                .and_then(KernelCheck::from_name)
                .ok_or_else(|| format!("`{case}`: no known check after the id"))?;
            let mut params = Params::default();
            for field in fields {
                let (key, value) = field
                    .split_once('=')
                    .ok_or_else(|| format!("`{case}`: `{field}` is not key=value"))?;
                let bad = || format!("`{case}`: bad {key} `{value}`");
                match key {
                    "counter" => params.counter = parse_counter(value).ok_or_else(bad)?,
                    "int" => params.int = matches!(value, "1" | "true"),
                    "event" => params.event = parse_event(value).ok_or_else(bad)?,
                    "iterations" => params.iterations = value.parse().ok().filter(|&n| n > 0).ok_or_else(bad)?,
                    "runs" => params.runs = value.parse().ok().filter(|&n| n > 0).ok_or_else(bad)?,
                    "expect" => params.expect = Some(value.parse().map_err(|_| bad())?),
                    "above" => params.above = value.parse().map_err(|_| bad())?,
                    "below" => params.below = value.parse().map_err(|_| bad())?,
                    _ => return Err(format!("`{case}`: unknown key `{key}`")),
                }
            }
            cases.push(CaseRequest {
                id: id.to_string(),
                check,
                params,
            });
        }
        Ok(Plan { cases })
    }

    /// The `pmuc=…` word for a command line. A parameter at its default
    /// ([`Params::default`]) is left out: the probe kernel parses the plan
    /// at every boot, and where its guest is emulated (kvm_pvm) the 24
    /// cases' plan written out in full took 47 ms to parse.
    pub fn to_cmdline(&self) -> Result<String, String> {
        let default = Params::default();
        let mut out = String::from("pmuc=");
        for (n, case) in self.cases.iter().enumerate() {
            if case.id.is_empty() || case.id.contains([',', ';', '=', ' ']) {
                return Err(format!("case id `{}` cannot be carried on a command line", case.id));
            }
            if n > 0 {
                out.push(';');
            }
            let p = &case.params;
            out.push_str(&format!("{},{}", case.id, case.check.name()));
            if p.counter != default.counter {
                out.push_str(&format!(",counter={}", counter_name(p.counter)));
            }
            if p.int != default.int {
                out.push_str(&format!(",int={}", u8::from(p.int)));
            }
            if p.event != default.event {
                out.push_str(&format!(",event={}", event_name(p.event)));
            }
            if p.iterations != default.iterations {
                out.push_str(&format!(",iterations={}", p.iterations));
            }
            if p.runs != default.runs {
                out.push_str(&format!(",runs={}", p.runs));
            }
            if let Some(expect) = p.expect {
                out.push_str(&format!(",expect={expect},above={},below={}", p.above, p.below));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_round_trip_through_a_command_line() {
        let plan = Plan {
            cases: alloc::vec![
                CaseRequest {
                    id: "kernel/a".into(),
                    check: KernelCheck::OvfAck,
                    params: Params::default()
                },
                CaseRequest {
                    id: "kernel/b".into(),
                    check: KernelCheck::ExactCount,
                    params: Params {
                        counter: Counter::Fixed(0),
                        int: false,
                        event: ArchEvent::Instructions,
                        expect: Some(4004),
                        above: 2,
                        ..Params::default()
                    },
                },
            ],
        };
        let word = plan.to_cmdline().unwrap();
        // Defaults are left out; the rest is said.
        assert_eq!(
            word,
            "pmuc=kernel/a,ovf-ack;kernel/b,exact-count,counter=fixed0,int=0,event=instructions,\
             expect=4004,above=2,below=0"
        );
        let line = format!("console=ttyS0 {word} quiet");
        assert_eq!(Plan::from_cmdline(&line), Ok(plan));
        let runs = Plan {
            cases: alloc::vec![CaseRequest {
                id: "k/c".into(),
                check: KernelCheck::OvfAck,
                params: Params {
                    iterations: 7,
                    runs: 3,
                    ..Params::default()
                },
            }],
        };
        assert_eq!(runs.to_cmdline().unwrap(), "pmuc=k/c,ovf-ack,iterations=7,runs=3");
        assert_eq!(Plan::from_cmdline(&runs.to_cmdline().unwrap()), Ok(runs));
    }

    #[test]
    fn bad_plans_say_what_is_wrong() {
        assert!(Plan::from_cmdline("quiet").unwrap_err().contains("no `pmuc=`"));
        assert!(
            Plan::from_cmdline("pmuc=a,nonsense")
                .unwrap_err()
                .contains("no known check")
        );
        assert!(
            Plan::from_cmdline("pmuc=a,ovf-ack,counter=gpx")
                .unwrap_err()
                .contains("bad counter")
        );
    }
}
