//! What the reactors share: the plan of a scan, a group of hosts, how work
//! is split between reactors, and how they report back.

use std::net::{IpAddr, SocketAddr, SocketAddrV6, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::report::{HostReason, PortReport, PortState, Reason, StateCounts};
use super::schedule::throttle::SharedThrottle;
use super::schedule::{HostNotes, Mark, Probe, ScheduleConfig, Scheduler};
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
    /// For the UDP reactor.
    pub udp_schedule: ScheduleConfig,
    pub banner: Option<Duration>,
    pub report_all: bool,
}

impl Plan {
    pub fn new(config: &ScanConfig, window: usize) -> Plan {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let tcp_ports: Vec<u16> = config.ports.tcp.iter().collect();
        let udp_ports: Vec<u16> = config.ports.udp.iter().collect();
        // More reactors than ports would have nothing to do.
        let connect_threads = config.threads.unwrap_or(cores).clamp(1, 64).min(tcp_ports.len().max(1));
        let syn = config.tcp_method == TcpMethod::Syn;
        // The rate is shared by every reactor that runs.
        let reactors =
            if tcp_ports.is_empty() { 0 } else { connect_threads } + usize::from(!udp_ports.is_empty());
        let rate = config.rate.map(|r| r / reactors.max(1) as f64);
        let base = ScheduleConfig {
            timeout: config.timeout,
            retries: config.retries,
            window,
            rate,
            min_rate: config.min_rate,
            max_passes: super::schedule::MAX_PASSES,
            host_timeout: config.host_timeout,
            sharers: 1,
        };
        Plan {
            tcp_ports,
            udp_ports,
            syn,
            connect_threads,
            schedule: ScheduleConfig {
                window: (window / connect_threads).max(1),
                sharers: connect_threads,
                ..base
            },
            // A datagram per probe and no socket: bounded by how many answers
            // the receive buffer holds, not by descriptors.
            udp_schedule: ScheduleConfig { window: config.max_inflight.unwrap_or(UDP_WINDOW).max(1), ..base },
            banner: config.banner,
            report_all: config.report_all,
        }
    }

    /// Ports scanned per host, over both transports.
    pub fn ports_per_host(&self) -> u64 {
        (self.tcp_ports.len() + self.udp_ports.len()) as u64
    }
}

/// The default UDP window.
const UDP_WINDOW: usize = 16_384;

/// Hosts scanned together, each with the name it came from.
#[derive(Debug, Default)]
pub(super) struct Group {
    pub ips: Vec<IpAddr>,
    pub names: Vec<Option<Arc<str>>>,
    /// The IPv6 zone (interface index) of each address; 0 for none.
    pub scopes: Vec<u32>,
    /// Why each host is taken to be up.
    pub reasons: Vec<HostReason>,
}

impl Group {
    /// Adds a host not asked whether it is up (yet).
    pub fn push(&mut self, ip: IpAddr, scope: u32, name: Option<Arc<str>>) {
        self.push_discovered(ip, scope, name, HostReason::UserSet);
    }

    /// Adds a host that answered discovery, and how.
    pub fn push_discovered(&mut self, ip: IpAddr, scope: u32, name: Option<Arc<str>>, reason: HostReason) {
        self.ips.push(ip);
        self.scopes.push(scope);
        self.names.push(name);
        self.reasons.push(reason);
    }

    pub fn len(&self) -> usize {
        self.ips.len()
    }

    pub fn ip(&self, host: u32) -> IpAddr {
        self.ips[host as usize]
    }

    /// Where to send a probe of `port` on `host`, with its zone.
    pub fn addr(&self, host: u32, port: u16) -> SocketAddr {
        match self.ip(host) {
            IpAddr::V6(ip) => SocketAddrV6::new(ip, port, 0, self.scopes[host as usize]).into(),
            ip => SocketAddr::new(ip, port),
        }
    }
}

/// One reactor's findings about one host, beyond its open ports (which
/// were reported as they were found).
#[derive(Debug)]
pub(super) struct HostShare {
    pub host: u32,
    pub transport: Transport,
    /// Verdicts other than open.
    pub counts: StateCounts,
    /// Those verdicts one by one, when every port is to be reported.
    pub listed: Vec<(u16, PortState, Reason)>,
    pub notes: HostNotes,
}

/// What reactors send to the collecting task.
#[derive(Debug)]
pub(super) enum Found {
    /// An open port, with its connection (connect scan).
    Port { report: PortReport, stream: Option<TcpStream> },
    /// A reactor is done with the group.
    Done { hosts: Vec<HostShare>, probes: u64, retries: u64 },
}

/// The longest a reactor waits for answers before it looks whether the
/// scan was stopped (a lingering host may otherwise keep it for its whole
/// timeout).
const STOP_CHECK: Duration = Duration::from_millis(100);

/// How long a reactor may wait for answers now: until the scheduler's next
/// deadline (not at all after a full batch of sends: more may be ready to
/// send), never longer than [`STOP_CHECK`].
pub(super) fn poll_wait(scheduler: &Scheduler, full_batch: bool) -> Duration {
    if full_batch {
        return Duration::ZERO;
    }
    scheduler
        .poll_timeout()
        .map_or(STOP_CHECK, |t| t.saturating_duration_since(Instant::now()).min(STOP_CHECK))
}

/// The ports reactor `k` of `n` probes on every host: every `n`-th, so
/// reactors share each host's ports evenly.
pub(super) fn share(ports: &[u16], k: usize, n: usize) -> Arc<[u16]> {
    ports.iter().skip(k).step_by(n.max(1)).copied().collect()
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
    // The reactors probing a host share its throttle: the host's limit counts them all.
    let throttles = |config: &ScheduleConfig| -> Vec<Arc<SharedThrottle>> {
        let now = Instant::now();
        group.ips.iter().map(|_| Arc::new(SharedThrottle::new(now, config.min_rate))).collect()
    };
    std::thread::scope(|scope| {
        let mut reactors = Vec::new();
        if !plan.tcp_ports.is_empty() {
            let shared = throttles(&plan.schedule);
            for k in 0..plan.connect_threads {
                let reporter = Reporter::new(tx, group, Transport::Tcp, plan, progress);
                let scan = if plan.syn { syn::scan } else { tcp::scan };
                let shared = shared.clone();
                reactors.push(scope.spawn(move || scan(group, plan, k, shared, reporter)));
            }
        }
        if !plan.udp_ports.is_empty() {
            let shared = throttles(&plan.udp_schedule);
            let reporter = Reporter::new(tx, group, Transport::Udp, plan, progress);
            reactors.push(scope.spawn(|| udp::scan(group, plan, shared, reporter)));
        }
        reactors.into_iter().try_for_each(|r| {
            r.join().unwrap_or_else(|_| Err(std::io::Error::other("a scan reactor panicked")))
        })
    })
}

/// The collecting task is gone (the scan was stopped): the reactor ends.
#[derive(Debug)]
pub(super) struct Stopped;

/// A reactor's way to report: open ports at once (so banners and
/// confirmations start), everything else when it is done.
pub(super) struct Reporter<'a> {
    tx: &'a mpsc::Sender<Found>,
    group: &'a Group,
    transport: Transport,
    report_all: bool,
    progress: &'a Progress,
    published: u64,
    pub probes: u64,
    pub retries: u64,
}

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
            published: 0,
            probes: 0,
            retries: 0,
        }
    }

    /// Counts a probe about to be sent.
    pub fn sending(&mut self, probe: Probe) {
        self.probes += 1;
        self.retries += u64::from(probe.attempt > 0);
    }

    /// Takes back the count of a probe that could not be sent.
    pub fn unsent(&mut self, probe: Probe) {
        self.probes -= 1;
        self.retries -= u64::from(probe.attempt > 0);
    }

    /// Reports an open port; `stream` is its connection.
    pub fn open(&mut self, probe: Probe, reason: Reason, stream: Option<TcpStream>) -> Result<(), Stopped> {
        let report = PortReport {
            ip: self.group.ip(probe.host),
            host: self.group.names[probe.host as usize].clone(),
            port: probe.port,
            transport: self.transport,
            state: PortState::Open,
            reason,
            service: ports::service_name(probe.port, self.transport),
            banner: None,
        };
        self.tx.blocking_send(Found::Port { report, stream }).map_err(|_| Stopped)
    }

    /// Publishes how many ports have a verdict, for the progress bar.
    pub fn progress(&mut self, concluded: u64) {
        if concluded > self.published {
            self.progress.done.fetch_add(concluded - self.published, Ordering::Relaxed);
            self.published = concluded;
        }
    }

    /// True when the scan was asked to stop.
    pub fn stopped(&self) -> bool {
        self.progress.stopped()
    }

    /// Sends what the scheduler found about each host (apart from the open
    /// ports, sent already); silent ports get `silence`, the transport's
    /// verdict for no answer.
    pub fn finish(mut self, scheduler: &Scheduler, silence: PortState) {
        self.progress(scheduler.concluded());
        let ports = scheduler.ports();
        let hosts = scheduler
            .hosts(Instant::now())
            .enumerate()
            .map(|(host, (marks, notes))| {
                let mut share = HostShare {
                    host: host as u32,
                    transport: self.transport,
                    counts: StateCounts::default(),
                    listed: Vec::new(),
                    notes,
                };
                for (&port, mark) in ports.iter().zip(marks) {
                    let (state, reason) = match *mark {
                        Mark::Answered(PortState::Open, _) | Mark::Unsent | Mark::InFlight => continue,
                        Mark::Answered(state, reason) => (state, reason),
                        Mark::Silent => (silence, Reason::NoResponse),
                    };
                    share.counts.add(state, 1);
                    if self.report_all {
                        share.listed.push((port, state, reason));
                    }
                }
                share
            })
            .collect();
        // The collector may be gone already; then no one wants the results.
        let _ = self.tx.blocking_send(Found::Done { hosts, probes: self.probes, retries: self.retries });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reactors_share_each_hosts_ports_evenly() {
        let ports = [10, 20, 30];
        assert_eq!(&*share(&ports, 0, 2), [10, 30]);
        assert_eq!(&*share(&ports, 1, 2), [20]);
        assert_eq!(&*share(&ports, 0, 1), ports);
    }

    #[test]
    fn an_ipv6_address_keeps_its_zone() {
        let mut group = Group::default();
        group.push("fe80::1".parse().unwrap(), 7, None);
        group.push("127.0.0.1".parse().unwrap(), 0, None);
        assert_eq!(group.addr(0, 22).to_string(), "[fe80::1%7]:22");
        assert_eq!(group.addr(1, 22).to_string(), "127.0.0.1:22");
    }
}
