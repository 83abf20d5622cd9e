//! The proxy's clients, sans-IO: who is relayed (up to a cap), where each
//! one's datagrams go, and who has been quiet too long. The driver owns the
//! sockets (one upstream socket per client, the `S` here); this table owns
//! the decisions, so they are tested without any.
//!
//! Where a client's datagrams go follows the server, as a NAT would: a
//! reply from any port of the server's host is relayed, and from then on
//! the client's datagrams go to that port. TFTP needs it (the server
//! answers a request from a new port, its transfer id, and expects the rest
//! there); a server that answers from its own port changes nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A client is known by where its datagrams come from.
pub type ClientAddr = SocketAddr;

/// One client being relayed.
#[derive(Debug)]
pub struct Client<S> {
    /// Its upstream socket (or whatever the driver keeps for it).
    pub socket: S,
    /// Where its datagrams go: the server's address, then the port the
    /// server last answered from.
    pub upstream: SocketAddr,
    /// A number for the driver's poller, unique among clients.
    pub token: u64,
    last_seen: Instant,
}

/// What became of a datagram from a client not relayed yet.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// It is relayed from now on.
    Admitted,
    /// Too many clients: the datagram is dropped.
    Full,
}

/// Every client being relayed.
#[derive(Debug)]
pub struct ClientTable<S> {
    clients: HashMap<ClientAddr, Client<S>>,
    by_token: HashMap<u64, ClientAddr>,
    next_token: u64,
    server: SocketAddr,
    max_clients: usize,
    idle: Duration,
}

impl<S> ClientTable<S> {
    /// A table for clients of `server`, at most `max_clients` at once, each
    /// forgotten after `idle` without traffic either way. Tokens start at
    /// `first_token` (the driver keeps lower ones for its own descriptors).
    pub fn new(server: SocketAddr, max_clients: usize, idle: Duration, first_token: u64) -> Self {
        ClientTable {
            clients: HashMap::new(),
            by_token: HashMap::new(),
            next_token: first_token,
            server,
            max_clients,
            idle,
        }
    }

    /// Clients relayed now.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// True when no client is relayed.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The client `addr` sent at `now`: its entry, if it is relayed.
    pub fn touch(&mut self, addr: ClientAddr, now: Instant) -> Option<&mut Client<S>> {
        let client = self.clients.get_mut(&addr)?;
        client.last_seen = now;
        Some(client)
    }

    /// The client `addr`, if it is relayed.
    pub fn get(&self, addr: ClientAddr) -> Option<&Client<S>> {
        self.clients.get(&addr)
    }

    /// The client `addr` is new: relays it from now on with `open()`'s
    /// socket, if there is room.
    ///
    /// # Errors
    /// What `open` returned.
    pub fn admit<E>(
        &mut self,
        addr: ClientAddr,
        now: Instant,
        open: impl FnOnce(u64) -> Result<S, E>,
    ) -> Result<Admission, E> {
        if self.clients.contains_key(&addr) {
            return Ok(Admission::Admitted);
        }
        if self.clients.len() >= self.max_clients {
            return Ok(Admission::Full);
        }
        let token = self.next_token;
        let socket = open(token)?;
        self.next_token += 1;
        self.by_token.insert(token, addr);
        self.clients.insert(addr, Client { socket, upstream: self.server, token, last_seen: now });
        Ok(Admission::Admitted)
    }

    /// The client whose upstream socket is `token`.
    pub fn by_token(&mut self, token: u64) -> Option<(ClientAddr, &mut Client<S>)> {
        let addr = *self.by_token.get(&token)?;
        self.clients.get_mut(&addr).map(|c| (addr, c))
    }

    /// A datagram came back for `addr` from `from` at `now`: true when it is
    /// the server's (any port of its host) and goes to the client, whose
    /// datagrams then go where it came from.
    pub fn reply(&mut self, addr: ClientAddr, from: SocketAddr, now: Instant) -> bool {
        let Some(client) = self.clients.get_mut(&addr) else { return false };
        if from.ip() != self.server.ip() {
            return false;
        }
        client.upstream = from;
        client.last_seen = now;
        true
    }

    /// Forgets the clients idle since `now - idle`, returning them (the
    /// driver closes their sockets).
    pub fn expire(&mut self, now: Instant) -> Vec<(ClientAddr, Client<S>)> {
        let idle = self.idle;
        let gone: Vec<ClientAddr> = self
            .clients
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.last_seen) >= idle)
            .map(|(addr, _)| *addr)
            .collect();
        gone.into_iter()
            .filter_map(|addr| {
                let client = self.clients.remove(&addr)?;
                self.by_token.remove(&client.token);
                Some((addr, client))
            })
            .collect()
    }

    /// When the next client will have been idle long enough to be forgotten.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.clients.values().map(|c| c.last_seen).min().and_then(|seen| seen.checked_add(self.idle))
    }

    /// Every client, for the driver's last look.
    pub fn iter(&self) -> impl Iterator<Item = (&ClientAddr, &Client<S>)> {
        self.clients.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn table() -> ClientTable<()> {
        ClientTable::new(addr("10.0.0.9:69"), 2, Duration::from_secs(60), 10)
    }

    #[test]
    fn clients_are_admitted_up_to_the_cap() {
        let now = Instant::now();
        let mut t = table();
        let open = |_| Ok::<_, ()>(());
        assert_eq!(t.admit(addr("127.0.0.1:1"), now, open), Ok(Admission::Admitted));
        assert_eq!(t.admit(addr("127.0.0.1:2"), now, open), Ok(Admission::Admitted));
        assert_eq!(t.admit(addr("127.0.0.1:3"), now, open), Ok(Admission::Full));
        assert_eq!(t.len(), 2);
        let (first, second) = (
            t.touch(addr("127.0.0.1:1"), now).unwrap().token,
            t.touch(addr("127.0.0.1:2"), now).unwrap().token,
        );
        assert_ne!(first, second);
        assert!(first >= 10 && second >= 10, "tokens below 10 are the driver's");
        assert_eq!(t.by_token(second).map(|(a, _)| a), Some(addr("127.0.0.1:2")));
    }

    #[test]
    fn replies_from_any_port_of_the_server_are_followed_as_a_nat_would() {
        let now = Instant::now();
        let mut t = table();
        let client = addr("127.0.0.1:5000");
        t.admit(client, now, |_| Ok::<_, ()>(())).unwrap();
        assert_eq!(t.touch(client, now).unwrap().upstream, addr("10.0.0.9:69"));
        // TFTP: the server answers from its transfer id; the rest goes there.
        assert!(t.reply(client, addr("10.0.0.9:40001"), now));
        assert_eq!(t.touch(client, now).unwrap().upstream, addr("10.0.0.9:40001"));
        assert!(!t.reply(client, addr("10.0.0.8:69"), now), "another host is not the server");
        assert_eq!(t.touch(client, now).unwrap().upstream, addr("10.0.0.9:40001"));
    }

    #[test]
    fn idle_clients_are_forgotten_and_traffic_either_way_keeps_them() {
        let start = Instant::now();
        let mut t = table();
        let (a, b) = (addr("127.0.0.1:1"), addr("127.0.0.1:2"));
        t.admit(a, start, |_| Ok::<_, ()>(())).unwrap();
        t.admit(b, start, |_| Ok::<_, ()>(())).unwrap();
        assert_eq!(t.next_expiry(), Some(start + Duration::from_secs(60)));
        let later = start + Duration::from_secs(30);
        t.touch(a, later);
        assert!(t.reply(b, addr("10.0.0.9:69"), later + Duration::from_secs(10)));
        assert!(t.expire(start + Duration::from_secs(89)).is_empty());
        let gone: Vec<SocketAddr> =
            t.expire(start + Duration::from_secs(90)).into_iter().map(|(a, _)| a).collect();
        assert_eq!(gone, [a]);
        assert_eq!(t.len(), 1);
    }
}
