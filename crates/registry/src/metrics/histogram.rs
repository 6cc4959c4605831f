//! A Prometheus histogram: cumulative buckets, a sum and a count.

/// Request durations (seconds): API calls take milliseconds, blob
/// transfers of big models minutes to hours.
pub const REQUEST_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    1800.0, 3600.0, 21600.0,
];

/// Whole blob transfers (seconds): 1 s to 6 h.
pub const TRANSFER_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0,
];

/// Metadata queries (seconds): a lookup takes well under a millisecond
/// on SQLite, a transaction over the network a few.
pub const QUERY_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 10.0,
];

/// Garbage collection runs (seconds): a second to hours.
pub const GC_BUCKETS: &[f64] = &[
    0.1, 1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0,
];

/// One histogram's values (guarded by the caller's lock).
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations at or below each bound (not cumulative; summed when
    /// written out).
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    /// Records one observation.
    pub fn observe(&mut self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// (upper bound, cumulative count) per bucket, then +Inf.
    pub fn cumulative(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        let mut running = 0;
        self.bounds
            .iter()
            .zip(&self.counts)
            .map(move |(b, c)| {
                running += c;
                (format_bound(*b), running)
            })
            .chain(std::iter::once(("+Inf".to_string(), self.count)))
    }

    /// Sum of observations.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count
    }
}

fn format_bound(b: f64) -> String {
    // 1.0 -> "1", 0.005 -> "0.005": as client libraries write them.
    let s = format!("{b}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_with_inf() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        for v in [0.05, 0.5, 0.7, 3.0] {
            h.observe(v);
        }
        let got: Vec<(String, u64)> = h.cumulative().collect();
        assert_eq!(
            got,
            vec![("0.1".into(), 1), ("1".into(), 3), ("+Inf".into(), 4)]
        );
        assert_eq!(h.count(), 4);
        assert!((h.sum() - 4.25).abs() < 1e-9);
    }
}
