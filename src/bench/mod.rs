//! Load generators: they open many connections, drive a server as fast as it
//! answers for a fixed time, and report throughput and latency percentiles:
//! [`echo`] (request/response), [`chat`] (fan-out), [`impair`] (the proxy).

pub mod chat;
pub mod echo;
pub mod impair;
mod impair_tun;
pub mod transfer;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::impair::{ImpairmentConfig, Proxy, ProxyConfig};

/// The seed of the next proxy a benchmark starts. Each proxy gets its own,
/// so repeated rounds see different loss patterns: with one seed for all,
/// every round of a 30%-loss transfer lost the same first HELLOs and paid the
/// same 0.3 s of handshake backoff, and the median measured that one pattern.
/// Counting from 1 keeps a whole benchmark run repeatable.
static NEXT_SEED: AtomicU64 = AtomicU64::new(1);

/// Runs an impairment proxy (`up`, `down`) in front of `upstream` for the
/// duration of `body`, which gets the proxy's address.
pub(crate) fn with_proxy<T>(
    upstream: SocketAddr,
    (up, down): (ImpairmentConfig, ImpairmentConfig),
    realtime: bool,
    body: impl FnOnce(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let proxy = Proxy::new(
        UdpSocket::bind("127.0.0.1:0")?,
        ProxyConfig {
            upstream,
            up,
            down,
            seed: NEXT_SEED.fetch_add(1, Ordering::Relaxed),
            max_datagram: crate::net::MAX_UDP_PAYLOAD,
            max_clients: 16,
            client_idle: Duration::from_secs(60),
            realtime,
        },
    )?;
    let addr = proxy.local_addr()?;
    let running = proxy.spawn()?;
    let result = body(addr);
    running.stop()?;
    result
}
