//! Small summaries of a list of measurements.

use std::time::Duration;

/// The median of `values` (the mean of the two middle ones for an even count).
pub fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

/// The largest of `values` (zero for none).
pub fn max(values: &[Duration]) -> Duration {
    values.iter().copied().max().unwrap_or_default()
}

/// A duration in seconds with two decimals, e.g. `1.25 s`.
pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Count, extremes and percentiles of a list of measurements (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    /// The summary of `values` (all zero for none).
    pub fn of(values: &[f64]) -> Summary {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Summary {
            count: sorted.len(),
            min: sorted.first().copied().unwrap_or_default(),
            p50: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            p99: percentile(&sorted, 99.0),
            max: sorted.last().copied().unwrap_or_default(),
        }
    }
}

/// The `p`-th percentile of sorted `values` by the nearest-rank method: the
/// smallest value with at least `p`% of the values at or below it.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// How many of `values` fall in each bucket between increasing `bounds` (a value
/// equal to a bound counts in the bucket below it), e.g. `≤1: 10, 1–5: 80, >5: 3`.
pub fn histogram(values: &[f64], bounds: &[f64]) -> String {
    let mut counts = vec![0_usize; bounds.len() + 1];
    for v in values {
        let i = bounds.iter().position(|b| v <= b).unwrap_or(bounds.len());
        counts[i] += 1;
    }
    let mut parts = Vec::new();
    for (i, n) in counts.iter().enumerate() {
        let label = match (i.checked_sub(1).map(|j| bounds[j]), bounds.get(i)) {
            (None, Some(hi)) => format!("≤{hi}"),
            (Some(lo), Some(hi)) => format!("{lo}–{hi}"),
            (Some(lo), None) => format!(">{lo}"),
            (None, None) => "all".to_string(),
        };
        parts.push(format!("{label}: {n}"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&ms(&[30, 10, 20])), Duration::from_millis(20));
        assert_eq!(median(&ms(&[40, 10, 30, 20])), Duration::from_millis(25));
        assert_eq!(median(&[]), Duration::ZERO);
    }

    #[test]
    fn max_and_formatting() {
        assert_eq!(max(&ms(&[5, 50, 7])), Duration::from_millis(50));
        assert_eq!(secs(Duration::from_millis(1250)), "1.25 s");
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Summary::of(&values);
        assert_eq!((s.count, s.min, s.max), (100, 1.0, 100.0));
        assert_eq!((s.p50, s.p90, s.p99), (50.0, 90.0, 99.0));
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(Summary::of(&[]).count, 0);
        assert_eq!(
            histogram(&[0.5, 1.0, 3.0, 12.0], &[1.0, 5.0]),
            "≤1: 2, 1–5: 1, >5: 1"
        );
    }
}
