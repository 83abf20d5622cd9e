//! `impair --tun`: every IP packet between two network namespaces (or one
//! and the host) through the impairment model, as netem would do it in the
//! kernel.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::Serialize;
use socketeer::impair::tun::{DEFAULT_MTU, EndAt, MIN_MTU};
use socketeer::impair::{ImpairedPath, ImpairmentConfig, TunConfig, TunError};
use socketeer::netns::NetnsError;

use super::Common;
use crate::cli::args::UsageError;

/// The TUN mode's own flags.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Any IP traffic (--tun, as root)")]
pub(super) struct TunArgs {
    /// Impair every IP packet between two network namespaces (or one and the
    /// host) through a pair of TUN devices, instead of relaying UDP: TCP,
    /// ICMP, any program (needs root).
    #[arg(long)]
    pub(super) tun: bool,
    /// The ends: A,B are two network namespaces (made when missing and then
    /// deleted at exit; joined when they exist); a single name joins the
    /// host (first end) to that namespace (second end).
    #[arg(long, value_name = "A[,B]", requires = "tun", value_delimiter = ',')]
    netns: Vec<String>,
    /// The two ends' IPv4 addresses; their IPv6 addresses follow from them
    /// (2001:2:: with the IPv4 address in the last 32 bits).
    #[arg(long, value_name = "A,B", default_value = "198.18.0.1,198.18.0.2")]
    addresses: Addresses,
    /// The MTU of both TUN devices.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MTU,
          value_parser = clap::value_parser!(u16).range(i64::from(MIN_MTU)..))]
    mtu: u16,
}

/// `--addresses A,B`.
#[derive(Clone, Copy, Debug)]
struct Addresses([Ipv4Addr; 2]);

impl FromStr for Addresses {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed: Vec<Option<Ipv4Addr>> = s.split(',').map(|a| a.trim().parse().ok()).collect();
        match parsed.as_slice() {
            [Some(a), Some(b)] => Ok(Addresses([*a, *b])),
            _ => Err(format!("'{s}' is not two IPv4 addresses, as in 198.18.0.1,198.18.0.2")),
        }
    }
}

/// What the general flags say about the path.
pub(super) struct TunSettings {
    pub(super) up: ImpairmentConfig,
    pub(super) down: ImpairmentConfig,
    pub(super) seed: u64,
    pub(super) realtime: bool,
}

/// One end, as the status line tells it.
#[derive(Serialize)]
struct EndStatus {
    name: String,
    namespace: Option<String>,
    interface: String,
    v4: Ipv4Addr,
    v6: Option<Ipv6Addr>,
}

/// The path's status lines.
#[derive(Serialize)]
struct Started {
    service: &'static str,
    transport: &'static str,
    ends: [EndStatus; 2],
    seed: u64,
    up: ImpairmentConfig,
    down: ImpairmentConfig,
}

impl fmt::Display for Started {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b] = &self.ends;
        let show = |e: &EndStatus| match e.v6 {
            Some(v6) => format!("{} {} {}", e.name, e.v4, v6),
            None => format!("{} {}", e.name, e.v4),
        };
        writeln!(f, "impair tun {} <-> {} (seed {})", show(a), show(b), self.seed)?;
        writeln!(f, "up: {}", self.up)?;
        write!(f, "down: {}", self.down)
    }
}

/// Runs `impair --tun`.
pub(super) async fn run(args: &TunArgs, settings: TunSettings, common: Common) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Err(UsageError(TunError::NeedsRoot.to_string()).into());
    }
    let ends = match args.netns.as_slice() {
        [b] => [EndAt::Host, EndAt::Namespace(b.clone())],
        [a, b] => [EndAt::Namespace(a.clone()), EndAt::Namespace(b.clone())],
        [] => {
            return Err(UsageError(
                "--tun needs --netns A,B (two network namespaces, made when missing) or --netns B (the host and B)"
                    .to_owned(),
            )
            .into());
        }
        more => return Err(UsageError(format!("--netns takes one or two names, not {}", more.len())).into()),
    };
    let TunSettings { up, down, seed, realtime } = settings;
    let config = TunConfig { ends, addresses: args.addresses.0, mtu: args.mtu, up, down, seed, realtime };
    // Making namespaces and devices runs `ip` several times: off the async threads.
    let started = tokio::task::spawn_blocking(move || ImpairedPath::start(config)).await?;
    let mut path = started.map_err(|e| {
        // What the user asked for cannot be: a usage error, exit 2; the rest failed at run time.
        let asked_the_impossible = matches!(
            e,
            TunError::NeedsRoot
                | TunError::SameEnd(_)
                | TunError::BadAddresses(_)
                | TunError::AddressTaken { .. }
                | TunError::Netns(NetnsError::BadName(_))
        );
        if asked_the_impossible { UsageError(e.to_string()).into() } else { anyhow::Error::new(e) }
    })?;
    let ends = path.ends().each_ref().map(|e| EndStatus {
        name: e.name().to_owned(),
        namespace: e.namespace().map(str::to_owned),
        interface: e.interface().to_owned(),
        v4: e.v4(),
        v6: e.v6(),
    });
    common.out.emit("listening", &Started { service: "impair", transport: "tun", ends, seed, up, down })?;
    let control = path.control().ok_or_else(|| anyhow::anyhow!("the relay is not running"))?;
    let supervised = common.supervise(&control, path.died()).await;
    // Stopping removes the devices, then the namespaces it made (`ip netns del`).
    let stopped = tokio::task::spawn_blocking(move || path.stop()).await?;
    common.finish(stopped, supervised)
}
