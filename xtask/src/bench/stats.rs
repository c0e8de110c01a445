//! Percentiles of timing samples, and how they are shown and recorded.

use std::time::Duration;

use serde_json::{Value, json};

/// Samples of one measurement.
#[derive(Debug, Clone)]
pub struct Samples {
    /// As measured: the record keeps this order, so that drift over a run stays visible.
    taken: Vec<Duration>,
    sorted: Vec<Duration>,
}

impl Samples {
    pub fn new(taken: Vec<Duration>) -> Samples {
        let mut sorted = taken.clone();
        sorted.sort();
        Samples { taken, sorted }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Nearest-rank percentile (p in 0..=100): always one of the samples, no interpolation, so
    /// that the printed figure is a time that was actually measured. Zero when empty.
    pub fn pct(&self, p: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = (p / 100.0 * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    pub fn median(&self) -> Duration {
        self.pct(50.0)
    }

    pub fn min(&self) -> Duration {
        self.sorted.first().copied().unwrap_or_default()
    }

    pub fn max(&self) -> Duration {
        self.sorted.last().copied().unwrap_or_default()
    }

    /// Summary and every sample in the order taken, in milliseconds.
    pub fn to_json(&self) -> Value {
        json!({
            "count": self.len(),
            "min_ms": ms_f(self.min()),
            "median_ms": ms_f(self.median()),
            "p90_ms": ms_f(self.pct(90.0)),
            "max_ms": ms_f(self.max()),
            "samples_ms": self.taken.iter().map(|&d| ms_f(d)).collect::<Vec<_>>(),
        })
    }
}

pub fn ms_f(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `12.34`: milliseconds with a precision that suits the magnitude, for table cells.
pub fn ms(d: Duration) -> String {
    let v = ms_f(d);
    if v < 10.0 {
        format!("{v:.3}")
    } else if v < 100.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

/// A signed difference in milliseconds, e.g. the CLI's start-up over the raw request.
pub fn ms_diff(a: Duration, b: Duration) -> String {
    let d = ms_f(a) - ms_f(b);
    format!("{d:+.2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_samples(v: &[u64]) -> Samples {
        Samples::new(v.iter().map(|&m| Duration::from_millis(m)).collect())
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = ms_samples(&[5, 1, 4, 2, 3, 10, 9, 8, 7, 6]);
        assert_eq!(s.min(), Duration::from_millis(1));
        assert_eq!(s.median(), Duration::from_millis(5));
        assert_eq!(s.pct(90.0), Duration::from_millis(9));
        assert_eq!(s.max(), Duration::from_millis(10));
        assert_eq!(s.pct(0.0), Duration::from_millis(1));
        assert_eq!(ms_samples(&[]).median(), Duration::ZERO);
    }

    #[test]
    fn formats() {
        assert_eq!(ms(Duration::from_micros(1234)), "1.234");
        assert_eq!(ms(Duration::from_micros(12346)), "12.35");
        assert_eq!(ms(Duration::from_micros(123456)), "123.5");
        assert_eq!(
            ms_diff(Duration::from_millis(5), Duration::from_millis(2)),
            "+3.00"
        );
    }
}
