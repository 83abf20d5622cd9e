//! Two private network namespaces joined by a veth pair: a "server" host and
//! a "client" host with real (non-loopback) addresses, made with `ip` and
//! removed when dropped ([`Namespace`]). Nothing in them can reach the machine's own
//! network: they have no other interface and no route out.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use super::{LabError, Reach};
use crate::netns::{Namespace, ip};

/// The server's address on the veth pair. 198.18.0.0/15 is set aside for
/// network tests (RFC 2544) and never routed; here it exists only inside the
/// two namespaces.
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PREFIX: u8 = 30;

/// The two namespaces; dropping them deletes both (and the veth pair with them).
pub struct Hosts {
    server: Namespace,
    client: Namespace,
}

impl Hosts {
    /// Makes the two namespaces and the link between them.
    ///
    /// # Errors
    /// When `ip` is missing or refuses (not root).
    pub fn create() -> Result<Hosts, LabError> {
        let id = std::process::id();
        let hosts = Hosts { server: Namespace::private("srv")?, client: Namespace::private("cli")? };
        let (veth_server, veth_client) = (format!("skl{id}s"), format!("skl{id}c"));
        let (server_cidr, client_cidr) =
            (format!("{SERVER_ADDR}/{PREFIX}"), format!("{CLIENT_ADDR}/{PREFIX}"));
        ip(&[
            "link",
            "add",
            &veth_server,
            "netns",
            hosts.server.name(),
            "type",
            "veth",
            "peer",
            "name",
            &veth_client,
            "netns",
            hosts.client.name(),
        ])?;
        hosts.server.ip(&["addr", "add", &server_cidr, "dev", &veth_server])?;
        hosts.client.ip(&["addr", "add", &client_cidr, "dev", &veth_client])?;
        hosts.server.ip(&["link", "set", &veth_server, "up"])?;
        hosts.client.ip(&["link", "set", &veth_client, "up"])?;
        Ok(hosts)
    }

    /// The two namespaces' names.
    pub fn names(&self) -> Vec<String> {
        vec![self.server.name().to_owned(), self.client.name().to_owned()]
    }

    /// In the server namespace: listeners on 127.0.0.1, 0.0.0.0 and the
    /// server's address. Then, from the client namespace, a connect to the
    /// server's address on each listener's port.
    ///
    /// # Errors
    /// When the namespaces cannot be entered or the sockets made.
    pub fn reach_from_client(&self) -> Result<Vec<(String, Reach)>, LabError> {
        // setns changes only the calling thread's namespace: a thread of its own
        // does the work and ends, leaving every other thread where it was.
        std::thread::scope(|scope| {
            let work = scope.spawn(|| -> Result<Vec<(String, Reach)>, LabError> {
                self.server.enter()?;
                let binds = [Ipv4Addr::LOCALHOST, Ipv4Addr::UNSPECIFIED, SERVER_ADDR];
                let listeners = binds
                    .iter()
                    .map(|&ip| listen(SocketAddr::from((ip, 0))).map(|l| (ip, l)))
                    .collect::<Result<Vec<_>, _>>()?;
                self.client.enter()?;
                let mut out = Vec::new();
                for (ip, listener) in &listeners {
                    let port =
                        listener.local_addr().map_err(LabError::io("reading a listener's address"))?.port();
                    let target = SocketAddr::from((SERVER_ADDR, port));
                    let reach = match TcpStream::connect_timeout(&target, Duration::from_secs(2)) {
                        Ok(_) => Reach::Connected,
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Reach::Refused,
                        Err(e) => Reach::Failed { error: crate::net::strip_os_error(&e.to_string()) },
                    };
                    out.push((ip.to_string(), reach));
                }
                Ok(out)
            });
            work.join().map_err(|_| LabError::Panicked { name: "netns".to_owned() })?
        })
    }
}

fn listen(addr: SocketAddr) -> Result<TcpListener, LabError> {
    let make = || -> std::io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.bind(&addr.into())?;
        socket.listen(16)?;
        Ok(socket.into())
    };
    make().map_err(LabError::io(format!("listening on {addr}")))
}
