//! nmap's text formats: normal (`-oN`) and grepable (`-oG`), laid out as
//! nmap writes them, so the scripts and habits built on them keep working.

use std::io::{self, Write};

use chrono::Local;
use socketeer::net::Transport;
use socketeer::scan::{HostReport, HostStatus, PortReport, PortSet, Reason, Summary};
use socketeer::text::plural;

use super::report::{Report, ScanInfo, listed};
use super::xml::ranges;

/// The version in headers and footers.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `-oG`: per host a `Status` line, then a `Ports` line with every listed
/// port as `port/state/protocol/owner/service/rpc/version/` and the
/// `Ignored State`. Hosts found down get their `Status: Down` line with
/// `-v` only, and `-v` adds the `# Ports scanned` line, as with nmap.
pub struct Grepable {
    pub out: Box<dyn Write + Send>,
}

impl Report for Grepable {
    fn start(&mut self, scan: &ScanInfo) -> io::Result<()> {
        initiated(&mut self.out, scan)?;
        if scan.verbose > 0 {
            let list = |ports: &PortSet| format!("{};{}", ports.len(), ranges(ports));
            writeln!(
                self.out,
                "# Ports scanned: TCP({}) UDP({}) SCTP(0;) PROTOCOLS(0;)",
                list(&scan.tcp_ports),
                list(&scan.udp_ports)
            )?;
        }
        self.out.flush()
    }

    fn host(&mut self, scan: &ScanInfo, host: &HostReport) -> io::Result<()> {
        if !scan.shows(host) {
            return Ok(());
        }
        let who = format!("Host: {} ({})", host.ip, host.host.as_deref().unwrap_or_default());
        let status = if host.status == HostStatus::Up { "Up" } else { "Down" };
        writeln!(self.out, "{who}\tStatus: {status}")?;
        if host.status == HostStatus::Up && host.counts.total() > 0 {
            let (shown, ignored) = listed(scan, host);
            let ports: Vec<String> = shown.iter().map(|p| grepable_port(p, scan)).collect();
            write!(self.out, "{who}\tPorts: {}", ports.join(", "))?;
            if let Some((state, n)) = ignored {
                write!(self.out, "\tIgnored State: {state} ({n})")?;
            }
            writeln!(self.out)?;
        }
        self.out.flush()
    }

    fn end(&mut self, scan: &ScanInfo, summary: &Summary) -> io::Result<()> {
        done(&mut self.out, scan, summary)
    }
}

/// One port as nmap's grepable format writes it; `/` in a banner (nmap's
/// version field) would end the field, so it becomes `|`, as nmap does.
fn grepable_port(port: &PortReport, scan: &ScanInfo) -> String {
    let banner = port.banner.as_deref().unwrap_or_default().replace('/', "|");
    let _ = scan;
    format!(
        "{}/{}/{}//{}//{banner}/",
        port.port,
        port.state,
        port.transport,
        port.service.unwrap_or_default()
    )
}

/// `-oN`: a report per host, as nmap's normal output lays it out (hosts
/// found down as one line, with `-v` only).
pub struct Normal {
    pub out: Box<dyn Write + Send>,
}

impl Report for Normal {
    fn start(&mut self, scan: &ScanInfo) -> io::Result<()> {
        initiated(&mut self.out, scan)
    }

    fn host(&mut self, scan: &ScanInfo, host: &HostReport) -> io::Result<()> {
        let name = match &host.host {
            Some(name) => format!("{name} ({})", host.ip),
            None => host.ip.to_string(),
        };
        if !scan.shows(host) {
            return Ok(());
        }
        if host.status == HostStatus::Down {
            writeln!(self.out, "Scan report for {name} [host down]")?;
            return self.out.flush();
        }
        writeln!(self.out, "Scan report for {name}")?;
        match host.srtt {
            Some(srtt) => writeln!(self.out, "Host is up ({:.6}s latency).", srtt.as_secs_f64())?,
            None => writeln!(self.out, "Host is up ({}).", host.reason.as_str())?,
        }
        let (shown, ignored) = listed(scan, host);
        if shown.is_empty() && host.counts.total() > 0 {
            writeln!(self.out, "All {} scanned ports on {name} are in ignored states.", host.counts.total())?;
        }
        if let Some((state, n)) = ignored {
            let ports = if n == 1 { "port" } else { "ports" };
            writeln!(self.out, "Not shown: {n} {state} {ports}")?;
        }
        if !shown.is_empty() {
            let label = |p: &PortReport| p.port_label();
            let port_width = shown.iter().map(|p| label(p).len()).max().unwrap_or(0).max(4);
            let state_width = shown.iter().map(|p| p.state.as_str().len()).max().unwrap_or(0).max(5);
            let service_width =
                shown.iter().map(|p| p.service.unwrap_or("unknown").len()).max().unwrap_or(0).max(7);
            let banners = shown.iter().any(|p| p.banner.is_some());
            let head = if banners { " BANNER" } else { "" };
            writeln!(
                self.out,
                "{:port_width$} {:state_width$} {:service_width$}{head}",
                "PORT", "STATE", "SERVICE"
            )?;
            for p in shown {
                let line = format!(
                    "{:port_width$} {:state_width$} {:service_width$} {}",
                    label(p),
                    p.state.as_str(),
                    p.service.unwrap_or("unknown"),
                    p.banner.as_deref().unwrap_or_default()
                );
                writeln!(self.out, "{}", line.trim_end())?;
            }
        }
        for note in super::report::notes(host) {
            writeln!(self.out, "Note: {note}")?;
        }
        writeln!(self.out)?;
        self.out.flush()
    }

    fn end(&mut self, scan: &ScanInfo, summary: &Summary) -> io::Result<()> {
        done(&mut self.out, scan, summary)
    }
}

/// The first line of the text formats.
fn initiated(out: &mut dyn Write, scan: &ScanInfo) -> io::Result<()> {
    writeln!(
        out,
        "# socketeer {VERSION} scan initiated {} as: {}",
        ScanInfo::date(&scan.started),
        scan.command_line
    )?;
    out.flush()
}

/// The last line of the text formats.
fn done(out: &mut dyn Write, _: &ScanInfo, summary: &Summary) -> io::Result<()> {
    writeln!(out, "# socketeer done at {} -- {}", ScanInfo::date(&Local::now()), done_summary(summary))?;
    out.flush()
}

/// `2 IP addresses (1 host up) scanned in 1.38 seconds`, as nmap says it.
pub fn done_summary(summary: &Summary) -> String {
    let addresses = if summary.hosts == 1 {
        "1 IP address".to_owned()
    } else {
        format!("{} IP addresses", summary.hosts)
    };
    let partial = if summary.partial { ", interrupted: partial results" } else { "" };
    format!(
        "{addresses} ({} up) scanned in {:.2} seconds{partial}",
        plural(summary.hosts_up, "host"),
        summary.elapsed.as_secs_f64()
    )
}

/// nmap's name for why a port got its state.
pub fn nmap_reason(reason: Reason, transport: Transport, tcp_method: Option<&str>) -> &'static str {
    match reason {
        Reason::SynAck => "syn-ack",
        Reason::Reset if transport == Transport::Tcp && tcp_method == Some("connect") => "conn-refused",
        Reason::Reset => "reset",
        Reason::SelfConnect => "conn-refused",
        Reason::NoResponse => "no-response",
        Reason::Unreachable => "unreachable",
        Reason::AdminProhibited => "admin-prohibited",
        Reason::HostProhibited => "host-prohibited",
        Reason::NetProhibited => "net-prohibited",
        Reason::HostUnreachable => "host-unreach",
        Reason::UdpResponse => "udp-response",
        Reason::PortUnreachable => "port-unreach",
    }
}
