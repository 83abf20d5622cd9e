//! `socketeer daytime`: serve and get.

use clap::Subcommand;
use socketeer::daytime::{self, DaytimeServer, Protocol};
use socketeer::net::{Target, Transport};
use socketeer::server::Service;

use super::args::{BindArgs, LimitArgs, PortChoice, ServerTransports, TimeoutArgs, check_distinct_ports};
use super::output::Output;
use super::run::run_services;

/// RFC 867 daytime and RFC 868 time.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run daytime and time servers, each on TCP and UDP.
    #[command(
        after_help = "Examples:\n  socketeer daytime serve\n  socketeer daytime serve --port 13 --time-port 37"
    )]
    Serve(ServeArgs),
    /// Ask a daytime (or with --time, a time) server for the time.
    #[command(after_help = "Examples:\n  socketeer daytime get localhost\n  \
                            socketeer daytime get localhost:3737 --time --udp --json")]
    Get(GetArgs),
}

/// Arguments of `daytime serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    bind: BindArgs,
    /// Port of the daytime service; 0 picks a free one.
    #[arg(short, long, value_name = "PORT", default_value_t = Protocol::Daytime.default_port())]
    port: u16,
    /// Port of the time service; 0 picks a free one.
    #[arg(long, value_name = "PORT", default_value_t = Protocol::Time.default_port())]
    time_port: u16,
    #[command(flatten)]
    transports: ServerTransports,
    #[command(flatten)]
    limits: LimitArgs,
    /// Print status lines as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `daytime get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// The server, as HOST or HOST:PORT (port 1313, or 3737 with --time, when left out).
    target: Target,
    /// Speak RFC 868 time (4 binary bytes) and print the date they stand for.
    #[arg(long)]
    time: bool,
    /// Use UDP instead of TCP.
    #[arg(long)]
    udp: bool,
    #[command(flatten)]
    timeouts: TimeoutArgs,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a `daytime` command.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let (transports, limits) = (args.transports.get(), args.limits.get());
            check_distinct_ports(&[
                PortChoice { flag: "--port", port: args.port, transports },
                PortChoice { flag: "--time-port", port: args.time_port, transports },
            ])?;
            let daytime = args.bind.bind("daytime", args.port, transports, "--port")?;
            let time = args.bind.bind("time", args.time_port, transports, "--time-port")?;
            let services: Vec<Box<dyn Service>> = vec![
                Box::new(DaytimeServer::new(Protocol::Daytime, daytime, limits)),
                Box::new(DaytimeServer::new(Protocol::Time, time, limits)),
            ];
            run_services(services, Output::new(args.json)).await
        }
        Command::Get(args) => {
            let protocol = if args.time { Protocol::Time } else { Protocol::Daytime };
            let transport = if args.udp { Transport::Udp } else { Transport::Tcp };
            let answer = daytime::get(&args.target, protocol, transport, args.timeouts.get()).await?;
            Output::new(args.json).emit("answer", &answer)?;
            Ok(())
        }
    }
}
