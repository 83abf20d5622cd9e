//! `socketeer sniff`: capture, decode, filter and save packets.

mod format;
mod names;
mod sink;

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use socketeer::poll::Waker;
use socketeer::shutdown;
use socketeer::sniff::capture::{Capture, Config};
use socketeer::sniff::filter::{Filter, compile};
use socketeer::sniff::pcap::{self, Precision};
use socketeer::sniff::{Counts, LinkType};

use super::args::{UsageError, subcommand_args};
use super::output::Output;
use format::Extras;
use sink::{Live, Plan, Sink, Summary};

const EXAMPLES: &str = "\
Examples:
  socketeer sniff -r echo.pcap                       # read a pcap or pcapng file (no root needed)
  socketeer sniff -r echo.pcap 'tcp and port 7007' --json
  socketeer sniff -r echo.pcap --stats               # protocols, ports and top talkers
  sudo socketeer sniff                               # everything on lo, one line per packet
  sudo socketeer sniff -i lo tcp port 7007 -c 10     # the first 10 packets to or from port 7007
  sudo socketeer sniff 'udp and not port 53' -v -x   # header details and a hex dump
  sudo socketeer sniff -w echo.pcap port 7007        # save for Wireshark/tshark; Ctrl-C stops
  socketeer sniff -r echo.pcap 'tcp[tcpflags] & tcp-syn != 0'   # SYNs only
  socketeer sniff -d 'vlan 100 and port 53'          # the BPF program, as tcpdump -d

Filters are tcpdump's (pcap-filter(7)) with libpcap's meaning: tcp udp sctp icmp icmp6 igmp
arp rarp ip ip6, [ip|ip6|arp|rarp] [src|dst] host ADDR|NAME, net N[/LEN] | net N mask M,
[tcp|udp|sctp] [src|dst] port N|NAME, portrange N-M, ether [src|dst] host MAC, ether proto N,
[ip|ip6] proto N, vlan [ID], broadcast, multicast, less/greater N, byte offsets and arithmetic
('tcp[tcpflags] & tcp-syn != 0', 'ip[6:2] & 0x1fff = 0', 'len > 100'), and/or/not, ( ).
Service names come from /etc/services (port http is TCP's 80). -d prints the BPF program.
TCP sequence and acknowledgement numbers are absolute (tcpdump -S).
After `sniff`, -v means --detail (tcpdump's habit); `socketeer -v sniff` logs more.
Capturing needs root or CAP_NET_RAW; reading a file does not.";

/// The largest snap length (tcpdump's too): `-s 0` means this.
const MAX_SNAPLEN: u32 = 262_144;

fn snaplen(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) => Ok(MAX_SNAPLEN),
        Ok(n @ 64..=MAX_SNAPLEN) => Ok(n),
        _ => Err(format!("expected 64 to {MAX_SNAPLEN} bytes, or 0 for the most")),
    }
}

/// Arguments of `socketeer sniff`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Which frames to keep, in tcpdump's syntax (quote it, or give it as several words).
    #[arg(value_name = "FILTER")]
    filter: Vec<String>,
    /// The interface to capture on.
    #[arg(short, long, value_name = "IFACE", default_value = "lo", conflicts_with = "read")]
    interface: String,
    /// Stop after this many matching packets.
    #[arg(short = 'c', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Write matching packets to a pcap file (- for stdout) instead of printing them.
    #[arg(short, long, value_name = "FILE")]
    write: Option<PathBuf>,
    /// Print packets even while writing them to a file.
    #[arg(long, requires = "write")]
    print: bool,
    /// Read packets from a pcap or pcapng file (- for stdin) instead of capturing.
    #[arg(short, long, value_name = "FILE")]
    read: Option<PathBuf>,
    /// Bytes kept of each packet, at least 64 (0: the most, as in tcpdump).
    #[arg(short, long, value_name = "BYTES", default_value_t = MAX_SNAPLEN, value_parser = snaplen)]
    snaplen: u32,
    /// Socket buffer for packets waiting to be read, in KiB (tcpdump's -B). The kernel
    /// charges each queued frame its whole buffer (about 1 KiB for a small one).
    #[arg(short = 'B', long, value_name = "KIB", default_value_t = 32768, value_parser = clap::value_parser!(u32).range(64..=1_048_576), conflicts_with = "read")]
    buffer_size: u32,
    /// Write nanosecond timestamps (default: microseconds, which every tool reads).
    #[arg(long, requires = "write")]
    nano: bool,
    /// Header details under each packet. `-v` after `sniff` means this, as in tcpdump
    /// (for debug logging, put -v before `sniff`, or set RUST_LOG).
    #[arg(long)]
    detail: bool,
    /// Hex and ASCII of the whole frame, link-layer header included (tcpdump's -XX).
    #[arg(short = 'x', long)]
    hex: bool,
    /// The payload of each packet as text.
    #[arg(short = 'A', long)]
    ascii: bool,
    /// Counters by protocol, port and sender at the end. Packets still print, as
    /// tcpdump's do; for the counters alone, add `-w /dev/null`.
    #[arg(long)]
    stats: bool,
    /// Addresses and ports are never resolved to names; accepted for tcpdump habits.
    #[arg(short = 'n', hide = true)]
    numeric: bool,
    /// JSON Lines: one object per packet, then a summary.
    #[arg(long)]
    json: bool,
    /// Print the filter's BPF program, as tcpdump -d does, and exit (for the link type
    /// of the -r file, or Ethernet).
    #[arg(short = 'd')]
    dump: bool,
}

/// Rewrites tcpdump habits after `sniff`: `-v` (header details) becomes
/// `--detail`, since `-v` elsewhere means more logging; clusters such as
/// `-vx` or `-nvA` keep their other flags.
pub fn tcpdump_style_args(args: Vec<OsString>) -> Vec<OsString> {
    const FLAGS: &str = "vxAn";
    let Some(start) = subcommand_args(&args, "sniff") else { return args };
    let mut out = args[..start].to_vec();
    for arg in &args[start..] {
        match arg.to_str().and_then(|a| a.strip_prefix('-')) {
            Some(flags)
                if !flags.is_empty() && flags.contains('v') && flags.chars().all(|c| FLAGS.contains(c)) =>
            {
                out.push("--detail".into());
                let rest: String = flags.chars().filter(|&c| c != 'v').collect();
                if !rest.is_empty() {
                    out.push(format!("-{rest}").into());
                }
            }
            _ => out.push(arg.clone()),
        }
    }
    out
}

/// Whether two paths name the same file (through links, `.` and `..`).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Runs `socketeer sniff`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let filter = match args.filter.join(" ").trim() {
        "" => None,
        text => {
            Some(Filter::parse(text, &names::SystemNames::load()).map_err(|e| UsageError(e.to_string()))?)
        }
    };
    if args.dump {
        return dump(args.read.as_deref(), filter.as_ref());
    }
    let pcap_to_stdout = args.write.as_deref() == Some(Path::new("-"));
    let output = match args.write.as_deref() {
        None => None,
        Some(_) if pcap_to_stdout => Some(Box::new(io::stdout()) as Box<dyn Write + Send>),
        Some(path) => {
            if let Some(input) = args.read.as_deref().filter(|input| same_file(input, path)) {
                let message = format!("-w {} would overwrite the file -r reads", input.display());
                return Err(UsageError(message).into());
            }
            // Created now, so a bad path fails before the capture starts.
            let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            Some(Box::new(file) as Box<dyn Write + Send>)
        }
    };
    let print = !pcap_to_stdout && (args.write.is_none() || args.print);
    if !print && (args.detail || args.hex || args.ascii) {
        // tcpdump prints nothing with -w, silently; say why nothing shows.
        writeln!(io::stderr(), "note: packets are written, not printed: -v, -x and -A need --print")?;
    }
    let plan = Plan {
        output,
        json: args.json,
        print,
        extras: Extras { details: args.detail, hex: args.hex, ascii: args.ascii },
        filter: filter.clone(),
        stats: args.stats,
        limit: args.count,
        progress: !print && !pcap_to_stdout && args.read.is_none() && io::stderr().is_terminal(),
        write: args.write.clone(),
        snaplen: args.snaplen,
        precision: if args.nano { Precision::Nano } else { Precision::Micro },
    };
    let result = match &args.read {
        Some(path) => read(path, plan, !pcap_to_stdout),
        None => {
            let config = Config {
                interface: args.interface.clone(),
                snaplen: args.snaplen,
                buffer: args.buffer_size as usize * 1024,
                filter,
            };
            capture(config, plan, !pcap_to_stdout).await
        }
    };
    // A capture that failed before writing its file's header (no such
    // interface, not a pcap file to read) leaves no empty file behind.
    if let (Err(_), Some(path)) = (&result, args.write.as_deref().filter(|_| !pcap_to_stdout))
        && std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0)
    {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// `-d`: the program the kernel (or `-r`) would run.
fn dump(read: Option<&Path>, filter: Option<&Filter>) -> anyhow::Result<()> {
    let link = match read {
        Some(path) => {
            let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
            let mut reader = pcap::Reader::new(io::BufReader::new(file))
                .with_context(|| format!("reading {}", path.display()))?;
            match reader.next() {
                Some(record) => record.with_context(|| format!("reading {}", path.display()))?.link,
                None => LinkType::Ethernet,
            }
        }
        None => LinkType::Ethernet,
    };
    let accept_all = [socketeer::bpf::Instruction::new(socketeer::bpf::op::RET_K, 0, 0, MAX_SNAPLEN)];
    let program = match filter {
        Some(filter) => {
            compile(filter, link, MAX_SNAPLEN).map_err(|e| UsageError(format!("bad filter: {e}")))?
        }
        None => socketeer::sniff::filter::Program::from_instructions(accept_all.to_vec()),
    };
    let mut out = io::stdout().lock();
    for line in socketeer::bpf::disassemble(program.instructions()) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn read(path: &Path, mut plan: Plan, to_stdout: bool) -> anyhow::Result<()> {
    let name = path.display().to_string();
    let input: Box<dyn io::Read> = if path == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(path).with_context(|| format!("cannot read {name}"))?)
    };
    let mut reader =
        pcap::Reader::new(io::BufReader::new(input)).with_context(|| format!("reading {name}"))?;
    let mut sink_and_error = (None::<Sink>, None);
    for record in reader.by_ref() {
        match record {
            Ok(record) => {
                let current = match &mut sink_and_error.0 {
                    Some(current) => current,
                    None => sink_and_error.0.insert(plan.sink(record.link, false)?),
                };
                if current.offer(record.link, record.packet.frame()).is_break() {
                    break;
                }
            }
            Err(e) => {
                sink_and_error.1 = Some(anyhow::Error::new(e).context(format!("reading {name}")));
                break;
            }
        }
    }
    let sink = match sink_and_error.0 {
        Some(sink) => sink,
        None => plan.sink(LinkType::Ethernet, false)?,
    };
    let counts = sink.matcher.counts();
    sink.finish(Summary { source: name, counts, kernel_filter: None }, to_stdout)?;
    sink_and_error.1.map_or(Ok(()), Err)
}

async fn capture(config: Config, mut plan: Plan, to_stdout: bool) -> anyhow::Result<()> {
    let waker = Waker::new().context("creating an eventfd")?;
    let stopper = {
        let waker = waker.clone();
        tokio::spawn(async move {
            if shutdown::signal().await.is_ok() {
                waker.stop();
            }
        })
    };
    let json = plan.json;
    // The socket's receive buffers hold raw pointers (not Send): the whole
    // capture lives on one blocking thread.
    let result = tokio::task::spawn_blocking(move || {
        let mut capture = Capture::open(&config)?;
        let listening = Listening {
            interface: config.interface.clone(),
            link: capture.link(),
            snaplen: config.snaplen,
            kernel_filter: capture.kernel_filter(),
        };
        if to_stdout && json {
            Output::new(json).emit("listening", &listening)?;
        } else {
            writeln!(io::stderr(), "{listening}")?;
        }
        let mut sink = plan.sink(capture.link(), capture.kernel_filter())?;
        let link = capture.link();
        capture
            .run(&waker, &mut Live { sink: &mut sink, link, flushed: Instant::now() })
            .with_context(|| format!("capturing on {}", config.interface))?;
        let counts = Counts { dropped: capture.dropped(), ..sink.matcher.counts() };
        let summary =
            Summary { source: config.interface, counts, kernel_filter: Some(capture.kernel_filter()) };
        sink.finish(summary, to_stdout)
    })
    .await;
    stopper.abort();
    result?
}

/// The line that says the capture has started.
#[derive(Debug, Serialize)]
struct Listening {
    interface: String,
    link: LinkType,
    snaplen: u32,
    kernel_filter: bool,
}

impl std::fmt::Display for Listening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let link = match self.link {
            LinkType::Ethernet => "Ethernet",
            LinkType::RawIp => "raw IP",
            LinkType::LinuxSll => "Linux cooked",
            LinkType::LinuxSll2 => "Linux cooked v2",
            LinkType::Null => "BSD loopback",
        };
        write!(
            f,
            "listening on {}, link type {link}, snapshot length {} bytes",
            self.interface, self.snaplen
        )?;
        if self.kernel_filter {
            write!(f, ", filter compiled to BPF in the kernel")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(args: &[&str]) -> Vec<String> {
        let args = args.iter().map(OsString::from).collect();
        tcpdump_style_args(args).into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn dash_v_means_details_after_sniff_only() {
        assert_eq!(
            rewrite(&["socketeer", "-v", "sniff", "-v", "port", "80"]),
            ["socketeer", "-v", "sniff", "--detail", "port", "80"]
        );
        assert_eq!(
            rewrite(&["socketeer", "sniff", "-vx", "-nvvA"]),
            ["socketeer", "sniff", "--detail", "-x", "--detail", "-nA"]
        );
        assert_eq!(
            rewrite(&["socketeer", "sniff", "-vw", "-i", "lo"]),
            ["socketeer", "sniff", "-vw", "-i", "lo"]
        );
        assert_eq!(rewrite(&["socketeer", "echo", "serve", "-v"]), ["socketeer", "echo", "serve", "-v"]);
    }
}
