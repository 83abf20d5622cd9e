//! `bench transfer`: goodput of the three ARQ protocols over loopback,
//! directly and through the impairment proxy, and beside the textbook bounds.
//!
//! Everything runs in this process but over real sockets: a receiving
//! server ([`TransferServer::spawn`]) with its own thread, the proxy with
//! its own ([`crate::impair::Proxy::spawn`]), and the sending driver.
//!
//! The bounds (Stallings' utilisation formulas) take a = one-way delay /
//! time to send one block, and the loss P of DATA blocks (ACKs never lost):
//! - stop-and-wait: U = (1-P) / (1+2a)
//! - Go-Back-N: U = (1-P) / (1+2aP) if W >= 2a+1, else W(1-P) / ((2a+1)(1-P+WP))
//! - selective repeat: U = 1-P if W >= 2a+1, else W(1-P) / (2a+1)
//!
//! and goodput = U x (blocks per second the path carries) x block size. The
//! sweep measures that ceiling and the round trip in the same run, and
//! drops DATA only, as the model assumes.

use std::fmt;
use std::io::{self, Cursor, Read};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::with_proxy;
use crate::impair::{ImpairmentConfig, LossModel, Probability};
use crate::poll::Waker;
use crate::server::Service;
use crate::transfer::driver::{self, ReceiveConfig, SendReport, TransferServer};
use crate::transfer::{Protocol, ReceiverLimits, SenderConfig};

/// One measurement.
#[derive(Clone, Debug, Serialize)]
pub struct TransferRow {
    /// `direct`, `proxy` or `sweep`.
    pub scenario: &'static str,
    /// The protocol.
    pub protocol: Protocol,
    /// Blocks in flight.
    pub window: u32,
    /// Loss of DATA (and, outside the sweep, of ACKs too), in percent.
    pub loss_percent: f64,
    /// Delay added each way, in milliseconds.
    pub delay_ms: f64,
    /// Content bytes moved.
    pub bytes: u64,
    /// Content bytes per second, in MB/s.
    pub goodput_mb_s: f64,
    /// The textbook bound for this point (sweep only), in MB/s.
    pub bound_mb_s: Option<f64>,
    /// Goodput over the reference (0% loss through the proxy; the bound in the sweep).
    pub ratio: Option<f64>,
    /// DATA datagrams resent.
    pub retransmitted: u64,
}

impl fmt::Display for TransferRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<7} {:<17} W={:<5} loss {:>5.1}%  delay {:>4.1} ms  {:>9.2} MB/s",
            self.scenario, self.protocol, self.window, self.loss_percent, self.delay_ms, self.goodput_mb_s
        )?;
        if let Some(bound) = self.bound_mb_s {
            write!(f, "  bound {bound:>9.2} MB/s")?;
        }
        if let Some(ratio) = self.ratio {
            write!(f, "  ratio {ratio:.2}")?;
        }
        write!(f, "  ({} resent)", self.retransmitted)
    }
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct TransferBench {
    /// Content size of the direct and proxy runs.
    pub size: usize,
    /// Block size.
    pub block: u16,
    /// Window of Go-Back-N and selective repeat.
    pub window: u32,
    /// Run the sweep of loss rates against the bounds.
    pub sweep: bool,
    /// The sweep's added delay, each way.
    pub sweep_delay: Duration,
    /// The sweep's window.
    pub sweep_window: u32,
    /// Runs of each direct and proxied measurement; the median is reported.
    pub rounds: usize,
}

/// The sweep's loss rates, in percent.
pub const SWEEP_LOSSES: [f64; 7] = [0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0];

/// Content a sweep point moves: about a second's worth at its bound.
const SWEEP_MIN: usize = 64 << 10;
const SWEEP_MAX: usize = 16 << 20;

struct Bench<'a> {
    config: &'a TransferBench,
    content: Arc<[u8]>,
    receiver: SocketAddr,
}

impl TransferBench {
    /// Runs the measurements, calling `row` with each as it comes.
    ///
    /// # Errors
    /// When a socket, a thread or the temporary directory cannot be set up,
    /// or a transfer fails.
    pub fn run(&self, mut row: impl FnMut(TransferRow) -> io::Result<()>) -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let limits = ReceiverLimits {
            max_window: 1 << 15,
            max_block: u16::MAX,
            peer_timeout: Duration::from_secs(10),
            progress_timeout: crate::transfer::DEFAULT_PROGRESS_TIMEOUT,
            linger: Duration::from_millis(200),
        };
        let config = ReceiveConfig { overwrite: true, ..ReceiveConfig::new(dir.path().to_owned(), limits) };
        let server = TransferServer::new(vec![UdpSocket::bind("127.0.0.1:0")?], config, None)?;
        let receiver =
            server.endpoints().first().map(|e| e.addr).ok_or_else(|| io::Error::other("no socket"))?;
        let running = server.spawn()?;
        let bench = Bench { config: self, content: random_content(self.size), receiver };
        let result = bench.measure(&mut row);
        running.stop().map_err(io::Error::other)?;
        result
    }
}

impl Bench<'_> {
    fn measure(&self, row: &mut impl FnMut(TransferRow) -> io::Result<()>) -> io::Result<()> {
        let c = self.config;
        for protocol in Protocol::ALL {
            let window = window_for(protocol, c.window);
            let report = self.median_of_rounds(|| self.send(self.receiver, protocol, window, c.size))?;
            row(self.row("direct", &report, window, 0.0, Duration::ZERO))?;
        }
        let mut reference = None;
        for loss in [0.0, 1.0, 10.0, 30.0] {
            let lossy = loss_config(loss);
            let window = c.window;
            let report = self.median_of_rounds(|| {
                with_proxy(self.receiver, (lossy, lossy), false, |proxy| {
                    self.send(proxy, Protocol::SelectiveRepeat, window, c.size)
                })
            })?;
            let goodput = report.goodput_bytes_per_sec;
            let base = *reference.get_or_insert(goodput);
            row(TransferRow {
                ratio: Some(goodput / base),
                ..self.row("proxy", &report, window, loss, Duration::ZERO)
            })?;
        }
        if c.sweep {
            self.sweep(row)?;
        }
        Ok(())
    }

    fn sweep(&self, row: &mut impl FnMut(TransferRow) -> io::Result<()>) -> io::Result<()> {
        let c = self.config;
        let delay = ImpairmentConfig { delay: c.sweep_delay, ..ImpairmentConfig::default() };
        // The path's ceiling: blocks per second with no delay, no loss and a large window.
        let ceiling = with_proxy(
            self.receiver,
            (ImpairmentConfig::default(), ImpairmentConfig::default()),
            false,
            |p| self.send(p, Protocol::SelectiveRepeat, 1024, c.size.min(SWEEP_MAX)),
        )?;
        let blocks_per_sec = ceiling.goodput_bytes_per_sec / f64::from(c.block);
        // The round trip with the delay: stop-and-wait's smoothed estimate.
        let probe = with_proxy(self.receiver, (delay, delay), false, |p| {
            self.send(p, Protocol::StopAndWait, 1, SWEEP_MIN)
        })?;
        let rtt = Duration::from_secs_f64(probe.rtt_avg_ms.unwrap_or(0.0) / 1e3);
        let a = rtt.as_secs_f64() / 2.0 * blocks_per_sec;
        for protocol in Protocol::ALL {
            let window = window_for(protocol, c.sweep_window);
            for loss in SWEEP_LOSSES {
                let utilisation = bound(protocol, f64::from(window), a, loss / 100.0);
                let bound_bytes = utilisation * blocks_per_sec * f64::from(c.block);
                let len = (bound_bytes as usize).clamp(SWEEP_MIN, SWEEP_MAX.min(c.size));
                let up = ImpairmentConfig { loss: independent(loss), ..delay };
                let report =
                    with_proxy(self.receiver, (up, delay), false, |p| self.send(p, protocol, window, len))?;
                let bound_mb_s = bound_bytes / 1e6;
                row(TransferRow {
                    bound_mb_s: Some(bound_mb_s),
                    ratio: Some(report.goodput_bytes_per_sec / 1e6 / bound_mb_s),
                    ..self.row("sweep", &report, window, loss, c.sweep_delay)
                })?;
            }
        }
        Ok(())
    }

    /// Runs `measure` once per round and keeps the median goodput: single
    /// runs on a shared machine vary by tens of percent.
    fn median_of_rounds(
        &self,
        mut measure: impl FnMut() -> io::Result<SendReport>,
    ) -> io::Result<SendReport> {
        let mut reports =
            (0..self.config.rounds.max(1)).map(|_| measure()).collect::<io::Result<Vec<_>>>()?;
        reports.sort_by(|a, b| a.goodput_bytes_per_sec.total_cmp(&b.goodput_bytes_per_sec));
        let middle = reports.len() / 2;
        Ok(reports.swap_remove(middle))
    }

    fn send(
        &self,
        target: SocketAddr,
        protocol: Protocol,
        window: u32,
        len: usize,
    ) -> io::Result<SendReport> {
        let config = SenderConfig {
            protocol,
            window,
            block: self.config.block,
            seq_bits: 16,
            session: rand_session(),
            initial_rto: crate::transfer::INITIAL_RTO,
            min_rto: Duration::from_millis(5),
            max_rto: crate::transfer::max_rto(Duration::from_secs(10)),
            peer_timeout: Duration::from_secs(10),
            progress_timeout: crate::transfer::DEFAULT_PROGRESS_TIMEOUT,
            name: "bench.bin".to_owned(),
            size: Some(len as u64),
        };
        let input: Box<dyn Read + Send> = Box::new(Cursor::new(self.content.clone()).take(len as u64));
        driver::send(input, &[target], config, &Waker::new()?, |_| {}).map_err(io::Error::other)
    }

    fn row(
        &self,
        scenario: &'static str,
        report: &SendReport,
        window: u32,
        loss: f64,
        delay: Duration,
    ) -> TransferRow {
        TransferRow {
            scenario,
            protocol: report.protocol,
            window,
            loss_percent: loss,
            delay_ms: delay.as_secs_f64() * 1e3,
            bytes: report.bytes,
            goodput_mb_s: report.goodput_bytes_per_sec / 1e6,
            bound_mb_s: None,
            ratio: None,
            retransmitted: report.stats.retransmitted,
        }
    }
}

/// The utilisation bound of `protocol` with window `w`, a = one-way delay
/// over block time, and DATA loss `p` (see the module documentation).
pub fn bound(protocol: Protocol, w: f64, a: f64, p: f64) -> f64 {
    let pipe = 2.0 * a + 1.0;
    match protocol {
        Protocol::StopAndWait => (1.0 - p) / pipe,
        Protocol::GoBackN if w >= pipe => (1.0 - p) / (1.0 + 2.0 * a * p),
        Protocol::GoBackN => w * (1.0 - p) / (pipe * (1.0 - p + w * p)),
        Protocol::SelectiveRepeat if w >= pipe => 1.0 - p,
        Protocol::SelectiveRepeat => w * (1.0 - p) / pipe,
    }
}

fn window_for(protocol: Protocol, window: u32) -> u32 {
    if protocol == Protocol::StopAndWait { 1 } else { window }
}

fn independent(percent: f64) -> LossModel {
    LossModel::Independent { rate: Probability::from_fraction(percent / 100.0).unwrap_or(Probability::ZERO) }
}

fn loss_config(percent: f64) -> ImpairmentConfig {
    ImpairmentConfig { loss: independent(percent), ..ImpairmentConfig::default() }
}

fn rand_session() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now()) as u32
}

/// Incompressible content: a xorshift stream, so no layer can shortcut it.
fn random_content(len: usize) -> Arc<[u8]> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounds_match_the_textbook() {
        // No delay: a = 0 and every protocol can fill the link, less the loss.
        for protocol in Protocol::ALL {
            assert!((bound(protocol, 8.0, 0.0, 0.1) - 0.9).abs() < 1e-12, "{protocol}");
        }
        // a = 10: stop-and-wait uses 1/21 of the link.
        assert!((bound(Protocol::StopAndWait, 1.0, 10.0, 0.0) - 1.0 / 21.0).abs() < 1e-12);
        // A window smaller than the pipe: W / (2a+1) for selective repeat.
        assert!((bound(Protocol::SelectiveRepeat, 7.0, 10.0, 0.0) - 7.0 / 21.0).abs() < 1e-12);
        // Go-Back-N loses more than selective repeat as loss grows.
        let (gbn, sr) =
            (bound(Protocol::GoBackN, 64.0, 10.0, 0.2), bound(Protocol::SelectiveRepeat, 64.0, 10.0, 0.2));
        assert!((gbn - 0.8 / 5.0).abs() < 1e-12 && (sr - 0.8).abs() < 1e-12);
    }
}
