//! Scanner checks: a known, random set of open ports on a loopback address,
//! the student's scanner run against it, and what it printed compared with
//! the truth.
//!
//! Scanners print results in every format, so the comparison reads numbers:
//! a line that holds a port number of the scanned range reports that port
//! open, unless it says "closed", "filtered", "refused" or "timed out".
//! Listening sockets of other programs on this machine (bound to the same
//! address, or to all addresses) are open too, and are part of the truth.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::time::Instant;

use super::case::{Case, Finding, Group, Level, Outcome, Report};
use super::program::{Launch, Running};
use super::runner::Event;
use super::{CheckError, Options};
use crate::net::Transport;
use crate::process;

/// How many ports the scanned range holds.
const RANGE: u16 = 300;
/// How many of them are opened.
const OPENED: usize = 6;
/// How long the scanner may run.
pub const TIME_LIMIT: Duration = Duration::from_secs(60);
/// A scan this long or longer earns a warning.
const SLOW: Duration = Duration::from_secs(30);

/// Words that say a port is not open.
const NOT_OPEN: [&str; 6] = ["closed", "filtered", "refused", "timed out", "timeout", "not open"];

/// The ports a scanner claims are open, read from its output: every number
/// in `first..=last` on a line that does not say the port is not open and
/// is not a heading that names the whole range ("Scanning 20000-20299": its
/// only numbers of the range are its two ends; a line listing the open ports
/// has others too).
pub fn claimed_open(output: &str, first: u16, last: u16) -> BTreeSet<u16> {
    output
        .lines()
        .filter(|line| {
            let lower = line.to_lowercase();
            !NOT_OPEN.iter().any(|w| lower.contains(w))
        })
        .map(|line| {
            line.split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u16>().ok())
                .filter(|p| (first..=last).contains(p))
                .collect::<BTreeSet<_>>()
        })
        .filter(|ports| first == last || *ports != BTreeSet::from([first, last]))
        .flatten()
        .collect()
}

/// How a scan compares with the truth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comparison {
    /// Open ports it did not report.
    pub missed: Vec<u16>,
    /// Ports it reported that are not open.
    pub false_open: Vec<u16>,
    /// Open ports it reported.
    pub found: usize,
}

/// Compares what a scanner `claimed` with the `open` ports.
pub fn compare(claimed: &BTreeSet<u16>, open: &BTreeSet<u16>) -> Comparison {
    Comparison {
        missed: open.difference(claimed).copied().collect(),
        false_open: claimed.difference(open).copied().collect(),
        found: open.intersection(claimed).count(),
    }
}

/// `12, 40, 77` or `12, 40, 77 and 5 more`.
fn list(ports: &[u16]) -> String {
    let shown: Vec<String> = ports.iter().take(8).map(ToString::to_string).collect();
    match ports.len() {
        n if n > 8 => format!("{} and {} more", shown.join(", "), n - 8),
        _ => shown.join(", "),
    }
}

const fn case(
    id: &'static str,
    group: Group,
    title: &'static str,
    expects: &'static str,
    explanation: &'static str,
) -> Case {
    let sends = "(a random range of 300 ports on a loopback address, a few of them open)";
    Case::required(id, group, title, sends, expects, explanation, "scanner")
}

/// The cases.
pub const CASES: [Case; 5] = [
    case(
        "scanner.finds-open",
        Group::Correct,
        "every open port inside the range is reported",
        "each open port's number printed",
        "connect_ex((host, port)) returns 0 when a server accepted the connection: that port is open. \
         Use a new socket for every port (a socket connects once), and close it afterwards.",
    ),
    case(
        "scanner.range-ends",
        Group::Correct,
        "the first and the last port of the range are scanned",
        "both ends of the range (always open here) printed",
        "The range FIRST-LAST includes both ends, but Python's range(first, last) stops before \
         last: loop over range(first, last + 1).",
    ),
    case(
        "scanner.no-false-open",
        Group::Correct,
        "no closed port is reported open",
        "no other port numbers printed (lines saying 'closed' are fine)",
        "connect_ex() returns 0 for open and an error number (111, connection refused) for closed: \
         `if result == 0:` is open; `if result:` is the opposite.",
    ),
    case(
        "scanner.finishes",
        Group::Robust,
        "the scan ends by itself",
        "the scanner exits within 60 s",
        "A scanner must give up on each port after a while (sock.settimeout(0.5)): a port behind a \
         firewall never answers, and without a timeout connect() waits for minutes.",
    ),
    Case {
        level: Level::Advisory,
        ..case(
            "scanner.fast",
            Group::Robust,
            "300 ports take less than 30 s",
            "the scan done within 30 s (a warning otherwise)",
            "On this machine a closed port answers at once, so 300 ports take well under a second \
             one after another. A slow scan waits where it need not (a sleep per port, a long timeout \
             on ports that answered).",
        )
    },
];

/// The address scanned: on 127.0.0.0/8 away from 127.0.0.1, where other
/// servers of this machine usually are.
fn address() -> IpAddr {
    use std::hash::{BuildHasher, RandomState};
    let x = RandomState::new().hash_one(std::process::id());
    IpAddr::V4(Ipv4Addr::new(127, 0, 1 + (x % 200) as u8, 1 + ((x >> 8) % 250) as u8))
}

/// Opens ports at `ip`: a random range and a random few in it, kept open
/// while the scan runs (TCP listeners that accept and close, or UDP sockets
/// that answer every datagram).
struct Openings {
    first: u16,
    last: u16,
    ports: BTreeSet<u16>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Openings {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn open_ports(ip: IpAddr, transport: Transport) -> Result<Openings, CheckError> {
    use std::hash::{BuildHasher, RandomState};
    let random = RandomState::new();
    // Below the kernel's range of ephemeral ports: a scanner's own socket
    // then never has a port of the range, so it cannot connect to itself.
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let (low, span) = if ephemeral_low > 10_000 + RANGE {
        (10_000, ephemeral_low - 10_000 - RANGE)
    } else {
        (61_000, 4_000)
    };
    for attempt in 0u64..20 {
        let first = low + (random.hash_one((attempt, 1)) % u64::from(span)) as u16;
        let last = first + RANGE - 1;
        let mut ports = BTreeSet::new();
        let mut tasks = Vec::new();
        let mut seed = attempt;
        // Both ends, always (a loop that stops one short is the classic
        // slip), and the others at random.
        let mut ends = [first, last].into_iter();
        while ports.len() < OPENED {
            seed += 1;
            let port =
                ends.next().unwrap_or_else(|| first + (random.hash_one(seed) % u64::from(RANGE)) as u16);
            if ports.contains(&port) {
                continue;
            }
            let addr = SocketAddr::new(ip, port);
            let task = match transport {
                Transport::Tcp => match TcpListener::bind(addr).await {
                    Ok(listener) => tokio::spawn(async move {
                        while let Ok((stream, _)) = listener.accept().await {
                            drop(stream);
                        }
                    }),
                    Err(_) => break,
                },
                Transport::Udp => match UdpSocket::bind(addr).await {
                    Ok(socket) => tokio::spawn(async move {
                        let mut buf = vec![0u8; 2048];
                        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                            let _ = socket.send_to(&buf[..n], from).await;
                        }
                    }),
                    Err(_) => break,
                },
            };
            ports.insert(port);
            tasks.push(task);
        }
        if ports.len() == OPENED {
            return Ok(Openings { first, last, ports, tasks });
        }
        for task in tasks {
            task.abort();
        }
    }
    Err(CheckError::Io(std::io::Error::other("no free range of ports to open")))
}

/// Ports of `ip` in `first..=last` that other programs serve (their
/// listeners on `ip` or on all addresses), read from `/proc/net`.
fn others(ip: IpAddr, transport: Transport, first: u16, last: u16, ours: &BTreeSet<u16>) -> BTreeSet<u16> {
    process::sockets(transport)
        .into_iter()
        .filter(|s| s.is_server() && s.serves(ip) && (first..=last).contains(&s.local.port()))
        .map(|s| s.local.port())
        .filter(|p| !ours.contains(p))
        .collect()
}

/// Runs the scanner check.
///
/// # Errors
/// When the options select no case, or the ports or the scanner cannot be started.
pub async fn check_scanner(
    launch: &Launch,
    transport: Transport,
    options: &Options,
    on_event: &mut (dyn FnMut(Event<'_>) + Send),
) -> Result<Report, CheckError> {
    let cases: Vec<&Case> = CASES.iter().filter(|c| options.selects(c.id)).collect();
    if cases.is_empty() {
        return Err(CheckError::NoCase(options.only.join(",")));
    }
    on_event(Event::Planned(cases.len()));
    on_event(Event::Started(&CASES[0]));
    let ip = address();
    let openings = open_ports(ip, transport).await?;
    let (first, last) = (openings.first, openings.last);
    let before = others(ip, transport, first, last, &openings.ports);
    let vars = [
        ("host", ip.to_string()),
        ("ports", format!("{first}-{last}")),
        ("first", first.to_string()),
        ("last", last.to_string()),
    ];
    let started = Instant::now();
    let mut scanner = Running::start(launch, &vars, false)?;
    let exited = scanner.wait_exit(TIME_LIMIT).await.is_some();
    let took = started.elapsed();
    let output = scanner.stdout.text();
    // A traceback is a crash, whatever the exit status (some scanners exit 1 when nothing is open).
    let crash = scanner.ended().await.filter(|c| c.stderr.contains("Traceback (most recent call last)"));
    scanner.stop().await;
    let after = others(ip, transport, first, last, &openings.ports);
    // Another program's port counts when it was open all along; one that came
    // or went during the scan is left out of the judgement.
    let unsure: BTreeSet<u16> = before.symmetric_difference(&after).copied().collect();
    let open: BTreeSet<u16> = openings.ports.iter().chain(before.intersection(&after)).copied().collect();
    let claimed: BTreeSet<u16> = claimed_open(&output, first, last).difference(&unsure).copied().collect();
    let comparison = compare(&claimed, &open);
    let truth =
        format!("open: {} of {first}-{last} on {ip}", list(&open.iter().copied().collect::<Vec<_>>()));
    let claimed_list = list(&claimed.iter().copied().collect::<Vec<_>>());
    let shown = |f: Finding| {
        f.got(format!(
            "reported open: {}",
            if claimed.is_empty() { "none".into() } else { claimed_list.clone() }
        ))
    };
    let (ends_missed, inside_missed): (Vec<u16>, Vec<u16>) =
        comparison.missed.iter().partition(|&&p| p == first || p == last);
    let findings = [
        shown(match &inside_missed[..] {
            [] => Finding::pass().note(truth.clone()),
            [_, ..] => Finding::fail(format!(
                "it missed {} of the {} open ports: {}",
                comparison.missed.len(),
                open.len(),
                list(&comparison.missed)
            ))
            .note(truth.clone()),
        }),
        shown(match (&ends_missed[..], &inside_missed[..]) {
            ([], _) => Finding::pass(),
            (_, [_, ..]) => {
                Finding::skip("it missed open ports inside the range too (see scanner.finds-open)")
            }
            (ends, []) => Finding::fail(format!(
                "it found every open port inside the range but not {} at its end{}",
                list(ends),
                if ends.len() > 1 { "s" } else { "" }
            ))
            .note(truth.clone()),
        }),
        shown(match &comparison.false_open[..] {
            [] => Finding::pass(),
            wrong => {
                Finding::fail(format!("it reported {} closed ports as open: {}", wrong.len(), list(wrong)))
                    .note(truth)
            }
        }),
        if exited {
            Finding::pass().note(format!("it took {:.1} s", took.as_secs_f64()))
        } else {
            Finding::fail(format!("it was still scanning after {}", humantime::format_duration(TIME_LIMIT)))
        },
        if !exited {
            Finding::skip("the scan did not end")
        } else if took >= SLOW {
            Finding::fail(format!("it took {:.1} s", took.as_secs_f64()))
        } else {
            Finding::pass()
        },
    ];
    let each = took / CASES.len() as u32;
    let mut outcomes = Vec::new();
    for (case, finding) in CASES.iter().zip(findings) {
        if options.selects(case.id) {
            let crash = if case.id == "scanner.finishes" { crash.clone() } else { None };
            let outcome = Outcome::new(*case, finding, each, crash);
            on_event(Event::Finished(&outcome));
            outcomes.push(outcome);
        }
    }
    drop(openings);
    Ok(Report::new("scanner", launch.display(), outcomes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_ports_are_read_from_any_format() {
        let output = "Scanning 127.0.1.5 ports 20000-20299\n\
                      Port 20005 is open\n\
                      20010/tcp open\n\
                      port 20011: closed\n\
                      [20100, 20200]\n\
                      Port 20012 timed out\n\
                      done in 0.3 s, 300 ports\n";
        let claimed = claimed_open(output, 20000, 20299);
        assert_eq!(claimed.into_iter().collect::<Vec<_>>(), [20005, 20010, 20100, 20200]);
        // The ends are open ports like any other on a line of their own or in a list.
        let listed = "open: [20000, 20007, 20299]\n20299 open\n";
        assert_eq!(claimed_open(listed, 20000, 20299).into_iter().collect::<Vec<_>>(), [20000, 20007, 20299]);
    }

    #[test]
    fn the_comparison_names_misses_and_false_opens() {
        let open: BTreeSet<u16> = [1, 2, 3].into();
        let claimed: BTreeSet<u16> = [2, 3, 4].into();
        assert_eq!(compare(&claimed, &open), Comparison { missed: vec![1], false_open: vec![4], found: 2 });
        assert_eq!(list(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), "1, 2, 3, 4, 5, 6, 7, 8 and 2 more");
    }
}
