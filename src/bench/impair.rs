//! `bench impair`: how fast and how exact the impairment proxy is.
//!
//! Each scenario runs the real proxy ([`crate::impair::Proxy::spawn`], its own thread and
//! sockets) between a source and a sink on loopback, and the same flow without
//! the proxy where a ratio is wanted:
//! - forwarding: 1400-byte datagrams as fast as the source can send them;
//! - window: a windowed request/response flow, through the proxy vs direct;
//! - delay: probes 1 ms apart with a set delay; the error is the one-way time
//!   minus the delay minus the proxy's own one-way time without delay. The
//!   sink reads kernel receive timestamps, so the error is the proxy's, not
//!   the sink's wake-up;
//! - rate: a flow offered at 1.5x a rate limit; the sink's measured rate vs the limit;
//! - tun-forward, tun-delay: forwarding and delay again, through `impair
//!   --tun`'s path between two namespaces instead of the proxy (root only,
//!   see `src/bench/impair_tun.rs`).
//!
//! Source and sink are plain threads with blocking sockets: the bench must
//! not be the bottleneck it measures.

use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::with_proxy;
use crate::batch::{BatchSocket, RecvBuffers};
use crate::impair::{ImpairmentConfig, RateLimit};
use crate::stats::percentile;
use crate::units::Rate;

/// The datagram size of the forwarding, window and rate scenarios.
pub const DATAGRAM: usize = 1400;

/// One measured row.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Which scenario.
    pub scenario: &'static str,
    /// Its setting, such as `delay 10ms`.
    pub setting: String,
    /// What was measured, in `unit`.
    pub measured: f64,
    /// The unit of `measured`.
    pub unit: &'static str,
    /// A second figure where one is wanted (the direct path's, a p99).
    pub reference: Option<f64>,
    /// What the figures mean against the target.
    pub verdict: String,
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<10} {:<26} {:>12.1} {:<14} {}",
            self.scenario, self.setting, self.measured, self.unit, self.verdict
        )
    }
}

fn loopback() -> io::Result<UdpSocket> {
    UdpSocket::bind("127.0.0.1:0")
}

/// A sink that counts what arrives until `stop`, skipping the first `warmup`:
/// returns (datagrams, bytes, seconds counted).
pub(super) fn count_arrivals(
    sink: UdpSocket,
    stop: Arc<AtomicBool>,
    warmup: Duration,
) -> thread::JoinHandle<(u64, u64, f64)> {
    thread::spawn(move || {
        let _ = sink.set_read_timeout(Some(Duration::from_millis(50)));
        let mut buf = vec![0u8; 65_536];
        let (mut datagrams, mut bytes) = (0u64, 0u64);
        let mut counting_since = None;
        let mut last = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let Ok(len) = sink.recv(&mut buf) else { continue };
            let now = Instant::now();
            let since = *counting_since.get_or_insert(now + warmup);
            if now >= since {
                datagrams += 1;
                bytes += len as u64;
                last = now;
            }
        }
        let seconds = counting_since.map_or(0.0, |since| last.saturating_duration_since(since).as_secs_f64());
        (datagrams, bytes, seconds)
    })
}

/// Sends `DATAGRAM`-byte datagrams from `source` to `target` for
/// `duration`, at most at `pace` bytes per second (as fast as possible
/// without one).
pub(super) fn blast(
    source: UdpSocket,
    target: SocketAddr,
    duration: Duration,
    pace: Option<f64>,
) -> io::Result<()> {
    source.connect(target)?;
    let payload = vec![0x5a; DATAGRAM];
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < duration {
        if let Some(rate) = pace {
            // Sleep when ahead (in 1 ms steps, coarse but cheap): spinning
            // would take a core from the proxy being measured.
            let due = Duration::from_secs_f64(sent as f64 / rate);
            let ahead = due.saturating_sub(started.elapsed());
            if !ahead.is_zero() {
                thread::sleep(ahead.max(Duration::from_millis(1)));
                continue;
            }
        }
        // The kernel drops what the receiver has no room for; that is the point.
        if source.send(&payload).is_ok() {
            sent += DATAGRAM as u64;
        }
    }
    Ok(())
}

/// Throughput is measured with the proxy in the normal scheduling class even
/// under `--realtime`: on two cores a real-time proxy preempts the endpoints
/// it shares them with at every datagram, and forwarded 25-50% less in
/// side-by-side runs.
const THROUGHPUT_REALTIME: bool = false;

/// Datagrams per second the sink got from a full-speed source, through
/// `via` (the proxy) or direct when `via` is `None`.
fn forwarding_rate(duration: Duration, via: Option<ImpairmentConfig>) -> io::Result<f64> {
    let sink = loopback()?;
    let sink_addr = sink.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let counter = count_arrivals(sink, stop.clone(), Duration::from_millis(200));
    match via {
        Some(config) => with_proxy(sink_addr, (config, config), THROUGHPUT_REALTIME, |proxy| {
            blast(loopback()?, proxy, duration, None)
        })?,
        None => blast(loopback()?, sink_addr, duration, None)?,
    }
    thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let (datagrams, _, seconds) = counter.join().map_err(|_| io::Error::other("sink panicked"))?;
    Ok(datagrams as f64 / seconds.max(1e-9))
}

/// An echo server thread on loopback, until `stop`.
fn echo_server(stop: Arc<AtomicBool>) -> io::Result<(SocketAddr, thread::JoinHandle<()>)> {
    let socket = loopback()?;
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    let addr = socket.local_addr()?;
    let handle = thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((len, peer)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(&buf[..len], peer);
            }
        }
    });
    Ok((addr, handle))
}

/// Round trips per second of a flow keeping `window` datagrams in flight.
fn windowed_rate(target: SocketAddr, window: usize, duration: Duration) -> io::Result<f64> {
    let socket = loopback()?;
    socket.connect(target)?;
    socket.set_read_timeout(Some(Duration::from_millis(20)))?;
    let payload = vec![0x5a; DATAGRAM];
    let mut buf = vec![0u8; 65_536];
    for _ in 0..window {
        socket.send(&payload)?;
    }
    let started = Instant::now();
    let mut completed = 0u64;
    while started.elapsed() < duration {
        match socket.recv(&mut buf) {
            Ok(_) => {
                completed += 1;
                socket.send(&payload)?;
            }
            // A datagram the kernel dropped: put one back in flight.
            Err(_) => {
                socket.send(&payload)?;
            }
        }
    }
    Ok(completed as f64 / started.elapsed().as_secs_f64())
}

/// The rows of a delay scenario: the error of one-way times that `measure`
/// takes with 1, 10 and 100 ms added, against its times with none added.
/// `measure(delay, duration)` probes a path delayed by `delay` for `duration`.
pub(super) fn delay_rows(
    scenario: &'static str,
    duration: Duration,
    row: &mut impl FnMut(Row) -> io::Result<()>,
    mut measure: impl FnMut(Duration, Duration) -> io::Result<Vec<Duration>>,
) -> io::Result<()> {
    let base = measure(Duration::ZERO, duration)?;
    let base_median = percentile(&base, 0.5);
    for delay_ms in [1, 10, 100] {
        let delay = Duration::from_millis(delay_ms);
        let times = measure(delay, duration.max(Duration::from_millis(500)))?;
        let error = |q| percentile(&times, q).saturating_sub(delay + base_median).as_secs_f64() * 1e6;
        let (median, p99) = (error(0.5), error(0.99));
        row(Row {
            scenario,
            setting: format!("delay {delay_ms}ms"),
            measured: median,
            unit: "µs error (p50)",
            reference: Some(p99),
            verdict: format!(
                "p99 {p99:.0} µs; targets p50 <= 100, p99 <= 500 (base one-way {:.0} µs)",
                base_median.as_secs_f64() * 1e6
            ),
        })?;
    }
    Ok(())
}

/// One-way times of probes sent every millisecond for `duration` through
/// `config`, sorted. The sink reads the kernel's receive timestamps, so how
/// late it looks at its socket does not count.
fn one_way_times(config: ImpairmentConfig, duration: Duration, realtime: bool) -> io::Result<Vec<Duration>> {
    let sink = loopback()?;
    let sink_addr = sink.local_addr()?;
    with_proxy(sink_addr, (config, config), realtime, |proxy| {
        probe_one_way(sink, loopback()?, proxy, config.delay, duration, realtime)
    })
}

/// One-way times, sorted, of probes sent every millisecond for `duration`
/// from `source` to `target`, a path (delayed by `delay`) that ends at
/// `sink`.
pub(super) fn probe_one_way(
    sink: UdpSocket,
    source: UdpSocket,
    target: SocketAddr,
    delay: Duration,
    duration: Duration,
    realtime: bool,
) -> io::Result<Vec<Duration>> {
    let sink = BatchSocket::new(sink)?.with_kernel_times()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_sink = stop.clone();
    let receiver = thread::spawn(move || {
        let mut times = Vec::new();
        let mut bufs = RecvBuffers::default();
        while !stop_sink.load(Ordering::Relaxed) {
            let got = sink.recv(&mut bufs, |r| {
                let sent = r.data.get(..16).and_then(|b| b.try_into().ok()).map(u128::from_be_bytes);
                if let (Some(sent), Some(received)) = (sent, r.kernel_time) {
                    times.push(Duration::from_nanos(received.as_nanos().saturating_sub(sent) as u64));
                }
            });
            if !got.is_ok_and(|n| n == crate::batch::SLOTS) {
                thread::sleep(Duration::from_millis(1));
            }
        }
        times
    });
    // The source stamps each probe just before sending it; a preemption
    // between the two would count against the path.
    let sent = thread::scope(|scope| {
        scope
            .spawn(|| {
                if realtime && let Err(e) = crate::poll::make_realtime() {
                    tracing::warn!(error = %e, "the probe source cannot run in real time");
                }
                source.connect(target)?;
                let started = Instant::now();
                for probe in 1.. {
                    let due = Duration::from_millis(probe);
                    if due > duration {
                        break;
                    }
                    thread::sleep(due.saturating_sub(started.elapsed()));
                    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                    source.send(&now.as_nanos().to_be_bytes())?;
                }
                thread::sleep(delay + Duration::from_millis(20));
                Ok::<_, io::Error>(())
            })
            .join()
    });
    stop.store(true, Ordering::Relaxed);
    sent.map_err(|_| io::Error::other("the probe source panicked"))??;
    let mut times = receiver.join().map_err(|_| io::Error::other("sink panicked"))?;
    times.sort_unstable();
    Ok(times)
}

/// Which scenarios to run, and for how long each measurement lasts.
#[derive(Clone, Debug)]
pub struct ImpairBench {
    /// Length of each measurement.
    pub duration: Duration,
    /// Run these scenarios: forward, window, delay, rate, tun-forward, tun-delay.
    pub scenarios: Vec<String>,
    /// Run the proxy in the real-time scheduling class where timing is
    /// measured (delay and rate).
    pub realtime: bool,
}

impl ImpairBench {
    fn wants(&self, scenario: &str) -> bool {
        self.scenarios.is_empty() || self.scenarios.iter().any(|s| s == scenario)
    }

    /// Runs the chosen scenarios, calling `row` with each result as it comes.
    ///
    /// # Errors
    /// When a socket or thread cannot be set up.
    pub fn run(&self, mut row: impl FnMut(Row) -> io::Result<()>) -> io::Result<()> {
        let d = self.duration;
        let transparent = ImpairmentConfig::default();
        let mut proxy_forward = None;
        if self.wants("forward") {
            let direct = forwarding_rate(d, None)?;
            let proxied = forwarding_rate(d, Some(transparent))?;
            proxy_forward = Some(proxied);
            row(Row {
                scenario: "forward",
                setting: format!("{DATAGRAM}-byte datagrams"),
                measured: proxied,
                unit: "datagrams/s",
                reference: Some(direct),
                verdict: format!("direct {direct:.0}/s; target >= 150000/s through the proxy"),
            })?;
        }
        if self.wants("window") {
            let stop = Arc::new(AtomicBool::new(false));
            let (server, handle) = echo_server(stop.clone())?;
            for window in [8, 64] {
                let direct = windowed_rate(server, window, d)?;
                let proxied = with_proxy(server, (transparent, transparent), THROUGHPUT_REALTIME, |proxy| {
                    windowed_rate(proxy, window, d)
                })?;
                row(Row {
                    scenario: "window",
                    setting: format!("window {window}"),
                    measured: proxied,
                    unit: "round trips/s",
                    reference: Some(direct),
                    verdict: format!(
                        "{:.0}% of direct {direct:.0}/s; target >= 60%",
                        proxied / direct * 100.0
                    ),
                })?;
            }
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
        if self.wants("delay") {
            delay_rows("delay", d, &mut row, |delay, duration| {
                one_way_times(ImpairmentConfig { delay, ..transparent }, duration, self.realtime)
            })?;
        }
        if self.wants("rate") {
            for mb in [1.0, 10.0, 100.0] {
                let rate = Rate::from_bytes_per_sec(mb * 1e6).ok_or_else(|| io::Error::other("bad rate"))?;
                let config =
                    ImpairmentConfig { rate_limit: Some(RateLimit { rate, queue: 1 << 20 }), ..transparent };
                let measured = limited_rate(config, d, mb * 1.5e6, self.realtime)?;
                let error = (measured / (mb * 1e6) - 1.0) * 100.0;
                row(Row {
                    scenario: "rate",
                    setting: format!("rate {rate}"),
                    measured: measured / 1e6,
                    unit: "MB/s",
                    reference: Some(error),
                    verdict: format!("{error:+.2}% off; target within ±2%"),
                })?;
            }
        }
        super::impair_tun::run(d, self.realtime, |s| self.wants(s), proxy_forward, &mut row)
    }
}

/// Bytes per second the sink got from a flow offered at `offered` bytes/s
/// through a proxy impaired by `config`.
fn limited_rate(
    config: ImpairmentConfig,
    duration: Duration,
    offered: f64,
    realtime: bool,
) -> io::Result<f64> {
    let sink = loopback()?;
    let sink_addr = sink.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let counter = count_arrivals(sink, stop.clone(), Duration::from_millis(300));
    with_proxy(sink_addr, (config, config), realtime, |proxy| {
        blast(loopback()?, proxy, duration, Some(offered))
    })?;
    stop.store(true, Ordering::Relaxed);
    let (_, bytes, seconds) = counter.join().map_err(|_| io::Error::other("sink panicked"))?;
    Ok(bytes as f64 / seconds.max(1e-9))
}
