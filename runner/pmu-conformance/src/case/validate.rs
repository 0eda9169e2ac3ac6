//! Turns parsed suite files into valid [`Case`]s, or into every error found.
//!
//! Validation is complete and CPU-independent: it needs the event table and
//! the known-bug catalogue, never the machine. Whether an event can be counted
//! *here* is decided later, per environment, and becomes `unsupported`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::schema::{CaseEntry, EventEntry, FormulaText, RunsEntry, SuiteFile, WorkloadEntry};
use super::{
    Case, CheckKind, EventRef, ExpectedCount, Formula, KernelCheck, KernelParams, RunBudget, Suite, Tolerance,
};
use crate::event_table::{EventSource, EventTable, Exactness};
use crate::input_error::{InputError, InputErrors, SourceText};
use crate::known_bugs::KnownBugs;
use crate::statistics;
use crate::vocabulary::{CaseId, NOTIFICATION_CAPACITY, ProbeKind, ReadWith};
use crate::workload::{Quantity, Workload, WorkloadKind};
use crate::yaml_number::Whole;

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
        crate::input_file::yaml_sources(dir, "suite").map(SuiteSources)
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

/// The most events one window may retire under `probe`, as (limit, how it
/// reads, why). A linux counter is 48 bits wide on every x86 PMU (Intel SDM
/// Vol. 3B and AMD APM Vol. 2 give the width; 48 on all current parts), and
/// the probe kernel presets counters through the legacy alias, whose writes
/// sign-extend bit 31 (SDM: IA32_PMCx), so its counts stay below 2^31.
fn count_limit(probe: ProbeKind) -> (u64, &'static str, &'static str) {
    match probe {
        ProbeKind::Linux => (1 << 48, "2^48 events", "a 48-bit counter counts without wrapping"),
        ProbeKind::Kernel => (
            1 << 31,
            "2^31 events",
            "the probe kernel's 32-bit counter presets allow",
        ),
    }
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

/// The workload a kernel case gets when it names none.
const KERNEL_DEFAULT_WORKLOAD: Workload = Workload {
    kind: WorkloadKind::BranchLoop,
    size: 1000,
};

/// What only some probes' cases have, once validated.
struct ProbeParts {
    event: EventRef,
    workload: Workload,
    expect: Option<ExpectedCount>,
    tolerance: Tolerance,
    read_with: ReadWith,
    kernel: KernelParams,
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
        let check = probe.and_then(|p| {
            let checks = CheckKind::all_for(p);
            let found = checks.iter().copied().find(|k| k.name() == e.check.value);
            if found.is_none() {
                let known: Vec<_> = checks.iter().map(|k| k.name()).collect();
                errors.push(self.at(
                    &e.check,
                    format!(
                        "unknown check `{}` for the {} probe; known: {}",
                        e.check.value,
                        p.name(),
                        known.join(", ")
                    ),
                ));
            }
            found
        });

        for bug in &e.catches {
            if self.bugs.get(&bug.value).is_none() {
                let known: Vec<_> = self.bugs.ids().collect();
                errors.push(self.at(
                    bug,
                    format!("unknown known bug `{}`; known: {}", bug.value, known.join(", ")),
                ));
            }
        }
        let parts = match probe {
            Some(ProbeKind::Linux) => self.linux_parts(e, check, &mut errors),
            Some(ProbeKind::Kernel) => self.kernel_parts(e, check, &mut errors),
            None => None,
        };
        let runs = parts
            .as_ref()
            .and_then(|p| self.runs(e, check, p, probe?).map_err(|err| errors.push(err)).ok());
        if !errors.is_empty() {
            errors.sort_by_key(|e| (e.line, e.column));
            return Err(errors);
        }
        let (Some(probe), Some(check), Some(parts), Some((runs, budget))) = (probe, check, parts, runs) else {
            unreachable!("every missing part above pushed an error");
        };
        Ok(Case {
            id: CaseId {
                suite: self.suite.to_owned(),
                name: e.id.value.clone(),
            },
            about: e.about.clone(),
            probe,
            check,
            event: parts.event,
            workload: parts.workload,
            period: e.period.as_ref().map(|p| p.value.get()),
            refresh: e.refresh.as_ref().map(|r| r.value.get() as u32),
            runs,
            budget,
            expect: parts.expect,
            tolerance: parts.tolerance,
            catches: e.catches.iter().map(|b| b.value.clone()).collect(),
            timeout: e
                .timeout
                .as_ref()
                .map_or(DEFAULT_TIMEOUT, |t| Duration::from_secs(t.value.get())),
            read_with: parts.read_with,
            kernel: parts.kernel,
            location: format!(
                "{}:{}:{}",
                self.source.path,
                e.id.referenced.line(),
                e.id.referenced.column()
            ),
        })
    }

    /// A linux case: perf_event_open on a workload window.
    fn linux_parts(&self, e: &CaseEntry, kind: Option<CheckKind>, errors: &mut Vec<InputError>) -> Option<ProbeParts> {
        let probe = ProbeKind::Linux;
        for (field, at) in [
            ("counter", e.counter.as_ref().map(|c| c.referenced)),
            ("int", e.int.as_ref().map(|i| i.referenced)),
        ] {
            if let Some(at) = at {
                errors.push(self.source.error_at_position(
                    at.line(),
                    at.column(),
                    format!("`{field}` is for kernel cases; the linux probe counts with perf"),
                ));
            }
        }
        let workload = match &e.workload {
            Some(w) => self.workload(w, probe).map_err(|err| errors.push(err)).ok(),
            None => {
                errors.push(self.at(&e.check, "a linux case needs a `workload`"));
                None
            }
        };
        let event = match &e.event {
            Some(ev) => self.event(ev).map_err(|err| errors.push(err)).ok(),
            None => {
                errors.push(self.at(&e.check, "a linux case needs an `event`"));
                None
            }
        };
        let expect = self.expect(e, workload, probe, errors);

        if let Some(kind) = kind {
            match (&e.period, kind.samples()) {
                (None, true) => errors.push(self.at(
                    &e.check,
                    format!("`{kind}` needs a `period`: events per overflow notification"),
                )),
                (Some(p), false) => {
                    errors.push(self.at(p, format!("`{kind}` counts without overflow; remove `period`")))
                }
                _ => {}
            }
            if let Some(r) = &e.refresh {
                if kind != CheckKind::PmiDelivery {
                    errors.push(self.at(r, "`refresh` arms notifications; only `pmi-delivery` uses it"));
                } else if r.value.get() == 0 {
                    errors.push(self.at(
                        r,
                        "`refresh` is the number of notifications to allow and must be at least 1 (REFRESH 0 is undefined)",
                    ));
                }
            }
            if kind.expects_count() && e.expect.is_none() {
                errors.push(self.at(&e.check, format!("`{kind}` needs `expect: {{count: <formula>}}`")));
            }
            if let Some(w) = workload
                && w.kind == WorkloadKind::RrXenProbe
                && !kind.samples()
                && let Some(entry) = &e.workload
            {
                errors.push(self.at(
                    &entry.kind,
                    "`rr-xen-probe` sets its period inside the window; use it with a check that has a `period`",
                ));
            }
        }

        // A period that cannot overflow in the workload proves nothing.
        let counted = self.counted(&event, workload, probe);
        let expected_events = expect.as_ref().map(|x| x.count).or(counted);
        if let (Some(p), Some(events)) = (&e.period, expected_events)
            && p.value.get() > 0
            && kind.is_some_and(CheckKind::samples)
        {
            if p.value.get() > events {
                errors.push(self.at(
                    p,
                    format!(
                        "period {} never overflows: the workload retires only {events} of these events",
                        p.value.get()
                    ),
                ));
            } else if events / p.value.get() > NOTIFICATION_CAPACITY as u64 {
                errors.push(self.at(
                    p,
                    format!(
                        "period {} raises {} notifications per run; the probe records at most {NOTIFICATION_CAPACITY}: raise the period",
                        p.value.get(),
                        events / p.value.get()
                    ),
                ));
            }
        }
        // The event must count something this workload retires.
        if let (Some(EventRef::Named(name)), Some(0), Some(w), Some(ev)) = (&event, counted, workload, &e.event)
            && let Some(q) = self.table.events.get(name).and_then(|d| d.counts)
        {
            errors.push(self.at(
                ev,
                format!("`{name}` counts {}, which `{}` never retires", q.name(), w.kind),
            ));
        }

        let tolerance = self.tolerance(e, &event, kind).unwrap_or_else(|err| {
            errors.push(err);
            Tolerance::default()
        });
        let read_with = self.read_with(e, &event, kind, workload).unwrap_or_else(|err| {
            errors.push(err);
            ReadWith::Syscall
        });
        Some(ProbeParts {
            event: event?,
            workload: workload?,
            expect,
            tolerance,
            read_with,
            kernel: KernelParams::default(),
        })
    }

    /// A kernel case: a check the probe kernel runs at MSR level.
    fn kernel_parts(&self, e: &CaseEntry, kind: Option<CheckKind>, errors: &mut Vec<InputError>) -> Option<ProbeParts> {
        let probe = ProbeKind::Kernel;
        let perf_only = [
            ("period", e.period.as_ref().map(|p| p.referenced)),
            ("refresh", e.refresh.as_ref().map(|r| r.referenced)),
            ("read-with", e.read_with.as_ref().map(|r| r.referenced)),
        ];
        for (field, at) in perf_only {
            if let Some(at) = at {
                errors.push(self.source.error_at_position(
                    at.line(),
                    at.column(),
                    format!("`{field}` is for linux cases; the probe kernel arms its counters itself"),
                ));
            }
        }
        let workload = match &e.workload {
            Some(w) => self.workload(w, probe).map_err(|err| errors.push(err)).ok(),
            None => Some(KERNEL_DEFAULT_WORKLOAD),
        };
        let event = match &e.event {
            None => Some(EventRef::Named("branches".into())),
            Some(ev) => match &ev.value {
                EventEntry::Named(name) if name == "instructions" || name == "branches" => {
                    Some(EventRef::Named(name.clone()))
                }
                _ => {
                    errors.push(self.at(
                        ev,
                        "the probe kernel counts the architectural `instructions` or `branches`",
                    ));
                    None
                }
            },
        };
        let counter = match &e.counter {
            None => Some(KernelParams::default().counter),
            Some(c) => {
                let parsed = pmu_kernel_checks::plan::parse_counter(&c.value);
                if parsed.is_none() {
                    errors.push(self.at(c, format!("`{}` is not a counter; use gp<n> or fixed<n>", c.value)));
                }
                parsed
            }
        };
        let expect = match (kind, &e.expect) {
            (Some(k), None) if k.expects_count() => {
                errors.push(self.at(&e.check, format!("`{k}` needs `expect: {{count: <formula>}}`")));
                None
            }
            (Some(k), Some(x)) if !k.expects_count() => {
                errors.push(self.at(&x.count, format!("`{k}` judges no count; remove `expect`")));
                None
            }
            _ => self.expect(e, workload, probe, errors),
        };
        let tolerance = match (&e.tolerance, kind) {
            (None, _) => Tolerance::default(),
            (Some(t), Some(CheckKind::Kernel(KernelCheck::ExactCount))) => {
                self.stated_tolerance(t).unwrap_or_else(|err| {
                    errors.push(err);
                    Tolerance::default()
                })
            }
            (Some(t), _) => {
                errors.push(self.at(t, "only a kernel `exact-count` takes a tolerance"));
                Tolerance::default()
            }
        };
        Some(ProbeParts {
            event: event?,
            workload: workload?,
            expect,
            tolerance,
            read_with: ReadWith::Syscall,
            kernel: KernelParams {
                counter: counter?,
                int: e.int.as_ref().is_none_or(|i| i.value),
            },
        })
    }

    /// The run budget: as given, or sized from the fault rate it must catch.
    fn runs(
        &self,
        e: &CaseEntry,
        check: Option<CheckKind>,
        parts: &ProbeParts,
        probe: ProbeKind,
    ) -> Result<(u32, Option<RunBudget>), InputError> {
        match e.runs.value {
            RunsEntry::Count(0) => Err(self.at(&e.runs, "`runs` must be at least 1")),
            RunsEntry::Count(n) => {
                let n = u32::try_from(n).map_err(|_| self.at(&e.runs, "`runs` is at most 4294967295"))?;
                Ok((n, None))
            }
            RunsEntry::Budget { catch, probability } => {
                let open = |x: f64| x > 0.0 && x < 1.0;
                if !open(catch) || !open(probability) {
                    return Err(self.at(
                        &e.runs,
                        "`catch` and `probability` are probabilities strictly between 0 and 1",
                    ));
                }
                // Opportunities per run: each overflow for pmi-delivery, each run otherwise.
                let per_run = match check {
                    Some(CheckKind::PmiDelivery) => {
                        let counted = self.counted(&Some(parts.event.clone()), Some(parts.workload), probe);
                        match (counted, e.period.as_ref()) {
                            (Some(events), Some(p)) if p.value.get() > 0 && events >= p.value.get() => {
                                events / p.value.get()
                            }
                            _ => {
                                return Err(self.at(
                                    &e.runs,
                                    "a budget for `pmi-delivery` needs an event that counts the workload exactly, to know its overflows per run",
                                ));
                            }
                        }
                    }
                    _ => 1,
                };
                let trials = statistics::trials_to_detect(catch, probability);
                let runs = trials.div_ceil(per_run).max(1);
                let runs =
                    u32::try_from(runs).map_err(|_| self.at(&e.runs, format!("that budget needs {runs} runs")))?;
                Ok((
                    runs,
                    Some(RunBudget {
                        rate: catch,
                        probability,
                    }),
                ))
            }
        }
    }

    /// How many of the event's quantity the workload retires, where the event counts one.
    fn counted(&self, event: &Option<EventRef>, workload: Option<Workload>, probe: ProbeKind) -> Option<u64> {
        let Some(EventRef::Named(name)) = event else {
            return None;
        };
        let q = self.table.events.get(name).and_then(|d| d.counts)?;
        workload?.counts(probe).map(|c| q.of(&c))
    }

    fn expect(
        &self,
        e: &CaseEntry,
        workload: Option<Workload>,
        probe: ProbeKind,
        errors: &mut Vec<InputError>,
    ) -> Option<ExpectedCount> {
        let (x, w) = (e.expect.as_ref()?, workload?);
        self.expected_count(&x.count, &w, probe)
            .map_err(|err| errors.push(err))
            .ok()
    }

    fn workload(&self, w: &WorkloadEntry, probe: ProbeKind) -> Result<Workload, InputError> {
        let Some(kind) = WorkloadKind::from_name(&w.kind.value) else {
            let known: Vec<_> = WorkloadKind::ALL.iter().map(|k| k.name()).collect();
            return Err(self.at(
                &w.kind,
                format!("unknown workload `{}`; known: {}", w.kind.value, known.join(", ")),
            ));
        };
        if kind.listing(probe).is_none() {
            return Err(self.at(&w.kind, format!("the {} probe has no `{kind}` window", probe.name())));
        }
        /// Where a size was written (line, column), and its value.
        type Given = Option<((u64, u64), u64)>;
        fn at<M>(v: &Spanned<Whole<M>>) -> ((u64, u64), u64) {
            ((v.referenced.line(), v.referenced.column()), v.value.get())
        }
        let given: [(&str, Given); 3] = [
            ("iterations", w.iterations.as_ref().map(at)),
            ("branches", w.branches.as_ref().map(at)),
            ("pages", w.pages.as_ref().map(at)),
        ];
        let here = |(line, column): (u64, u64), message: String| self.source.error_at_position(line, column, message);
        for (name, value) in given {
            if let Some((position, _)) = value
                && name != kind.size_parameter()
            {
                return Err(here(
                    position,
                    format!("`{kind}` takes `{}`, not `{name}`", kind.size_parameter()),
                ));
            }
        }
        let Some((position, size)) = given
            .iter()
            .find(|(name, _)| *name == kind.size_parameter())
            .and_then(|(_, v)| *v)
        else {
            return Err(self.at(&w.kind, format!("`{kind}` needs `{}`", kind.size_parameter())));
        };
        if size < kind.minimum_size() {
            return Err(here(
                position,
                format!(
                    "`{}` must be at least {} for `{kind}`",
                    kind.size_parameter(),
                    kind.minimum_size()
                ),
            ));
        }
        let workload = Workload { kind, size };
        let limit = count_limit(probe);
        match workload.checked_counts(probe) {
            Some(counts) if counts.largest() < limit.0 => Ok(workload),
            _ => Err(here(
                position,
                format!(
                    "`{}: {size}` makes one window retire more than {}, more than {}: make it smaller",
                    kind.size_parameter(),
                    limit.1,
                    limit.2
                ),
            )),
        }
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
        text: &Spanned<FormulaText>,
        w: &Workload,
        probe: ProbeKind,
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
            if w.variable(name, probe).is_none() {
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
            .evaluate(&|name| w.variable(name, probe))
            .map_err(|msg| self.at(text, msg))?;
        let (limit, reads, why) = count_limit(probe);
        if count >= limit {
            return Err(self.at(
                text,
                format!("`{formula}` expects {count}, at least {reads}: more than {why}"),
            ));
        }
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
            return match (exactness, kind, &e.event) {
                (Some(Exactness::Inexact(why)), Some(k), Some(ev)) if k.expects_count() => Err(self.at(
                    ev,
                    format!("this event is not exact ({why}): state a `tolerance` with its `reason`"),
                )),
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
        self.stated_tolerance(t)
    }

    /// A tolerance as written: it needs a reason and a size.
    fn stated_tolerance(&self, t: &Spanned<super::schema::ToleranceEntry>) -> Result<Tolerance, InputError> {
        let Some(reason) = t.value.reason.clone().filter(|r| !r.trim().is_empty()) else {
            return Err(self.at(t, "a tolerance needs its `reason`"));
        };
        let (above, below) = (
            t.value.above.as_ref().map_or(0, |a| a.get()),
            t.value.below.as_ref().map_or(0, |b| b.get()),
        );
        if above == 0 && below == 0 {
            return Err(self.at(t, "a tolerance of zero is no tolerance; give `above` or `below`"));
        }
        Ok(Tolerance {
            above,
            below,
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
