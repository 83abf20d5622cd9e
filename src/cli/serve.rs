//! `socketeer serve`: every service in one process.

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use socketeer::chat::flood::RateLimit;
use socketeer::chat::{ChatConfig, ChatServer, WebConfig};
use socketeer::daytime::{DaytimeServer, Protocol};
use socketeer::echo::EchoServer;
use socketeer::impair::{ImpairmentConfig, Probability};
use socketeer::net::Transports;
use socketeer::server::Service;
use socketeer::transfer::driver::TransferServer;
use socketeer::udp::AckServer;

use super::args::{
    BindArgs, Cap, LimitArgs, LineRate, PortChoice, UsageError, cap, check_distinct_ports, line_rate,
    random_seed, receive_config,
};
use super::output::Output;
use super::run::run_services;

const EXAMPLES: &str = "\
Examples:
  socketeer serve                               # all services on 127.0.0.1
  socketeer serve --bind 0.0.0.0,::             # open to the network
  socketeer serve --only echo,chat --echo-port 7 --chat-port 6000
  socketeer serve --except udp --json";

/// The services `serve` can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ServiceName {
    /// RFC 862 echo, TCP and UDP.
    Echo,
    /// RFC 867 daytime, TCP and UDP.
    Daytime,
    /// RFC 868 time, TCP and UDP.
    Time,
    /// The lossy-UDP acknowledgement server.
    Udp,
    /// The file transfer receiver.
    Transfer,
    /// The multi-client chat, TCP.
    Chat,
}

impl ServiceName {
    /// The name in status lines and logs, as on the command line.
    fn label(self) -> &'static str {
        match self {
            ServiceName::Echo => "echo",
            ServiceName::Daytime => "daytime",
            ServiceName::Time => "time",
            ServiceName::Udp => "udp",
            ServiceName::Transfer => "transfer",
            ServiceName::Chat => "chat",
        }
    }
}

/// Arguments of `socketeer serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    bind: BindArgs,
    /// Run only these services, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "SERVICE", conflicts_with = "except")]
    only: Vec<ServiceName>,
    /// Run every service but these, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "SERVICE")]
    except: Vec<ServiceName>,
    /// Port of the echo service (TCP and UDP).
    #[arg(long, value_name = "PORT", default_value_t = socketeer::echo::DEFAULT_PORT)]
    echo_port: u16,
    /// Port of the daytime service (TCP and UDP).
    #[arg(long, value_name = "PORT", default_value_t = Protocol::Daytime.default_port())]
    daytime_port: u16,
    /// Port of the time service (TCP and UDP).
    #[arg(long, value_name = "PORT", default_value_t = Protocol::Time.default_port())]
    time_port: u16,
    /// Port of the lossy-UDP acknowledgement service.
    #[arg(long, value_name = "PORT", default_value_t = socketeer::udp::DEFAULT_PORT)]
    udp_port: u16,
    /// Port of the chat service (TCP).
    #[arg(long, value_name = "PORT", default_value_t = socketeer::chat::DEFAULT_PORT)]
    chat_port: u16,
    /// Port of the chat's web page and its WebSocket (HTTP).
    #[arg(long, value_name = "PORT", default_value_t = socketeer::chat::web::DEFAULT_PORT)]
    chat_http_port: u16,
    /// Share of datagrams the udp service drops on purpose (1% or 0.01).
    #[arg(long, value_name = "P", default_value = "0%")]
    udp_loss: Probability,
    /// Seed of the udp service's drops (random when not given).
    #[arg(long, value_name = "N")]
    udp_seed: Option<u64>,
    /// Port of the file transfer receiver.
    #[arg(long, value_name = "PORT", default_value_t = socketeer::transfer::DEFAULT_PORT)]
    transfer_port: u16,
    /// Directory the transfer receiver stores files in (created if missing)
    /// [default: socketeer-received in the temporary directory].
    #[arg(long, value_name = "DIR")]
    transfer_dir: Option<PathBuf>,
    /// Lines per second each chat client may send (10/s, 300/min), or off,
    /// as for `bench chat` [default: 10/s; see chat serve --help].
    #[arg(long, value_name = "RATE", value_parser = line_rate)]
    chat_rate_limit: Option<LineRate>,
    /// Chat clients from one IP address at once, or off [default: 16].
    #[arg(long, value_name = "N", value_parser = cap)]
    chat_max_per_ip: Option<Cap>,
    #[command(flatten)]
    limits: LimitArgs,
    /// Print status lines as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `socketeer serve`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let chosen = ServiceName::value_variants()
        .iter()
        .filter(|s| args.only.is_empty() || args.only.contains(s))
        .filter(|s| !args.except.contains(s));
    let chosen: Vec<ServiceName> = chosen.copied().collect();
    if chosen.is_empty() {
        return Err(UsageError("--except leaves no service to run".to_owned()).into());
    }
    let mut ports: Vec<PortChoice> = chosen.iter().map(|&name| port_choice(name, &args)).collect();
    if chosen.contains(&ServiceName::Chat) {
        ports.push(chat_web_port(&args));
    }
    check_distinct_ports(&ports)?;
    check_settings_are_used(&args, &chosen)?;
    let services = chosen.into_iter().map(|name| start(name, &args)).collect::<anyhow::Result<Vec<_>>>()?;
    run_services(services, Output::new(args.json)).await
}

/// Refuses a service's setting when that service does not run, rather than
/// ignoring it (`serve --only echo --udp-loss 20%`). Ports are left out:
/// scripts give every port (often 0) whatever they run.
fn check_settings_are_used(args: &Args, chosen: &[ServiceName]) -> Result<(), UsageError> {
    let given = [
        (ServiceName::Udp, "--udp-loss", !args.udp_loss.is_zero()),
        (ServiceName::Udp, "--udp-seed", args.udp_seed.is_some()),
        (ServiceName::Transfer, "--transfer-dir", args.transfer_dir.is_some()),
        (ServiceName::Chat, "--chat-rate-limit", args.chat_rate_limit.is_some()),
        (ServiceName::Chat, "--chat-max-per-ip", args.chat_max_per_ip.is_some()),
    ];
    match given.iter().find(|(name, _, set)| *set && !chosen.contains(name)) {
        Some((name, flag, _)) => Err(UsageError(format!(
            "{flag} is for the {} service, which --only/--except leaves out",
            name.label()
        ))),
        None => Ok(()),
    }
}

/// Where a service listens. Adding a service to `serve` is a variant of
/// [`ServiceName`], its port flag, and one arm here and in [`start`].
fn port_choice(name: ServiceName, args: &Args) -> PortChoice {
    let (flag, port, transports) = match name {
        ServiceName::Echo => ("--echo-port", args.echo_port, Transports::BOTH),
        ServiceName::Daytime => ("--daytime-port", args.daytime_port, Transports::BOTH),
        ServiceName::Time => ("--time-port", args.time_port, Transports::BOTH),
        ServiceName::Udp => ("--udp-port", args.udp_port, Transports::UDP),
        ServiceName::Transfer => ("--transfer-port", args.transfer_port, Transports::UDP),
        ServiceName::Chat => ("--chat-port", args.chat_port, Transports::TCP),
    };
    PortChoice { flag, port, transports }
}

/// Where the chat's web page listens, beside the chat itself.
fn chat_web_port(args: &Args) -> PortChoice {
    PortChoice { flag: "--chat-http-port", port: args.chat_http_port, transports: Transports::TCP }
}

/// Binds one service where [`port_choice`] says.
fn start(name: ServiceName, args: &Args) -> anyhow::Result<Box<dyn Service>> {
    let limits = args.limits.get();
    let choice = port_choice(name, args);
    let bound = args.bind.bind(name.label(), choice.port, choice.transports, choice.flag)?;
    Ok(match name {
        ServiceName::Echo => Box::new(EchoServer::new(bound, limits)),
        ServiceName::Daytime => Box::new(DaytimeServer::new(Protocol::Daytime, bound, limits)),
        ServiceName::Time => Box::new(DaytimeServer::new(Protocol::Time, bound, limits)),
        ServiceName::Udp => Box::new(AckServer::new(
            bound,
            ImpairmentConfig::loss(args.udp_loss),
            args.udp_seed.unwrap_or_else(random_seed),
        )),
        ServiceName::Transfer => {
            // Never the current directory: run from a source tree, uploads would land in it.
            let dir =
                args.transfer_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("socketeer-received"));
            let config = receive_config(&dir, false, Duration::from_secs(10), 4096)?;
            let sockets = bound.udp.into_iter().map(|s| s.into_std()).collect::<Result<_, _>>()?;
            Box::new(TransferServer::new(sockets, config, None)?)
        }
        ServiceName::Chat => {
            // The chat's other limits are its own (see `chat serve --help`), not the echo-sized ones here.
            let defaults = ChatConfig::default();
            let config = ChatConfig {
                max_clients: limits.max_connections,
                rate_limit: args.chat_rate_limit.map_or(defaults.rate_limit, |rate| {
                    rate.0.map(|limit| RateLimit {
                        burst: defaults.rate_limit.map_or(limit.burst, |d| d.burst),
                        ..limit
                    })
                }),
                max_per_address: args.chat_max_per_ip.map_or(defaults.max_per_address, |cap| cap.0),
                ..defaults
            };
            socketeer::process::raise_fd_limit_for(config.max_clients);
            let web = chat_web_port(args);
            let web_bound =
                args.bind.bind(socketeer::chat::web::SERVICE, web.port, web.transports, web.flag)?;
            Box::new(ChatServer::new(bound, config).with_web(web_bound, WebConfig::default()))
        }
    })
}
