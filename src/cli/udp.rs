//! `socketeer udp`: the lossy-UDP exercise.

use std::pin::pin;
use std::time::Duration;

use clap::Subcommand;
use futures::{Stream, StreamExt};
use socketeer::impair::{ImpairmentConfig, Probability};
use socketeer::net::{Target, Transports};
use socketeer::shutdown;
use socketeer::udp::{self, AckClient, AckServer, SendConfig, SendStats};
use tokio_util::codec::{FramedRead, LinesCodec};

use super::args::{BindArgs, duration, positive_duration, random_seed};
use super::output::Output;
use super::run::run_services;

/// The longest stdin line `udp send` accepts.
const MAX_LINE: usize = 64 * 1024;

/// The lossy-UDP exercise.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Acknowledge datagrams with "ACK: <payload>", dropping a seeded share on purpose.
    #[command(
        after_help = "Examples:\n  socketeer udp serve --loss 30% --seed 7\n  socketeer udp serve --loss 0.1 --port 9999"
    )]
    Serve(ServeArgs),
    /// Send numbered messages, wait for each ACK, retry, and report what got through.
    #[command(
        after_help = "Examples:\n  socketeer udp send localhost --count 20 --timeout 200ms --retries 3\n  \
                            printf 'one\\ntwo\\n' | socketeer udp send localhost --stdin --json"
    )]
    Send(SendArgs),
}

/// Arguments of `udp serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    bind: BindArgs,
    /// Port to listen on; 0 picks a free one.
    #[arg(short, long, value_name = "PORT", default_value_t = udp::DEFAULT_PORT)]
    port: u16,
    /// Share of datagrams to drop on purpose (30% or 0.3).
    #[arg(long, value_name = "P", default_value = "0%")]
    loss: Probability,
    /// Seed of the drops: the same seed drops the same datagrams (random when not given).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Print status lines as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `udp send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The server, as HOST or HOST:PORT (port 12345 when left out).
    target: Target,
    /// How many numbered messages to send.
    #[arg(short, long, value_name = "N", default_value_t = 10, conflicts_with = "stdin")]
    count: u64,
    /// The text after each message's number.
    #[arg(short, long, default_value = "hello", conflicts_with = "stdin")]
    message: String,
    /// Send stdin's lines instead, each after its number.
    #[arg(long)]
    stdin: bool,
    /// How long to wait for each ACK.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = positive_duration)]
    timeout: Duration,
    /// How many times to resend an unacknowledged message before calling it lost.
    #[arg(long, value_name = "N", default_value_t = 3)]
    retries: u32,
    /// Pause between messages.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = duration)]
    interval: Duration,
    /// Print each outcome and the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a `udp` command.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let bound = args.bind.bind("udp", args.port, Transports::UDP, "--port")?;
            let config = ImpairmentConfig::loss(args.loss);
            let server = AckServer::new(bound, config, args.seed.unwrap_or_else(random_seed));
            run_services(vec![Box::new(server)], Output::new(args.json)).await
        }
        Command::Send(args) => send(args).await,
    }
}

async fn send(args: SendArgs) -> anyhow::Result<()> {
    let config = SendConfig { timeout: args.timeout, retries: args.retries };
    let mut client = AckClient::connect(&args.target, config).await?;
    let out = Output::new(args.json);
    let texts: std::pin::Pin<Box<dyn Stream<Item = anyhow::Result<String>>>> = if args.stdin {
        let lines = FramedRead::new(tokio::io::stdin(), LinesCodec::new_with_max_length(MAX_LINE));
        Box::pin(lines.map(|line| line.map_err(anyhow::Error::from)))
    } else {
        Box::pin(futures::stream::repeat_with(move || Ok(args.message.clone())).take(args.count as usize))
    };
    let mut texts = texts.enumerate();
    let mut stats = SendStats::default();
    let mut stop = pin!(shutdown::signal());
    while let Some((index, text)) = texts.next().await {
        let seq = index as u64 + 1;
        if seq > 1 {
            tokio::time::sleep(args.interval).await;
        }
        let payload = format!("{seq} {}", text?);
        let delivery = tokio::select! {
            delivery = client.deliver(seq, payload.as_bytes()) => delivery?,
            _ = &mut stop => break,
        };
        stats.add(&delivery);
        out.emit("message", &delivery)?;
    }
    let summary = stats.summary();
    out.emit("summary", &summary)?;
    match summary.lost {
        0 => Ok(()),
        lost if summary.stray > 0 && lost == summary.messages => Err(anyhow::anyhow!(
            "no message was acknowledged, and {} replies were not ACKs of ours: is {} a `socketeer udp serve`?",
            summary.stray,
            client.peer()
        )),
        lost => Err(anyhow::anyhow!("{lost} of {} messages were never acknowledged", summary.messages)),
    }
}
