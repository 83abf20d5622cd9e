//! The lossy-UDP exercise, done right: a server that drops a seeded share of
//! datagrams on purpose and acknowledges the rest with `ACK: <payload>`, and
//! a client that sends messages one by one, waits for each acknowledgement
//! with a timeout, retries, and reports what got through.
//!
//! This is the seed of ARQ: a sender cannot tell a lost message from a lost
//! acknowledgement, so it retransmits, and an acknowledgement that arrives
//! after a retransmission cannot be timed (Karn's rule: such round trips are
//! not sampled).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::client::{self, ClientError};
use crate::impair::{Impairment, ImpairmentConfig};
use crate::net::{self, Bound, Endpoint, MAX_UDP_PAYLOAD, Target, UDP_RECV_BUFFER};
use crate::server::{Service, ServiceError, UdpAction, udp_loop};
use crate::shutdown::Shutdown;
use crate::stats::{RttSummary, as_opt_millis, millis};

/// The default port of `udp serve`.
pub const DEFAULT_PORT: u16 = 12345;

/// What the server puts before the payload it acknowledges.
pub const ACK_PREFIX: &[u8] = b"ACK: ";

/// The acknowledging server, on bound UDP sockets.
#[derive(Debug)]
pub struct AckServer {
    bound: Bound,
    impairment: ImpairmentConfig,
    seed: u64,
}

impl AckServer {
    /// A server on `bound`'s UDP sockets that drops datagrams as `impairment`
    /// decides, seeded with `seed`.
    pub fn new(bound: Bound, impairment: ImpairmentConfig, seed: u64) -> Self {
        AckServer { bound, impairment, seed }
    }
}

impl Service for AckServer {
    fn name(&self) -> &'static str {
        "udp"
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        self.bound.endpoints(self.name())
    }

    fn detail(&self) -> Option<String> {
        Some(format!("{}, seed {}", self.impairment.loss, self.seed))
    }

    fn run(self: Box<Self>, shutdown: Shutdown) -> BoxFuture<'static, Result<(), ServiceError>> {
        let AckServer { bound, impairment, seed } = *self;
        let loops = bound.udp.into_iter().zip(seed..).map(|(socket, seed)| {
            let mut model = Impairment::new(impairment, seed);
            udp_loop("udp", socket, shutdown.clone(), move |datagram, peer, reply| {
                acknowledge(&mut model, datagram, peer, reply)
            })
        });
        futures::future::join_all(loops).map(|_| Ok(())).boxed()
    }
}

fn acknowledge(model: &mut Impairment, datagram: &[u8], peer: SocketAddr, reply: &mut Vec<u8>) -> UdpAction {
    let lost = model.decide(datagram.len()).lost;
    let number = model.decided();
    if lost {
        info!(%peer, number, bytes = datagram.len(), "dropped datagram on purpose");
        return UdpAction::Ignore;
    }
    if ACK_PREFIX.len() + datagram.len() > MAX_UDP_PAYLOAD {
        warn!(%peer, number, bytes = datagram.len(), "datagram too large to acknowledge; ignored");
        return UdpAction::Ignore;
    }
    reply.extend_from_slice(ACK_PREFIX);
    reply.extend_from_slice(datagram);
    UdpAction::Reply
}

/// How hard the client tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendConfig {
    /// How long to wait for each acknowledgement.
    pub timeout: Duration,
    /// How many times to resend a message before giving it up as lost.
    pub retries: u32,
}

/// The client: one socket connected to an acknowledging server.
#[derive(Debug)]
pub struct AckClient {
    socket: UdpSocket,
    peer: SocketAddr,
    config: SendConfig,
    buf: Vec<u8>,
}

/// The outcome of one message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// The message's number, from 1.
    pub seq: u64,
    /// How many times it was sent.
    pub attempts: u32,
    /// Whether an acknowledgement came.
    pub acked: bool,
    /// The round trip, measured only when the first attempt was acknowledged
    /// (Karn's rule: after a resend, which send the ACK answers is unknown).
    #[serde(rename = "rtt_ms", serialize_with = "as_opt_millis")]
    pub rtt: Option<Duration>,
    /// Acknowledgements of earlier messages that arrived meanwhile.
    pub stray: u64,
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tries = if self.attempts == 1 { "try" } else { "tries" };
        let verdict = if self.acked { "acked" } else { "lost" };
        write!(f, "message {}: {verdict} after {} {tries}", self.seq, self.attempts)?;
        if let Some(rtt) = self.rtt {
            write!(f, ", rtt {:.3} ms", millis(rtt))?;
        }
        if self.stray > 0 {
            write!(f, " ({} replies acknowledged nothing waiting)", self.stray)?;
        }
        Ok(())
    }
}

impl AckClient {
    /// A client for the server at `target` (port [`DEFAULT_PORT`] when it names none).
    ///
    /// # Errors
    /// When the name does not resolve or no socket can be opened.
    pub async fn connect(target: &Target, config: SendConfig) -> Result<Self, ClientError> {
        let addrs = target.resolve(DEFAULT_PORT).await?;
        let socket = net::connect_udp(&addrs).await?;
        Ok(AckClient { socket, peer: addrs[0], config, buf: vec![0; UDP_RECV_BUFFER] })
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Sends message `seq` until it is acknowledged or the retries run out.
    ///
    /// # Errors
    /// [`ClientError::TooLarge`] when the acknowledgement could not fit in a
    /// datagram, and socket errors (a refusal means no server is listening).
    pub async fn deliver(&mut self, seq: u64, payload: &[u8]) -> Result<Delivery, ClientError> {
        if ACK_PREFIX.len() + payload.len() > MAX_UDP_PAYLOAD {
            return Err(ClientError::TooLarge {
                len: payload.len(),
                max: MAX_UDP_PAYLOAD - ACK_PREFIX.len(),
            });
        }
        let mut delivery = Delivery { seq, attempts: 0, acked: false, rtt: None, stray: 0 };
        while delivery.attempts <= self.config.retries {
            delivery.attempts += 1;
            let sent_at = Instant::now();
            self.socket.send(payload).await.map_err(|e| ClientError::io(self.peer, e))?;
            if self.await_ack(payload, sent_at + self.config.timeout, &mut delivery.stray).await? {
                delivery.acked = true;
                delivery.rtt = (delivery.attempts == 1).then(|| sent_at.elapsed());
                break;
            }
        }
        Ok(delivery)
    }

    /// Waits until `deadline` for `ACK: <payload>`, skipping other datagrams.
    async fn await_ack(
        &mut self,
        payload: &[u8],
        deadline: Instant,
        stray: &mut u64,
    ) -> Result<bool, ClientError> {
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let len = match client::recv(&self.socket, &mut self.buf, self.peer, remaining).await {
                Ok(len) => len,
                Err(ClientError::Timeout { .. }) => return Ok(false),
                Err(e) => return Err(e),
            };
            match self.buf[..len].strip_prefix(ACK_PREFIX) {
                Some(acked) if acked == payload => return Ok(true),
                _ => *stray += 1,
            }
        }
    }
}

/// Collects deliveries into a [`SendSummary`].
#[derive(Clone, Debug, Default)]
pub struct SendStats {
    totals: SendSummary,
    rtts: Vec<Duration>,
}

impl SendStats {
    /// Counts one message.
    pub fn add(&mut self, d: &Delivery) {
        let t = &mut self.totals;
        t.messages += 1;
        t.datagrams += u64::from(d.attempts);
        t.stray += d.stray;
        match (d.acked, d.attempts) {
            (false, _) => t.lost += 1,
            (true, 1) => t.first_try += 1,
            (true, _) => t.retried += 1,
        }
        self.rtts.extend(d.rtt);
    }

    /// The totals so far.
    pub fn summary(&self) -> SendSummary {
        SendSummary { rtt: RttSummary::of(&self.rtts), ..self.totals.clone() }
    }
}

/// Totals over a run of messages.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SendSummary {
    /// Messages handled.
    pub messages: u64,
    /// Datagrams sent, retransmissions included.
    pub datagrams: u64,
    /// Messages acknowledged on the first try.
    pub first_try: u64,
    /// Messages acknowledged after one or more resends.
    pub retried: u64,
    /// Messages never acknowledged.
    pub lost: u64,
    /// Acknowledgements that matched no waiting message.
    pub stray: u64,
    /// Round trips of first-try acknowledgements.
    #[serde(rename = "rtt_ms")]
    pub rtt: Option<RttSummary>,
}

impl fmt::Display for SendSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} messages in {} datagrams: {} acked on the first try, {} after retries, {} lost",
            self.messages, self.datagrams, self.first_try, self.retried, self.lost
        )?;
        if self.stray > 0 {
            write!(f, ", {} replies acknowledged nothing waiting", self.stray)?;
        }
        if let Some(rtt) = &self.rtt {
            write!(f, "\n{rtt}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::impair::Probability;

    fn model(loss: Probability) -> Impairment {
        Impairment::new(ImpairmentConfig::loss(loss), 1)
    }

    #[test]
    fn acknowledges_with_the_payload() {
        let mut reply = Vec::new();
        let peer = "127.0.0.1:9".parse().unwrap();
        assert_eq!(acknowledge(&mut model(Probability::ZERO), b"hi", peer, &mut reply), UdpAction::Reply);
        assert_eq!(reply, b"ACK: hi");
    }

    #[test]
    fn drops_what_the_model_drops() {
        let mut reply = Vec::new();
        let peer = "127.0.0.1:9".parse().unwrap();
        assert_eq!(acknowledge(&mut model(Probability::ONE), b"hi", peer, &mut reply), UdpAction::Ignore);
        assert!(reply.is_empty());
    }

    #[test]
    fn ignores_what_cannot_be_acknowledged() {
        let mut reply = Vec::new();
        let peer = "127.0.0.1:9".parse().unwrap();
        let huge = vec![b'x'; MAX_UDP_PAYLOAD];
        assert_eq!(acknowledge(&mut model(Probability::ZERO), &huge, peer, &mut reply), UdpAction::Ignore);
    }

    #[test]
    fn summary_sorts_messages_by_outcome() {
        let mut stats = SendStats::default();
        let ms = Duration::from_millis;
        stats.add(&Delivery { seq: 1, attempts: 1, acked: true, rtt: Some(ms(1)), stray: 0 });
        stats.add(&Delivery { seq: 2, attempts: 3, acked: true, rtt: None, stray: 1 });
        stats.add(&Delivery { seq: 3, attempts: 4, acked: false, rtt: None, stray: 0 });
        let s = stats.summary();
        assert_eq!((s.messages, s.datagrams, s.first_try, s.retried, s.lost, s.stray), (3, 8, 1, 1, 1, 1));
        assert_eq!(s.rtt.unwrap().max, ms(1));
    }
}
