//! Argument groups and parsers shared by several commands.

use std::ffi::OsString;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, SystemTime};

use clap::Args;
use socketeer::chat::flood::RateLimit;
use socketeer::client::Timeouts;
use socketeer::net::{self, Bound, Transports};
use socketeer::server::TcpLimits;
use socketeer::transfer::driver::ReceiveConfig;
use socketeer::transfer::{DEFAULT_PROGRESS_TIMEOUT, ReceiverLimits};

/// A request that makes no sense, found after clap's own checks; exits with 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Where the arguments of subcommand `name` start, when `name` is the
/// subcommand: the first word after the program's own global flags (`-v`,
/// `-qq`, `--verbose`...). The same word anywhere else (`echo send HOST scan`)
/// is someone's data, not the command.
pub fn subcommand_args(args: &[OsString], name: &str) -> Option<usize> {
    let at = 1 + args.iter().skip(1).position(|arg| !arg.to_str().is_some_and(|a| a.starts_with('-')))?;
    (args[at] == name).then_some(at + 1)
}

/// `-v`/`-q`, counted.
#[derive(Debug, Args)]
pub struct Verbosity {
    /// Log more (-v debug, -vv trace; socketeer's own logs, not its libraries'); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = "Logging")]
    verbose: u8,
    /// Log less (-q warnings only, -qq errors only).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose",
          help_heading = "Logging")]
    quiet: u8,
}

impl Verbosity {
    /// The tracing filter these flags ask for: `-v`/`-vv` open up socketeer's
    /// own logs only; its dependencies (tokio, mio, redis...) stay at info,
    /// or their per-event traces would drown everything else.
    pub fn filter(&self) -> String {
        let level = match (self.verbose, self.quiet) {
            (0, 0) => "info",
            (1, _) => "debug",
            (2.., _) => "trace",
            (_, 1) => "warn",
            (_, _) => "error",
        };
        match self.verbose {
            0 => level.to_owned(),
            _ => format!("info,socketeer={level}"),
        }
    }

    /// How many times `-v` was given: some commands say more at each level
    /// (scan's nmap formats list hosts found down from `-v` on, as nmap's do).
    pub fn verbose(&self) -> u8 {
        self.verbose
    }
}

/// Where a server listens.
#[derive(Debug, Args)]
pub struct BindArgs {
    /// Addresses to listen on, comma-separated: 127.0.0.1 or localhost (this
    /// machine only), 0.0.0.0 (all IPv4), :: (all IPv6 and IPv4), or a list.
    #[arg(long, value_name = "ADDR", value_delimiter = ',', default_value = "127.0.0.1", value_parser = bind_addr)]
    pub bind: Vec<IpAddr>,
}

/// An address to listen on: an IP address, or `localhost` for 127.0.0.1
/// (people write the name; resolving others would pick one address of many).
pub fn bind_addr(s: &str) -> Result<IpAddr, String> {
    if s.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    s.parse()
        .map_err(|_| format!("'{s}' is not an IP address; give one such as 127.0.0.1, ::1, 0.0.0.0 or ::"))
}

/// A socket address to listen on: [`bind_addr`] and a port, as
/// `127.0.0.1:9000`, `[::1]:9000` or `localhost:9000`.
pub fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    let bad =
        || format!("'{s}' is not an address to listen on; give IP:PORT such as 127.0.0.1:9000 or [::1]:9000");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6,
        // A bare IPv6 address has colons of its own: it needs brackets.
        None if host.contains(':') => return Err(bad()),
        None => host,
    };
    Ok(SocketAddr::new(bind_addr(host).map_err(|_| bad())?, port))
}

impl BindArgs {
    /// Binds `transports` on `port` at every address, turning a failure into
    /// a message that names the flag to change.
    pub fn bind(
        &self,
        service: &str,
        port: u16,
        transports: Transports,
        port_flag: &str,
    ) -> anyhow::Result<Bound> {
        bind(&self.bind, port, transports, service, (port_flag, "--bind"))
    }
}

/// A port a server was asked to listen on, and the flag that chose it.
#[derive(Clone, Copy, Debug)]
pub struct PortChoice {
    /// The flag, such as `--echo-port`.
    pub flag: &'static str,
    /// The port; 0 picks a free one.
    pub port: u16,
    /// What listens there.
    pub transports: Transports,
}

/// Refuses two services on one port and transport before binding either:
/// the second bind would fail with "in use", which blames someone else.
pub fn check_distinct_ports(choices: &[PortChoice]) -> Result<(), UsageError> {
    for (i, a) in choices.iter().enumerate() {
        for b in &choices[i + 1..] {
            let shared = (a.transports.tcp && b.transports.tcp) || (a.transports.udp && b.transports.udp);
            if a.port != 0 && a.port == b.port && shared {
                return Err(UsageError(format!(
                    "{} and {} are both {}; give each service its own port",
                    a.flag, b.flag, a.port
                )));
            }
        }
    }
    Ok(())
}

/// Binds like [`net::bind`], turning a failure into a message that names the
/// flags to change: `flags` are the one that sets the port and the one that
/// sets the address.
pub fn bind(
    ips: &[IpAddr],
    port: u16,
    transports: Transports,
    service: &str,
    (port_flag, addr_flag): (&str, &str),
) -> anyhow::Result<Bound> {
    net::bind(ips, port, transports).map_err(|e| {
        let hint = match e.source.kind() {
            std::io::ErrorKind::AddrInUse => format!("; pick another with {port_flag}"),
            std::io::ErrorKind::PermissionDenied => format!("; pick one above 1023 with {port_flag}"),
            std::io::ErrorKind::AddrNotAvailable => format!("; pick another with {addr_flag}"),
            _ => String::new(),
        };
        anyhow::anyhow!("{service}: {e}{hint}")
    })
}

/// `--tcp`/`--udp` for servers that speak both.
#[derive(Debug, Args)]
pub struct ServerTransports {
    /// Serve TCP only.
    #[arg(long, conflicts_with = "udp")]
    tcp: bool,
    /// Serve UDP only.
    #[arg(long)]
    udp: bool,
}

impl ServerTransports {
    /// Both unless one was picked.
    pub fn get(&self) -> Transports {
        match (self.tcp, self.udp) {
            (true, _) => Transports::TCP,
            (_, true) => Transports::UDP,
            _ => Transports::BOTH,
        }
    }
}

/// Connection limits of a TCP server.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Connections served at once; more are closed on arrival.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Close a connection after this long without traffic.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = positive_duration)]
    idle_timeout: Duration,
}

impl LimitArgs {
    /// The limits as the library takes them.
    pub fn get(&self) -> TcpLimits {
        TcpLimits { max_connections: self.max_connections as usize, idle_timeout: self.idle_timeout }
    }
}

/// How long a client waits.
#[derive(Debug, Args)]
pub struct TimeoutArgs {
    /// How long to wait for a TCP connection.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = positive_duration)]
    connect_timeout: Duration,
    /// How long to wait for each reply.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = positive_duration)]
    timeout: Duration,
}

impl TimeoutArgs {
    /// The timeouts as the library takes them.
    pub fn get(&self) -> Timeouts {
        Timeouts { connect: self.connect_timeout, reply: self.timeout }
    }
}

/// A duration such as `1s`, `250ms` or `1m 30s`; a bare number means seconds
/// (the one parser every flag and the proxy's control socket share).
pub fn duration(s: &str) -> Result<Duration, String> {
    socketeer::units::parse_duration(s).map_err(|e| e.to_string())
}

/// A [`duration`] above zero.
pub fn positive_duration(s: &str) -> Result<Duration, String> {
    match duration(s)? {
        Duration::ZERO => Err("must be more than zero".to_owned()),
        d => Ok(d),
    }
}

/// A size such as `1400`, `64KiB` or `1.5MB` (bytes when no unit is given).
pub fn size(s: &str) -> Result<u64, String> {
    socketeer::units::parse_size(s).map_err(|e| e.to_string())
}

/// A parser of a [`size`] from `min` to `max` bytes, as a `T`.
pub fn size_in<T: TryFrom<u64>>(
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
    move |s| {
        let bytes = size(s)?;
        if !(min..=max).contains(&bytes) {
            return Err(match max {
                u64::MAX => format!("'{s}' is {bytes} bytes; give at least {min}"),
                _ => format!("'{s}' is {bytes} bytes; give {min} to {max}"),
            });
        }
        T::try_from(bytes).map_err(|_| format!("'{s}' is too large"))
    }
}

/// A chat's `--rate-limit`: lines per time, or none.
#[derive(Clone, Copy, Debug)]
pub struct LineRate(pub Option<RateLimit>);

/// Parses a chat's `--rate-limit` (`10/s`, `300/min`, `off`): `chat serve`
/// and `serve --chat-rate-limit`.
pub fn line_rate(s: &str) -> Result<LineRate, String> {
    RateLimit::parse(s, 1).map(LineRate).map_err(|e| e.to_string())
}

/// A cap on connections: a number, or none (`off`).
#[derive(Clone, Copy, Debug)]
pub struct Cap(pub Option<usize>);

/// Parses a [`Cap`] (`--max-per-ip`, `--chat-max-per-ip`).
pub fn cap(s: &str) -> Result<Cap, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(Cap(None));
    }
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(Cap(Some(n))),
        _ => Err(format!("'{s}' is not a number of connections above zero, or off")),
    }
}

/// How long a finished transfer session stays to answer a repeated FIN.
pub const LINGER: Duration = Duration::from_secs(2);

/// The transfer receiver's settings: `transfer recv` and `serve`'s transfer
/// service. The directory is made (private, 0700) and checked when the
/// server starts.
pub fn receive_config(
    dir: &Path,
    overwrite: bool,
    timeout: Duration,
    max_window: u32,
) -> anyhow::Result<ReceiveConfig> {
    if dir.exists() && !dir.is_dir() {
        return Err(UsageError(format!("{} is not a directory; pick one with --dir", dir.display())).into());
    }
    let limits = ReceiverLimits {
        max_window,
        max_block: 65_000,
        peer_timeout: timeout,
        progress_timeout: DEFAULT_PROGRESS_TIMEOUT,
        linger: LINGER,
    };
    Ok(ReceiveConfig { overwrite, ..ReceiveConfig::new(dir.to_owned(), limits) })
}

/// A seed for when the user gave none: random, and printed so a run can be repeated.
pub fn random_seed() -> u64 {
    RandomState::new().hash_one(SystemTime::now()) % 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_or_seconds() {
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(duration("-1").is_err());
        assert!(duration("soon").is_err());
        assert!(positive_duration("0s").is_err());
    }

    #[test]
    fn listen_addresses_take_localhost() {
        assert_eq!(listen_addr("localhost:9000"), Ok(SocketAddr::from(([127, 0, 0, 1], 9000))));
        assert_eq!(listen_addr("[::1]:0"), Ok(SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 0))));
        assert_eq!(listen_addr("0.0.0.0:53"), Ok(SocketAddr::from(([0, 0, 0, 0], 53))));
        for bad in ["localhost", "example.com:80", "127.0.0.1:99999", "::1:80"] {
            assert!(listen_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_take_units_within_bounds() {
        assert_eq!(size("50MB"), Ok(50_000_000));
        assert_eq!(size_in::<u32>(1, 2048)("1KiB"), Ok(1024));
        assert_eq!(size_in::<u16>(8, 65507)("64"), Ok(64));
        assert_eq!(size_in::<u32>(1, 1024)("2KiB"), Err("'2KiB' is 2048 bytes; give 1 to 1024".to_owned()));
        assert!(size_in::<u32>(1, 10)("lots").is_err());
        assert_eq!(size_in::<usize>(1, u64::MAX)("0"), Err("'0' is 0 bytes; give at least 1".to_owned()));
    }

    #[test]
    fn the_subcommand_is_the_first_word_after_global_flags() {
        let args = |words: &[&str]| words.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(subcommand_args(&args(&["socketeer", "-vv", "--quiet", "scan", "-sS"]), "scan"), Some(4));
        assert_eq!(subcommand_args(&args(&["socketeer", "echo", "send", "h", "scan", "-sS"]), "scan"), None);
        assert_eq!(subcommand_args(&args(&["socketeer", "-v"]), "scan"), None);
        assert_eq!(subcommand_args(&args(&["socketeer"]), "sniff"), None);
    }
}
