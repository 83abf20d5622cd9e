//! Putting a group's results together: open ports as reactors find them
//! (after their confirmation and banner), every reactor's share of each
//! host's other verdicts at its end, and one [`HostReport`] per host out,
//! its ports sorted.

use std::collections::HashMap;
use std::net::IpAddr;

use super::ports;
use super::report::{HostReport, HostStatus, PortReport, PortState, StateCounts};
use super::schedule::HostNotes;
use super::worker::{Group, HostShare};
use crate::net::Transport;

/// The results of one group of hosts, filled in as they arrive.
#[derive(Debug)]
pub(super) struct GroupResults {
    hosts: Vec<HostReport>,
    index: HashMap<IpAddr, usize>,
}

impl GroupResults {
    /// Empty results for every host of `group`, all up (discovery has
    /// dropped the rest).
    pub fn new(group: &Group) -> Self {
        let hosts = group
            .ips
            .iter()
            .zip(&group.names)
            .zip(&group.reasons)
            .map(|((&ip, name), &reason)| HostReport {
                ip,
                host: name.clone(),
                status: HostStatus::Up,
                reason,
                ports: Vec::new(),
                counts: StateCounts::default(),
                throttled: None,
                incomplete: false,
                srtt: None,
            })
            .collect();
        let index = group.ips.iter().enumerate().map(|(i, ip)| (*ip, i)).collect();
        GroupResults { hosts, index }
    }

    /// A port found open, after its follow-up (which may have found it
    /// closed after all).
    pub fn port(&mut self, report: PortReport) {
        let Some(&i) = self.index.get(&report.ip) else { return };
        let host = &mut self.hosts[i];
        host.counts.add(report.state, 1);
        host.ports.push(report);
    }

    /// A reactor's findings about its hosts.
    pub fn merge(&mut self, shares: Vec<HostShare>) {
        for share in shares {
            let Some(host) = self.hosts.get_mut(share.host as usize) else { continue };
            host.counts.merge(&share.counts);
            let (ip, name) = (host.ip, host.host.clone());
            host.ports.extend(share.listed.into_iter().map(|(port, state, reason)| PortReport {
                ip,
                host: name.clone(),
                port,
                transport: share.transport,
                state,
                reason,
                service: ports::service_name(port, share.transport),
                banner: None,
            }));
            note(host, share.notes);
        }
    }

    /// The hosts' reports, in the group's order, with only the ports to
    /// report (open ones, or all), sorted by port number, TCP first.
    pub fn into_reports(self, report_all: bool) -> impl Iterator<Item = HostReport> {
        self.hosts.into_iter().map(move |mut report| {
            if !report_all {
                report.ports.retain(|p| p.state == PortState::Open);
            }
            report.ports.sort_by_key(|p| (p.port, p.transport == Transport::Udp));
            report
        })
    }
}

/// Folds one reactor's notes on a host into its report: each reactor saw
/// part of the host's ports, so the worst of them stands.
fn note(host: &mut HostReport, notes: HostNotes) {
    host.incomplete |= notes.incomplete;
    host.srtt = host.srtt.max(notes.srtt);
    if let Some(throttled) = notes.throttled {
        host.throttled = Some(match host.throttled.take() {
            None => throttled,
            Some(mut seen) => {
                seen.rate += throttled.rate;
                seen.reprobed += throttled.reprobed;
                seen.waited = seen.waited.max(throttled.waited);
                seen.answer_rate = match (seen.answer_rate, throttled.answer_rate) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                };
                seen
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::scan::report::{Reason, Throttled};

    fn group() -> Group {
        let mut group = Group::default();
        group.push("127.0.0.1".parse().unwrap(), 0, None);
        group.push("127.0.0.2".parse().unwrap(), 0, Some("two".into()));
        group
    }

    fn open(ip: &str, port: u16, transport: Transport) -> PortReport {
        PortReport {
            ip: ip.parse().unwrap(),
            host: None,
            port,
            transport,
            state: PortState::Open,
            reason: Reason::SynAck,
            service: None,
            banner: None,
        }
    }

    fn share(host: u32, transport: Transport, listed: &[(u16, PortState)], notes: HostNotes) -> HostShare {
        let mut counts = StateCounts::default();
        listed.iter().for_each(|&(_, s)| counts.add(s, 1));
        HostShare {
            host,
            transport,
            counts,
            listed: listed.iter().map(|&(p, s)| (p, s, Reason::Reset)).collect(),
            notes,
        }
    }

    #[test]
    fn ports_come_out_sorted_per_host_tcp_first() {
        let mut results = GroupResults::new(&group());
        results.port(open("127.0.0.1", 80, Transport::Udp));
        results.port(open("127.0.0.1", 443, Transport::Tcp));
        results.port(open("127.0.0.1", 80, Transport::Tcp));
        results.merge(vec![share(0, Transport::Tcp, &[(22, PortState::Closed)], HostNotes::default())]);
        let all: Vec<HostReport> = results.into_reports(true).collect();
        let order: Vec<(u16, Transport)> = all[0].ports.iter().map(|p| (p.port, p.transport)).collect();
        assert_eq!(
            order,
            [(22, Transport::Tcp), (80, Transport::Tcp), (80, Transport::Udp), (443, Transport::Tcp)]
        );
        assert_eq!(all[0].counts, StateCounts { open: 3, closed: 1, ..StateCounts::default() });
        assert_eq!(all[1].host.as_deref(), Some("two"));
        assert_eq!(all[1].ports, []);
    }

    #[test]
    fn only_open_ports_are_listed_unless_all_are_asked_for() {
        let mut results = GroupResults::new(&group());
        results.port(open("127.0.0.2", 22, Transport::Tcp));
        results.merge(vec![share(1, Transport::Tcp, &[(23, PortState::Filtered)], HostNotes::default())]);
        let host = results.into_reports(false).nth(1).unwrap();
        assert_eq!(host.ports.len(), 1);
        assert_eq!(host.counts.filtered, 1);
    }

    #[test]
    fn reactors_notes_add_up() {
        let mut results = GroupResults::new(&group());
        let throttled = |rate, waited| HostNotes {
            throttled: Some(Throttled {
                rate,
                answer_rate: Some(rate),
                reprobed: 10,
                waited: Duration::from_secs(waited),
            }),
            ..HostNotes::default()
        };
        results.merge(vec![share(0, Transport::Tcp, &[], throttled(1.0, 5))]);
        results.merge(vec![share(0, Transport::Tcp, &[], throttled(2.0, 9))]);
        let host = results.into_reports(false).next().unwrap();
        let seen = host.throttled.unwrap();
        assert_eq!((seen.rate, seen.reprobed, seen.waited), (3.0, 20, Duration::from_secs(9)));
    }
}
