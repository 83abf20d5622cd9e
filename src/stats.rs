//! Latency summaries, the one place percentiles are computed: exact ones
//! over a run's samples (`echo ping`, `udp send`, `bench impair`), and
//! HdrHistogram ones for load generators that record millions; and the
//! shape every JSON record takes.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// A value as a JSON record: its fields plus `"type": kind`, the form of
/// every JSON object socketeer writes (`--json` lines, `impair ctl stats`).
#[derive(Serialize)]
pub struct Tagged<'a, T> {
    /// What kind of record this is.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The record's own fields.
    #[serde(flatten)]
    pub value: &'a T,
}

/// Min, mean, max and 99th percentile of a set of round-trip times.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RttSummary {
    /// The fastest round trip.
    #[serde(serialize_with = "as_millis")]
    pub min: Duration,
    /// The arithmetic mean.
    #[serde(serialize_with = "as_millis")]
    pub avg: Duration,
    /// The slowest round trip.
    #[serde(serialize_with = "as_millis")]
    pub max: Duration,
    /// The nearest-rank 99th percentile: 99% of the samples are at most this.
    #[serde(serialize_with = "as_millis")]
    pub p99: Duration,
}

impl RttSummary {
    /// Summarises `samples`; `None` when there are none.
    pub fn of(samples: &[Duration]) -> Option<RttSummary> {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let (&min, &max) = (sorted.first()?, sorted.last()?);
        let total: Duration = sorted.iter().sum();
        let count = u32::try_from(sorted.len()).unwrap_or(u32::MAX);
        Some(RttSummary { min, avg: total / count, max, p99: percentile(&sorted, 0.99) })
    }
}

impl fmt::Display for RttSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rtt min/avg/max/p99 = {:.3}/{:.3}/{:.3}/{:.3} ms",
            millis(self.min),
            millis(self.avg),
            millis(self.max),
            millis(self.p99)
        )
    }
}

/// The nearest-rank `q` quantile of `sorted` (ascending): the smallest
/// sample with at least a share `q` of the samples at or below it; zero for
/// no samples.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = (sorted.len() as f64 * q).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied().unwrap_or_default()
}

/// Latency percentiles in microseconds, from an HdrHistogram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// The mean.
    pub mean_us: f64,
    /// The median.
    pub p50_us: u64,
    /// The 90th percentile.
    pub p90_us: u64,
    /// The 99th percentile.
    pub p99_us: u64,
    /// The 99.9th percentile.
    pub p999_us: u64,
    /// The slowest.
    pub max_us: u64,
}

impl Latency {
    /// The percentiles of `histogram`, whose values are microseconds.
    pub fn of(histogram: &Histogram<u64>) -> Latency {
        Latency {
            mean_us: histogram.mean(),
            p50_us: histogram.value_at_quantile(0.50),
            p90_us: histogram.value_at_quantile(0.90),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
        }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "latency µs: mean {:.0}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            self.mean_us, self.p50_us, self.p90_us, self.p99_us, self.p999_us, self.max_us
        )
    }
}

/// A histogram for latencies from 1 µs to 60 s at 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    const MAX_US: u64 = 60_000_000;
    Histogram::new_with_bounds(1, MAX_US, 3).expect("constant histogram bounds are valid")
}

/// Records `elapsed` `count` times, clamped into the histogram's range.
pub fn record(histogram: &mut Histogram<u64>, elapsed: Duration, count: u64) {
    let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).clamp(1, histogram.high());
    // Cannot fail: the value was clamped into range.
    let _ = histogram.record_n(us, count);
}

/// A duration in milliseconds, as a float for display and JSON. Whole
/// nanoseconds divided once, so JSON shows `0.557182`, not the
/// `0.5571820000000001` that seconds times a thousand rounds to.
pub fn millis(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}

/// Serializes a duration as fractional milliseconds.
///
/// # Errors
/// Whatever the serializer reports.
pub fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(millis(*d))
}

/// Serializes an optional duration as fractional milliseconds or `null`.
///
/// # Errors
/// Whatever the serializer reports.
pub fn as_opt_millis<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&millis(*d)),
        None => s.serialize_none(),
    }
}

/// The share of `lost` in `total`, in percent (0 when `total` is 0).
pub fn percent(lost: u64, total: u64) -> f64 {
    if total == 0 { 0.0 } else { lost as f64 * 100.0 / total as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_print_as_written() {
        assert_eq!(serde_json::json!(millis(Duration::from_nanos(557_182))).to_string(), "0.557182");
        assert_eq!(millis(Duration::from_secs(2)), 2000.0);
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn summarises_samples() {
        let s = RttSummary::of(&[ms(3), ms(1), ms(2)]).unwrap();
        assert_eq!((s.min, s.avg, s.max, s.p99), (ms(1), ms(2), ms(3), ms(3)));
        assert_eq!(s.to_string(), "rtt min/avg/max/p99 = 1.000/2.000/3.000/3.000 ms");
    }

    #[test]
    fn p99_is_nearest_rank() {
        let samples: Vec<_> = (1..=200).map(ms).collect();
        assert_eq!(RttSummary::of(&samples).unwrap().p99, ms(198));
        assert_eq!(RttSummary::of(&[ms(7)]).unwrap().p99, ms(7));
    }

    #[test]
    fn no_samples_no_summary() {
        assert_eq!(RttSummary::of(&[]), None);
    }

    #[test]
    fn serializes_as_milliseconds() {
        let s = RttSummary::of(&[Duration::from_micros(1500)]).unwrap();
        let json = serde_json::to_value(s).unwrap();
        assert_eq!(json["p99"], 1.5);
    }

    #[test]
    fn percent_handles_zero() {
        assert_eq!(percent(0, 0), 0.0);
        assert_eq!(percent(1, 4), 25.0);
    }
}
