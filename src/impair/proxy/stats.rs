//! The proxy's counters.

use std::fmt;

use serde::Serialize;

use crate::impair::link::LinkCounters;

/// Counters of a running proxy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProxyStats {
    /// Client to server.
    pub up: LinkCounters,
    /// Server to client.
    pub down: LinkCounters,
    /// Clients relayed now.
    pub clients: usize,
    /// Clients seen since the start.
    pub clients_total: u64,
    /// Datagrams dropped because too many clients were being relayed.
    pub clients_refused: u64,
    /// Datagrams dropped because they were larger than the maximum.
    pub oversize: u64,
    /// Datagrams dropped that came to a client's upstream socket from
    /// another host than the server.
    pub foreign: u64,
    /// ICMP errors from the server's side (a server that is down, say).
    pub unreachable: u64,
    /// Sends and receives that failed for another reason.
    pub socket_errors: u64,
}

impl fmt::Display for ProxyStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "up: {}", self.up)?;
        writeln!(f, "down: {}", self.down)?;
        write!(
            f,
            "clients: {} now, {} in all, {} refused; {} oversize datagrams dropped, {} from other hosts; \
             {} unreachable, {} socket errors",
            self.clients,
            self.clients_total,
            self.clients_refused,
            self.oversize,
            self.foreign,
            self.unreachable,
            self.socket_errors
        )
    }
}
