//! Which ports `--top-ports N` and `-F` take.
//!
//! When nmap is installed, its `nmap-services` file ranks them: nmap's own
//! measurements of how often each port is found open, under nmap's licence,
//! read from the system at run time and never copied into this project.
//! Without it the ranking is the built-in table ([`crate::services`],
//! written from IANA's public port assignments) in port-number order, then
//! every other port in order: IANA publishes no frequencies, and the
//! project ships none it cannot cite.

use std::path::{Path, PathBuf};

use super::ports::PortSpec;
use crate::net::Transport;
use crate::services;

/// `--top-ports` asked for no ports, or more than there are.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("--top-ports {asked}: give a number of ports from 1 to 65535")]
pub struct TopPortsError {
    /// The number asked for.
    pub asked: usize,
}

/// Where nmap keeps its data: Debian's package, then a build from source.
pub const NMAP_SERVICES: &[&str] = &["/usr/share/nmap/nmap-services", "/usr/local/share/nmap/nmap-services"];

/// Where a ranking came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RankingSource {
    /// nmap's frequency data, read from this file.
    NmapServices(PathBuf),
    /// The built-in IANA table in port order.
    BuiltIn,
}

/// Ports of each transport, most common first.
#[derive(Clone, Debug)]
pub struct Ranking {
    tcp: Vec<u16>,
    udp: Vec<u16>,
    /// Where the order came from.
    pub source: RankingSource,
}

impl Ranking {
    /// nmap's ranking when its data is installed, else the built-in one.
    pub fn load() -> Ranking {
        NMAP_SERVICES
            .iter()
            .map(Path::new)
            .find_map(|path| {
                let text = std::fs::read_to_string(path).ok()?;
                Ranking::from_nmap_services(&text, path)
            })
            .unwrap_or_else(Ranking::built_in)
    }

    /// The built-in table's ports in port order.
    pub fn built_in() -> Ranking {
        let sorted = |table: &[(u16, &str)]| {
            let mut ports: Vec<u16> = table.iter().map(|&(port, _)| port).collect();
            ports.sort_unstable();
            ports.dedup();
            ports
        };
        Ranking { tcp: sorted(services::TCP), udp: sorted(services::UDP), source: RankingSource::BuiltIn }
    }

    /// The ranking in an `nmap-services` file (`name port/proto frequency`
    /// lines, `#` comments); `None` when it ranks no TCP port.
    pub fn from_nmap_services(text: &str, path: &Path) -> Option<Ranking> {
        let mut tcp: Vec<(f64, u16)> = Vec::new();
        let mut udp: Vec<(f64, u16)> = Vec::new();
        for line in text.lines() {
            let mut fields = line.split('#').next().unwrap_or("").split_whitespace().skip(1);
            let (Some(port_proto), Some(frequency)) = (fields.next(), fields.next()) else { continue };
            let Some((port, proto)) = port_proto.split_once('/') else { continue };
            let (Ok(port), Ok(frequency)) = (port.parse::<u16>(), frequency.parse::<f64>()) else { continue };
            if port == 0 || !frequency.is_finite() {
                continue;
            }
            match proto {
                "tcp" => tcp.push((frequency, port)),
                "udp" => udp.push((frequency, port)),
                _ => {}
            }
        }
        let ranked = |mut entries: Vec<(f64, u16)>| {
            // Most frequent first; ties in port order, as nmap breaks them.
            entries.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut seen = std::collections::HashSet::new();
            entries.into_iter().map(|(_, port)| port).filter(|port| seen.insert(*port)).collect::<Vec<_>>()
        };
        let (tcp, udp) = (ranked(tcp), ranked(udp));
        (!tcp.is_empty()).then(|| Ranking { tcp, udp, source: RankingSource::NmapServices(path.to_owned()) })
    }

    /// The `n` first ports for `transport`; past the ranked ones, the
    /// lowest ports not yet taken, so any `n` up to 65535 gives `n` ports.
    pub fn top(&self, transport: Transport, n: usize) -> Vec<u16> {
        let ranked = match transport {
            Transport::Tcp => &self.tcp,
            Transport::Udp => &self.udp,
        };
        let mut ports: Vec<u16> = ranked.iter().copied().take(n).collect();
        if ports.len() < n {
            let taken: std::collections::HashSet<u16> = ports.iter().copied().collect();
            let rest = (1..=u16::MAX).filter(|port| !taken.contains(port));
            ports.extend(rest.take(n - ports.len()));
        }
        ports
    }

    /// The first `n` ports of the ranking for each transport.
    ///
    /// # Errors
    /// [`TopPortsError`] when `n` is 0 or more than the 65535 ports there are.
    pub fn spec(&self, n: usize) -> Result<PortSpec, TopPortsError> {
        if n == 0 || n > usize::from(u16::MAX) {
            return Err(TopPortsError { asked: n });
        }
        let mut spec = PortSpec::default();
        self.top(Transport::Tcp, n).into_iter().for_each(|port| spec.tcp.insert(port));
        self.top(Transport::Udp, n).into_iter().for_each(|port| spec.udp.insert(port));
        Ok(spec)
    }

    /// One line for `--help` and logs: where the order comes from.
    pub fn describe(&self) -> String {
        match &self.source {
            RankingSource::NmapServices(path) => format!("nmap's port frequencies from {}", path.display()),
            RankingSource::BuiltIn => {
                "the built-in IANA table in port order (nmap-services not found)".to_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# Fields: name port/proto frequency
echo\t7/tcp\t0.004855
echo\t7/udp\t0.024679
http\t80/tcp\t0.484143\t# World Wide Web HTTP
telnet\t23/tcp\t0.221265
domain\t53/udp\t0.213496
zero\t0/tcp\t0.5
sctp\t80/sctp\t0.9
broken line
";

    #[test]
    fn nmap_services_is_ranked_by_frequency() {
        let ranking = Ranking::from_nmap_services(SAMPLE, Path::new("x")).unwrap();
        assert_eq!(ranking.top(Transport::Tcp, 3), [80, 23, 7]);
        assert_eq!(ranking.top(Transport::Udp, 2), [53, 7]);
        assert_eq!(ranking.source, RankingSource::NmapServices("x".into()));
    }

    #[test]
    fn past_the_ranked_ports_the_lowest_others_follow() {
        let ranking = Ranking::from_nmap_services(SAMPLE, Path::new("x")).unwrap();
        assert_eq!(ranking.top(Transport::Udp, 5), [53, 7, 1, 2, 3]);
        assert_eq!(ranking.top(Transport::Tcp, 65535).len(), 65535);
    }

    #[test]
    fn a_spec_takes_n_ports_per_transport() {
        let ranking = Ranking::built_in();
        let top = ranking.spec(1000).unwrap();
        assert_eq!((top.tcp.len(), top.udp.len()), (1000, 1000));
        assert!(ranking.spec(0).is_err());
        assert!(ranking.spec(100_000).unwrap_err().to_string().contains("1 to 65535"));
    }

    #[test]
    fn the_built_in_ranking_is_in_port_order() {
        let ranking = Ranking::built_in();
        let top = ranking.top(Transport::Tcp, 1000);
        assert_eq!(top.len(), 1000);
        assert!(top[..ranking.tcp.len()].windows(2).all(|w| w[0] < w[1]));
        assert!(Ranking::from_nmap_services("# nothing\n", Path::new("x")).is_none());
    }
}
