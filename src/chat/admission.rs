//! Who the chat server lets in: the overall cap (`--max-clients`), and per
//! source address (IPv6 addresses grouped by their /64, which one
//! subscriber usually holds whole) a cap on connections (`--max-per-ip`),
//! a smaller cap on connections that have not sent a whole line yet (so
//! that slow-talking connections cannot hold every slot: slowloris), and a
//! rate of new connections. Refusals are told to the client in one line,
//! and logged in summary.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::flood::{RateLimit, TokenBucket};
use crate::server::{Gatekeeper, RefusalLog, Refused};

/// New connections one address may open: this many a second, after a burst.
pub const CONNECT_RATE: RateLimit = RateLimit { per_sec: 10.0, burst: 20 };

/// Above this many addresses tracked, the ones with nothing open and a full
/// bucket are forgotten.
const FORGET_ABOVE: usize = 1024;

/// The admission limits of a chat server.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Clients at once.
    pub max_clients: usize,
    /// Clients from one address at once (`None`: no per-address limits at
    /// all, for benchmarks); half of them (at least one) may be waiting to
    /// send their first line.
    pub max_per_address: Option<usize>,
}

/// Why a connection was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    Full { max: usize },
    PerAddress { max: usize },
    Silent { max: usize },
    TooOften,
}

impl Refusal {
    /// What the client is told.
    fn line(self) -> String {
        match self {
            Refusal::Full { max } => format!("! the server is full ({max} clients); try again later\n"),
            Refusal::PerAddress { max } => {
                format!("! too many connections from your address (at most {max}); close one and try again\n")
            }
            Refusal::Silent { max } => format!(
                "! too many connections from your address have not sent a line yet (at most {max}); \
                 try again later\n"
            ),
            Refusal::TooOften => format!(
                "! too many new connections from your address (at most {} a second); wait a moment and try again\n",
                CONNECT_RATE.per_sec
            ),
        }
    }

    /// What the log says.
    fn reason(self) -> &'static str {
        match self {
            Refusal::Full { .. } => "all client slots are in use (raise --max-clients)",
            Refusal::PerAddress { .. } => "its address holds the most connections allowed (--max-per-ip)",
            Refusal::Silent { .. } => "its address holds the most connections that have not sent a line yet",
            Refusal::TooOften => "its address opens connections too fast",
        }
    }
}

/// The chat server's [`Gatekeeper`].
#[derive(Debug)]
pub struct Gate {
    limits: Limits,
    permits: Arc<Semaphore>,
    addresses: Arc<Mutex<HashMap<IpAddr, Address>>>,
    log: RefusalLog,
}

/// What one address (or IPv6 /64) holds.
#[derive(Debug)]
struct Address {
    open: usize,
    /// Of those, connections that have not sent a whole line yet.
    silent: usize,
    connects: TokenBucket,
}

/// The key under which an address is counted: IPv4 addresses (and IPv4
/// clients of a dual-stack socket, `::ffff:a.b.c.d`) alone, IPv6 ones by /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

impl Gate {
    /// A gate with `limits`.
    pub fn new(limits: Limits) -> Gate {
        Gate {
            limits,
            permits: Arc::new(Semaphore::new(limits.max_clients)),
            addresses: Arc::new(Mutex::new(HashMap::new())),
            log: RefusalLog::new("chat"),
        }
    }

    fn try_admit(&self, peer: SocketAddr, now: Instant) -> Result<Ticket, Refusal> {
        let max = self.limits.max_clients;
        let permit = self.permits.clone().try_acquire_owned().map_err(|_| Refusal::Full { max })?;
        let addresses = self.addresses.clone();
        let Some(max) = self.limits.max_per_address else {
            return Ok(Ticket { _permit: permit, addresses, key: None, silent: false });
        };
        let key = address_key(peer.ip());
        let mut held = self.addresses.lock();
        if held.len() > FORGET_ABOVE {
            held.retain(|_, address| address.open > 0 || !address.connects.is_full(now));
        }
        let address = held.entry(key).or_insert_with(|| Address {
            open: 0,
            silent: 0,
            connects: TokenBucket::new(CONNECT_RATE, now),
        });
        if !address.connects.take(now) {
            return Err(Refusal::TooOften);
        }
        if address.open >= max {
            return Err(Refusal::PerAddress { max });
        }
        let max_silent = (max / 2).max(1);
        if address.silent >= max_silent {
            return Err(Refusal::Silent { max: max_silent });
        }
        address.open += 1;
        address.silent += 1;
        drop(held);
        Ok(Ticket { _permit: permit, addresses, key: Some(key), silent: true })
    }
}

impl Gatekeeper for Gate {
    type Ticket = Ticket;

    fn admit(&self, peer: SocketAddr) -> Result<Ticket, Refused> {
        self.try_admit(peer, Instant::now()).map_err(|refusal| {
            self.log.refused(peer, refusal.reason());
            Refused { line: Some(refusal.line()) }
        })
    }
}

/// A client's place: its share of the overall cap and of its address's.
#[derive(Debug)]
pub struct Ticket {
    _permit: OwnedSemaphorePermit,
    addresses: Arc<Mutex<HashMap<IpAddr, Address>>>,
    key: Option<IpAddr>,
    /// Still counted among its address's connections without a line.
    silent: bool,
}

impl Ticket {
    /// The client sent its first whole line: it no longer counts as silent.
    pub fn spoke(&mut self) {
        if std::mem::take(&mut self.silent)
            && let Some(key) = self.key
            && let Some(address) = self.addresses.lock().get_mut(&key)
        {
            address.silent -= 1;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        if let Some(address) = self.addresses.lock().get_mut(&key) {
            address.open -= 1;
            address.silent -= usize::from(self.silent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let key = |ip: &str| address_key(ip.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:127.0.0.1"), key("127.0.0.1"));
        assert_ne!(key("127.0.0.1"), key("127.0.0.2"));
    }

    #[test]
    fn an_address_gets_its_caps_and_its_rate() {
        let gate = Gate::new(Limits { max_clients: 100, max_per_address: Some(4) });
        let now = Instant::now();
        let mut first = gate.try_admit(peer("2001:db8::1"), now).unwrap();
        let _second = gate.try_admit(peer("2001:db8::2"), now).unwrap();
        // Two silent connections are the most (half of four) from one /64...
        assert_eq!(gate.try_admit(peer("2001:db8::3"), now).unwrap_err(), Refusal::Silent { max: 2 });
        // ...until one speaks.
        first.spoke();
        let mut third = gate.try_admit(peer("2001:db8::3"), now).unwrap();
        third.spoke();
        let mut fourth = gate.try_admit(peer("2001:db8::4"), now).unwrap();
        fourth.spoke();
        assert_eq!(gate.try_admit(peer("2001:db8::5"), now).unwrap_err(), Refusal::PerAddress { max: 4 });
        assert!(gate.try_admit(peer("2001:db8:0:1::1"), now).is_ok(), "another /64 is another address");
        drop(fourth);
        assert!(gate.try_admit(peer("2001:db8::5"), now).is_ok());
        // Connections opened and closed at once still spend the rate.
        let quick = peer("127.0.0.9");
        let opened = (0..100).filter(|_| gate.try_admit(quick, now).is_ok()).count();
        assert_eq!(opened, CONNECT_RATE.burst as usize);
        assert_eq!(gate.try_admit(quick, now).unwrap_err(), Refusal::TooOften);
        assert!(gate.try_admit(quick, now + std::time::Duration::from_millis(150)).is_ok());
    }

    #[test]
    fn without_per_address_limits_only_the_total_counts() {
        let gate = Gate::new(Limits { max_clients: 3, max_per_address: None });
        let now = Instant::now();
        let tickets: Vec<_> = (0..3).map(|_| gate.try_admit(peer("127.0.0.1"), now).unwrap()).collect();
        assert_eq!(gate.try_admit(peer("127.0.0.1"), now).unwrap_err(), Refusal::Full { max: 3 });
        drop(tickets);
        assert!(gate.try_admit(peer("127.0.0.1"), now).is_ok());
        assert!(Refusal::Full { max: 3 }.reason().contains("--max-clients"));
    }
}
