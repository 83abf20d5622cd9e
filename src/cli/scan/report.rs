//! Where a scan's results go: stdout in one format, and nmap's file formats
//! (`-oN`, `-oG`, `-oX`, `-oA`) beside it, each fed the same hosts as they
//! are done.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::Path;

use chrono::{DateTime, Local};
use socketeer::scan::{HostReport, HostStatus, PortReport, PortSet, PortState, Summary};

use super::super::output::Output;
use super::nmap_files::{Grepable, Normal};
use super::xml::Xml;

/// What every format's header and footer say about the scan.
#[derive(Clone, Debug)]
pub struct ScanInfo {
    /// The command line, as typed.
    pub command_line: String,
    /// When the scan began.
    pub started: DateTime<Local>,
    /// `connect` or `syn`, when TCP is scanned (a fallback changes it).
    pub tcp_method: Option<&'static str>,
    /// The TCP ports scanned.
    pub tcp_ports: PortSet,
    /// The UDP ports scanned.
    pub udp_ports: PortSet,
    /// Every port's verdict is to be shown, not only open ones (`--all`).
    pub show_all: bool,
    /// Only open ports are to be shown, in nmap's formats too (`--open`).
    pub open_only: bool,
    /// How many times `-v` was given: nmap's formats list hosts found down
    /// only from `-v` on, as nmap's own do.
    pub verbose: u8,
}

impl ScanInfo {
    /// nmap's date form: `Sun Dec  6 02:37:14 2026`.
    pub fn date(time: &DateTime<Local>) -> String {
        time.format("%a %b %e %H:%M:%S %Y").to_string()
    }

    /// Whether nmap's formats show `host`: nmap 7.93 leaves hosts found down
    /// out of its normal, grepable and XML output unless `-v` is given.
    pub fn shows(&self, host: &HostReport) -> bool {
        host.status == HostStatus::Up || self.verbose > 0
    }
}

/// One destination of results.
pub trait Report {
    /// Before the first host.
    fn start(&mut self, scan: &ScanInfo) -> io::Result<()>;
    /// One host, once its scan is over.
    fn host(&mut self, scan: &ScanInfo, host: &HostReport) -> io::Result<()>;
    /// After the last host.
    fn end(&mut self, scan: &ScanInfo, summary: &Summary) -> io::Result<()>;
}

/// The ports of `host` that nmap's formats list one by one, and the state
/// they leave out ("Not shown", "Ignored State"): the most common state
/// when more than [`IGNORED_AFTER`] ports are in it, or everything but open
/// ports with `--open`.
pub fn listed<'a>(scan: &ScanInfo, host: &'a HostReport) -> (Vec<&'a PortReport>, Option<(PortState, u64)>) {
    let most_common = |states: &[PortState]| {
        states.iter().map(|&s| (s, host.counts.get(s))).filter(|&(_, n)| n > 0).max_by_key(|&(_, n)| n)
    };
    if scan.open_only {
        let ignored = most_common(&[PortState::Closed, PortState::Filtered, PortState::OpenFiltered]);
        return (host.ports.iter().filter(|p| p.state == PortState::Open).collect(), ignored);
    }
    let ignored = most_common(&PortState::ALL).filter(|&(_, n)| n > IGNORED_AFTER && !scan.show_all);
    let shown = host.ports.iter().filter(|p| ignored.is_none_or(|(state, _)| p.state != state)).collect();
    (shown, ignored)
}

/// States with more ports than this are summed up, not listed (nmap's rule).
pub const IGNORED_AFTER: u64 = 25;

/// Our own table on stdout: one row per port, notes as `#` lines.
pub struct Table {
    pub out: Output,
}

impl Report for Table {
    fn start(&mut self, _: &ScanInfo) -> io::Result<()> {
        self.out.note(format_args!("{:<24} {:<11} {:<13} {:<15} BANNER", "HOST", "PORT", "STATE", "SERVICE"))
    }

    fn host(&mut self, scan: &ScanInfo, host: &HostReport) -> io::Result<()> {
        for port in host.ports.iter().filter(|p| scan.show_all || p.state == PortState::Open) {
            self.out.note(port)?;
        }
        for note in notes(host) {
            self.out.note(format_args!("# {}: {note}", host.ip))?;
        }
        Ok(())
    }

    fn end(&mut self, _: &ScanInfo, summary: &Summary) -> io::Result<()> {
        self.out.note(summary)
    }
}

/// What is worth saying about a host beyond its ports.
pub fn notes(host: &HostReport) -> Vec<String> {
    let mut notes = Vec::new();
    if host.status == HostStatus::Down {
        notes.push(format!("host down ({})", host.reason.as_str()));
    }
    if let Some(t) = &host.throttled {
        let measured = t.answer_rate.map(|r| format!(" to about {r:.1}/s")).unwrap_or_default();
        notes.push(format!(
            "limits its answers{measured}: paced at {:.1} probes/s, {} ports probed again, {:.1}s spent waiting",
            t.rate,
            t.reprobed,
            t.waited.as_secs_f64()
        ));
    }
    if host.incomplete {
        notes.push("scan incomplete: some ports have no verdict".to_owned());
    }
    notes
}

/// JSON Lines on stdout: each host's ports, then the host, then the summary.
pub struct Json {
    pub out: Output,
}

impl Report for Json {
    fn start(&mut self, _: &ScanInfo) -> io::Result<()> {
        Ok(())
    }

    fn host(&mut self, scan: &ScanInfo, host: &HostReport) -> io::Result<()> {
        for port in host.ports.iter().filter(|p| scan.show_all || p.state == PortState::Open) {
            self.out.emit("port", port)?;
        }
        self.out.emit("host", &Shown(host))
    }

    fn end(&mut self, _: &ScanInfo, summary: &Summary) -> io::Result<()> {
        self.out.emit("summary", summary)
    }
}

/// A host report for `Output::emit`, which wants a `Display` too.
#[derive(serde::Serialize)]
#[serde(transparent)]
struct Shown<'a>(&'a HostReport);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", self.0.ip, self.0.status)
    }
}

/// `ip:port` of each open port on stdout, nothing else.
pub struct List;

impl Report for List {
    fn start(&mut self, _: &ScanInfo) -> io::Result<()> {
        Ok(())
    }

    fn host(&mut self, _: &ScanInfo, host: &HostReport) -> io::Result<()> {
        let mut out = io::stdout().lock();
        for port in host.ports.iter().filter(|p| p.state == PortState::Open) {
            writeln!(out, "{}", SocketAddr::new(port.ip, port.port))?;
        }
        out.flush()
    }

    fn end(&mut self, _: &ScanInfo, _: &Summary) -> io::Result<()> {
        Ok(())
    }
}

/// nmap's formats, to stdout (`-`) or a file.
pub fn nmap_format(kind: NmapFormat, path: &Path) -> io::Result<Box<dyn Report + Send>> {
    let writer: Box<dyn Write + Send> = if path.as_os_str() == "-" {
        Box::new(Stdout)
    } else {
        Box::new(BufWriter::new(File::create(path)?))
    };
    Ok(match kind {
        NmapFormat::Normal => Box::new(Normal { out: writer }),
        NmapFormat::Grepable => Box::new(Grepable { out: writer }),
        NmapFormat::Xml => Box::new(Xml { out: writer }),
    })
}

/// nmap's output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NmapFormat {
    /// `-oN`: a report for people.
    Normal,
    /// `-oG`: one line per host, for grep and awk.
    Grepable,
    /// `-oX`: XML per nmap's DTD.
    Xml,
}

/// Stdout, flushed at each write so results show as they come.
struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = io::stdout().lock();
        out.write_all(buf)?;
        out.flush()?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}
