//! `--stats`: what a capture held, by protocol, by service port and by
//! sending address.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use super::decode::{Proto, Summary};
use crate::services;

/// How many rows the port and talker tables keep.
pub const TOP: usize = 10;

/// Packets and bytes (on the wire).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Frames.
    pub packets: u64,
    /// Their bytes on the wire.
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, len: u32) {
        self.packets += 1;
        self.bytes += u64::from(len);
    }
}

/// Counters kept while capturing.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    protocols: BTreeMap<Proto, Tally>,
    ports: HashMap<(Proto, u16), Tally>,
    talkers: HashMap<IpAddr, Tally>,
}

impl Stats {
    /// Counts one frame of `len` bytes on the wire.
    pub fn add(&mut self, packet: &Summary, len: u32) {
        self.protocols.entry(packet.proto).or_default().add(len);
        // A packet counts for both its ports ("to or from port N"): across
        // many connections the service's port adds up, each client's does not.
        if let (Some(sport), Some(dport)) = (packet.sport, packet.dport) {
            self.ports.entry((packet.proto, sport)).or_default().add(len);
            if dport != sport {
                self.ports.entry((packet.proto, dport)).or_default().add(len);
            }
        }
        if let Some(src) = packet.src {
            self.talkers.entry(src).or_default().add(len);
        }
    }

    /// The tables, largest first.
    pub fn report(&self) -> Report {
        let protocols = self
            .protocols
            .iter()
            .map(|(proto, tally)| ProtoRow { proto: proto.name(), tally: *tally })
            .collect();
        let mut ports: Vec<PortRow> = self
            .ports
            .iter()
            .map(|(&(proto, port), tally)| PortRow {
                proto: proto.name(),
                port,
                service: name(proto, port),
                tally: *tally,
            })
            .collect();
        ports.sort_by(|a, b| b.tally.packets.cmp(&a.tally.packets).then(a.port.cmp(&b.port)));
        ports.truncate(TOP);
        let mut talkers: Vec<TalkerRow> =
            self.talkers.iter().map(|(&addr, tally)| TalkerRow { addr, tally: *tally }).collect();
        talkers.sort_by(|a, b| b.tally.bytes.cmp(&a.tally.bytes).then(a.addr.cmp(&b.addr)));
        talkers.truncate(TOP);
        Report { protocols, ports, talkers }
    }
}

fn name(proto: Proto, port: u16) -> Option<&'static str> {
    let table = if proto == Proto::Udp { services::UDP } else { services::TCP };
    table.iter().find(|&&(p, _)| p == port).map(|&(_, name)| name)
}

/// The `--stats` tables.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Per protocol.
    pub protocols: Vec<ProtoRow>,
    /// The busiest ports, each counting the packets to or from it.
    pub ports: Vec<PortRow>,
    /// The addresses that sent the most bytes.
    pub talkers: Vec<TalkerRow>,
}

/// One protocol's share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProtoRow {
    /// The protocol's filter name.
    pub proto: &'static str,
    /// What it carried.
    #[serde(flatten)]
    pub tally: Tally,
}

/// One service port's share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PortRow {
    /// `tcp` or `udp`.
    pub proto: &'static str,
    /// The port.
    pub port: u16,
    /// Its name in the service table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<&'static str>,
    /// What it carried.
    #[serde(flatten)]
    pub tally: Tally,
}

/// One sender's share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TalkerRow {
    /// The source address.
    pub addr: IpAddr,
    /// What it sent.
    #[serde(flatten)]
    pub tally: Tally,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<24} {:>10} {:>14}", "PROTOCOL", "PACKETS", "BYTES")?;
        for row in &self.protocols {
            writeln!(f, "{:<24} {:>10} {:>14}", row.proto, row.tally.packets, row.tally.bytes)?;
        }
        writeln!(f, "\n{:<24} {:>10} {:>14}", "PORT", "PACKETS", "BYTES")?;
        for row in &self.ports {
            let port = format!("{}/{} {}", row.port, row.proto, row.service.unwrap_or(""));
            writeln!(f, "{:<24} {:>10} {:>14}", port.trim_end(), row.tally.packets, row.tally.bytes)?;
        }
        writeln!(f, "\n{:<24} {:>10} {:>14}", "TOP TALKER", "PACKETS", "BYTES")?;
        for (i, row) in self.talkers.iter().enumerate() {
            write!(f, "{:<24} {:>10} {:>14}", row.addr, row.tally.packets, row.tally.bytes)?;
            if i + 1 < self.talkers.len() {
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(proto: Proto, src: &str, sport: u16, dport: u16) -> Summary {
        Summary {
            proto,
            src: Some(src.parse().unwrap()),
            sport: Some(sport),
            dport: Some(dport),
            ..Summary::default()
        }
    }

    #[test]
    fn counts_by_protocol_service_port_and_sender() {
        let mut stats = Stats::default();
        stats.add(&packet(Proto::Tcp, "127.0.0.1", 50123, 22), 100);
        stats.add(&packet(Proto::Tcp, "127.0.0.2", 22, 50123), 1000);
        stats.add(&packet(Proto::Udp, "127.0.0.1", 40000, 40001), 60);
        stats.add(&Summary { proto: Proto::Arp, ..Summary::default() }, 42);
        let report = stats.report();
        let protocols: Vec<_> =
            report.protocols.iter().map(|r| (r.proto, r.tally.packets, r.tally.bytes)).collect();
        assert_eq!(protocols, [("arp", 1, 42), ("tcp", 2, 1100), ("udp", 1, 60)]);
        let ports: Vec<_> = report.ports.iter().map(|r| (r.port, r.service, r.tally.packets)).collect();
        assert_eq!(ports, [(22, Some("ssh"), 2), (50123, None, 2), (40000, None, 1), (40001, None, 1)]);
        assert_eq!(report.talkers[0].addr, "127.0.0.2".parse::<IpAddr>().unwrap());
        assert!(report.to_string().contains("22/tcp ssh"), "{report}");
    }
}
