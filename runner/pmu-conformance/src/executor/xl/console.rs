//! Reading one domU's records out of Xen's console ring (`xl dmesg`).
//!
//! Xen prints what an HVM or PVH guest writes to port 0xE9 as lines
//! `(dN) text` among its own `(XEN)` lines, and flushes a guest's line
//! every [`PIECE`] bytes (guest-boots.md: "split every 199 bytes"), so a
//! longer line arrives as several `(dN)` lines, the last shorter than
//! [`PIECE`]; a line of exactly [`PIECE`] bytes is followed by an empty
//! piece. [`domain_lines`] takes one domain's pieces and rejoins them.
//!
//! `xl dmesg` prints the whole ring each time, and the executor must not
//! clear it (`-c` would wipe a real host's log), so successive snapshots
//! overlap: [`new_from`] finds where a snapshot goes past the one before.

/// The bytes of guest text Xen prints per `(dN)` line before it flushes.
pub const PIECE: usize = 199;

/// The index in `current` of its first line that `previous` did not end
/// with: the longest tail of `previous` that begins `current` was seen
/// already. A ring that wrapped past everything seen shares none, and all
/// of `current` is new.
pub fn new_from(previous: &[String], current: &[String]) -> usize {
    (1..=previous.len().min(current.len()))
        .rev()
        .find(|&k| previous[previous.len() - k..] == current[..k])
        .unwrap_or(0)
}

/// What domain `domid` printed, its pieces rejoined into whole lines; a
/// line still unfinished at the end is kept as it is.
pub fn domain_lines<'a>(domid: u32, lines: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let prefix = format!("(d{domid}) ");
    let mut whole = Vec::new();
    let mut open: Option<String> = None;
    for line in lines {
        let Some(piece) = line
            .strip_prefix(&prefix)
            .or_else(|| (line == prefix.trim_end()).then_some(""))
        else {
            continue;
        };
        let mut text = open.take().unwrap_or_default();
        text.push_str(piece);
        if piece.len() == PIECE {
            open = Some(text);
        } else {
            whole.push(text);
        }
    }
    whole.extend(open);
    whole
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| (*l).to_owned()).collect()
    }

    #[test]
    fn a_snapshot_is_new_past_the_tail_it_shares_with_the_last() {
        let before = strings(&["(XEN) a", "(d1) x", "(d1) y"]);
        let after = strings(&["(XEN) a", "(d1) x", "(d1) y", "(d1) z"]);
        assert_eq!(new_from(&before, &after), 3);
        // The ring dropped its oldest line.
        let wrapped = strings(&["(d1) x", "(d1) y", "(d1) z", "(d1) w"]);
        assert_eq!(new_from(&after, &wrapped), 3);
        // Nothing shared: all new.
        assert_eq!(new_from(&before, &strings(&["(d2) q"])), 0);
        assert_eq!(new_from(&[], &after), 0);
        // Repeated lines: the longest shared tail wins.
        let same = strings(&["(d1) r", "(d1) r"]);
        assert_eq!(new_from(&same, &strings(&["(d1) r", "(d1) r", "(d1) s"])), 2);
    }

    /// Xen's console during xen-tcg-domu's run: the hello domain (d1), whose
    /// CPUID line is split in three, and the plan's domain (d2), 21 records.
    const RECORDED: &str = include_str!("../../../tests/xl/dmesg-hello-and-plan.txt");

    #[test]
    fn a_recorded_console_gives_each_domain_its_whole_records() {
        use crate::kernel_case::Transcript;
        let hello = domain_lines(1, RECORDED.lines());
        let t = Transcript::read(hello.iter().map(String::as_str));
        assert!(t.corrupted.is_empty(), "{:?}", t.corrupted);
        let fields = t.hello.expect("the hello arrived whole");
        let cpuid = fields
            .iter()
            .find(|(k, _)| k == "cpuid")
            .map(|(_, v)| v.as_str())
            .unwrap();
        assert!(
            pmu_kernel_checks::cpuid_leaves::decode(cpuid).is_some_and(|l| l.len() > 8),
            "{cpuid}"
        );
        assert_eq!(t.end, Some(0));
        let plan = domain_lines(2, RECORDED.lines());
        let t = Transcript::read(plan.iter().map(String::as_str));
        assert!(t.corrupted.is_empty(), "{:?}", t.corrupted);
        assert_eq!(t.end, Some(21));
        assert!(t.reported("capabilities/reserved-bits-gp") && t.reported("pmi-delivery/pmi-rearm"));
        // Unjoined, the split lines fail their checks: the rejoining is what reads them.
        let raw: Vec<&str> = RECORDED.lines().filter_map(|l| l.strip_prefix("(d2) ")).collect();
        assert!(!Transcript::read(raw).corrupted.is_empty());
    }

    #[test]
    fn a_domains_pieces_are_rejoined_and_other_domains_left_out() {
        let long = "a".repeat(PIECE);
        let exact = "b".repeat(PIECE);
        let lines = [
            "(XEN) d1: something of Xen's own".to_owned(),
            format!("(d1) {long}"),
            "(d2) another guest".to_owned(),
            "(d1) tail".to_owned(),
            format!("(d1) {exact}"),
            "(d1)".to_owned(),
            "(d1) short".to_owned(),
            "(d12) not d1".to_owned(),
        ];
        let got = domain_lines(1, lines.iter().map(String::as_str));
        assert_eq!(got, [format!("{long}tail"), exact, "short".to_owned()]);
        assert_eq!(domain_lines(2, lines.iter().map(String::as_str)), ["another guest"]);
        // A line cut off at the end is kept, never dropped.
        let cut = [format!("(d3) {long}")];
        assert_eq!(domain_lines(3, cut.iter().map(String::as_str)), [long]);
    }
}
