//! `bench impair`'s TUN scenarios: the proxy's forwarding and delay
//! measurements, through `impair --tun`'s path instead (two private network
//! namespaces, a TUN device in each, the relay between them). Root only:
//! without it they are reported as not run.
//!
//! The source sits at the first end and the sink at the second, so every
//! datagram crosses the kernel twice more than through the UDP proxy (out of
//! one TUN device, into the other) and the relay once.

use std::io;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::impair::{DATAGRAM, Row, blast, count_arrivals, delay_rows, probe_one_way};
use crate::impair::tun::End;
use crate::impair::{ImpairedPath, ImpairmentConfig, TunConfig};

/// A path impaired by `config` both ways, between two namespaces of its own.
fn path(config: ImpairmentConfig, realtime: bool) -> io::Result<ImpairedPath> {
    let config = TunConfig { realtime, ..TunConfig::private(config, config, 1) };
    ImpairedPath::start(config).map_err(io::Error::other)
}

/// A UDP socket on `end`'s address.
fn socket_at(end: &End) -> io::Result<UdpSocket> {
    end.open(|| UdpSocket::bind((end.v4(), 0)))
}

/// Datagrams per second from a full-speed source at the first end to a sink at the second.
fn forwarding_rate(duration: Duration) -> io::Result<f64> {
    let path = path(ImpairmentConfig::default(), false)?;
    let [first, second] = path.ends();
    let (source, sink) = (socket_at(first)?, socket_at(second)?);
    let sink_addr = sink.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let counter = count_arrivals(sink, stop.clone(), Duration::from_millis(200));
    blast(source, sink_addr, duration, None)?;
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let (datagrams, _, seconds) = counter.join().map_err(|_| io::Error::other("sink panicked"))?;
    path.stop().map_err(io::Error::from)?;
    Ok(datagrams as f64 / seconds.max(1e-9))
}

/// One-way times of probes 1 ms apart across a path delayed by `delay`, sorted.
fn one_way_times(delay: Duration, duration: Duration, realtime: bool) -> io::Result<Vec<Duration>> {
    let path = path(ImpairmentConfig { delay, ..ImpairmentConfig::default() }, realtime)?;
    let [first, second] = path.ends();
    let (source, sink) = (socket_at(first)?, socket_at(second)?);
    let target = sink.local_addr()?;
    let times = probe_one_way(sink, source, target, delay, duration, realtime)?;
    path.stop().map_err(io::Error::from)?;
    Ok(times)
}

/// Runs the TUN scenarios `wants` asks for; `proxy_forward` is the UDP
/// proxy's forwarding rate measured just before, when it was.
pub(super) fn run(
    duration: Duration,
    realtime: bool,
    wants: impl Fn(&str) -> bool,
    proxy_forward: Option<f64>,
    row: &mut impl FnMut(Row) -> io::Result<()>,
) -> io::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        for scenario in ["tun-forward", "tun-delay"].into_iter().filter(|s| wants(s)) {
            row(Row {
                scenario,
                setting: "impair --tun".to_owned(),
                measured: f64::NAN,
                unit: "",
                reference: None,
                verdict: "not run: needs root (network namespaces and TUN devices)".to_owned(),
            })?;
        }
        return Ok(());
    }
    if wants("tun-forward") {
        let tun = forwarding_rate(duration)?;
        let beside = proxy_forward
            .map_or(String::new(), |p| format!("; {:.0}% of the UDP proxy's {p:.0}/s", tun / p * 100.0));
        row(Row {
            scenario: "tun-forward",
            setting: format!("{DATAGRAM}-byte datagrams"),
            measured: tun,
            unit: "packets/s",
            reference: proxy_forward,
            verdict: format!("through two TUN devices and the relay{beside}"),
        })?;
    }
    if wants("tun-delay") {
        delay_rows("tun-delay", duration, row, |delay, duration| one_way_times(delay, duration, realtime))?;
    }
    Ok(())
}
