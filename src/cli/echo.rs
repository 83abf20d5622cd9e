//! `socketeer echo`: serve, send, ping.

use std::fmt;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use clap::Subcommand;
use futures::StreamExt;
use serde::Serialize;
use socketeer::client::ClientError;
use socketeer::echo::{self, EchoClient, PingStats, Pinger};
use socketeer::net::{Target, Transport};
use socketeer::shutdown;
use socketeer::text::{sanitize, sanitize_bytes};
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, FramedRead};

use super::args::{BindArgs, LimitArgs, ServerTransports, TimeoutArgs, positive_duration, size_in};
use super::output::Output;
use super::run::run_services;

/// The longest stdin line `echo send` accepts.
const MAX_LINE: usize = 64 * 1024;

/// RFC 862 echo.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an echo server: TCP and UDP on one port.
    #[command(
        after_help = "Examples:\n  socketeer echo serve\n  socketeer echo serve --port 7 --bind 0.0.0.0 --udp"
    )]
    Serve(ServeArgs),
    /// Send messages (arguments, or stdin lines) and print what comes back.
    #[command(after_help = "Examples:\n  socketeer echo send localhost:7007 hello world\n  \
                            printf 'a\\nb\\n' | socketeer echo send localhost --udp\n  \
                            socketeer echo send localhost --raw < image.png > copy.png")]
    Send(SendArgs),
    /// Measure round trips to an echo server, like ping.
    #[command(after_help = "Examples:\n  socketeer echo ping localhost\n  \
                            socketeer echo ping 127.0.0.1:7007 --udp --count 100 --interval 10ms --json")]
    Ping(PingArgs),
}

/// Arguments of `echo serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    bind: BindArgs,
    /// Port to listen on (TCP and UDP); 0 picks a free one.
    #[arg(short, long, value_name = "PORT", default_value_t = echo::DEFAULT_PORT)]
    port: u16,
    #[command(flatten)]
    transports: ServerTransports,
    #[command(flatten)]
    limits: LimitArgs,
    /// Print status lines as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `echo send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The server, as HOST or HOST:PORT (port 7007 when left out).
    target: Target,
    /// Messages to send, one per exchange; stdin lines when there are none.
    messages: Vec<String>,
    /// Use UDP: one datagram per message.
    #[arg(long)]
    udp: bool,
    /// Relay stdin to the server and the replies to stdout byte for byte, like nc.
    #[arg(long, conflicts_with = "messages")]
    raw: bool,
    #[command(flatten)]
    timeouts: TimeoutArgs,
    /// Print each reply as a JSON object.
    #[arg(long, conflicts_with = "raw")]
    json: bool,
}

/// Arguments of `echo ping`.
#[derive(Debug, clap::Args)]
pub struct PingArgs {
    /// The server, as HOST or HOST:PORT (port 7007 when left out).
    target: Target,
    /// Probes to send; 0 sends until Ctrl-C.
    #[arg(short, long, value_name = "N", default_value_t = 5)]
    count: u64,
    /// Time between probes.
    #[arg(short, long, value_name = "DURATION", default_value = "1s", value_parser = positive_duration)]
    interval: Duration,
    /// Probe size: 64, 1KiB.
    #[arg(short, long, value_name = "SIZE", default_value = "64",
          value_parser = size_in::<u16>(echo::MIN_PROBE_SIZE as u64, socketeer::net::MAX_UDP_PAYLOAD as u64))]
    size: u16,
    /// Use UDP instead of TCP.
    #[arg(long)]
    udp: bool,
    #[command(flatten)]
    timeouts: TimeoutArgs,
    /// Print probes and the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs an `echo` command.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let bound = args.bind.bind("echo", args.port, args.transports.get(), "--port")?;
            let server = echo::EchoServer::new(bound, args.limits.get());
            run_services(vec![Box::new(server)], Output::new(args.json)).await
        }
        Command::Send(args) => send(args).await,
        Command::Ping(args) => ping(args).await,
    }
}

fn transport(udp: bool) -> Transport {
    if udp { Transport::Udp } else { Transport::Tcp }
}

#[derive(Serialize)]
struct Reply {
    message: String,
    /// `None` when no reply came in time (UDP only).
    reply: Option<String>,
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reply.as_deref().map_or("(no reply)".into(), sanitize).as_ref())
    }
}

/// How much of a wrong answer to show, and how long to wait for the rest of it.
const SHOWN_REPLY: usize = 200;
const NOT_AN_ECHO_WAIT: Duration = Duration::from_millis(200);

/// The error for a server whose answer to `sent` was `got`, not the same bytes.
fn not_an_echo(peer: SocketAddr, sent: &[u8], got: &[u8], earlier_lost: bool) -> anyhow::Error {
    let shown = |bytes: &[u8]| {
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let cut = bytes.len().min(SHOWN_REPLY);
        let more = if cut < bytes.len() { "..." } else { "" };
        format!("\"{}\"{more}", sanitize_bytes(&bytes[..cut]))
    };
    let guess = if earlier_lost {
        "a late reply to an earlier message, or not an echo server"
    } else {
        "it is not an echo server"
    };
    anyhow::anyhow!("{peer} answered {} with {} ({guess})", shown(sent), shown(got))
}

async fn send(args: SendArgs) -> anyhow::Result<()> {
    let transport = transport(args.udp);
    let timeouts = args.timeouts.get();
    let mut client = EchoClient::connect(&args.target, transport, timeouts).await?;
    if args.raw {
        client.relay(tokio::io::stdin(), tokio::io::stdout()).await?;
        return Ok(());
    }
    let out = Output::new(args.json);
    let mut unanswered = 0usize;
    let mut exchange = async |message: Vec<u8>| -> anyhow::Result<()> {
        // Over TCP a line ends in a newline, so line-based servers answer too.
        let mut wire = message.clone();
        if transport == Transport::Tcp {
            wire.push(b'\n');
        }
        let reply = match client.exchange(&wire).await {
            Ok(reply) if reply == wire => {
                Some(String::from_utf8_lossy(&reply).trim_end_matches(['\r', '\n']).to_owned())
            }
            Ok(mut reply) => {
                reply.extend(client.read_more(SHOWN_REPLY, NOT_AN_ECHO_WAIT).await);
                return Err(not_an_echo(client.peer(), &wire, &reply, unanswered > 0));
            }
            // A lost datagram is one unanswered message; over TCP the stream
            // is out of step after a timeout, so it ends the run.
            Err(ClientError::Timeout { .. }) if transport == Transport::Udp => {
                unanswered += 1;
                None
            }
            Err(e) => return Err(e.into()),
        };
        out.emit("reply", &Reply { message: String::from_utf8_lossy(&message).into_owned(), reply })?;
        Ok(())
    };
    let mut sent = 0usize;
    if args.messages.is_empty() {
        let codec = AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), b"\n".to_vec(), MAX_LINE);
        let mut lines = FramedRead::new(tokio::io::stdin(), codec);
        while let Some(line) = lines.next().await {
            let line = line.map_err(|e| match e {
                AnyDelimiterCodecError::MaxChunkLengthExceeded => anyhow::anyhow!(
                    "line {} is longer than {} KiB; use --raw for long or binary input",
                    sent + 1,
                    MAX_LINE / 1024
                ),
                AnyDelimiterCodecError::Io(e) => anyhow::Error::from(e).context("reading stdin"),
            })?;
            let line = line.strip_suffix(b"\r").unwrap_or(&line).to_vec();
            exchange(line).await?;
            sent += 1;
        }
    } else {
        for message in args.messages {
            exchange(message.into_bytes()).await?;
            sent += 1;
        }
    }
    if unanswered > 0 {
        anyhow::bail!(
            "{unanswered} of {sent} messages got no reply within {}",
            humantime::format_duration(timeouts.reply)
        );
    }
    Ok(())
}

async fn ping(args: PingArgs) -> anyhow::Result<()> {
    let transport = transport(args.udp);
    let timeouts = args.timeouts.get();
    let client = EchoClient::connect(&args.target, transport, timeouts).await?;
    let mut pinger = Pinger::new(client, usize::from(args.size), timeouts.reply);
    let peer = pinger.peer();
    let out = Output::new(args.json);
    out.note(format_args!("PING {peer} over {transport}: {} bytes per probe", args.size))?;
    let mut stats = PingStats::default();
    let mut stop = pin!(shutdown::signal());
    let mut ticks = tokio::time::interval(args.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for seq in (1..).take_while(|&seq| args.count == 0 || seq <= args.count) {
        let probe = tokio::select! {
            probe = async { ticks.tick().await; pinger.probe(seq).await } => probe?,
            _ = &mut stop => break,
        };
        stats.add(&probe);
        out.emit("probe", &probe)?;
    }
    let summary = stats.summary();
    out.note(format_args!("--- {peer} echo ping statistics ---"))?;
    out.emit("summary", &summary)?;
    if summary.sent > 0 && summary.received == 0 {
        match summary.mismatched {
            0 => anyhow::bail!("no echo from {peer}"),
            n => {
                anyhow::bail!("no reply from {peer} matched a probe ({n} mismatched); is it an echo server?")
            }
        }
    }
    Ok(())
}
