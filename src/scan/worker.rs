//! What the reactors share: the plan of a scan, a group of hosts, how work
//! is split between reactors, and how they report back.

use std::net::{IpAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;

use super::report::{PortReport, PortState, Reason, StateCounts};
use super::schedule::{Probe, ScheduleConfig};
use super::{Progress, ScanConfig, TcpMethod, ports, syn, tcp, udp};
use crate::net::Transport;

/// The parts of a [`ScanConfig`] the reactors need, with the window sized.
#[derive(Debug)]
pub(super) struct Plan {
    pub tcp_ports: Vec<u16>,
    pub udp_ports: Vec<u16>,
    pub syn: bool,
    /// TCP reactors (connect or SYN), one per core unless asked otherwise.
    pub connect_threads: usize,
    /// Per TCP reactor.
    pub schedule: ScheduleConfig,
    /// For the UDP reactor, with `udp_window`.
    pub single: ScheduleConfig,
    /// The UDP reactor's window: no file descriptor per probe, so not bound by their limit.
    pub udp_window: usize,
    pub banner: Option<Duration>,
    pub report_all: bool,
}

impl Plan {
    pub fn new(config: &ScanConfig, window: usize) -> Plan {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let connect_threads = config.threads.unwrap_or(cores).clamp(1, 64);
        let syn = config.tcp_method == TcpMethod::Syn;
        let tcp_ports: Vec<u16> = config.ports.tcp.iter().collect();
        let udp_ports: Vec<u16> = config.ports.udp.iter().collect();
        // The rate is shared by every reactor that runs.
        let reactors =
            if tcp_ports.is_empty() { 0 } else { connect_threads } + usize::from(!udp_ports.is_empty());
        let rate = config.rate.map(|r| r / reactors.max(1) as f64);
        let per_thread = (window / connect_threads).max(1);
        let base = ScheduleConfig { timeout: config.timeout, retries: config.retries, window, rate };
        Plan {
            tcp_ports,
            udp_ports,
            syn,
            connect_threads,
            schedule: ScheduleConfig { window: per_thread, ..base },
            single: base,
            udp_window: config.max_inflight.unwrap_or(UDP_WINDOW).max(1),
            banner: config.banner,
            report_all: config.report_all,
        }
    }

    /// Ports scanned per host, over both transports.
    pub fn ports_per_host(&self) -> u64 {
        (self.tcp_ports.len() + self.udp_ports.len()) as u64
    }
}

/// The default UDP window: a datagram per probe and no socket, so the window
/// is bounded by how many answers the receive buffer holds, not by descriptors.
const UDP_WINDOW: usize = 16_384;

/// Hosts scanned together, each with the name it came from.
#[derive(Debug, Default)]
pub(super) struct Group {
    pub ips: Vec<IpAddr>,
    pub names: Vec<Option<Arc<str>>>,
}

impl Group {
    pub fn push(&mut self, ip: IpAddr, name: Option<Arc<str>>) {
        self.ips.push(ip);
        self.names.push(name);
    }

    pub fn len(&self) -> usize {
        self.ips.len()
    }

    pub fn ip(&self, host: u32) -> IpAddr {
        self.ips[host as usize]
    }
}

/// What reactors send to the collecting task.
#[derive(Debug)]
pub(super) enum Found {
    /// A verdict to report, with the connected socket of an open TCP port.
    Port { report: PortReport, stream: Option<TcpStream> },
    /// Verdicts counted but not reported one by one, and probe counts.
    Counts { counts: StateCounts, probes: u64, retries: u64 },
    /// A host name that did not resolve.
    Unresolved { host: String, error: String },
}

/// The `(host, port)` pairs reactor `k` of `n` probes: port by port across
/// the hosts, every `n`-th pair, so reactors share the work evenly and every
/// host gets probes at the same pace.
pub(super) fn share(
    hosts: usize,
    ports: &[u16],
    k: usize,
    n: usize,
) -> impl Iterator<Item = (u32, u16)> + '_ {
    (k..hosts * ports.len()).step_by(n.max(1)).map(move |i| ((i % hosts) as u32, ports[i / hosts]))
}

/// Runs every reactor of the plan over `group` and waits for them.
///
/// # Errors
/// The first reactor that could not be set up.
pub(super) fn scan_group(
    group: &Group,
    plan: &Plan,
    progress: &Progress,
    tx: &mpsc::Sender<Found>,
) -> std::io::Result<()> {
    std::thread::scope(|scope| {
        let mut reactors = Vec::new();
        if !plan.tcp_ports.is_empty() {
            for k in 0..plan.connect_threads {
                let reporter = Reporter::new(tx, group, Transport::Tcp, plan, progress);
                let scan = if plan.syn { syn::scan } else { tcp::scan };
                reactors.push(scope.spawn(move || scan(group, plan, k, reporter)));
            }
        }
        if !plan.udp_ports.is_empty() {
            reactors.push(
                scope.spawn(|| {
                    udp::scan(group, plan, Reporter::new(tx, group, Transport::Udp, plan, progress))
                }),
            );
        }
        reactors.into_iter().try_for_each(|r| {
            r.join().unwrap_or_else(|_| Err(std::io::Error::other("a scan reactor panicked")))
        })
    })
}

/// The collecting task is gone (the scan was stopped): the reactor ends.
#[derive(Debug)]
pub(super) struct Stopped;

/// A reactor's way to report verdicts: reported ones go to the collecting
/// task, the rest are counted and sent once at the end.
pub(super) struct Reporter<'a> {
    tx: &'a mpsc::Sender<Found>,
    group: &'a Group,
    transport: Transport,
    report_all: bool,
    progress: &'a Progress,
    counts: StateCounts,
    unsent_progress: u64,
    pub probes: u64,
    pub retries: u64,
}

/// Progress is published in steps of this many verdicts, to keep reactors
/// off each other's cache lines.
const PROGRESS_STEP: u64 = 256;

impl<'a> Reporter<'a> {
    pub fn new(
        tx: &'a mpsc::Sender<Found>,
        group: &'a Group,
        transport: Transport,
        plan: &Plan,
        progress: &'a Progress,
    ) -> Self {
        Reporter {
            tx,
            group,
            transport,
            report_all: plan.report_all,
            progress,
            counts: StateCounts::default(),
            unsent_progress: 0,
            probes: 0,
            retries: 0,
        }
    }

    /// Records the verdict on `probe`; `stream` is an open port's connection.
    pub fn verdict(
        &mut self,
        probe: Probe,
        state: PortState,
        reason: Reason,
        stream: Option<TcpStream>,
    ) -> Result<(), Stopped> {
        self.unsent_progress += 1;
        if self.unsent_progress >= PROGRESS_STEP {
            self.flush_progress();
        }
        if state != PortState::Open && !self.report_all {
            self.counts.add(state, 1);
            return if self.progress.stopped() { Err(Stopped) } else { Ok(()) };
        }
        let report = PortReport {
            ip: self.group.ip(probe.host),
            host: self.group.names[probe.host as usize].clone(),
            port: probe.port,
            transport: self.transport,
            state,
            reason,
            service: ports::service_name(probe.port, self.transport),
            banner: None,
        };
        self.tx.blocking_send(Found::Port { report, stream }).map_err(|_| Stopped)
    }

    /// True when the scan was asked to stop.
    pub fn stopped(&self) -> bool {
        self.progress.stopped()
    }

    fn flush_progress(&mut self) {
        self.progress.done.fetch_add(self.unsent_progress, Ordering::Relaxed);
        self.unsent_progress = 0;
    }
}

impl Drop for Reporter<'_> {
    fn drop(&mut self) {
        self.flush_progress();
        let counts = Found::Counts { counts: self.counts, probes: self.probes, retries: self.retries };
        // The collector may be gone already; then no one wants the counts.
        let _ = self.tx.blocking_send(counts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reactors_share_every_pair_once_port_by_port() {
        let ports = [10, 20, 30];
        let all: Vec<_> = (0..2).flat_map(|k| share(2, &ports, k, 2)).collect();
        assert_eq!(all, [(0, 10), (0, 20), (0, 30), (1, 10), (1, 20), (1, 30)]);
        let one: Vec<_> = share(3, &ports[..1], 0, 1).collect();
        assert_eq!(one, [(0, 10), (1, 10), (2, 10)], "hosts take turns");
    }
}
