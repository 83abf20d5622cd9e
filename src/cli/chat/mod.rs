//! `socketeer chat`: the chat server and its terminal client.

mod editor;
mod session;
mod terminal;

use std::fmt;
use std::io::{self, IsTerminal};
use std::time::Duration;

use anyhow::anyhow;
use clap::Subcommand;
use futures::StreamExt;
use serde::Serialize;
use socketeer::chat::flood::RateLimit;
use socketeer::chat::protocol::ServerLine;
use socketeer::chat::{self, ChatClient, ChatConfig, ChatServer, ClusterConfig, Ending, Received, WebConfig};
use socketeer::client::Timeouts;
use socketeer::net::{Target, Transports};
use tokio_util::codec::{FramedRead, LinesCodec};

use super::args::{self, BindArgs, Cap, LineRate, UsageError, cap, line_rate, positive_duration};
use super::output::Output;
use super::run::run_services;

/// The longest line `chat join` reads from stdin.
const MAX_INPUT_LINE: usize = 64 * 1024;
/// How long `chat join` waits for the server's goodbye after leaving.
const GOODBYE_WAIT: Duration = Duration::from_secs(2);

/// A multi-client chat over a plain TCP line protocol.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a chat server: every line a client sends goes to everyone else in its room.
    #[command(after_help = "Examples:\n  socketeer chat serve\n  \
                            socketeer chat serve --port 6000 --history 50 --max-per-ip 4\n  \
                            socketeer chat serve --rate-limit off --max-per-ip off --queue 1MiB   # for benchmarks\n  \
                            socketeer chat serve --port 5556 --redis redis://127.0.0.1:6379 --node-id b\n  \
                            socketeer chat serve --http 5580                     # and open http://127.0.0.1:5580/\n  \
                            nc localhost 5555                                    # nc is a full client (so is irssi)")]
    Serve(ServeArgs),
    /// Join a chat server from the terminal (or a script, through stdin).
    #[command(after_help = "Examples:\n  socketeer chat join localhost --nick alice\n  \
                            printf 'hello\\n/who\\n' | socketeer chat join localhost:5555\n  \
                            socketeer chat join [::1] --json")]
    Join(JoinArgs),
}

/// Arguments of `chat serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    bind: BindArgs,
    /// Port to listen on; 0 picks a free one.
    #[arg(short, long, value_name = "PORT", default_value_t = chat::DEFAULT_PORT)]
    port: u16,
    #[command(flatten)]
    limits: LimitArgs,
    /// Print status lines as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    web: WebArgs,
    // Last: its help heading applies to every option after it.
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// The chat in a browser.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Web page")]
struct WebArgs {
    /// Also serve the chat's web page and its WebSocket on this port; 0 picks a free one.
    #[arg(long, value_name = "PORT")]
    http: Option<u16>,
    /// A site whose pages may use the chat besides the page itself (https://chat.example.org),
    /// or * for any; repeat for more. Needed when the page is served under a domain name.
    #[arg(long, value_name = "ORIGIN", requires = "http")]
    http_origin: Vec<String>,
}

/// Joining other servers into one chat.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Cluster")]
struct ClusterArgs {
    /// Join the other servers using this Redis (redis://HOST:PORT[/DB]) into one chat.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// This server's name in the cluster [default: HOSTNAME-PID].
    #[arg(long, value_name = "NAME", requires = "redis")]
    node_id: Option<String>,
    /// How long a dead server's nicknames stay taken (its leases, renewed every third of this).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive_duration, requires = "redis")]
    lease: Duration,
    /// About how many entries each room's Redis stream keeps.
    #[arg(long, value_name = "N", default_value_t = 10_000, requires = "redis",
          value_parser = clap::value_parser!(u64).range(100..))]
    stream_len: u64,
}

impl ClusterArgs {
    fn get(&self) -> Option<ClusterConfig> {
        let url = self.redis.as_deref()?;
        let node = self.node_id.clone().unwrap_or_else(default_node_id);
        Some(ClusterConfig {
            lease: self.lease,
            stream_len: usize::try_from(self.stream_len).unwrap_or(usize::MAX),
            ..ClusterConfig::new(url, &node)
        })
    }
}

/// `HOSTNAME-PID`: unique among the servers running at once.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String =
        host.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(16).collect();
    match host.is_empty() {
        true => format!("node-{}", std::process::id()),
        false => format!("{host}-{}", std::process::id()),
    }
}

/// Every limit of the chat server.
#[derive(Debug, clap::Args)]
struct LimitArgs {
    /// The longest line a client may send; longer ones are refused and skipped.
    #[arg(long, value_name = "SIZE", default_value = "4KiB", value_parser = args::size_in::<usize>(1, u64::MAX))]
    max_line: usize,
    /// Lines per second each client may send (10/s, 300/min), or off.
    #[arg(long, value_name = "RATE", default_value = "10/s", value_parser = line_rate)]
    rate_limit: LineRate,
    /// Lines a client may send at once after a quiet spell.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    burst: u32,
    /// Clients connected at once; more are turned away with a notice.
    #[arg(long, value_name = "N", default_value_t = 1024, alias = "max-connections",
          value_parser = clap::value_parser!(u32).range(1..))]
    max_clients: u32,
    /// Clients from one IP address (IPv6: one /64) at once, half of them before their
    /// first line, and at most 10 new ones a second; or off (none of these limits).
    #[arg(long, value_name = "N", default_value = "16", value_parser = cap)]
    max_per_ip: Cap,
    /// Close a new connection that sends no whole line this long.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = positive_duration)]
    register_timeout: Duration,
    /// Close a client whose line, once begun, takes longer than this to arrive whole.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = positive_duration)]
    line_timeout: Duration,
    /// Send PING to a client silent this long (chat join answers; silent readers stay connected).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = positive_duration,
          alias = "idle-timeout")]
    ping_interval: Duration,
    /// How far a client may fall behind its room (bytes it has not read) before it is dropped.
    #[arg(long, value_name = "SIZE", default_value = "32MiB", value_parser = args::size_in::<usize>(1, u64::MAX))]
    queue: usize,
    /// Drop a client whose output has waited this long without it catching up.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = positive_duration)]
    slow_timeout: Duration,
    /// Messages each room keeps and replays to whoever joins it.
    #[arg(long, value_name = "N", default_value_t = 0)]
    history: usize,
}

impl LimitArgs {
    fn get(&self) -> ChatConfig {
        ChatConfig {
            max_line: self.max_line,
            rate_limit: self.rate_limit.0.map(|limit| RateLimit { burst: self.burst, ..limit }),
            max_clients: self.max_clients as usize,
            max_per_address: self.max_per_ip.0,
            register_timeout: self.register_timeout,
            line_timeout: self.line_timeout,
            ping_interval: self.ping_interval,
            queue: self.queue,
            slow_timeout: self.slow_timeout,
            history: self.history,
        }
    }
}

/// Arguments of `chat join`.
#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// The server, as HOST or HOST:PORT (port 5555 when left out).
    target: Target,
    /// The nickname to ask for once connected; if the server refuses it
    /// (taken), `chat join` says why and exits 1.
    #[arg(short, long, value_name = "NAME", value_parser = nickname)]
    nick: Option<String>,
    /// How long to wait for the connection.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = positive_duration)]
    connect_timeout: Duration,
    /// Print each line from the server as a JSON object.
    #[arg(long)]
    json: bool,
    /// Send at most this many lines a second (10/s, 300/min), or off: pasted or piped lines wait their turn rather than
    /// being dropped by the server's flood limit (`chat serve --rate-limit`,
    /// 10/s by default). A server that says its limit is lower is obeyed.
    #[arg(long, value_name = "RATE", default_value = "10/s", value_parser = pace)]
    pace: LineRate,
}

/// Runs a `chat` command.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let bound = args.bind.bind("chat", args.port, Transports::TCP, "--port")?;
            socketeer::process::raise_fd_limit_for(args.limits.max_clients as usize);
            let server = match args.cluster.get() {
                None => ChatServer::new(bound, args.limits.get()),
                Some(cluster) => ChatServer::clustered(bound, args.limits.get(), cluster)
                    .map_err(|e| UsageError(e.to_string()))?,
            };
            let server = match args.web.http {
                None => server,
                Some(port) => {
                    let bound = args.bind.bind(chat::web::SERVICE, port, Transports::TCP, "--http")?;
                    server.with_web(bound, WebConfig { origins: args.web.http_origin })
                }
            };
            run_services(vec![Box::new(server)], Output::new(args.json)).await
        }
        Command::Join(args) => join(args).await,
    }
}

/// A line from the server as `chat join` shows it: as sent, or in JSON its
/// parts (the `type` field tells which kind of line; `at` is the time of a
/// line of the room's history).
#[derive(Serialize)]
struct Shown<'a> {
    #[serde(skip)]
    line: ServerLine<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    text: &'a str,
}

impl<'a> From<Received<'a>> for Shown<'a> {
    fn from(Received { at, line }: Received<'a>) -> Self {
        let (from, to, text) = match line {
            ServerLine::Message { from, text }
            | ServerLine::Private { from, text }
            | ServerLine::Action { from, text } => (Some(from), None, text),
            ServerLine::PrivateSent { to, text } => (None, Some(to), text),
            ServerLine::Notice(text)
            | ServerLine::Error(text)
            | ServerLine::Ping(text)
            | ServerLine::Other(text) => (None, None, text),
        };
        Shown { line, at, from, to, text }
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = self.at {
            write!(f, "[{at}] ")?;
        }
        self.line.fmt(f)
    }
}

/// Parses `chat join --pace`: a rate with the server's default burst.
fn pace(s: &str) -> Result<LineRate, String> {
    RateLimit::parse(s, RateLimit::DEFAULT.burst).map(LineRate).map_err(|e| e.to_string())
}

/// A `--nick` the server would accept (1 to 32 letters, digits or some punctuation).
fn nickname(name: &str) -> Result<String, String> {
    socketeer::chat::protocol::check_name("nickname", name).map(str::to_owned).map_err(|e| e.to_string())
}

async fn join(args: JoinArgs) -> anyhow::Result<()> {
    let timeouts = Timeouts { connect: args.connect_timeout, reply: GOODBYE_WAIT };
    let client = ChatClient::connect(&args.target, timeouts).await?.paced(args.pace.0);
    let peer = client.peer();
    let nick = args.nick.as_deref();
    let ending = if !args.json && io::stdin().is_terminal() && io::stdout().is_terminal() {
        session::join_at_a_terminal(client, &args.target, timeouts, nick, args.pace.0).await?
    } else {
        let out = Output::new(args.json);
        let input = FramedRead::new(tokio::io::stdin(), LinesCodec::new_with_max_length(MAX_INPUT_LINE))
            .map(|line| line.map_err(io::Error::other));
        client.run(nick, input, |got| out.emit(got.line.kind(), &Shown::from(got))).await?
    };
    match ending {
        Ending::Left => Ok(()),
        Ending::ServerShutDown => Err(anyhow!("the server at {peer} shut down")),
        Ending::ServerClosed => Err(anyhow!("the server at {peer} closed the connection")),
    }
}
