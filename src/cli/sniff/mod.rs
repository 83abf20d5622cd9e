//! `socketeer sniff`: capture, decode, filter and save packets.

mod args;
mod format;
mod names;
mod present;
mod sink;

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use socketeer::poll::Waker;
use socketeer::shutdown;
use socketeer::sniff::capture::{Capture, Config};
use socketeer::sniff::filter::{Filter, compile};
use socketeer::sniff::pcap::{self, Precision};
use socketeer::sniff::{Counts, LinkType};

use super::args::UsageError;
use super::output::Output;
use args::MAX_SNAPLEN;
pub use args::{Args, tcpdump_style_args};
use format::Extras;
use present::TimeFormat;
use sink::{Live, Plan, Sink, Summary};

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
    if args.list_interfaces {
        return list_interfaces();
    }
    let text = match &args.filter_file {
        Some(_) if !args.filter.is_empty() => {
            return Err(
                UsageError("give the filter either with -F or on the command line, not both".into()).into()
            );
        }
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        None => args.filter.join(" "),
    };
    // tcpdump's -F files may hold comments after '#'.
    let text: String =
        text.lines().map(|line| line.split('#').next().unwrap_or_default()).collect::<Vec<_>>().join(" ");
    let filter = match text.trim() {
        "" => None,
        text => {
            Some(Filter::parse(text, &names::SystemNames::load()).map_err(|e| UsageError(e.to_string()))?)
        }
    };
    if args.dump {
        return dump(args.read.as_deref(), &args.interface, filter.as_ref());
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
        extras: Extras {
            details: args.detail,
            hex: args.hex || args.hex_ascii >= 2,
            hex_from_network: args.hex_ascii == 1,
            ascii: args.ascii,
            link_header: args.link_header,
            quiet: args.quick,
        },
        time: TimeFormat::from_count(args.time),
        absolute: args.absolute,
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

/// `-D`: the interfaces, numbered by index, with their state, as tcpdump lists them.
fn list_interfaces() -> anyhow::Result<()> {
    let interfaces = nix::net::if_::if_nameindex().context("listing the interfaces")?;
    let mut out = io::stdout().lock();
    for interface in interfaces.iter() {
        let name = interface.name().to_string_lossy();
        let flags = std::fs::read_to_string(format!("/sys/class/net/{name}/flags"))
            .ok()
            .and_then(|text| u32::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok())
            .unwrap_or(0);
        let carrier = std::fs::read_to_string(format!("/sys/class/net/{name}/carrier"));
        // IFF_UP, a carrier (what tcpdump calls Running), IFF_LOOPBACK.
        let mut state = Vec::new();
        if flags & 0x1 != 0 {
            state.push("Up");
        }
        if carrier.is_ok_and(|c| c.trim() == "1") {
            state.push("Running");
        }
        if flags & 0x8 != 0 {
            state.push("Loopback");
        }
        writeln!(out, "{}.{} [{}]", interface.index(), name, state.join(", "))?;
    }
    Ok(())
}

/// `-d`: the program the kernel (or `-r`) would run: for the link type
/// of the file, or of `-i any` (Linux cooked v2), or Ethernet.
fn dump(read: Option<&Path>, interface: &str, filter: Option<&Filter>) -> anyhow::Result<()> {
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
        None if interface == socketeer::sniff::capture::ANY => LinkType::LinuxSll2,
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
