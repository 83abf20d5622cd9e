//! `lab tcp-vs-udp`: the same stream of messages over TCP and over UDP, at
//! the same time, through the same loss.
//!
//! A sender sends numbered messages at a steady pace over both transports;
//! a receiver notes when each arrives. UDP shows the loss to the
//! application: some messages never come, the others come after the
//! path's delay. TCP hides it: every message comes, in order, but a lost
//! segment waits for its retransmission, and every message behind it waits
//! too (head-of-line blocking), so the loss turns into latency spikes.
//!
//! TCP's loss must happen below TCP, in the network: the senders sit in one
//! private network namespace and the receivers in another, joined by an
//! [`ImpairedPath`] (`impair --tun`'s TUN pair and seeded model), so both
//! transports cross the same loss and the same delay, each way. This needs
//! root.

use std::fmt;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::table::Table;
use super::tcp_info::TcpCounters;
use super::{LabError, Lesson, Took, thousands};
use crate::impair::tun::End;
use crate::impair::{ImpairedPath, ImpairmentConfig, LossModel, Probability, TunConfig};
use crate::plot::{self, Axes, Series};
use crate::stats::{as_millis, millis};

/// What to send.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TcpUdpConfig {
    /// Messages per transport.
    pub messages: u32,
    /// Bytes per message (at least 8: the sequence number).
    pub size: usize,
    /// The pause between two messages.
    #[serde(rename = "interval_ms", serialize_with = "as_millis")]
    pub interval: Duration,
    /// The share of packets lost, each way.
    pub loss: Probability,
    /// The delay added to every packet, each way.
    #[serde(rename = "delay_ms", serialize_with = "as_millis")]
    pub delay: Duration,
    /// Seed of the path's decisions: the same seed drops the same packets.
    pub seed: u64,
}

/// Messages later than this beyond the path's delay count as held up: well
/// above what a busy machine's scheduling adds, well below Linux's shortest
/// retransmission timeout.
const LATE: Duration = Duration::from_millis(100);
/// How long the UDP receiver waits for stragglers after the path's delay
/// has passed since the last send.
const UDP_GRACE: Duration = Duration::from_millis(300);
/// How long the TCP receiver may wait for the rest of the stream.
const TCP_LIMIT: Duration = Duration::from_secs(30);

/// One transport's outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TransportRun {
    /// `tcp` or `udp`.
    pub transport: &'static str,
    /// Messages sent.
    pub sent: u32,
    /// Distinct messages that arrived.
    pub delivered: u32,
    /// Messages that never arrived.
    pub lost: u32,
    /// Messages that arrived after a later one.
    pub out_of_order: u32,
    /// Per message: its latency in milliseconds, `None` if lost.
    pub latencies_ms: Vec<Option<f64>>,
    /// Median latency of the delivered messages.
    #[serde(rename = "p50_ms", serialize_with = "as_millis")]
    pub p50: Duration,
    /// 99th percentile.
    #[serde(rename = "p99_ms", serialize_with = "as_millis")]
    pub p99: Duration,
    /// The slowest.
    #[serde(rename = "max_ms", serialize_with = "as_millis")]
    pub max: Duration,
    /// Delivered messages held up more than 100 ms beyond the path's delay.
    pub late: u32,
    /// TCP: segments the sender retransmitted (`TCP_INFO`).
    pub retransmissions: Option<u32>,
}

/// What `lab tcp-vs-udp` observed, or why it could not run.
#[derive(Clone, Debug, Serialize)]
pub struct TcpUdpReport {
    /// What was sent.
    pub config: TcpUdpConfig,
    /// How the loss and delay were made, or what is missing to make them.
    pub impairment: String,
    /// The two network namespaces of the path (senders', receivers'),
    /// deleted when the experiment ends.
    pub namespaces: Vec<String>,
    /// Whether the experiment ran.
    pub ran: bool,
    /// TCP then UDP (empty when it did not run).
    pub runs: Vec<TransportRun>,
}

/// Runs both transports at once across an impaired path, if this process can make one.
///
/// # Errors
/// When sockets or threads fail once the path is up.
pub fn run(config: TcpUdpConfig) -> Result<TcpUdpReport, LabError> {
    let missing = |why: String| TcpUdpReport {
        config,
        impairment: why,
        namespaces: Vec::new(),
        ran: false,
        runs: Vec::new(),
    };
    if !nix::unistd::geteuid().is_root() {
        return Ok(missing(
            "not run: TCP needs its packets lost and delayed below it, in the network: two network namespaces \
             joined by `impair --tun` (user-space netem for every IP packet), which needs root; run with sudo"
                .to_owned(),
        ));
    }
    let each_way = ImpairmentConfig {
        loss: LossModel::Independent { rate: config.loss },
        delay: config.delay,
        ..ImpairmentConfig::default()
    };
    let path = match ImpairedPath::start(TunConfig::private(each_way, each_way, config.seed)) {
        Ok(path) => path,
        Err(e) => return Ok(missing(format!("not run: could not make the impaired path: {e}"))),
    };
    let [senders, receivers] = path.ends();
    let namespaces: Vec<String> = path.ends().iter().filter_map(End::namespace).map(str::to_owned).collect();
    let impairment = format!(
        "{:.1}% loss and {} delay each way, seed {} (impair --tun between namespaces {})",
        config.loss.fraction() * 100.0,
        Took(config.delay),
        config.seed,
        namespaces.join(" and ")
    );
    let runs = std::thread::scope(|scope| {
        let tcp = scope.spawn(|| tcp(config, senders, receivers));
        let udp = scope.spawn(|| udp(config, senders, receivers));
        let tcp = tcp.join().map_err(|_| LabError::Panicked { name: "tcp".to_owned() })??;
        let udp = udp.join().map_err(|_| LabError::Panicked { name: "udp".to_owned() })??;
        Ok::<_, LabError>(vec![tcp, udp])
    })?;
    // The path goes (relay, devices, namespaces) before the report is returned.
    drop(path);
    Ok(TcpUdpReport { config, impairment, namespaces, ran: true, runs })
}

/// Runs `make` (a socket's creation) at `end`: the socket belongs to that
/// end's namespace from then on, whichever thread uses it.
fn at<T: Send>(end: &End, make: impl FnOnce() -> std::io::Result<T> + Send) -> Result<T, LabError> {
    end.open(make).map_err(LabError::io(format!("making a socket in {}", end.name())))
}

/// The message with sequence number `seq`: the number, then filler.
fn message(seq: u32, size: usize) -> Vec<u8> {
    let mut m = vec![b'.'; size.max(8)];
    m[..8].copy_from_slice(&u64::from(seq).to_be_bytes());
    m
}

fn seq_of(m: &[u8]) -> Option<u32> {
    let bytes: [u8; 8] = m.get(..8)?.try_into().ok()?;
    u32::try_from(u64::from_be_bytes(bytes)).ok()
}

/// Sends every message on schedule (not drifting when a send was slow).
fn paced(
    config: TcpUdpConfig,
    mut send: impl FnMut(u32, Vec<u8>) -> std::io::Result<()>,
) -> Result<Vec<Instant>, LabError> {
    let start = Instant::now();
    let mut sent = Vec::with_capacity(config.messages as usize);
    for seq in 0..config.messages {
        let due = start + config.interval * seq;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        sent.push(Instant::now());
        send(seq, message(seq, config.size)).map_err(LabError::io("sending"))?;
    }
    Ok(sent)
}

fn tcp(config: TcpUdpConfig, senders: &End, receivers: &End) -> Result<TransportRun, LabError> {
    let listener = at(receivers, || TcpListener::bind((receivers.v4(), 0)))?;
    let addr = listener.local_addr().map_err(LabError::io("reading the listener's address"))?;
    let mut client = at(senders, || TcpStream::connect_timeout(&addr, TCP_LIMIT))?;
    let (mut server, _) = listener.accept().map_err(LabError::io("accepting"))?;
    client.set_nodelay(true).map_err(LabError::io("setting TCP_NODELAY"))?;
    server.set_read_timeout(Some(TCP_LIMIT)).map_err(LabError::io("setting a read timeout"))?;
    let size = config.size.max(8);
    let (arrivals_tx, arrivals) = mpsc::channel();
    let reader = std::thread::Builder::new()
        .name("tcp-reader".to_owned())
        .spawn(move || {
            let mut buf = vec![0u8; size];
            while server.read_exact(&mut buf).is_ok() {
                if let Some(seq) = seq_of(&buf) {
                    let _ = arrivals_tx.send((seq, Instant::now()));
                }
            }
        })
        .map_err(|e| LabError::Thread { name: "tcp-reader".to_owned(), error: e })?;
    let before = TcpCounters::of(&client).ok();
    let sent = paced(config, |_, m| client.write_all(&m))?;
    let mut got = Vec::new();
    while got.len() < sent.len() {
        match arrivals.recv_timeout(TCP_LIMIT) {
            Ok(arrival) => got.push(arrival),
            Err(_) => break,
        }
    }
    let retransmissions =
        TcpCounters::of(&client).ok().zip(before).map(|(after, before)| after.since(before).retransmissions);
    drop(client);
    let _ = reader.join();
    Ok(summarise("tcp", &sent, &got, config.delay, retransmissions))
}

fn udp(config: TcpUdpConfig, senders: &End, receivers: &End) -> Result<TransportRun, LabError> {
    let receiver = at(receivers, || UdpSocket::bind((receivers.v4(), 0)))?;
    let sender = at(senders, || UdpSocket::bind((senders.v4(), 0)))?;
    let to = receiver.local_addr().map_err(LabError::io("reading the receiver's address"))?;
    let (done_tx, done) = mpsc::channel::<Instant>();
    let size = config.size.max(8);
    let grace = config.delay + UDP_GRACE;
    let reader = std::thread::Builder::new()
        .name("udp-reader".to_owned())
        .spawn(move || {
            let mut got = Vec::new();
            let mut buf = vec![0u8; size + 64];
            let mut last_send: Option<Instant> = None;
            loop {
                if last_send.is_none() {
                    last_send = done.try_recv().ok();
                }
                let wait = match last_send {
                    Some(at) => match (at + grace).checked_duration_since(Instant::now()) {
                        Some(left) if !left.is_zero() => left,
                        _ => return got,
                    },
                    None => Duration::from_millis(50),
                };
                let _ = receiver.set_read_timeout(Some(wait));
                if let Ok(n) = receiver.recv(&mut buf)
                    && let Some(seq) = seq_of(&buf[..n])
                {
                    got.push((seq, Instant::now()));
                }
            }
        })
        .map_err(|e| LabError::Thread { name: "udp-reader".to_owned(), error: e })?;
    let sent = paced(config, |_, m| sender.send_to(&m, to).map(|_| ()))?;
    let _ = done_tx.send(Instant::now());
    let got = reader.join().map_err(|_| LabError::Panicked { name: "udp-reader".to_owned() })?;
    Ok(summarise("udp", &sent, &got, config.delay, None))
}

fn summarise(
    transport: &'static str,
    sent: &[Instant],
    got: &[(u32, Instant)],
    delay: Duration,
    retransmissions: Option<u32>,
) -> TransportRun {
    let mut latencies: Vec<Option<Duration>> = vec![None; sent.len()];
    let (mut out_of_order, mut highest) = (0, None::<u32>);
    for &(seq, at) in got {
        let Some(slot) = latencies.get_mut(seq as usize) else { continue };
        if slot.is_some() {
            continue;
        }
        *slot = Some(at.saturating_duration_since(sent[seq as usize]));
        if highest.is_some_and(|h| seq < h) {
            out_of_order += 1;
        }
        highest = highest.max(Some(seq));
    }
    let mut delivered: Vec<Duration> = latencies.iter().flatten().copied().collect();
    delivered.sort_unstable();
    let pick = |q: f64| {
        delivered.get(((delivered.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or_default()
    };
    TransportRun {
        transport,
        sent: sent.len() as u32,
        delivered: delivered.len() as u32,
        lost: (sent.len() - delivered.len()) as u32,
        out_of_order,
        latencies_ms: latencies.iter().map(|l| l.map(millis)).collect(),
        p50: pick(0.5),
        p99: pick(0.99),
        max: delivered.last().copied().unwrap_or_default(),
        late: delivered.iter().filter(|&&l| l > delay + LATE).count() as u32,
        retransmissions,
    }
}

impl TcpUdpReport {
    fn find(&self, transport: &str) -> Option<&TransportRun> {
        self.runs.iter().find(|r| r.transport == transport)
    }

    /// Each message's latency, TCP and UDP, as a line chart (SVG).
    pub fn plot(&self) -> String {
        let series: Vec<Series> = self
            .runs
            .iter()
            .enumerate()
            .map(|(i, r)| Series {
                label: r.transport.to_uppercase(),
                points: r
                    .latencies_ms
                    .iter()
                    .enumerate()
                    .filter_map(|(n, l)| l.map(|l| (n as f64, l.max(0.001))))
                    .collect(),
                group: i,
                dashed: false,
            })
            .collect();
        let axes = Axes { x_label: "message".to_owned(), y_label: "latency (ms)".to_owned(), y_log: true };
        plot::lines(
            "The same messages over TCP and UDP, through the same loss and delay",
            &self.impairment,
            &axes,
            &series,
        )
    }
}

impl fmt::Display for TcpUdpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} messages of {} bytes every {}, over TCP and UDP at once",
            thousands(u64::from(self.config.messages)),
            self.config.size.max(8),
            Took(self.config.interval)
        )?;
        write!(f, "path: {}", self.impairment)?;
        if !self.ran {
            return Ok(());
        }
        let mut table = Table::new(&[
            "transport",
            "sent",
            "delivered",
            "lost",
            "out of order",
            "p50",
            "p99",
            "max",
            "held up > 100 ms",
            "TCP resends",
        ]);
        for r in &self.runs {
            table.row([
                r.transport.to_uppercase(),
                r.sent.to_string(),
                r.delivered.to_string(),
                r.lost.to_string(),
                r.out_of_order.to_string(),
                Took(r.p50).to_string(),
                Took(r.p99).to_string(),
                Took(r.max).to_string(),
                r.late.to_string(),
                r.retransmissions.map_or("-".to_owned(), |n| n.to_string()),
            ]);
        }
        write!(f, "\n{table}")
    }
}

impl Lesson for TcpUdpReport {
    fn lesson(&self) -> String {
        let (Some(tcp), Some(udp)) = (self.find("tcp"), self.find("udp")) else {
            return "Nothing was measured: see the path line for what is missing. Without loss below it, TCP would \
                    look perfect and teach nothing."
                .to_owned();
        };
        let mut text = format!(
            "UDP lost {} of {} messages ({:.1}%) and told nobody: the application sees the gaps and must cope; the \
             {} that arrived took {} at the median and {} at worst. ",
            udp.lost,
            udp.sent,
            100.0 * f64::from(udp.lost) / f64::from(udp.sent.max(1)),
            udp.delivered,
            Took(udp.p50),
            Took(udp.max)
        );
        if tcp.lost > 0 {
            text.push_str(&format!(
                "TCP delivered {} of {} before the experiment stopped waiting; the rest were still being resent. ",
                tcp.delivered, tcp.sent
            ));
        } else if tcp.max > udp.max {
            text.push_str(&format!(
                "TCP delivered all {} in order through the same loss ({} resends), but its p99 was {} and its \
                 slowest message took {}, against {} for UDP: a lost segment holds up the stream until its resend \
                 arrives, and every message behind it waits too (head-of-line blocking). ",
                tcp.delivered,
                tcp.retransmissions.map_or("?".to_owned(), |n| n.to_string()),
                Took(tcp.p99),
                Took(tcp.max),
                Took(udp.max)
            ));
            if tcp.late > 0 {
                text.push_str(&format!(
                    "{} of them were held up more than 100 ms beyond the path's delay: when nothing else reveals \
                     a loss, Linux waits for its retransmission timeout, at least 200 ms plus the round trip. ",
                    tcp.late
                ));
            }
        } else {
            text.push_str(&format!(
                "TCP delivered all {} in order, and this time its slowest message ({}) was no slower than UDP's; \
                 raise --loss or --messages. ",
                tcp.delivered,
                Took(tcp.max)
            ));
        }
        text.push_str(
            "So: use TCP when every byte must arrive, in order (files, web pages, chat); use UDP when a late message \
             is worthless and the next one replaces it (voice, games, live measurements), or when you build your \
             own recovery on top (DNS retries, QUIC, socketeer transfer).",
        );
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_number_and_summaries_count_losses_and_disorder() {
        assert_eq!(seq_of(&message(7, 100)), Some(7));
        assert_eq!(message(1, 3).len(), 8);
        let start = Instant::now();
        let sent = vec![start, start, start, start];
        let ms = |n| start + Duration::from_millis(n);
        let got = [(0, ms(1)), (2, ms(2)), (1, ms(150)), (2, ms(3))];
        let run = summarise("udp", &sent, &got, Duration::ZERO, None);
        assert_eq!((run.delivered, run.lost, run.out_of_order, run.late), (3, 1, 1, 1));
        assert_eq!(run.latencies_ms[3], None);
        assert_eq!(run.max, Duration::from_millis(150));
        let delayed = summarise("udp", &sent, &got, Duration::from_millis(100), None);
        assert_eq!(delayed.late, 0, "150 ms is not held up behind a 100 ms path");
    }
}
