//! `socketeer scan`: the port scanner's command line and output formats.

use std::ffi::OsString;
use std::fmt;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use socketeer::scan::ports::{PortSpec, TopPortsError};
use socketeer::scan::targets::{self, TargetSpec};
use socketeer::scan::{self, Event, PortReport, PortState, Progress, ScanConfig, Summary, TcpMethod};
use socketeer::shutdown;

use super::args::{UsageError, positive_duration, subcommand_args};
use super::output::Output;

const EXAMPLES: &str = "\
Examples:
  socketeer scan localhost                         # every TCP port, open ones listed
  socketeer scan 127.0.0.1 ::1 -p 22,80,8000-8100 --banner
  socketeer scan localhost -p ssh,http,U:53 --udp --tcp
  socketeer scan 127.0.0.0/29 --top-ports 100 --json
  socketeer scan -iL hosts.txt --exclude 127.0.0.2 -oG
  sudo socketeer scan localhost -sS                # raw SYN scan (needs CAP_NET_RAW)

nmap's -sT, -sS, -sU, -iL FILE and -oG work as written, standing for --tcp, --syn, --udp,
--input-list FILE and --output grep.

Exit status: 0 when an open port was found, 1 when none was (or on error), 2 on bad usage.";

/// Arguments of `socketeer scan`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// What to scan: addresses, CIDR blocks (127.0.0.0/30), ranges
    /// (127.0.0.1-9, ::1-::5), IPv4 octet ranges (127.0.0-1.1-5) and host names.
    #[arg(value_name = "TARGET", required_unless_present = "input_list")]
    targets: Vec<String>,
    /// Read more targets from FILE (- for stdin), whitespace-separated, # comments (nmap's -iL).
    #[arg(long, value_name = "FILE")]
    input_list: Option<PathBuf>,
    /// Never scan these targets, comma-separated (same forms as TARGET).
    #[arg(long, value_name = "TARGETS", value_delimiter = ',')]
    exclude: Vec<String>,
    /// Never scan the targets listed in FILE.
    #[arg(long, value_name = "FILE")]
    exclude_file: Option<PathBuf>,
    /// Ports: 22,80,1000-2000, - for all, service names (http,ssh), T: and U:
    /// prefixes. Default: every TCP port, and the built-in table's UDP ports.
    #[arg(short, long, value_name = "PORTS", allow_hyphen_values = true, conflicts_with = "top_ports")]
    ports: Option<String>,
    /// Scan the N most common ports of the built-in table, per transport.
    #[arg(long, value_name = "N")]
    top_ports: Option<usize>,
    /// Leave these ports out (same syntax as -p).
    #[arg(long, value_name = "PORTS", allow_hyphen_values = true)]
    exclude_ports: Option<String>,
    /// Scan TCP with connect() (-sT; the default unless --udp is given alone).
    #[arg(long)]
    tcp: bool,
    /// Scan TCP with raw SYN packets (-sS); needs CAP_NET_RAW, else falls back to connect().
    #[arg(long)]
    syn: bool,
    /// Scan UDP (-sU): open, open|filtered or closed, with payloads for common services.
    #[arg(long)]
    udp: bool,
    /// How long a probe waits for an answer, from the moment it is sent.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = positive_duration)]
    timeout: Duration,
    /// How many times an unanswered probe is sent again.
    #[arg(long, value_name = "N", default_value_t = 1)]
    retries: u8,
    /// Probes in flight at most (default: 4096, lowered to what the file-descriptor limit allows).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_inflight: Option<u32>,
    /// Probes sent per second at most.
    #[arg(long, value_name = "PPS", value_parser = clap::value_parser!(u32).range(1..))]
    rate: Option<u32>,
    /// Connect-scan threads (default: one per core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: Option<u16>,
    /// Read what open TCP ports say first (or answer to a minimal HTTP request).
    #[arg(long)]
    banner: bool,
    /// How long to wait for a banner.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = positive_duration)]
    banner_timeout: Duration,
    /// Report every port's verdict, not only open ones.
    #[arg(long)]
    all: bool,
    /// Output format: table, json (JSON Lines), grep (nmap -oG style) or list (ip:port).
    #[arg(short, long, value_enum, value_name = "FORMAT", default_value = "table")]
    output: Format,
    /// Same as --output json.
    #[arg(long, conflicts_with = "output")]
    json: bool,
}

/// How results are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// A table, one row per port as it is found, then a summary.
    Table,
    /// JSON Lines: one object per port, then a summary object.
    Json,
    /// One greppable line per port in nmap's -oG field layout.
    #[value(alias = "G")]
    Grep,
    /// `ip:port` of each open port, nothing else.
    List,
}

/// The scan found no open port: exit status 1, with nothing more to say.
#[derive(Debug, thiserror::Error)]
#[error("no open ports found")]
pub struct NothingOpen;

/// Rewrites nmap's two-letter options in `scan`'s own arguments (`-sS`,
/// `-sT`, `-sU`, `-iL`, `-oG`) into this command's, so nmap habits work.
pub fn nmap_style_args(mut args: Vec<OsString>) -> Vec<OsString> {
    let Some(start) = subcommand_args(&args, "scan") else { return args };
    for arg in &mut args[start..] {
        let replacement = match arg.to_str() {
            Some("-sS") => "--syn",
            Some("-sT") => "--tcp",
            Some("-sU") => "--udp",
            Some("-iL") => "--input-list",
            Some("-oG") => "--output=grep",
            _ => continue,
        };
        *arg = replacement.into();
    }
    args
}

/// Runs `socketeer scan`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let format = if args.json { Format::Json } else { args.output };
    let config = config(&args)?;
    let progress = Arc::new(Progress::default());
    let bar = progress_bar(format);
    let ticker = tick(bar.clone(), progress.clone());
    let stopper = {
        let progress = progress.clone();
        tokio::spawn(async move {
            if shutdown::signal().await.is_ok() {
                progress.stop();
            }
        })
    };
    let out = Output::new(format == Format::Json);
    if format == Format::Table {
        bar.suspend(|| {
            out.note(format_args!("{:<24} {:<11} {:<13} {:<15} BANNER", "HOST", "PORT", "STATE", "SERVICE"))
        })?;
    }
    let sink = |event: Event| bar.suspend(|| write_event(out, format, &event));
    let summary = scan::run(config, progress, sink).await;
    ticker.abort();
    stopper.abort();
    bar.finish_and_clear();
    let summary = summary?;
    write_summary(out, format, &summary)?;
    if summary.ports.open == 0 {
        return Err(NothingOpen.into());
    }
    Ok(())
}

fn config(args: &Args) -> anyhow::Result<ScanConfig> {
    let usage = |e: &dyn fmt::Display| UsageError(e.to_string());
    let mut targets = args
        .targets
        .iter()
        .map(|t| t.parse::<TargetSpec>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| usage(&e))?;
    if let Some(path) = &args.input_list {
        targets.extend(read_list(path)?);
    }
    let mut exclude = args
        .exclude
        .iter()
        .map(|t| t.parse::<TargetSpec>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| usage(&e))?;
    if let Some(path) = &args.exclude_file {
        exclude.extend(read_list(path)?);
    }
    let mut ports = match (&args.ports, args.top_ports) {
        (Some(spec), _) => spec.parse::<PortSpec>().map_err(|e| usage(&e))?,
        (None, Some(n)) => PortSpec::top(n).map_err(|e: TopPortsError| usage(&e))?,
        (None, None) => PortSpec { tcp: PortSpec::all().tcp, udp: udp_table() },
    };
    if let Some(spec) = &args.exclude_ports {
        ports.exclude(&spec.parse::<PortSpec>().map_err(|e| usage(&e))?);
    }
    let scan_tcp = args.tcp || args.syn || !args.udp;
    if !scan_tcp {
        ports.tcp = Default::default();
    }
    if !args.udp {
        ports.udp = Default::default();
    }
    if scan_tcp && ports.tcp.is_empty() {
        let named_udp = args.ports.as_deref().is_some_and(|p| p.to_ascii_uppercase().contains("U:"));
        let hint = if named_udp { " (U: ports need --udp)" } else { "" };
        return Err(UsageError(format!("no TCP ports left to scan{hint}")).into());
    }
    if args.udp && ports.udp.is_empty() {
        return Err(UsageError("no UDP ports left to scan (T: ports are TCP only)".to_owned()).into());
    }
    Ok(ScanConfig {
        targets,
        exclude,
        ports,
        tcp_method: if args.syn { TcpMethod::Syn } else { TcpMethod::Connect },
        timeout: args.timeout,
        retries: args.retries,
        max_inflight: args.max_inflight.map(|n| n as usize),
        rate: args.rate.map(f64::from),
        threads: args.threads.map(usize::from),
        banner: args.banner.then_some(args.banner_timeout),
        report_all: args.all,
    })
}

/// Every UDP port of the built-in table.
fn udp_table() -> socketeer::scan::PortSet {
    let mut set = socketeer::scan::PortSet::default();
    socketeer::services::UDP.iter().for_each(|&(port, _)| set.insert(port));
    set
}

fn read_list(path: &std::path::Path) -> anyhow::Result<Vec<TargetSpec>> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| anyhow::anyhow!("cannot read target list {}: {e}", path.display()))?;
    targets::parse_list(&text).map_err(|e| UsageError(format!("{}: {e}", path.display())).into())
}

fn write_event(out: Output, format: Format, event: &Event) -> std::io::Result<()> {
    match (event, format) {
        (Event::Port(report), Format::Table | Format::Json) => out.emit("port", report),
        (Event::Port(report), Format::Grep) => out.note(Greppable(report)),
        (Event::Port(report), Format::List) if report.state == PortState::Open => {
            out.note(std::net::SocketAddr::new(report.ip, report.port))
        }
        (Event::Port(_), Format::List) => Ok(()),
        (Event::Unresolved { host, error }, _) => {
            tracing::warn!("cannot resolve '{host}': {error}; skipping it");
            Ok(())
        }
        (Event::SynUnavailable { reason }, _) => {
            tracing::warn!("--syn is not possible here ({reason}); scanning with connect() instead");
            Ok(())
        }
    }
}

fn write_summary(out: Output, format: Format, summary: &Summary) -> std::io::Result<()> {
    match format {
        Format::Table | Format::Json => out.emit("summary", summary),
        Format::Grep => out.note(format_args!("# socketeer scan done: {summary}")),
        Format::List => Ok(()),
    }
}

/// nmap's -oG layout for one port: `Host: IP (NAME)\tPorts: PORT/STATE/PROTO//SERVICE//BANNER/`.
struct Greppable<'a>(&'a PortReport);

impl fmt::Display for Greppable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        let name = r.host.as_deref().unwrap_or_default();
        let banner = r.banner.as_deref().unwrap_or_default().replace('/', "|");
        write!(
            f,
            "Host: {} ({name})\tPorts: {}/{}/{}//{}//{banner}/",
            r.ip,
            r.port,
            r.state,
            r.transport,
            r.service.unwrap_or_default()
        )
    }
}

/// A bar on stderr when it is a terminal and the output is a table.
fn progress_bar(format: Format) -> ProgressBar {
    if format != Format::Table || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} ports {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn tick(bar: ProgressBar, progress: Arc<Progress>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_millis(100));
        loop {
            ticks.tick().await;
            bar.set_length(progress.total());
            bar.set_position(progress.done());
        }
    })
}
