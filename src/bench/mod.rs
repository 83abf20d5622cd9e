//! Load generators: they open many connections, drive a server as fast as it
//! answers for a fixed time, and report throughput and latency percentiles:
//! [`echo`] (request/response), [`chat`] (fan-out), [`impair`] (the proxy).

pub mod chat;
pub mod echo;
pub mod impair;
pub mod transfer;

use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::impair::{ImpairmentConfig, Proxy, ProxyConfig};

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
fn latency_histogram() -> Histogram<u64> {
    const MAX_US: u64 = 60_000_000;
    Histogram::new_with_bounds(1, MAX_US, 3).expect("constant histogram bounds are valid")
}

/// Records `elapsed` `count` times, clamped into the histogram's range.
fn record(histogram: &mut Histogram<u64>, elapsed: Duration, count: u64) {
    let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).clamp(1, histogram.high());
    // Cannot fail: the value was clamped into range.
    let _ = histogram.record_n(us, count);
}

/// The seed of the next proxy a benchmark starts. Each proxy gets its own,
/// so repeated rounds see different loss patterns: with one seed for all,
/// every round of a 30%-loss transfer lost the same first HELLOs and paid the
/// same 0.3 s of handshake backoff, and the median measured that one pattern.
/// Counting from 1 keeps a whole benchmark run repeatable.
static NEXT_SEED: AtomicU64 = AtomicU64::new(1);

/// Runs an impairment proxy (`up`, `down`) in front of `upstream` for the
/// duration of `body`, which gets the proxy's address.
pub(crate) fn with_proxy<T>(
    upstream: SocketAddr,
    (up, down): (ImpairmentConfig, ImpairmentConfig),
    realtime: bool,
    body: impl FnOnce(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let proxy = Proxy::new(
        UdpSocket::bind("127.0.0.1:0")?,
        ProxyConfig {
            upstream,
            up,
            down,
            seed: NEXT_SEED.fetch_add(1, Ordering::Relaxed),
            max_datagram: crate::net::MAX_UDP_PAYLOAD,
            max_clients: 16,
            client_idle: Duration::from_secs(60),
            realtime,
        },
    )?;
    let addr = proxy.local_addr()?;
    let running = proxy.spawn()?;
    let result = body(addr);
    running.stop()?;
    result
}
