//! What a finite number of trials proves about a rare fault.
//!
//! A pass that saw no lost notification in n boundaries does not prove the
//! loss rate is zero; it bounds it. With 0 failures in n independent trials,
//! the one-sided upper confidence bound on the failure rate at level c is
//! 1 − (1 − c)^(1/n) (exact Clopper–Pearson for zero failures; ≈ 3/n at 95 %,
//! the "rule of three"). The same formula, turned around, sizes a run budget
//! to catch a fault of a given rate with a given probability.

/// The confidence with which passes state their bounds.
pub const CONFIDENCE: f64 = 0.95;

/// Upper bound on a per-trial failure rate after `trials` trials with no failure.
pub fn zero_failure_bound(trials: u64, confidence: f64) -> f64 {
    if trials == 0 {
        return 1.0;
    }
    1.0 - (1.0 - confidence).powf(1.0 / trials as f64)
}

/// Probability that at least one of `trials` trials shows a fault of per-trial `rate`.
pub fn detection_probability(rate: f64, trials: u64) -> f64 {
    if rate >= 1.0 {
        return if trials > 0 { 1.0 } else { 0.0 };
    }
    // 1 − (1 − rate)^trials, computed without losing small rates to rounding.
    -f64::exp_m1(trials as f64 * f64::ln_1p(-rate))
}

/// The fewest trials that catch a fault of per-trial `rate` with probability ≥ `target`.
pub fn trials_to_detect(rate: f64, target: f64) -> u64 {
    assert!(
        (0.0..1.0).contains(&target) && rate > 0.0,
        "rate {rate}, target {target}"
    );
    if rate >= 1.0 {
        return 1;
    }
    let n = (f64::ln_1p(-target) / f64::ln_1p(-rate)).ceil() as u64;
    // Guard the boundary against rounding in the logarithms.
    if detection_probability(rate, n.saturating_sub(1)) >= target {
        n - 1
    } else {
        n
    }
}

/// "0 lost in 100000 ⇒ loss rate < 3.0e-5 at 95 %".
pub fn zero_failure_statement(what: &str, trials: u64, unit: &str) -> String {
    format!(
        "0 {what} in {trials} {unit} ⇒ rate < {:.1e} at {:.0} %",
        zero_failure_bound(trials, CONFIDENCE),
        CONFIDENCE * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_failure_bound_matches_known_values() {
        // 0 in 100 000 ⇒ < 2.9957e-5 at 95 %.
        assert!((zero_failure_bound(100_000, 0.95) - 2.9957e-5).abs() < 1e-8);
        // The rule of three: ≈ 3/n for large n.
        assert!((zero_failure_bound(1_000_000, 0.95) * 1e6 - 2.9957).abs() < 1e-3);
        // One trial: the bound is the confidence itself.
        assert!((zero_failure_bound(1, 0.95) - 0.95).abs() < 1e-12);
        assert_eq!(zero_failure_bound(0, 0.95), 1.0);
    }

    #[test]
    fn detection_probability_is_exact_and_stable_for_small_rates() {
        assert!((detection_probability(0.5, 2) - 0.75).abs() < 1e-12);
        assert!((detection_probability(1e-9, 1000) - 1e-6).abs() < 1e-12);
        assert_eq!(detection_probability(1.0, 3), 1.0);
    }

    #[test]
    fn budgets_are_the_smallest_that_reach_the_target() {
        // A 1 % fault needs 688 trials for 99.9 %: 1 − 0.99^688 = 0.99900…, 0.99^687 leaves 0.99899….
        assert_eq!(trials_to_detect(0.01, 0.999), 688);
        assert!(detection_probability(0.01, 688) >= 0.999);
        assert!(detection_probability(0.01, 687) < 0.999);
        assert_eq!(trials_to_detect(0.5, 0.75), 2);
        assert_eq!(trials_to_detect(1.0, 0.999), 1);
    }

    #[test]
    fn statements_read_as_the_design_says() {
        assert_eq!(
            zero_failure_statement("lost", 100_000, "boundaries"),
            "0 lost in 100000 boundaries ⇒ rate < 3.0e-5 at 95 %"
        );
    }
}
