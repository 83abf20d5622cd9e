//! `-oX`: nmap's XML, valid against its DTD (`nmap.dtd`), so the tools
//! that read nmap's XML (ndiff, xsltproc with nmap.xsl, python-libnmap,
//! Metasploit's import, ...) read ours. The DTD knows one scanner, `nmap`:
//! that attribute names the dialect; a comment and `args` say who wrote it.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::IpAddr;

use chrono::Local;
use socketeer::scan::{HostReport, HostStatus, PortSet, PortState, Summary};
use socketeer::text::markup;

use super::nmap_files::{VERSION, done_summary, nmap_reason};
use super::report::{Report, ScanInfo, listed};

/// Writes nmap's XML.
pub struct Xml {
    pub out: Box<dyn Write + Send>,
}

impl Report for Xml {
    fn start(&mut self, scan: &ScanInfo) -> io::Result<()> {
        let date = ScanInfo::date(&scan.started);
        let args = markup(&scan.command_line);
        writeln!(self.out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
        writeln!(self.out, "<!DOCTYPE nmaprun>")?;
        writeln!(
            self.out,
            "<!-- socketeer {VERSION} scan initiated {date} as: {} -->",
            comment(&scan.command_line)
        )?;
        writeln!(
            self.out,
            "<nmaprun scanner=\"nmap\" args=\"{args}\" start=\"{}\" startstr=\"{date}\" version=\"{VERSION}\" \
             xmloutputversion=\"1.05\">",
            scan.started.timestamp()
        )?;
        if let Some(method) = scan.tcp_method.filter(|_| !scan.tcp_ports.is_empty()) {
            scaninfo(&mut self.out, method, "tcp", &scan.tcp_ports)?;
        }
        if !scan.udp_ports.is_empty() {
            scaninfo(&mut self.out, "udp", "udp", &scan.udp_ports)?;
        }
        writeln!(self.out, "<verbose level=\"{}\"/>\n<debugging level=\"0\"/>", scan.verbose)?;
        self.out.flush()
    }

    fn host(&mut self, scan: &ScanInfo, host: &HostReport) -> io::Result<()> {
        if !scan.shows(host) {
            return Ok(());
        }
        if host.status == HostStatus::Down {
            // nmap's form: no times, no ports, no empty <hostnames>.
            writeln!(
                self.out,
                "<host><status state=\"down\" reason=\"{}\" reason_ttl=\"0\"/>",
                host.reason.as_str()
            )?;
            self.address(host)?;
            if let Some(name) = &host.host {
                hostname(&mut self.out, name)?;
            }
            writeln!(self.out, "</host>")?;
            return self.out.flush();
        }
        let now = Local::now().timestamp();
        write!(self.out, "<host starttime=\"{now}\" endtime=\"{now}\"")?;
        if host.incomplete {
            write!(self.out, " timedout=\"true\"")?;
        }
        writeln!(self.out, "><status state=\"up\" reason=\"{}\" reason_ttl=\"0\"/>", host.reason.as_str())?;
        self.address(host)?;
        match &host.host {
            Some(name) => hostname(&mut self.out, name)?,
            None => writeln!(self.out, "<hostnames>\n</hostnames>")?,
        }
        if host.counts.total() > 0 {
            self.ports(scan, host)?;
        }
        writeln!(self.out, "</host>")?;
        self.out.flush()
    }

    fn end(&mut self, _: &ScanInfo, summary: &Summary) -> io::Result<()> {
        let now = Local::now();
        let date = ScanInfo::date(&now);
        let exit =
            if summary.partial { "error\" errormsg=\"interrupted: partial results" } else { "success" };
        writeln!(
            self.out,
            "<runstats><finished time=\"{}\" timestr=\"{date}\" summary=\"socketeer done at {date}; {}\" \
             elapsed=\"{:.2}\" exit=\"{exit}\"/><hosts up=\"{}\" down=\"{}\" total=\"{}\"/>\n</runstats>\n</nmaprun>",
            now.timestamp(),
            done_summary(summary),
            summary.elapsed.as_secs_f64(),
            summary.hosts_up,
            summary.hosts - summary.hosts_up,
            summary.hosts
        )?;
        self.out.flush()
    }
}

impl Xml {
    fn address(&mut self, host: &HostReport) -> io::Result<()> {
        let family = if matches!(host.ip, IpAddr::V4(_)) { "ipv4" } else { "ipv6" };
        writeln!(self.out, "<address addr=\"{}\" addrtype=\"{family}\"/>", host.ip)
    }

    /// `<ports>`: the states not listed port by port as `<extraports>`
    /// with their reasons, then every listed port.
    fn ports(&mut self, scan: &ScanInfo, host: &HostReport) -> io::Result<()> {
        let (shown, _) = listed(scan, host);
        let mut extra: BTreeMap<&str, Unlisted<'_>> = BTreeMap::new();
        for p in host.ports.iter().filter(|p| !shown.iter().any(|s| std::ptr::eq(*s, *p))) {
            let (count, reasons) = extra.entry(p.state.as_str()).or_default();
            *count += 1;
            *reasons
                .entry((
                    nmap_reason(p.reason, p.transport, scan.tcp_method),
                    if p.transport == socketeer::net::Transport::Tcp { "tcp" } else { "udp" },
                ))
                .or_default() += 1;
        }
        // Without every port's verdict (no --all), a state's count is all there is.
        for state in PortState::ALL {
            let listed_here = host.ports.iter().filter(|p| p.state == state).count() as u64;
            let missing = host.counts.get(state).saturating_sub(listed_here);
            if missing > 0 {
                extra.entry(state.as_str()).or_default().0 += missing;
            }
        }
        write!(self.out, "<ports>")?;
        for (state, (count, reasons)) in &extra {
            writeln!(self.out, "<extraports state=\"{state}\" count=\"{count}\">")?;
            for ((reason, transport), n) in reasons {
                writeln!(
                    self.out,
                    "<extrareasons reason=\"{reason}\" count=\"{n}\" proto=\"{transport}\"/>"
                )?;
            }
            writeln!(self.out, "</extraports>")?;
        }
        for p in shown {
            let reason = nmap_reason(p.reason, p.transport, scan.tcp_method);
            write!(
                self.out,
                "<port protocol=\"{}\" portid=\"{}\"><state state=\"{}\" reason=\"{reason}\" reason_ttl=\"0\"/>",
                p.transport, p.port, p.state
            )?;
            let name = p.service.unwrap_or("unknown");
            match &p.banner {
                Some(banner) => write!(
                    self.out,
                    "<service name=\"{name}\" extrainfo=\"{}\" method=\"probed\" conf=\"3\"/>",
                    markup(banner)
                )?,
                None => write!(self.out, "<service name=\"{name}\" method=\"table\" conf=\"3\"/>")?,
            }
            writeln!(self.out, "</port>")?;
        }
        writeln!(self.out, "</ports>")
    }
}

/// The name the user gave for a host.
fn hostname(out: &mut dyn Write, name: &str) -> io::Result<()> {
    writeln!(out, "<hostnames>\n<hostname name=\"{}\" type=\"user\"/>\n</hostnames>", markup(name))
}

/// Ports of one state that are not listed: how many, and how many for
/// each (reason, protocol).
type Unlisted<'a> = (u64, BTreeMap<(&'a str, &'a str), u64>);

fn scaninfo(out: &mut dyn Write, kind: &str, protocol: &str, ports: &PortSet) -> io::Result<()> {
    writeln!(
        out,
        "<scaninfo type=\"{kind}\" protocol=\"{protocol}\" numservices=\"{}\" services=\"{}\"/>",
        ports.len(),
        ranges(ports)
    )
}

/// `1-1024,8080`: a port set as nmap lists it.
pub fn ranges(ports: &PortSet) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(u16, u16)> = None;
    for port in ports.iter() {
        run = match run {
            Some((first, last)) if port == last + 1 => Some((first, port)),
            Some(done) => {
                parts.push(range(done));
                Some((port, port))
            }
            None => Some((port, port)),
        };
    }
    parts.extend(run.map(range));
    parts.join(",")
}

fn range((first, last): (u16, u16)) -> String {
    if first == last { first.to_string() } else { format!("{first}-{last}") }
}

/// Text for an XML comment, which may not contain `--`.
fn comment(text: &str) -> String {
    markup(text).replace("--", "- -")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_sets_are_listed_as_ranges() {
        let spec: socketeer::scan::PortSpec = "1-3,5,7-8,65535".parse().unwrap();
        assert_eq!(ranges(&spec.tcp), "1-3,5,7-8,65535");
        assert_eq!(ranges(&PortSet::default()), "");
    }

    #[test]
    fn comments_never_close_early() {
        assert_eq!(comment("socketeer scan --top-ports 10"), "socketeer scan - -top-ports 10");
    }
}
