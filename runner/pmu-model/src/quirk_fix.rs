//! The three fixes proposed for Xen's PMC quirk (Kyle Huey's report; none
//! exists in Xen: hypervisor-behaviour.md §2), as variants of the model's
//! `xen-pmc-quirk` fault, so that a table shows what each would change
//! before anyone writes it. Each is a proposal, not a shipped Xen: the
//! behaviour is this project's reading of the proposal (unverified).

/// How Xen's PMI handler treats an overflowed counter that reads 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmcQuirkFix {
    /// The quirk only on the CPUs it was written for: family 6 models 26
    /// and 46 (Nehalem, Nehalem-EX), as in its first form
    /// (xen-project/xen@3ed6a063d2, 2010) before 75a92f551a widened it to
    /// every family 6.
    OldCpusOnly,
    /// The quirk still writes 1, but Xen intercepts the guest's reads of
    /// that counter and gives it the value it would have had (one less),
    /// until the guest writes the counter.
    InterceptReads,
    /// No write: Xen holds any further PMI until the guest acknowledges the
    /// overflow through GLOBAL_OVF_CTRL (what the quirk's write of 1 was
    /// there to prevent: a PMI storm from a counter left at 0).
    HoldPmi,
}

impl PmcQuirkFix {
    pub const ALL: [PmcQuirkFix; 3] = [
        PmcQuirkFix::OldCpusOnly,
        PmcQuirkFix::InterceptReads,
        PmcQuirkFix::HoldPmi,
    ];

    /// The name model presets and matrices use (`xen-fix-<name>`).
    pub fn name(self) -> &'static str {
        match self {
            PmcQuirkFix::OldCpusOnly => "quirk-old-cpus",
            PmcQuirkFix::InterceptReads => "intercept-reads",
            PmcQuirkFix::HoldPmi => "hold-pmi",
        }
    }

    /// Whether the quirk applies to an Intel CPU of this CPUID.1:EAX
    /// signature under this fix.
    pub fn quirks(fix: Option<PmcQuirkFix>, signature: u32) -> bool {
        match fix {
            None | Some(PmcQuirkFix::InterceptReads) => true,
            Some(PmcQuirkFix::OldCpusOnly) => {
                let (family, model) = (
                    (signature >> 8) & 0xf,
                    ((signature >> 4) & 0xf) | ((signature >> 12) & 0xf0),
                );
                family == 6 && matches!(model, 26 | 46)
            }
            Some(PmcQuirkFix::HoldPmi) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nehalem_is_quirked_once_the_quirk_is_restricted() {
        // Nehalem (06_1AH), Nehalem-EX (06_2EH), Skylake client (06_5EH).
        let (nehalem, nehalem_ex, skylake) = (0x0001_06a5, 0x0002_06e6, 0x0005_06e3);
        let old = Some(PmcQuirkFix::OldCpusOnly);
        assert!(PmcQuirkFix::quirks(old, nehalem) && PmcQuirkFix::quirks(old, nehalem_ex));
        assert!(!PmcQuirkFix::quirks(old, skylake));
        assert!(PmcQuirkFix::quirks(None, skylake));
        assert!(!PmcQuirkFix::quirks(Some(PmcQuirkFix::HoldPmi), nehalem));
    }
}
