//! `socketeer impair`: the UDP impairment proxy, the same impairments for
//! every IP packet between two network namespaces (`--tun`), and `impair
//! ctl` to change the settings of either while it runs.

mod flags;
mod tun;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use serde::Serialize;
use socketeer::impair::control::Reply;
use socketeer::impair::{
    Control, ControlSender, ImpairmentConfig, Proxy, ProxyConfig, Stopped, control, options,
};
use socketeer::net::{MAX_UDP_PAYLOAD, Target, Transport, Transports};
use socketeer::poll::DriverDied;
use socketeer::shutdown::{self, Shutdown};
use socketeer::text::sanitize;
use tokio::sync::oneshot;

use super::args::{self, UsageError, bind, positive_duration, random_seed};
use super::output::Output;
use flags::ImpairFlags;
use tun::{TunArgs, TunSettings};

const EXAMPLES: &str = "\
Examples:
  socketeer impair --listen 127.0.0.1:9000 --to 127.0.0.1:7007 --loss 5% --stats 2s
  socketeer impair --listen 127.0.0.1:9000 --to localhost:6969 --delay 20ms --jitter 5ms --seed 7
  socketeer impair --listen [::1]:9000 --to [::1]:7007 --burst-loss 1%,30% --up-duplicate 1%
  socketeer impair --listen 127.0.0.1:9000 --to 127.0.0.1:7007 --rate 10MB/s --queue 64KiB
  socketeer impair --listen 127.0.0.1:9000 --to 127.0.0.1:7007 --control ./impair.sock
  socketeer impair ctl ./impair.sock set loss=100%    # flap the link...
  socketeer impair ctl ./impair.sock set loss=0%      # ...and back
  socketeer impair --listen 127.0.0.1:9000 --to 127.0.0.1:7007 --control 127.0.0.1:9001
  socketeer impair ctl 127.0.0.1:9001 --token TOKEN stats
  sudo socketeer impair --tun --netns a,b --delay 20ms --loss 1%   # any IP traffic, a <-> b
  sudo ip netns exec b socketeer echo serve --tcp --bind 198.18.0.2 &
  sudo ip netns exec a socketeer echo send 198.18.0.2 hello        # TCP across it
  sudo socketeer impair --tun --netns lossy --rate 1MB/s           # the host <-> lossy

Settings without a prefix apply both ways; --up-NAME only from clients to the server (with
--tun, from the first end to the second), --down-NAME only back (see --help for the list).";

/// Arguments of `socketeer impair`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true, after_help = EXAMPLES)]
pub struct Args {
    #[command(subcommand)]
    ctl: Option<Ctl>,
    /// Address clients send to, as IP:PORT or localhost:PORT (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", required_unless_present = "tun", conflicts_with = "tun",
          value_parser = args::listen_addr)]
    listen: Option<SocketAddr>,
    /// The server to relay to, as HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", required_unless_present = "tun", conflicts_with = "tun")]
    to: Option<Target>,
    /// Seed of the random decisions: the same seed and datagrams give the same
    /// decisions (random when not given, and printed).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Serve the control protocol (set, show, stats) on a Unix socket at
    /// this path (yours alone), or on a TCP address (IP:PORT; a connection
    /// must first give the token printed at start).
    #[arg(long, value_name = "PATH|ADDR", value_parser = control_at)]
    control: Option<ControlAt>,
    /// Print the counters this often (they are always printed on exit).
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    stats: Option<Duration>,
    /// Datagrams larger than this are counted and dropped.
    #[arg(long, value_name = "BYTES", default_value_t = MAX_UDP_PAYLOAD,
          value_parser = clap::value_parser!(usize), conflicts_with = "tun")]
    max_datagram: usize,
    /// Clients relayed at once.
    #[arg(long, value_name = "N", default_value_t = 1024, conflicts_with = "tun")]
    max_clients: usize,
    /// Forget a client (and close its upstream socket) after this long without traffic.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = positive_duration,
          conflicts_with = "tun")]
    client_idle: Duration,
    /// Relay from a real-time thread (SCHED_FIFO; needs root or CAP_SYS_NICE):
    /// added delays stay precise to a few hundred microseconds on a busy machine.
    #[arg(long)]
    realtime: bool,
    /// Print status lines and counters as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tun: TunArgs,
    #[command(flatten)]
    impairments: ImpairFlags,
}

/// `impair ctl`: talk to a running proxy's control socket.
#[derive(Debug, Subcommand)]
enum Ctl {
    /// Send one command to a running proxy's control socket and print the reply.
    #[command(after_help = "Examples:\n  socketeer impair ctl ./impair.sock set loss=100%\n  \
                            socketeer impair ctl ./impair.sock set up-delay=50ms down-loss=1%\n  \
                            socketeer impair ctl ./impair.sock show\n  \
                            socketeer impair ctl 127.0.0.1:9001 --token TOKEN stats")]
    Ctl {
        /// The control socket: its path, or HOST:PORT.
        addr: String,
        /// The command: set NAME=VALUE..., show, stats or help.
        #[arg(required = true, num_args = 1..)]
        command: Vec<String>,
        /// The token a TCP control socket printed at start.
        #[arg(long, value_name = "TOKEN", env = "SOCKETEER_IMPAIR_TOKEN")]
        token: Option<String>,
        /// How long to wait for the reply.
        #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = positive_duration)]
        timeout: Duration,
    },
}

/// The proxy's status lines.
#[derive(Serialize)]
struct Started {
    service: &'static str,
    transport: Transport,
    addr: SocketAddr,
    upstream: SocketAddr,
    seed: u64,
    up: ImpairmentConfig,
    down: ImpairmentConfig,
}

impl fmt::Display for Started {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "impair udp {} -> {} (seed {})", self.addr, self.upstream, self.seed)?;
        writeln!(f, "up: {}", self.up)?;
        write!(f, "down: {}", self.down)
    }
}

/// Runs `socketeer impair`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(Ctl::Ctl { addr, command, token, timeout }) = args.ctl {
        return ctl(addr, command, token, timeout).await;
    }
    let (mut up, mut down) = (ImpairmentConfig::default(), ImpairmentConfig::default());
    options::apply(&mut up, &mut down, &args.impairments.pairs).map_err(|e| UsageError(e.to_string()))?;
    let seed = args.seed.unwrap_or_else(random_seed);
    let out = Output::new(args.json);
    let common = Common { control: args.control, stats: args.stats, out };
    if args.tun.tun {
        return tun::run(&args.tun, TunSettings { up, down, seed, realtime: args.realtime }, common).await;
    }
    let (Some(listen), Some(to)) = (args.listen, &args.to) else {
        return Err(UsageError("--listen and --to are required (or --tun)".to_owned()).into());
    };
    if to.port.is_none() {
        return Err(UsageError(format!("--to {to} needs a port, as in {to}:7007")).into());
    }
    let upstream = to.resolve(0).await?[0];
    let same_host = listen.ip() == upstream.ip() || listen.ip().is_unspecified();
    if same_host && listen.port() == upstream.port() {
        return Err(UsageError(format!(
            "--listen {listen} and --to {upstream} are one socket; the proxy would forward to itself"
        ))
        .into());
    }
    let config = ProxyConfig {
        upstream,
        up,
        down,
        seed,
        max_datagram: args.max_datagram,
        max_clients: args.max_clients,
        client_idle: args.client_idle,
        realtime: args.realtime,
    };
    let mut bound = bind(&[listen.ip()], listen.port(), Transports::UDP, "impair", ("--listen", "--listen"))?;
    let socket = bound.udp.pop().ok_or_else(|| anyhow::anyhow!("no socket bound"))?.into_std()?;
    let proxy = Proxy::new(socket, config)?;
    let addr = proxy.local_addr()?;
    out.emit(
        "listening",
        &Started { service: "impair", transport: Transport::Udp, addr, upstream, seed, up, down },
    )?;
    let mut proxy = proxy.spawn()?;
    let control = proxy.control();
    let supervised = common.supervise(&control, proxy.died()).await;
    let stopped = tokio::task::spawn_blocking(move || proxy.stop()).await?;
    common.finish(stopped, supervised)
}

/// `impair ctl`: one command to a running proxy's control socket.
async fn ctl(
    addr: String,
    command: Vec<String>,
    token: Option<String>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let target = if is_path(&addr) {
        control::Target::Unix(addr.into())
    } else {
        let at: Target = addr.parse().map_err(|e| UsageError(format!("{e}")))?;
        if at.port.is_none() {
            return Err(UsageError(format!("{at} needs the control port, as in {at}:9001")).into());
        }
        control::Target::Tcp(at.resolve(0).await?, token)
    };
    let reply = control::command(&target, &command.join(" "), timeout).await?;
    match reply {
        // The proxy refuses only what was asked of it: a bad command or setting.
        Reply::Refused(why) => Err(UsageError(sanitize(&why).into_owned()).into()),
        Reply::Done(reply) => Output::new(false).note(sanitize(&reply)).map_err(Into::into),
    }
}

/// What both modes share once their driver runs: the control socket, the
/// periodic counters, and how the command ends.
struct Common {
    control: Option<ControlAt>,
    stats: Option<Duration>,
    out: Output,
}

impl Common {
    /// Serves the control socket (if asked) and prints the counters every
    /// `--stats` until Ctrl-C, or until the driver dies (which ends the
    /// command at once, saying why: running on would look like a working
    /// proxy that drops everything).
    async fn supervise<S: Serialize + fmt::Display + Send + 'static>(
        &self,
        control: &ControlSender<S>,
        died: impl Future<Output = DriverDied>,
    ) -> anyhow::Result<()> {
        let shutdown = Shutdown::new();
        if let Some(at) = &self.control {
            let listener = self.control_listener(at)?;
            shutdown.spawn(control::serve(listener, control.clone(), shutdown.clone()));
        }
        let stopped = tokio::select! {
            signal = shutdown::signal() => signal.map(drop).map_err(Into::into),
            printed = print_stats_every(self.stats, control, self.out) => printed.map_err(Into::into),
            died = died => Err(anyhow::Error::new(Stopped(Some(died)))),
        };
        shutdown.trigger();
        stopped
    }

    fn control_listener(&self, at: &ControlAt) -> anyhow::Result<control::Listener> {
        Ok(match at {
            ControlAt::Unix(path) => {
                let listener = control::Listener::unix(path.clone())
                    .with_context(|| format!("cannot listen on {}", path.display()))?;
                self.out.emit("listening", &ControlStatus::unix(path))?;
                listener
            }
            ControlAt::Tcp(addr) => {
                let ports = ("--control", "--control");
                let bound = bind(&[addr.ip()], addr.port(), Transports::TCP, "control", ports)?;
                let endpoints = bound.endpoints("control");
                let listener = control::Listener::tcp(bound.tcp)?;
                for endpoint in endpoints {
                    self.out.emit("listening", &ControlStatus::tcp(endpoint.addr, listener.token()))?;
                }
                listener
            }
        })
    }

    /// Prints the final counters, or says why the driver died.
    fn finish<S: Serialize + fmt::Display>(
        &self,
        stopped: Result<S, DriverDied>,
        supervised: anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        match stopped {
            Ok(stats) => self.out.emit("stats", &stats)?,
            Err(died) => return Err(Stopped(Some(died)).into()),
        }
        supervised
    }
}

/// Where `--control` listens.
#[derive(Clone, Debug)]
enum ControlAt {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// True when a control socket's name is a path (it has a `/` or ends in
/// `.sock`), not HOST:PORT.
fn is_path(s: &str) -> bool {
    s.contains('/') || s.ends_with(".sock")
}

/// Parses `--control`: a path for a Unix socket, or IP:PORT for TCP.
fn control_at(s: &str) -> Result<ControlAt, String> {
    if is_path(s) {
        return Ok(ControlAt::Unix(s.into()));
    }
    args::listen_addr(s).map(ControlAt::Tcp).map_err(|_| {
        format!(
            "'{s}' is neither a path (a Unix socket only you can use, such as ./impair.sock) \
             nor IP:PORT (TCP, with a token printed at start)"
        )
    })
}

/// The control socket's status line.
#[derive(Serialize)]
struct ControlStatus {
    service: &'static str,
    transport: &'static str,
    addr: String,
    token: Option<String>,
}

impl ControlStatus {
    fn unix(path: &std::path::Path) -> Self {
        ControlStatus { service: "control", transport: "unix", addr: path.display().to_string(), token: None }
    }

    fn tcp(addr: SocketAddr, token: Option<&str>) -> Self {
        let token = token.map(str::to_owned);
        ControlStatus { service: "control", transport: "tcp", addr: addr.to_string(), token }
    }
}

impl fmt::Display for ControlStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.service, self.transport, self.addr)?;
        if let Some(token) = &self.token {
            write!(f, " (token {token}: impair ctl {} --token {token} ...)", self.addr)?;
        }
        Ok(())
    }
}

/// Prints the counters every `period`, forever; never returns without a period.
async fn print_stats_every<S: Serialize + fmt::Display>(
    period: Option<Duration>,
    proxy: &ControlSender<S>,
    out: Output,
) -> std::io::Result<()> {
    let Some(period) = period else {
        return std::future::pending().await;
    };
    let mut ticks = tokio::time::interval(period);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let (tx, rx) = oneshot::channel::<S>();
        if proxy.send(Control::Stats(tx)).is_err() {
            return Ok(());
        }
        if let Ok(stats) = rx.await {
            out.emit("stats", &stats)?;
        }
    }
}
