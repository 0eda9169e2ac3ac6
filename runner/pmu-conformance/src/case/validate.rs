//! Turns parsed suite files into valid [`Case`]s, or into every error found.
//!
//! Validation is complete and CPU-independent: it needs the event table and
//! the known-bug catalogue, never the machine. Whether an event can be counted
//! *here* is decided later, per environment, and becomes `unsupported`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::schema::{CaseEntry, EventEntry, SuiteFile, WorkloadEntry};
use super::{Case, CaseId, CheckKind, EventRef, ExpectedCount, Formula, ProbeKind, Suite, Tolerance};
use crate::event_table::{EventSource, EventTable, Exactness};
use crate::input_error::{InputError, InputErrors, SourceText};
use crate::known_bugs::KnownBugs;
use crate::probe::{NOTIFICATION_CAPACITY, ReadWith};
use crate::workload::{Quantity, Workload, WorkloadKind};

/// How long a case may run before it becomes an `error`, unless it says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The suite files to load.
#[derive(Clone, Debug)]
pub struct SuiteSources(pub Vec<SourceText>);

impl SuiteSources {
    /// The suites compiled into the binary from `suites/*.yaml`.
    pub fn builtin() -> SuiteSources {
        SuiteSources(
            crate::builtin::SUITES
                .iter()
                .map(|(path, text)| SourceText::new(*path, *text))
                .collect(),
        )
    }

    /// Every `*.yaml` file directly in `dir`, in name order.
    pub fn from_dir(dir: &Path) -> Result<SuiteSources, InputErrors> {
        let shown = dir.display().to_string();
        let entries = std::fs::read_dir(dir)
            .map_err(|e| InputError::whole_file(&shown, format!("cannot read the suites folder: {e}")))?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        paths.sort();
        let mut sources = Vec::new();
        let mut errors = InputErrors::default();
        for path in paths {
            match std::fs::read_to_string(&path) {
                Ok(text) => sources.push(SourceText::new(path.display().to_string(), text)),
                Err(e) => errors.push(InputError::whole_file(
                    path.display().to_string(),
                    format!("cannot read: {e}"),
                )),
            }
        }
        if sources.is_empty() && errors.is_empty() {
            errors.push(InputError::whole_file(&shown, "no suite files (*.yaml) in this folder"));
        }
        errors.or_ok(SuiteSources(sources))
    }
}

/// Loads and validates every suite, reporting every error in every file.
pub fn load_suites(sources: &SuiteSources, table: &EventTable, bugs: &KnownBugs) -> Result<Vec<Suite>, InputErrors> {
    let mut errors = InputErrors::default();
    let mut suites = Vec::new();
    for source in &sources.0 {
        let name = Path::new(&source.path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !is_identifier(&name) {
            errors.push(InputError::whole_file(
                &source.path,
                format!("suite file name `{name}` must be lower-case letters, digits and dashes"),
            ));
            continue;
        }
        let file: SuiteFile = match source.parse_yaml() {
            Ok(file) => file,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let validator = Validator {
            source,
            table,
            bugs,
            suite: &name,
        };
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut cases = Vec::new();
        for entry in &file.cases {
            if let Some(first) = seen.insert(entry.id.value.clone(), entry.id.referenced.line()) {
                errors.push(
                    source
                        .error_at(&entry.id, format!("duplicate case id `{}`", entry.id.value))
                        .with_help(format!("the first `{}` is on line {first}", entry.id.value)),
                );
                continue;
            }
            match validator.case(entry) {
                Ok(case) => cases.push(case),
                Err(mut more) => errors.0.append(&mut more),
            }
        }
        if file.cases.is_empty() {
            errors.push(InputError::whole_file(&source.path, "a suite needs at least one case"));
        }
        suites.push(Suite {
            name,
            about: file.about,
            path: source.path.clone(),
            cases,
        });
    }
    errors.or_ok(suites)
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

struct Validator<'a> {
    source: &'a SourceText,
    table: &'a EventTable,
    bugs: &'a KnownBugs,
    suite: &'a str,
}

impl Validator<'_> {
    fn at<T>(&self, spanned: &Spanned<T>, message: impl Into<String>) -> InputError {
        self.source.error_at(spanned, message)
    }

    /// Validates one case, collecting every problem rather than stopping at the first.
    fn case(&self, e: &CaseEntry) -> Result<Case, Vec<InputError>> {
        let mut errors = Vec::new();

        if !is_identifier(&e.id.value) {
            errors.push(self.at(&e.id, "a case id is lower-case letters, digits and dashes"));
        }
        let probe = ProbeKind::ALL.into_iter().find(|p| p.name() == e.probe.value);
        if probe.is_none() {
            let known: Vec<_> = ProbeKind::ALL.iter().map(|p| p.name()).collect();
            errors.push(self.at(
                &e.probe,
                format!("unknown probe `{}`; known: {}", e.probe.value, known.join(", ")),
            ));
        }
        let kind = CheckKind::ALL.into_iter().find(|k| k.name() == e.check.value);
        if kind.is_none() {
            let known: Vec<_> = CheckKind::ALL.iter().map(|k| k.name()).collect();
            errors.push(self.at(
                &e.check,
                format!("unknown check `{}`; known: {}", e.check.value, known.join(", ")),
            ));
        }
        let workload = self.workload(&e.workload).map_err(|err| errors.push(err)).ok();
        let event = self.event(&e.event).map_err(|err| errors.push(err)).ok();
        if e.runs.value == 0 {
            errors.push(self.at(&e.runs, "`runs` must be at least 1"));
        }
        if let Some(t) = &e.timeout
            && t.value == 0
        {
            errors.push(self.at(t, "`timeout` is in seconds and must be at least 1"));
        }
        for bug in &e.catches {
            if self.bugs.get(&bug.value).is_none() {
                let known: Vec<_> = self.bugs.ids().collect();
                errors.push(self.at(
                    bug,
                    format!("unknown known bug `{}`; known: {}", bug.value, known.join(", ")),
                ));
            }
        }

        // The expected count, evaluated against the workload.
        let expect = match (&e.expect, workload) {
            (Some(x), Some(w)) => match self.expected_count(&x.count, &w) {
                Ok(count) => Some(count),
                Err(err) => {
                    errors.push(err);
                    None
                }
            },
            _ => None,
        };

        // Period and refresh belong to sampling checks only.
        if let Some(kind) = kind {
            match (&e.period, kind.samples()) {
                (None, true) => errors.push(self.at(
                    &e.check,
                    format!("`{kind}` needs a `period`: events per overflow notification"),
                )),
                (Some(p), false) => {
                    errors.push(self.at(p, format!("`{kind}` counts without overflow; remove `period`")))
                }
                (Some(p), true) if p.value == 0 => errors.push(self.at(p, "`period` must be at least 1")),
                _ => {}
            }
            if let Some(r) = &e.refresh {
                if kind != CheckKind::PmiDelivery {
                    errors.push(self.at(r, "`refresh` arms notifications; only `pmi-delivery` uses it"));
                } else if r.value == 0 {
                    errors.push(self.at(r, "`refresh` is the number of notifications to allow and must be at least 1 (REFRESH 0 is undefined)"));
                }
            }
            if matches!(kind, CheckKind::ExactCount | CheckKind::OverflowPreservation) && e.expect.is_none() {
                errors.push(self.at(&e.check, format!("`{kind}` needs `expect: {{count: <formula>}}`")));
            }
            if let Some(w) = workload
                && w.kind == WorkloadKind::RrXenProbe
                && !kind.samples()
            {
                errors.push(self.at(
                    &e.workload.kind,
                    "`rr-xen-probe` sets its period inside the window; use it with a check that has a `period`",
                ));
            }
        }

        // A period that cannot overflow in the workload proves nothing.
        let expected_events = expect.as_ref().map(|x| x.count).or_else(|| {
            let counts = match &event {
                Some(EventRef::Named(name)) => self.table.events.get(name).and_then(|d| d.counts),
                _ => None,
            };
            counts.zip(workload).map(|(q, w)| w.counts().get(q))
        });
        if let (Some(p), Some(events)) = (&e.period, expected_events)
            && p.value > 0
            && kind.is_some_and(CheckKind::samples)
        {
            if p.value > events {
                errors.push(self.at(
                    p,
                    format!(
                        "period {} never overflows: the workload retires only {events} of these events",
                        p.value
                    ),
                ));
            } else if events / p.value > NOTIFICATION_CAPACITY as u64 {
                errors.push(self.at(
                    p,
                    format!(
                        "period {} raises {} notifications per run; the probe records at most {NOTIFICATION_CAPACITY}: raise the period",
                        p.value,
                        events / p.value
                    ),
                ));
            }
        }

        let tolerance = self.tolerance(e, &event, kind).unwrap_or_else(|err| {
            errors.push(err);
            Tolerance::default()
        });
        let read_with = self.read_with(e, &event, kind, workload).unwrap_or_else(|err| {
            errors.push(err);
            ReadWith::Syscall
        });

        // The event must count something this workload retires.
        if let (Some(EventRef::Named(name)), Some(w)) = (&event, workload)
            && let Some(q) = self.table.events.get(name).and_then(|d| d.counts)
            && w.counts().get(q) == 0
        {
            errors.push(self.at(
                &e.event,
                format!("`{name}` counts {}, which `{}` never retires", q.name(), w.kind),
            ));
        }

        if !errors.is_empty() {
            errors.sort_by_key(|e| (e.line, e.column));
            return Err(errors);
        }
        let (Some(probe), Some(kind), Some(event), Some(workload)) = (probe, kind, event, workload) else {
            unreachable!("every missing part above pushed an error");
        };
        Ok(Case {
            id: CaseId {
                suite: self.suite.to_owned(),
                name: e.id.value.clone(),
            },
            about: e.about.clone(),
            probe,
            check: kind,
            event,
            workload,
            period: e.period.as_ref().map(|p| p.value),
            refresh: e.refresh.as_ref().map(|r| r.value),
            runs: e.runs.value,
            expect,
            tolerance,
            catches: e.catches.iter().map(|b| b.value.clone()).collect(),
            timeout: e
                .timeout
                .as_ref()
                .map_or(DEFAULT_TIMEOUT, |t| Duration::from_secs(t.value)),
            read_with,
            location: format!(
                "{}:{}:{}",
                self.source.path,
                e.id.referenced.line(),
                e.id.referenced.column()
            ),
        })
    }

    fn workload(&self, w: &WorkloadEntry) -> Result<Workload, InputError> {
        let Some(kind) = WorkloadKind::from_name(&w.kind.value) else {
            let known: Vec<_> = WorkloadKind::ALL.iter().map(|k| k.name()).collect();
            return Err(self.at(
                &w.kind,
                format!("unknown workload `{}`; known: {}", w.kind.value, known.join(", ")),
            ));
        };
        let given = [
            ("iterations", &w.iterations),
            ("branches", &w.branches),
            ("pages", &w.pages),
        ];
        for (name, value) in given {
            if let Some(v) = value
                && name != kind.size_parameter()
            {
                return Err(self.at(v, format!("`{kind}` takes `{}`, not `{name}`", kind.size_parameter())));
            }
        }
        let size = given
            .iter()
            .find(|(name, _)| *name == kind.size_parameter())
            .and_then(|(_, v)| v.as_ref())
            .ok_or_else(|| self.at(&w.kind, format!("`{kind}` needs `{}`", kind.size_parameter())))?;
        if size.value < kind.minimum_size() {
            return Err(self.at(
                size,
                format!(
                    "`{}` must be at least {} for `{kind}`",
                    kind.size_parameter(),
                    kind.minimum_size()
                ),
            ));
        }
        Ok(Workload { kind, size: size.value })
    }

    fn event(&self, e: &Spanned<EventEntry>) -> Result<EventRef, InputError> {
        match &e.value {
            EventEntry::Raw(config) => Ok(EventRef::Raw(*config)),
            EventEntry::Named(name) if self.table.events.contains_key(name) => Ok(EventRef::Named(name.clone())),
            EventEntry::Named(name) => {
                let known: Vec<_> = self.table.events.keys().map(String::as_str).collect();
                Err(self
                    .at(e, format!("unknown event `{name}`; known: {}", known.join(", ")))
                    .with_help("or give a raw perf config: `event: {raw: 0x5101c4}`"))
            }
        }
    }

    fn expected_count(
        &self,
        text: &Spanned<super::schema::FormulaText>,
        w: &Workload,
    ) -> Result<ExpectedCount, InputError> {
        let at = text.referenced;
        let formula = Formula::parse(&text.value.0).map_err(|err| {
            // Point into the formula: its span starts at the scalar, which for
            // a quoted formula is the opening quote.
            let quoted = self
                .source
                .text
                .lines()
                .nth(at.line() as usize - 1)
                .and_then(|l| l.chars().nth(at.column() as usize - 1))
                .is_some_and(|c| c == '"' || c == '\'');
            let column = at.column() + u64::from(quoted) + err.column as u64 - 1;
            self.source.error_at_position(at.line(), column, err.message)
        })?;
        for name in formula.variables() {
            if w.variable(name).is_none() {
                return Err(self.at(
                    text,
                    format!(
                        "`{name}` is not a variable of `{}`; it has: {}",
                        w.kind,
                        w.variable_names().join(", ")
                    ),
                ));
            }
        }
        let count = formula
            .evaluate(&|name| w.variable(name))
            .map_err(|msg| self.at(text, msg))?;
        Ok(ExpectedCount { formula, count })
    }

    fn tolerance(
        &self,
        e: &CaseEntry,
        event: &Option<EventRef>,
        kind: Option<CheckKind>,
    ) -> Result<Tolerance, InputError> {
        let exactness = match event {
            Some(EventRef::Named(name)) => self.table.events.get(name).map(|d| d.exactness.clone()),
            _ => None,
        };
        let Some(t) = &e.tolerance else {
            return match (exactness, kind) {
                (Some(Exactness::Inexact(why)), Some(CheckKind::ExactCount | CheckKind::OverflowPreservation)) => {
                    Err(self.at(
                        &e.event,
                        format!("this event is not exact ({why}): state a `tolerance` with its `reason`"),
                    ))
                }
                _ => Ok(Tolerance::default()),
            };
        };
        if kind == Some(CheckKind::PmiDelivery) {
            return Err(self.at(
                t,
                "`pmi-delivery` holds notifications to the skid budget; a count tolerance does not apply",
            ));
        }
        if matches!(exactness, Some(Exactness::Exact)) {
            return Err(self.at(t, "this event is exact; a tolerance would hide a miscount"));
        }
        let Some(reason) = t.value.reason.clone().filter(|r| !r.trim().is_empty()) else {
            return Err(self.at(t, "a tolerance needs its `reason`"));
        };
        if t.value.above == 0 && t.value.below == 0 {
            return Err(self.at(t, "a tolerance of zero is no tolerance; give `above` or `below`"));
        }
        Ok(Tolerance {
            above: t.value.above,
            below: t.value.below,
            reason: Some(reason),
        })
    }

    /// `read-with: rdpmc` reads inside the window, which only the branch
    /// loop's rdpmc variant does, and only a hardware counter can be read so.
    fn read_with(
        &self,
        e: &CaseEntry,
        event: &Option<EventRef>,
        kind: Option<CheckKind>,
        workload: Option<Workload>,
    ) -> Result<ReadWith, InputError> {
        let Some(r) = &e.read_with else {
            return Ok(ReadWith::Syscall);
        };
        match r.value.as_str() {
            "read" => return Ok(ReadWith::Syscall),
            "rdpmc" => {}
            other => return Err(self.at(r, format!("unknown read-with `{other}`; use read or rdpmc"))),
        }
        if kind.is_some_and(|k| k != CheckKind::ExactCount) {
            return Err(self.at(r, "`read-with: rdpmc` applies to `exact-count` only"));
        }
        if workload.is_some_and(|w| w.kind != WorkloadKind::BranchLoop) {
            return Err(self.at(r, "only the `branch-loop` window reads with rdpmc"));
        }
        if let Some(EventRef::Named(name)) = event
            && let Some(def) = self.table.events.get(name)
        {
            if !matches!(def.source, EventSource::Hardware(_)) {
                return Err(self.at(r, format!("`{name}` is not a hardware counter; rdpmc cannot read it")));
            }
            if def.counts == Some(Quantity::Instructions) {
                return Err(self.at(
                    r,
                    "the rdpmc read retires instructions of its own; count branches instead",
                ));
            }
        }
        Ok(ReadWith::Rdpmc)
    }
}
