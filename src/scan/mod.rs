//! `scan`: a TCP connect, TCP SYN and UDP port scanner that is exact on
//! loopback and fast everywhere.
//!
//! | module | role | touches |
//! |---|---|---|
//! | [`ports`], [`crate::services`] | the port syntax and the built-in service table | nothing (pure) |
//! | [`targets`] | target syntax, lazily expanded, with excludes | nothing (pure) |
//! | [`ranking`] | which ports `--top-ports` takes (nmap-services when installed) | reads a file |
//! | [`schedule`] | the probe window, timeouts from the send, retries, pacing, back-off | nothing (sans-IO) |
//! | `tcp`, `udp`, `syn` | one reactor each (a thread with its own epoll), driving a scheduler | sockets |
//! | `discovery` | which hosts are there (our own ARP and NDP on a link; elsewhere TCP and ICMP pings, the kernel's ARP table) | sockets (tokio, raw ICMP, packet sockets) |
//! | `followup` | confirms open ports on this machine, reads banners | sockets (tokio) |
//! | [`report`] | verdicts and the summary | nothing |
//!
//! [`run`] resolves targets a group of hosts at a time, runs one connect
//! reactor per core (and one UDP or SYN reactor) over each group, and hands
//! every verdict to the caller's sink as it arrives. Within a group, probes
//! go port by port across the hosts, so every host gets its share.
//!
//! Correctness on this machine: a connect to a closed port can succeed
//! against itself when the kernel picks the probed port as the source port
//! (TCP simultaneous open); such a connection is reported closed
//! ([`Reason::SelfConnect`]). An open verdict for an address of this machine
//! is confirmed with a second connection before it is reported, so two of
//! our own probes that happen to open each other are not taken for a service.

mod discovery;
mod followup;
pub mod packet;
mod payloads;
pub mod ports;
pub mod ranking;
pub mod report;
mod results;
pub mod schedule;
mod syn;
pub mod targets;
mod tcp;
mod udp;
mod worker;

use std::collections::HashSet;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

pub use ports::{PortSet, PortSpec};
pub use report::{HostReason, HostReport, HostStatus, PortReport, PortState, Reason, StateCounts, Summary};
pub use targets::TargetSpec;

use results::GroupResults;
use targets::{Host, Hosts};
use worker::{Found, Group, Plan};

/// How TCP ports are probed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TcpMethod {
    /// A full `connect()`: needs no privileges.
    #[default]
    Connect,
    /// Raw SYN packets, reading SYN-ACK or RST; needs CAP_NET_RAW and falls
    /// back to [`TcpMethod::Connect`] without it.
    Syn,
}

/// Everything a scan needs to know.
#[derive(Clone, Debug)]
pub struct ScanConfig {
    /// What to scan.
    pub targets: Vec<TargetSpec>,
    /// Addresses (or names, resolved at the start) never to scan.
    pub exclude: Vec<TargetSpec>,
    /// The ports per transport; an empty set skips that transport.
    pub ports: PortSpec,
    /// How TCP ports are probed.
    pub tcp_method: TcpMethod,
    /// How long a probe waits for an answer, counted from its send.
    pub timeout: Duration,
    /// How many times an unanswered probe is sent again.
    pub retries: u8,
    /// The most probes in flight at once; `None` sizes it from the file-descriptor limit.
    pub max_inflight: Option<usize>,
    /// Probes per second at most, over the whole scan.
    pub rate: Option<f64>,
    /// The slowest a host that limits its answers may be probed, per second.
    pub min_rate: Option<f64>,
    /// Give a host up after this long (its results so far are reported).
    pub host_timeout: Option<Duration>,
    /// Connect reactors (threads); `None` means one per core.
    pub threads: Option<usize>,
    /// Read banners of open TCP ports, waiting this long for each.
    pub banner: Option<Duration>,
    /// Report every port's verdict, not only open ones.
    pub report_all: bool,
    /// Find out which hosts are there before scanning their ports (false:
    /// nmap's `-Pn`, every host is scanned).
    pub discover: bool,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            targets: Vec::new(),
            exclude: Vec::new(),
            ports: PortSpec::default(),
            tcp_method: TcpMethod::Connect,
            timeout: Duration::from_secs(1),
            retries: 1,
            max_inflight: None,
            rate: None,
            min_rate: None,
            host_timeout: None,
            threads: None,
            banner: None,
            report_all: false,
            discover: true,
        }
    }
}

/// What a scan reports as it goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A host's results, once its scan is over: every host, up or down.
    Host(HostReport),
    /// A host name that did not resolve; the scan goes on without it.
    Unresolved {
        /// The name.
        host: String,
        /// The resolver's message.
        error: String,
    },
    /// `--syn` is not possible here; the scan uses connect() instead.
    SynUnavailable {
        /// Why (usually a missing CAP_NET_RAW).
        reason: String,
    },
}

/// Counters a caller can watch while the scan runs (for a progress bar), and
/// a switch to stop it.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
    total: AtomicU64,
    stop: AtomicBool,
}

impl Progress {
    /// Ports with a verdict so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Ports known to be scanned so far (grows as hosts are resolved).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Asks the scan to stop soon.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A scan that could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// An exclude names a host that does not resolve.
    #[error("cannot resolve the excluded host '{host}': {detail}")]
    Exclude {
        /// The name.
        host: String,
        /// The resolver's message.
        detail: String,
    },
    /// A reactor could not be set up (epoll, sockets).
    #[error("scanner setup failed: {0}")]
    Setup(#[source] io::Error),
    /// The sink refused an event (stdout closed, say). The error is the
    /// source, not transparent, so callers find it in the chain (a closed
    /// pipe is not a failure).
    #[error("cannot write the results")]
    Sink(#[source] io::Error),
}

/// Hosts resolved and scanned together; probes interleave across them.
const GROUP_HOSTS: usize = 256;

/// Open ports whose banner or confirmation is being read at once.
const FOLLOWUPS: usize = 64;

/// File descriptors kept out of the probe window, for stdio, epoll, the
/// runtime and follow-up connections (a quarter of a small limit).
const RESERVED_FDS: u64 = 256;

/// The default in-flight window over all reactors.
const DEFAULT_WINDOW: usize = 4096;

/// Runs a scan, passing each [`Event`] to `sink` as it happens, and returns
/// the summary. Must be called from within a multi-threaded tokio runtime.
///
/// # Errors
/// [`ScanError`] when the scan cannot start, or `sink` fails.
pub async fn run(
    config: ScanConfig,
    progress: Arc<Progress>,
    mut sink: impl FnMut(Event) -> io::Result<()>,
) -> Result<Summary, ScanError> {
    let started = Instant::now();
    let exclude = resolve_excludes(&config.exclude).await?;
    let mut plan = Plan::new(&config, window_size(&config));
    let mut summary = Summary::default();
    if !plan.tcp_ports.is_empty() {
        if plan.syn
            && let Err(reason) = crate::rawsock::check_raw_access()
        {
            summary.syn_fallback = Some(reason.clone());
            sink(Event::SynUnavailable { reason }).map_err(ScanError::Sink)?;
            plan.syn = false;
        }
        summary.tcp_method = Some(if plan.syn { "syn" } else { "connect" });
    }
    let plan = Arc::new(plan);
    let mut hosts = Hosts::new(&config.targets, &exclude);
    loop {
        let group = next_group(&mut hosts, &mut sink, &mut summary).await?;
        if group.len() == 0 || progress.stopped() {
            break;
        }
        let group = if config.discover {
            let group = discover_hosts(group, config.timeout, &mut sink, &mut summary).await?;
            if group.len() == 0 {
                continue;
            }
            group
        } else {
            group
        };
        progress.total.fetch_add(plan.ports_per_host() * group.len() as u64, Ordering::Relaxed);
        scan_group(group, &plan, &progress, &mut sink, &mut summary).await?;
    }
    summary.partial = progress.stopped();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// The next hosts to scan together, names resolved (those that do not
/// resolve are reported and skipped); empty when there are no more.
async fn next_group(
    hosts: &mut Hosts<'_>,
    sink: &mut impl FnMut(Event) -> io::Result<()>,
    summary: &mut Summary,
) -> Result<Group, ScanError> {
    let mut group = Group::default();
    while group.len() < GROUP_HOSTS {
        match hosts.next() {
            Some(Host::Addr(ip)) => group.push(ip, 0, None),
            Some(Host::Scoped { ip, zone }) => match zone_index(&zone) {
                Some(scope) if !hosts.is_excluded(IpAddr::V6(ip)) => group.push(IpAddr::V6(ip), scope, None),
                Some(_) => {}
                None => {
                    summary.unresolved += 1;
                    let (host, error) = (format!("{ip}%{zone}"), format!("no interface '{zone}'"));
                    sink(Event::Unresolved { host, error }).map_err(ScanError::Sink)?;
                }
            },
            Some(Host::Name(name)) => match resolve(&name).await {
                Ok(ips) => {
                    let name: Arc<str> = name.into();
                    for ip in ips.into_iter().filter(|ip| !hosts.is_excluded(*ip)) {
                        group.push(ip, 0, Some(name.clone()));
                    }
                }
                Err(error) => {
                    summary.unresolved += 1;
                    sink(Event::Unresolved { host: name, error }).map_err(ScanError::Sink)?;
                }
            },
            None => break,
        }
    }
    Ok(group)
}

/// An IPv6 zone's interface index: a number as it is, a name looked up.
fn zone_index(zone: &str) -> Option<u32> {
    zone.parse().ok().or_else(|| nix::net::if_::if_nametoindex(zone).ok())
}

/// The hosts of `group` that answered discovery (each with how); the others
/// are reported down at once, and their ports are not scanned.
async fn discover_hosts(
    group: Group,
    timeout: Duration,
    sink: &mut impl FnMut(Event) -> io::Result<()>,
    summary: &mut Summary,
) -> Result<Group, ScanError> {
    let addrs: Vec<(IpAddr, u32)> = group.ips.iter().copied().zip(group.scopes.iter().copied()).collect();
    let found = discovery::discover(&addrs, timeout).await;
    let mut up = Group::default();
    for (i, reason) in found.into_iter().enumerate() {
        let (ip, scope, name) = (group.ips[i], group.scopes[i], group.names[i].clone());
        match reason {
            Some(reason) => up.push_discovered(ip, scope, name, reason),
            None => {
                let host = HostReport::down(ip, name);
                summary.add_host(&host);
                sink(Event::Host(host)).map_err(ScanError::Sink)?;
            }
        }
    }
    Ok(up)
}

/// Scans one group on blocking threads, confirms and reads banners of open
/// ports as they come, and reports each host when all is in.
async fn scan_group(
    group: Group,
    plan: &Arc<Plan>,
    progress: &Arc<Progress>,
    sink: &mut impl FnMut(Event) -> io::Result<()>,
    summary: &mut Summary,
) -> Result<(), ScanError> {
    let group = Arc::new(group);
    let (tx, mut rx) = mpsc::channel::<Found>(1024);
    let task = {
        let (group, plan, progress) = (group.clone(), plan.clone(), progress.clone());
        tokio::task::spawn_blocking(move || worker::scan_group(&group, &plan, &progress, &tx))
    };
    let mut results = GroupResults::new(&group);
    let mut followups = JoinSet::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(FOLLOWUPS));
    loop {
        tokio::select! {
            found = rx.recv() => match found {
                Some(Found::Port { report, stream }) => {
                    if followup::needed(&report, stream.as_ref(), plan.banner) {
                        let (permits, banner) = (permits.clone(), plan.banner);
                        followups.spawn(async move {
                            let _permit = permits.acquire_owned().await;
                            followup::run(report, stream, banner).await
                        });
                    } else {
                        results.port(report);
                    }
                }
                Some(Found::Done { hosts, probes, retries }) => {
                    summary.probes += probes;
                    summary.retries += retries;
                    results.merge(hosts);
                }
                None => break,
            },
            Some(done) = followups.join_next() => {
                if let Ok(report) = done {
                    results.port(report);
                }
            }
        }
    }
    while let Some(done) = followups.join_next().await {
        if let Ok(report) = done {
            results.port(report);
        }
    }
    task.await.map_err(|e| ScanError::Setup(io::Error::other(e)))?.map_err(ScanError::Setup)?;
    for host in results.into_reports(plan.report_all) {
        summary.add_host(&host);
        sink(Event::Host(host)).map_err(ScanError::Sink)?;
    }
    Ok(())
}

/// The in-flight window over all reactors: the asked-for size, or the
/// default, never more than the file descriptors allow (after raising the
/// soft limit to the hard one).
fn window_size(config: &ScanConfig) -> usize {
    let fds = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let room = usize::try_from(fds.saturating_sub(RESERVED_FDS.min(fds / 4)).max(16)).unwrap_or(usize::MAX);
    config.max_inflight.unwrap_or(DEFAULT_WINDOW).min(room).max(1)
}

async fn resolve_excludes(specs: &[TargetSpec]) -> Result<Vec<TargetSpec>, ScanError> {
    let mut resolved = Vec::with_capacity(specs.len());
    for spec in specs {
        match spec {
            TargetSpec::Name(host) => {
                let ips = resolve(host)
                    .await
                    .map_err(|detail| ScanError::Exclude { host: host.clone(), detail })?;
                resolved.extend(ips.into_iter().map(|ip| TargetSpec::Range { first: ip, last: ip }));
            }
            other => resolved.push(other.clone()),
        }
    }
    Ok(resolved)
}

/// Every address of `host`, in the resolver's order, without repeats.
async fn resolve(host: &str) -> Result<Vec<IpAddr>, String> {
    let addrs = tokio::net::lookup_host((host, 0)).await.map_err(|e| e.to_string())?;
    let mut seen = HashSet::new();
    let ips: Vec<IpAddr> = addrs.map(|a| a.ip()).filter(|ip| seen.insert(*ip)).collect();
    if ips.is_empty() { Err("no addresses".to_owned()) } else { Ok(ips) }
}
