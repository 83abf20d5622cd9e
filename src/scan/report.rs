//! What a scan finds: one [`HostReport`] per host, with a [`PortReport`]
//! per reported port, and a [`Summary`].

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use super::schedule::Throttled;
use crate::net::Transport;
use crate::text::plural;

/// A port's verdict, in nmap's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum PortState {
    /// Something accepts connections or answers datagrams there.
    #[serde(rename = "open")]
    Open,
    /// The host answered that nothing is there (TCP RST, ICMP port unreachable).
    #[serde(rename = "closed")]
    Closed,
    /// No answer, or an ICMP error other than port unreachable (TCP).
    #[serde(rename = "filtered")]
    Filtered,
    /// No answer over UDP: open and silent, or dropped on the way.
    #[serde(rename = "open|filtered")]
    OpenFiltered,
}

impl PortState {
    /// Every state, in the order summaries list them.
    pub const ALL: [PortState; 4] =
        [PortState::Open, PortState::Closed, PortState::Filtered, PortState::OpenFiltered];

    /// The name as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
            PortState::OpenFiltered => "open|filtered",
        }
    }
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Why a port got its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// TCP: the handshake completed (connect) or a SYN-ACK came back (SYN scan).
    SynAck,
    /// TCP: the host sent a reset.
    Reset,
    /// The connection reached our own socket (the kernel picked the probed
    /// port as the source port on this machine): nothing else listens there.
    SelfConnect,
    /// Every attempt went unanswered.
    NoResponse,
    /// An ICMP host or network unreachable, or a local route error.
    Unreachable,
    /// A firewall's reject of this probe: ICMP communication administratively
    /// prohibited (type 3 code 13; ICMPv6 type 1 code 1).
    AdminProhibited,
    /// A firewall's reject: ICMP host administratively prohibited (type 3 code 10).
    HostProhibited,
    /// A firewall's reject: ICMP network administratively prohibited (type 3 code 9).
    NetProhibited,
    /// The host itself could not be reached: it did not answer ARP or NDP
    /// (sending to it failed), so no probe left this machine.
    HostUnreachable,
    /// UDP: a datagram came back.
    UdpResponse,
    /// UDP: ICMP port unreachable.
    PortUnreachable,
}

impl Reason {
    /// Whether this is the target refusing this one probe (a reset, an ICMP
    /// port unreachable, a firewall's prohibited): an answer sent port by
    /// port, which is what a rate limit drops, and whose loss gives another
    /// verdict (silence). The scan counts these to find such limits.
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            Reason::Reset
                | Reason::PortUnreachable
                | Reason::AdminProhibited
                | Reason::HostProhibited
                | Reason::NetProhibited
        )
    }
}

/// One port's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PortReport {
    /// The address scanned.
    pub ip: IpAddr,
    /// The name it was resolved from, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<Arc<str>>,
    /// The port.
    pub port: u16,
    /// TCP or UDP.
    pub transport: Transport,
    /// The verdict.
    pub state: PortState,
    /// What the verdict rests on.
    pub reason: Reason,
    /// The service name from the built-in table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<&'static str>,
    /// The first line the service sent (`--banner`), made printable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banner: Option<String>,
}

impl PortReport {
    /// `port/transport`, as in nmap's PORT column.
    pub fn port_label(&self) -> String {
        format!("{}/{}", self.port, self.transport)
    }
}

impl fmt::Display for PortReport {
    /// One table row: host, port, state, service and banner.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.host {
            Some(name) => format!("{name} ({})", self.ip),
            None => self.ip.to_string(),
        };
        let (port, state, service) = (self.port_label(), self.state, self.service.unwrap_or("-"));
        match &self.banner {
            Some(banner) => write!(f, "{host:<24} {port:<11} {state:<13} {service:<15} {banner}"),
            None => write!(f, "{host:<24} {port:<11} {state:<13} {service}"),
        }
    }
}

/// Whether a host is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    /// It answered discovery (or was taken to be up).
    Up,
    /// It answered no discovery probe.
    Down,
}

/// What a host's status rests on, in nmap's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostReason {
    /// Not asked: discovery was skipped (`-Pn`), every host is taken to be up.
    UserSet,
    /// An address of this machine.
    LocalhostResponse,
    /// It answered ARP.
    ArpResponse,
    /// It answered an IPv6 neighbour solicitation.
    NdResponse,
    /// It answered an ICMP echo request.
    EchoReply,
    /// A TCP connection to it completed.
    SynAck,
    /// A TCP connection to it was refused: something answered.
    ConnRefused,
    /// Nothing answered.
    NoResponse,
}

impl HostReason {
    /// The name as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            HostReason::UserSet => "user-set",
            HostReason::LocalhostResponse => "localhost-response",
            HostReason::ArpResponse => "arp-response",
            HostReason::NdResponse => "nd-response",
            HostReason::EchoReply => "echo-reply",
            HostReason::SynAck => "syn-ack",
            HostReason::ConnRefused => "conn-refused",
            HostReason::NoResponse => "no-response",
        }
    }
}

/// One host's results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HostReport {
    /// The address.
    pub ip: IpAddr,
    /// The name it was resolved from, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<Arc<str>>,
    /// Up or down.
    pub status: HostStatus,
    /// Why.
    pub reason: HostReason,
    /// The reported ports (open ones, or all with `report_all`), by port
    /// number, TCP before UDP.
    #[serde(skip)]
    pub ports: Vec<PortReport>,
    /// Every verdict, reported or not.
    pub counts: StateCounts,
    /// The host limited its answers; how the scan kept under the limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttled: Option<Throttled>,
    /// The host's scan did not finish (Ctrl-C, `--host-timeout`): ports
    /// not probed are missing from its counts.
    pub incomplete: bool,
    /// Smoothed round trip to the host, once measured.
    #[serde(
        rename = "srtt_ms",
        serialize_with = "crate::stats::as_opt_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub srtt: Option<Duration>,
}

/// Counts of verdicts per state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    /// Open ports.
    pub open: u64,
    /// Closed ports.
    pub closed: u64,
    /// Filtered ports.
    pub filtered: u64,
    /// Open or filtered (UDP, no answer).
    pub open_filtered: u64,
}

impl StateCounts {
    /// Counts one more `state`.
    pub fn add(&mut self, state: PortState, n: u64) {
        *match state {
            PortState::Open => &mut self.open,
            PortState::Closed => &mut self.closed,
            PortState::Filtered => &mut self.filtered,
            PortState::OpenFiltered => &mut self.open_filtered,
        } += n;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &StateCounts) {
        for state in PortState::ALL {
            self.add(state, other.get(state));
        }
    }

    /// The count of `state`.
    pub fn get(&self, state: PortState) -> u64 {
        match state {
            PortState::Open => self.open,
            PortState::Closed => self.closed,
            PortState::Filtered => self.filtered,
            PortState::OpenFiltered => self.open_filtered,
        }
    }

    /// Every port with a verdict.
    pub fn total(&self) -> u64 {
        PortState::ALL.iter().map(|&s| self.get(s)).sum()
    }
}

/// The end of a scan.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Addresses scanned.
    pub hosts: u64,
    /// Of those, hosts that were up (or taken to be, with discovery skipped).
    pub hosts_up: u64,
    /// Names that did not resolve.
    pub unresolved: u64,
    /// Verdicts per state.
    pub ports: StateCounts,
    /// Probes sent, retries included (discovery not counted).
    pub probes: u64,
    /// Of those, retries of unanswered probes.
    pub retries: u64,
    /// How TCP ports were probed (`connect` or `syn`), when they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_method: Option<&'static str>,
    /// Why a SYN scan fell back to connect(), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syn_fallback: Option<String>,
    /// Hosts that limited their answers and were paced.
    pub throttled_hosts: u64,
    /// The longest any host kept the scan waiting under its limit.
    #[serde(rename = "throttle_wait_ms", serialize_with = "crate::stats::as_millis")]
    pub throttle_wait: Duration,
    /// The scan was stopped (Ctrl-C, SIGTERM) before it finished: the
    /// counts cover what was scanned until then.
    pub partial: bool,
    /// Wall-clock time of the scan.
    #[serde(rename = "elapsed_ms", serialize_with = "crate::stats::as_millis")]
    pub elapsed: Duration,
}

impl Summary {
    /// Counts one host's results in.
    pub fn add_host(&mut self, host: &HostReport) {
        self.hosts += 1;
        self.hosts_up += u64::from(host.status == HostStatus::Up);
        self.ports.merge(&host.counts);
        if let Some(throttled) = &host.throttled {
            self.throttled_hosts += 1;
            self.throttle_wait = self.throttle_wait.max(throttled.waited);
        }
    }
}

impl HostReport {
    /// A host that answered no discovery probe: down, no port scanned.
    pub fn down(ip: IpAddr, host: Option<Arc<str>>) -> HostReport {
        HostReport {
            ip,
            host,
            status: HostStatus::Down,
            reason: HostReason::NoResponse,
            ports: Vec::new(),
            counts: StateCounts::default(),
            throttled: None,
            incomplete: false,
            srtt: None,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.partial {
            f.write_str("interrupted, partial results: ")?;
        }
        write!(f, "scanned {}", plural(self.hosts, "host"))?;
        if self.hosts_up != self.hosts {
            write!(f, " ({} up)", self.hosts_up)?;
        }
        write!(f, ", {} in {:.2}s:", plural(self.ports.total(), "port"), self.elapsed.as_secs_f64())?;
        let mut first = true;
        for state in PortState::ALL {
            let n = self.ports.get(state);
            if n > 0 || state == PortState::Open {
                write!(f, "{} {n} {state}", if first { "" } else { "," })?;
                first = false;
            }
        }
        if self.unresolved > 0 {
            write!(f, "; {} did not resolve", plural(self.unresolved, "name"))?;
        }
        if self.throttled_hosts > 0 {
            let verb = if self.throttled_hosts == 1 { "limits its" } else { "limit their" };
            write!(
                f,
                "; {} {verb} answers, the scan slowed down and waited {:.1}s",
                plural(self.throttled_hosts, "host"),
                self.throttle_wait.as_secs_f64()
            )?;
        }
        let retries =
            if self.retries == 1 { "1 retry".to_owned() } else { format!("{} retries", self.retries) };
        write!(f, " ({}, {retries})", plural(self.probes, "probe"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_in_words() {
        let one = Summary {
            hosts: 1,
            hosts_up: 1,
            unresolved: 1,
            ports: StateCounts { open: 1, ..StateCounts::default() },
            probes: 1,
            retries: 1,
            elapsed: Duration::from_millis(20),
            ..Summary::default()
        };
        assert_eq!(
            one.to_string(),
            "scanned 1 host, 1 port in 0.02s: 1 open; 1 name did not resolve (1 probe, 1 retry)"
        );
        let two = Summary { hosts: 2, hosts_up: 2, unresolved: 0, probes: 2, retries: 0, ..one.clone() };
        assert_eq!(two.to_string(), "scanned 2 hosts, 1 port in 0.02s: 1 open (2 probes, 0 retries)");
        let slow = Summary {
            hosts_up: 1,
            throttled_hosts: 1,
            throttle_wait: Duration::from_millis(12_340),
            partial: true,
            ..two
        };
        assert_eq!(
            slow.to_string(),
            "interrupted, partial results: scanned 2 hosts (1 up), 1 port in 0.02s: 1 open; 1 host limits its \
             answers, the scan slowed down and waited 12.3s (2 probes, 0 retries)"
        );
    }
}
