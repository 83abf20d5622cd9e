//! Two private network namespaces joined by a veth pair: a "server" host and
//! a "client" host with real (non-loopback) addresses, made with `ip` and
//! removed when dropped. Nothing in them can reach the machine's own
//! network: they have no other interface and no route out.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};
use socket2::{Domain, Socket, Type};

use super::{LabError, Reach};

/// The server's address on the veth pair. 198.18.0.0/15 is set aside for
/// network tests (RFC 2544) and never routed; here it exists only inside the
/// two namespaces.
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PREFIX: u8 = 30;

/// The namespaces; dropping them deletes both (and the veth pair with them).
pub struct Hosts {
    server: String,
    client: String,
}

impl Hosts {
    /// Makes the two namespaces and the link between them.
    ///
    /// # Errors
    /// When `ip` is missing or refuses (not root).
    pub fn create() -> Result<Hosts, LabError> {
        let id = std::process::id();
        let hosts = Hosts { server: format!("skt-lab-{id}-srv"), client: format!("skt-lab-{id}-cli") };
        let (veth_server, veth_client) = (format!("skl{id}s"), format!("skl{id}c"));
        let server_cidr = format!("{SERVER_ADDR}/{PREFIX}");
        let client_cidr = format!("{CLIENT_ADDR}/{PREFIX}");
        let steps: [&[&str]; 8] = [
            &["netns", "add", &hosts.server],
            &["netns", "add", &hosts.client],
            &[
                "link",
                "add",
                &veth_server,
                "netns",
                &hosts.server,
                "type",
                "veth",
                "peer",
                "name",
                &veth_client,
                "netns",
                &hosts.client,
            ],
            &["-n", &hosts.server, "addr", "add", &server_cidr, "dev", &veth_server],
            &["-n", &hosts.client, "addr", "add", &client_cidr, "dev", &veth_client],
            &["-n", &hosts.server, "link", "set", "lo", "up"],
            &["-n", &hosts.server, "link", "set", &veth_server, "up"],
            &["-n", &hosts.client, "link", "set", &veth_client, "up"],
        ];
        for step in steps {
            ip(step)?;
        }
        Ok(hosts)
    }

    /// In the server namespace: listeners on 127.0.0.1, 0.0.0.0 and the
    /// server's address. Then, from the client namespace, a connect to the
    /// server's address on each listener's port.
    ///
    /// # Errors
    /// When the namespaces cannot be entered or the sockets made.
    pub fn reach_from_client(&self) -> Result<Vec<(String, Reach)>, LabError> {
        let (server, client) = (self.path(&self.server), self.path(&self.client));
        // setns changes only the calling thread's namespace: a thread of its own
        // does the work and ends, leaving every other thread where it was.
        let work = move || -> Result<Vec<(String, Reach)>, LabError> {
            enter(&server)?;
            let binds = [Ipv4Addr::LOCALHOST, Ipv4Addr::UNSPECIFIED, SERVER_ADDR];
            let listeners = binds
                .iter()
                .map(|&ip| listen(SocketAddr::from((ip, 0))).map(|l| (ip, l)))
                .collect::<Result<Vec<_>, _>>()?;
            enter(&client)?;
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
        };
        super::super::join("netns", super::super::spawn("netns", work)?)?
    }

    /// The two namespaces' names.
    pub fn names(&self) -> Vec<String> {
        vec![self.server.clone(), self.client.clone()]
    }

    fn path(&self, name: &str) -> String {
        format!("/run/netns/{name}")
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Deleting a namespace destroys its end of the veth pair, and with it the other end.
        let _ = ip(&["netns", "del", &self.server]);
        let _ = ip(&["netns", "del", &self.client]);
    }
}

fn ip(args: &[&str]) -> Result<(), LabError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| LabError::Spawn { program: "ip".to_owned(), error: e })?;
    if out.status.success() {
        return Ok(());
    }
    Err(LabError::Child {
        what: format!("ip {}", args.join(" ")),
        detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

fn enter(path: &str) -> Result<(), LabError> {
    let file = File::open(path).map_err(LabError::io(format!("opening {path}")))?;
    setns(&file, CloneFlags::CLONE_NEWNET)
        .map_err(|e| LabError::Io { context: format!("entering {path}"), error: e.into() })
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
