//! `socketeer transfer`: reliable file transfer over UDP.

use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use socketeer::net::{Target, Transports};
use socketeer::shutdown;
use socketeer::transfer::driver::{self, REPORT_QUEUE, ServerEvent, TransferServer};
use socketeer::transfer::session::check_name;
use socketeer::transfer::{DEFAULT_PORT, INITIAL_RTO, Protocol, SenderConfig, SenderStats, max_rto};

use super::args::{self, BindArgs, LINGER, UsageError, positive_duration, receive_config};
use super::output::Output;
use super::run::run_services_until;

/// Reliable file transfer over UDP.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send a file (or stdin) to a receiver.
    #[command(after_help = "Examples:\n  socketeer transfer send report.pdf localhost\n  \
                            socketeer transfer send big.iso 127.0.0.1:6969 --protocol go-back-n --window 64\n  \
                            tar c src | socketeer transfer send - localhost --name src.tar --json")]
    Send(SendArgs),
    /// Receive files into a directory until Ctrl-C (or one file with --once).
    #[command(after_help = "Examples:\n  socketeer transfer recv --dir incoming\n  \
                            socketeer transfer recv --port 6969 --once --json")]
    Recv(RecvArgs),
}

/// The ARQ protocols, as the command line names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ProtocolArg {
    /// One block in flight (the alternating-bit protocol with --seq-bits 1).
    StopAndWait,
    /// A window, cumulative acknowledgements; a loss resends the window.
    GoBackN,
    /// A window, selective acknowledgements; only losses are resent.
    SelectiveRepeat,
}

impl From<ProtocolArg> for Protocol {
    fn from(p: ProtocolArg) -> Protocol {
        match p {
            ProtocolArg::StopAndWait => Protocol::StopAndWait,
            ProtocolArg::GoBackN => Protocol::GoBackN,
            ProtocolArg::SelectiveRepeat => Protocol::SelectiveRepeat,
        }
    }
}

/// Arguments of `transfer send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The file to send, or - for stdin.
    file: PathBuf,
    /// The receiver, as HOST or HOST:PORT (port 6969 when left out).
    target: Target,
    /// The ARQ protocol.
    #[arg(short, long, value_enum, default_value = "selective-repeat")]
    protocol: ProtocolArg,
    /// Blocks in flight (default 256, or the most --seq-bits allows if fewer;
    /// stop-and-wait is always 1).
    #[arg(short, long, value_name = "N")]
    window: Option<u32>,
    /// Bytes per block.
    #[arg(short, long, value_name = "SIZE", default_value = "1400", value_parser = args::size_in::<u16>(1, 65_000))]
    block: u16,
    /// Sequence number bits: numbers wrap after 2^bits blocks, and the window
    /// is limited to 2^bits - 1 (Go-Back-N) or 2^(bits-1) (selective repeat).
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u8).range(1..=32))]
    seq_bits: u8,
    /// The lowest retransmission timeout (the RFC 6298 estimate never goes
    /// below it). Selective repeat mostly recovers without the timer; for
    /// stop-and-wait and Go-Back-N on a clean loopback, try 200us.
    #[arg(long, value_name = "DURATION", default_value = "5ms", value_parser = positive_duration)]
    rto_min: Duration,
    /// Give up when the receiver has said nothing for this long.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive_duration)]
    timeout: Duration,
    /// Give up when no block has got through for this long, even if the
    /// receiver keeps answering.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = positive_duration)]
    progress_timeout: Duration,
    /// The name the receiver stores the file under (default: the file's own; "stdin" for -).
    #[arg(long)]
    name: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `transfer recv`.
#[derive(Debug, clap::Args)]
pub struct RecvArgs {
    #[command(flatten)]
    bind: BindArgs,
    /// UDP port to listen on; 0 picks a free one.
    #[arg(short, long, value_name = "PORT", default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Directory the files land in (created if missing, with --dir-mode).
    #[arg(short, long, default_value = ".")]
    dir: PathBuf,
    /// Permissions of the directory when it has to be created, in octal.
    #[arg(long, value_name = "MODE", default_value = "700", value_parser = octal_mode)]
    dir_mode: u32,
    /// Replace files that already exist.
    #[arg(long)]
    overwrite: bool,
    /// Stop after the first transfer; exit 1 if it failed.
    #[arg(long)]
    once: bool,
    /// Give up on a sender silent this long.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive_duration)]
    timeout: Duration,
    /// Give up on a sender whose blocks have brought nothing new for this long.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = positive_duration)]
    progress_timeout: Duration,
    /// The largest window granted to a sender.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    max_window: u32,
    /// Transfers at once; more are refused (finished ones, which stay 2 s
    /// to answer a repeated FIN, count but give way).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    max_sessions: u32,
    /// Transfers at once from one IP address.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    max_per_source: u32,
    /// Bytes all transfers together may keep waiting out of order (blocks
    /// beyond are dropped and sent again).
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = args::size_in::<usize>(65_000, 1 << 40))]
    max_buffer: usize,
    /// Print status lines and reports as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a `transfer` command.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Send(args) => send(args).await,
        Command::Recv(args) => recv(args).await,
    }
}

/// Permissions in octal, as chmod takes them (`700`, `0755`).
fn octal_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|&mode| mode <= 0o7777)
        .ok_or_else(|| format!("'{s}' is not a mode; give octal permissions such as 700 or 755"))
}

async fn recv(args: RecvArgs) -> anyhow::Result<()> {
    let mut config = receive_config(&args.dir, args.overwrite, args.timeout, args.max_window)?;
    config.limits.progress_timeout = args.progress_timeout;
    config.dir_mode = args.dir_mode;
    config.max_sessions = args.max_sessions as usize;
    config.max_per_source = args.max_per_source as usize;
    config.max_buffered = args.max_buffer;
    let bound = args.bind.bind("transfer", args.port, Transports::UDP, "--port")?;
    let sockets = bound.udp.into_iter().map(|s| s.into_std()).collect::<Result<_, _>>()?;
    let (tx, mut events) = tokio::sync::mpsc::channel(REPORT_QUEUE);
    let server = TransferServer::new(sockets, config, Some(tx))?;
    let out = Output::new(args.json);
    let mut failed = false;
    let print = async {
        while let Some(event) = events.recv().await {
            let ServerEvent::Received(report) = event else { break };
            failed |= report.error.is_some();
            if out.emit("received", &report).is_err() {
                return;
            }
            if args.once {
                // Stay as long as a finished session does, to answer a FIN
                // whose acknowledgement was lost.
                tokio::time::sleep(LINGER).await;
                return;
            }
        }
        // The loop died: the runner sees the service stop and says why,
        // with exit 1; this is no "work done".
        std::future::pending::<()>().await;
    };
    run_services_until(vec![Box::new(server)], out, print).await?;
    // Reports that came in as it stopped are worth printing still.
    while let (false, Ok(ServerEvent::Received(report))) = (args.once, events.try_recv()) {
        failed |= report.error.is_some();
        out.emit("received", &report)?;
    }
    if args.once && failed {
        anyhow::bail!("the transfer failed");
    }
    Ok(())
}

/// Blocks in flight when --window is not given.
const DEFAULT_WINDOW: u32 = 256;

async fn send(args: SendArgs) -> anyhow::Result<()> {
    let protocol = Protocol::from(args.protocol);
    let max = protocol.max_window(args.seq_bits);
    let window = match (protocol, args.window) {
        (Protocol::StopAndWait, Some(w)) if w != 1 => {
            return Err(
                UsageError(format!("stop-and-wait has a window of 1, not {w}; leave out --window")).into()
            );
        }
        (Protocol::StopAndWait, _) => 1,
        (_, Some(window)) => window,
        // The default fits whatever sequence space was asked for.
        (_, None) => u32::try_from(max.min(DEFAULT_WINDOW.into())).unwrap_or(DEFAULT_WINDOW),
    };
    if window == 0 || u64::from(window) > max {
        return Err(UsageError(format!(
            "{protocol} with {}-bit sequence numbers allows a window of 1 to {max}, not {window}",
            args.seq_bits
        ))
        .into());
    }
    let (input, size, name): (Box<dyn Read + Send>, Option<u64>, String) = if args.file == Path::new("-") {
        (Box::new(std::io::stdin()), None, args.name.clone().unwrap_or_else(|| "stdin".to_owned()))
    } else {
        if args.file.is_dir() {
            let shown = args.file.display();
            return Err(UsageError(format!(
                "{shown} is a directory; send a file, or: tar c {shown} | socketeer transfer send - HOST --name NAME.tar"
            ))
            .into());
        }
        let file = File::open(&args.file).map_err(|e| {
            let shown = args.file.display().to_string();
            // `transfer send HOST:PORT FILE` puts the target where the file goes.
            let hint = if shown.contains(':') {
                " (the file comes first: transfer send FILE HOST[:PORT])"
            } else {
                ""
            };
            anyhow::anyhow!("cannot open {shown}: {}{hint}", socketeer::net::describe(&e))
        })?;
        let size = file.metadata().ok().map(|m| m.len());
        let own_name = args.file.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = args.name.clone().or(own_name).unwrap_or_else(|| "file".to_owned());
        (Box::new(BufReader::with_capacity(1 << 20, file)), size, name)
    };
    // Refuse here what the receiver would refuse, without a round trip.
    check_name(&name).map_err(|e| UsageError(format!("{e}; pick another with --name")))?;
    let targets = args.target.resolve(DEFAULT_PORT).await?;
    let config = SenderConfig {
        protocol,
        window,
        block: args.block,
        seq_bits: args.seq_bits,
        session: RandomState::new().hash_one(Instant::now()) as u32,
        initial_rto: INITIAL_RTO.max(args.rto_min),
        min_rto: args.rto_min,
        max_rto: max_rto(args.timeout).max(args.rto_min),
        peer_timeout: args.timeout,
        progress_timeout: args.progress_timeout,
        name,
        size,
    };
    let bar = progress_bar(size);
    let progress = bar.clone();
    let mut last_drawn = Instant::now();
    let mut sending = driver::spawn_send(input, targets, config, move |stats: &SenderStats| {
        if last_drawn.elapsed() >= Duration::from_millis(100) {
            last_drawn = Instant::now();
            progress.set_position(stats.bytes_acked);
            progress.set_message(format!("{} resent", stats.retransmitted));
        }
    })?;
    let interrupted = tokio::select! {
        () = sending.finished() => false,
        _ = shutdown::signal() => true,
    };
    // Stopping an interrupted sender tells the receiver; a finished one joins at once.
    let report = tokio::task::spawn_blocking(move || sending.stop()).await?;
    bar.finish_and_clear();
    if interrupted {
        anyhow::bail!("interrupted; the receiver keeps nothing");
    }
    Output::new(args.json)
        .emit("summary", &report.map_err(|died| anyhow::anyhow!("the sender stopped: {died}"))??)?;
    Ok(())
}

/// A progress bar on stderr (hidden when it is not a terminal): bytes,
/// rate, ETA and resends, or a spinner when the size is unknown.
fn progress_bar(size: Option<u64>) -> ProgressBar {
    match size {
        Some(size) => {
            let bar = ProgressBar::new(size);
            let style = "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}";
            bar.set_style(
                ProgressStyle::with_template(style).unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            let style = "{spinner} {bytes} {bytes_per_sec} {msg}";
            bar.set_style(
                ProgressStyle::with_template(style).unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar
        }
    }
}
