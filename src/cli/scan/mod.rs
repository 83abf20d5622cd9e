//! `socketeer scan`: the port scanner's command line; where its results go
//! is in [`report`], nmap's formats in [`nmap_files`] and [`xml`], nmap's
//! spellings in [`nmap`].

mod nmap;
mod nmap_files;
mod report;
mod xml;

use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Local;
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use socketeer::scan::ports::PortSpec;
use socketeer::scan::ranking::{Ranking, TopPortsError};
use socketeer::scan::targets::{self, TargetSpec};
use socketeer::scan::{self, Event, Progress, ScanConfig, Summary, TcpMethod};
use socketeer::shutdown;

use nmap::Timing;
pub use nmap::nmap_style_args;
use report::{Json, List, NmapFormat, Report, ScanInfo, Table, nmap_format};

use super::args::{UsageError, positive_duration};
use super::output::Output;

const EXAMPLES: &str = "\
Examples:
  socketeer scan localhost                         # every TCP port, open ones listed
  socketeer scan 127.0.0.1 ::1 -p 22,80,8000-8100 --banner
  socketeer scan localhost -p ssh,http,U:53 --udp --tcp
  socketeer scan 127.0.0.0/29 --top-ports 100 --json
  socketeer scan -iL hosts.txt --exclude 127.0.0.2 -oG hosts.gnmap
  sudo socketeer scan 10.0.0.0/24 -sS -T4 -oA lan    # nmap's spellings work as written

nmap's options work as written: -sT -sS -sU -sSU (--tcp, --syn, --udp), -sV (--banner),
-Pn, -n, -F, -T0..-T5 (--timing), -iL FILE, -oN/-oG/-oX FILE and -oA BASENAME (a file
each, - for stdout), --open, --min-rate, --max-rate, --max-retries, --host-timeout.

Exit status: 0 when an open port was found, 1 when the scan found none, 2 on bad usage,
3 when the scan could not run, 130 when it was interrupted (the results so far are
printed, marked partial).";

/// Arguments of `socketeer scan`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// What to scan: addresses (fe80::1%eth0 with a zone), CIDR blocks (127.0.0.0/30),
    /// ranges (127.0.0.1-9, ::1-::5), IPv4 octet lists and ranges (10.0.0.2,8 or
    /// 127.0.0-1.1-5) and host names.
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
    /// Scan the N most common ports per transport (-F: 100; 1 to 65535). The ranking is
    /// nmap's own frequency data, read from its nmap-services file when nmap is installed
    /// (/usr/share/nmap or /usr/local/share/nmap); without it, the built-in table of IANA
    /// assignments in port order, then the other ports in order.
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
    /// How long an answer is waited for, from the moment its probe is sent (probes are
    /// retried sooner, as round trips allow, and late answers still count).
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    timeout: Option<Duration>,
    /// How many times an unanswered probe is sent again (nmap's --max-retries).
    #[arg(long, value_name = "N", default_value_t = 1)]
    retries: u8,
    /// Probes in flight at most (default: 4096, lowered to what the file-descriptor limit allows).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_inflight: Option<u32>,
    /// Probes sent per second at most (nmap's --max-rate).
    #[arg(long, value_name = "PPS", value_parser = probe_rate)]
    rate: Option<f64>,
    /// The slowest a host that limits its answers is probed, per second: exactness gives way.
    #[arg(long, value_name = "PPS", value_parser = probe_rate)]
    min_rate: Option<f64>,
    /// Give a host up after this long; what was found so far is reported, marked incomplete.
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    host_timeout: Option<Duration>,
    /// nmap's timing template (-T0..-T5): paranoid, sneaky, polite, normal, aggressive, insane.
    #[arg(long, value_enum, value_name = "TEMPLATE")]
    timing: Option<Timing>,
    /// Connect-scan threads (default: one per core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: Option<u16>,
    /// Read what open TCP ports say first (or answer to a minimal HTTP request) (-sV).
    #[arg(long)]
    banner: bool,
    /// How long to wait for a banner.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = positive_duration)]
    banner_timeout: Duration,
    /// Report every port's verdict, not only open ones.
    #[arg(long, conflicts_with = "open")]
    all: bool,
    /// Only open ports, in nmap's formats too (the table lists only open ports anyway).
    #[arg(long)]
    open: bool,
    /// Never look names up in reverse (-n): socketeer never does; accepted for nmap's lines.
    #[arg(long, hide = true)]
    no_dns: bool,
    /// Take every target to be up and scan its ports (-Pn). Without it, hosts are asked
    /// first: on a local Ethernet link with CAP_NET_RAW, our own ARP or NDP requests; elsewhere
    /// TCP connects to ports 80 and 443, an ICMP echo with CAP_NET_RAW, and the kernel's ARP
    /// table. Those that answer nothing are reported down, unscanned.
    #[arg(long)]
    skip_discovery: bool,
    /// Output format on stdout: table, json (JSON Lines), grep, normal or xml (nmap's -oG,
    /// -oN and -oX layouts) or list (ip:port).
    #[arg(short, long, value_enum, value_name = "FORMAT", default_value = "table")]
    output: Format,
    /// Same as --output json.
    #[arg(long, conflicts_with = "output")]
    json: bool,
    /// Also write nmap's normal output to FILE (-oN; - for stdout).
    #[arg(long, value_name = "FILE")]
    output_normal: Option<PathBuf>,
    /// Also write nmap's grepable output to FILE (-oG; - for stdout): a Status and a Ports line per
    /// host; hosts found down only with -v, as with nmap (so in -oN and -oX too).
    #[arg(long, value_name = "FILE")]
    output_grep: Option<PathBuf>,
    /// Also write nmap's XML to FILE (-oX; - for stdout), valid against nmap.dtd.
    #[arg(long, value_name = "FILE")]
    output_xml: Option<PathBuf>,
    /// Write all three nmap formats: BASE.nmap, BASE.gnmap, BASE.xml (-oA).
    #[arg(long, value_name = "BASE")]
    output_all: Option<PathBuf>,
}

/// How results are written on stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// A table, one row per port, host by host, then a summary.
    Table,
    /// JSON Lines: each host's ports, then the host, then a summary object.
    Json,
    /// nmap's grepable layout (-oG): a Status and a Ports line per host.
    #[value(alias = "G")]
    Grep,
    /// nmap's normal layout (-oN).
    #[value(alias = "N")]
    Normal,
    /// nmap's XML (-oX).
    #[value(alias = "X")]
    Xml,
    /// `ip:port` of each open port, nothing else.
    List,
}

/// A probe rate: a positive number per second.
fn probe_rate(s: &str) -> Result<f64, String> {
    match s.trim_end_matches("/s").parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= 1e9 => Ok(rate),
        _ => Err(format!("'{s}' is not a rate: give probes per second, a number above 0")),
    }
}

/// The scan ran and found no open port: exit status 1, the summary said so.
#[derive(Debug, thiserror::Error)]
#[error("no open ports found")]
pub struct NothingOpen;

/// The scan was interrupted (Ctrl-C, SIGTERM): exit status 130; the results
/// so far were printed, marked partial.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// The scan could not run: exit status 3, apart from finding nothing (1).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ScanFailed(#[from] anyhow::Error);

/// Runs `socketeer scan`; `verbose` is how many times `-v` was given.
///
/// # Errors
/// [`NothingOpen`], [`Interrupted`], [`ScanFailed`] or a [`UsageError`].
pub async fn run(args: Args, verbose: u8) -> anyhow::Result<()> {
    let format = if args.json { Format::Json } else { args.output };
    let config = config(&args).map_err(could_not_run)?;
    let mut info = ScanInfo {
        command_line: std::env::args().collect::<Vec<_>>().join(" "),
        started: Local::now(),
        tcp_method: (!config.ports.tcp.is_empty()).then_some(if config.tcp_method == TcpMethod::Syn {
            "syn"
        } else {
            "connect"
        }),
        tcp_ports: config.ports.tcp.clone(),
        udp_ports: config.ports.udp.clone(),
        show_all: args.all,
        open_only: args.open,
        verbose,
    };
    let mut reports = reports(&args, format).map_err(could_not_run)?;
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
    let mut started = false;
    let sink = |event: Event| {
        bar.suspend(|| match event {
            Event::Host(host) => {
                if !std::mem::replace(&mut started, true) {
                    reports.iter_mut().try_for_each(|r| r.start(&info))?;
                }
                reports.iter_mut().try_for_each(|r| r.host(&info, &host))
            }
            Event::Unresolved { host, error } => {
                tracing::warn!("cannot resolve '{host}': {error}; skipping it");
                Ok(())
            }
            Event::SynUnavailable { reason } => {
                tracing::warn!("--syn is not possible here ({reason}); scanning with connect() instead");
                info.tcp_method = Some("connect");
                Ok(())
            }
        })
    };
    let summary = scan::run(config, progress, sink).await;
    ticker.abort();
    stopper.abort();
    bar.finish_and_clear();
    let summary = summary.map_err(|e| ScanFailed(e.into()))?;
    if !started {
        reports.iter_mut().try_for_each(|r| r.start(&info))?;
    }
    reports.iter_mut().try_for_each(|r| r.end(&info, &summary))?;
    exit_status(&summary)
}

/// An error before the scan began: bad usage stays a usage error (2);
/// anything else (a target list that cannot be read, an output file that
/// cannot be written) means the scan could not run (3), never "nothing
/// open" (1).
fn could_not_run(e: anyhow::Error) -> anyhow::Error {
    if e.is::<UsageError>() { e } else { ScanFailed(e).into() }
}

/// The exit status a finished scan stands for.
fn exit_status(summary: &Summary) -> anyhow::Result<()> {
    if summary.partial {
        Err(Interrupted.into())
    } else if summary.ports.open == 0 {
        Err(NothingOpen.into())
    } else {
        Ok(())
    }
}

/// The destinations the arguments ask for: stdout in `format` (unless a
/// file option takes stdout with `-`), and each file.
fn reports(args: &Args, format: Format) -> anyhow::Result<Vec<Box<dyn Report + Send>>> {
    let mut files: Vec<(NmapFormat, PathBuf)> = Vec::new();
    let named = [
        (NmapFormat::Normal, &args.output_normal),
        (NmapFormat::Grepable, &args.output_grep),
        (NmapFormat::Xml, &args.output_xml),
    ];
    files.extend(named.into_iter().filter_map(|(kind, path)| path.clone().map(|p| (kind, p))));
    if let Some(base) = &args.output_all {
        for (kind, extension) in
            [(NmapFormat::Normal, "nmap"), (NmapFormat::Grepable, "gnmap"), (NmapFormat::Xml, "xml")]
        {
            let mut path = base.clone().into_os_string();
            path.push(format!(".{extension}"));
            files.push((kind, path.into()));
        }
    }
    let stdout_taken = files.iter().any(|(_, path)| path.as_os_str() == "-");
    let mut reports: Vec<Box<dyn Report + Send>> = Vec::new();
    if !stdout_taken {
        let out = Output::new(format == Format::Json);
        reports.push(match format {
            Format::Table => Box::new(Table { out }),
            Format::Json => Box::new(Json { out }),
            Format::List => Box::new(List),
            Format::Grep => nmap_format(NmapFormat::Grepable, Path::new("-"))?,
            Format::Normal => nmap_format(NmapFormat::Normal, Path::new("-"))?,
            Format::Xml => nmap_format(NmapFormat::Xml, Path::new("-"))?,
        });
    }
    for (kind, path) in files {
        let report =
            nmap_format(kind, &path).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        reports.push(report);
    }
    Ok(reports)
}

fn config(args: &Args) -> anyhow::Result<ScanConfig> {
    let usage = |e: &dyn fmt::Display| UsageError(e.to_string());
    let parse_targets = |list: &[String]| -> anyhow::Result<Vec<TargetSpec>> {
        Ok(list.iter().map(|t| t.parse::<TargetSpec>()).collect::<Result<_, _>>().map_err(|e| usage(&e))?)
    };
    let mut targets = parse_targets(&args.targets)?;
    if let Some(path) = &args.input_list {
        targets.extend(read_list(path)?);
    }
    let mut exclude = parse_targets(&args.exclude)?;
    if let Some(path) = &args.exclude_file {
        exclude.extend(read_list(path)?);
    }
    let mut ports = match (&args.ports, args.top_ports) {
        (Some(spec), _) => spec.parse::<PortSpec>().map_err(|e| usage(&e))?,
        (None, Some(n)) => {
            let ranking = Ranking::load();
            tracing::debug!("--top-ports {n}: {}", ranking.describe());
            ranking.spec(n).map_err(|e: TopPortsError| usage(&e))?
        }
        (None, None) => PortSpec { tcp: PortSpec::all().tcp, udp: udp_table() },
    };
    if let Some(spec) = &args.exclude_ports {
        ports.exclude(&spec.parse::<PortSpec>().map_err(|e| usage(&e))?);
    }
    let scan_tcp = args.tcp || args.syn || !args.udp;
    let named_udp = args.ports.as_deref().is_some_and(|p| p.to_ascii_uppercase().contains("U:"));
    if !scan_tcp {
        ports.tcp = Default::default();
    }
    if !args.udp {
        if named_udp && !ports.tcp.is_empty() {
            // nmap's warning, in nmap's situation: the U: part is left out.
            tracing::warn!(
                "the ports include U: items, but no UDP scan was asked for (--udp, -sU); they are not scanned"
            );
        }
        ports.udp = Default::default();
    }
    if scan_tcp && ports.tcp.is_empty() {
        let hint = if named_udp { " (U: ports need --udp)" } else { "" };
        return Err(UsageError(format!("no TCP ports left to scan{hint}")).into());
    }
    if args.udp && ports.udp.is_empty() {
        return Err(UsageError("no UDP ports left to scan (T: ports are TCP only)".to_owned()).into());
    }
    let template = args.timing.map(Timing::settings).unwrap_or_default();
    let nmap_formats = args.output_normal.is_some()
        || args.output_grep.is_some()
        || args.output_xml.is_some()
        || args.output_all.is_some()
        || matches!(args.output, Format::Grep | Format::Normal | Format::Xml);
    Ok(ScanConfig {
        targets,
        exclude,
        ports,
        tcp_method: if args.syn { TcpMethod::Syn } else { TcpMethod::Connect },
        timeout: args.timeout.or(template.timeout).unwrap_or(ScanConfig::default().timeout),
        retries: args.retries,
        max_inflight: args.max_inflight.map(|n| n as usize).or(template.max_inflight),
        rate: args.rate.or(template.rate),
        min_rate: args.min_rate,
        host_timeout: args.host_timeout.or(template.host_timeout),
        threads: args.threads.map(usize::from),
        banner: args.banner.then_some(args.banner_timeout),
        // nmap's formats list closed and filtered ports too.
        report_all: args.all || nmap_formats,
        discover: !args.skip_discovery,
    })
}

/// Every UDP port of the built-in table.
fn udp_table() -> socketeer::scan::PortSet {
    let mut set = socketeer::scan::PortSet::default();
    socketeer::services::UDP.iter().for_each(|&(port, _)| set.insert(port));
    set
}

fn read_list(path: &Path) -> anyhow::Result<Vec<TargetSpec>> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| anyhow::anyhow!("cannot read target list {}: {e}", path.display()))?;
    targets::parse_list(&text).map_err(|e| UsageError(format!("{}: {e}", path.display())).into())
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
