//! A hand-made transfer peer: datagrams built one by one, as a sender that
//! does not use socketeer (or an attacker) would send them.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use socketeer::transfer::Protocol;
use socketeer::transfer::packet::{Hello, Packet, Repr};

/// How many files process `pid` has open in `dir`, the directory itself
/// aside (a file without a name shows as `DIR/#INODE (deleted)`).
pub fn open_files_in(pid: u32, dir: &Path) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    let dir = dir.canonicalize().unwrap();
    let targets = fds.flatten().filter_map(|fd| std::fs::read_link(fd.path()).ok());
    targets.filter(|target| target.starts_with(&dir) && *target != dir).count()
}

/// Says HELLO naming `name` (answering the receiver's RETRY) and returns
/// the receiver's answer.
pub fn hello_reply(target: &str, name: &str) -> String {
    let mut peer = RawPeer::bind("127.0.0.1".parse().unwrap(), 7);
    format!("{:?}", peer.hello(target.parse().unwrap(), name, 8, 1024))
}

/// A receiver's answer to a HELLO.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// HELLO-ACK with this window and block.
    Accepted { window: u32, block: u16 },
    /// Anything else, as text.
    Other(String),
}

/// One session of a hand-made sender.
pub struct RawPeer {
    pub socket: UdpSocket,
    session: u32,
    size: Option<u64>,
    datagram: Vec<u8>,
}

impl RawPeer {
    /// A peer on `ip` (any port) for session `session`.
    pub fn bind(ip: IpAddr, session: u32) -> RawPeer {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        RawPeer { socket, session, size: Some(7), datagram: Vec::new() }
    }

    /// Announces `size` bytes in its HELLOs.
    pub fn set_size(&mut self, size: u64) {
        self.size = Some(size);
    }

    fn send(&mut self, target: SocketAddr, repr: &Repr<'_>) {
        repr.emit(self.session, &mut self.datagram);
        self.socket.send_to(&self.datagram, target).unwrap();
    }

    /// The next datagram for this session, parsed to text, or `None` after the read timeout.
    pub fn receive(&self) -> Option<String> {
        let mut reply = [0; 2048];
        loop {
            let n = self.socket.recv(&mut reply).ok()?;
            let Ok(packet) = Packet::new_checked(&reply[..n]) else { continue };
            if packet.session() == self.session {
                return Some(format!("{:?}", Repr::parse(&packet).ok()?));
            }
        }
    }

    /// Says HELLO asking for `window` blocks of `block` bytes, answering a
    /// RETRY with its token, and returns the answer.
    pub fn hello(&mut self, target: SocketAddr, name: &str, window: u32, block: u16) -> Answer {
        let mut token = Vec::new();
        loop {
            let hello = Hello {
                protocol: Protocol::SelectiveRepeat,
                seq_bits: 32,
                window,
                block,
                size: self.size,
                name,
                token: &token,
            };
            self.send(target, &Repr::Hello(hello));
            let mut reply = [0; 2048];
            let n = self.socket.recv(&mut reply).unwrap();
            let packet = Packet::new_checked(&reply[..n]).unwrap();
            match Repr::parse(&packet).unwrap() {
                Repr::Retry { token: given } if token.is_empty() => token = given.to_vec(),
                Repr::HelloAck { window, block, .. } => return Answer::Accepted { window, block },
                other => return Answer::Other(format!("{other:?}")),
            }
        }
    }

    /// Says HELLO once, without a token, and returns the answer.
    pub fn hello_once(&mut self, target: SocketAddr, name: &str) -> Option<String> {
        let hello = Hello {
            protocol: Protocol::SelectiveRepeat,
            seq_bits: 32,
            window: 8,
            block: 1024,
            size: None,
            name,
            token: &[],
        };
        self.send(target, &Repr::Hello(hello));
        self.receive()
    }

    /// Keeps the session alive without sending anything.
    pub fn ping(&mut self, target: SocketAddr) {
        self.send(target, &Repr::Ping);
    }

    /// Sends block `seq` (stamped `stamp`).
    pub fn data(&mut self, target: SocketAddr, seq: u32, stamp: u16, payload: &[u8]) {
        self.send(target, &Repr::Data { seq, stamp, payload });
    }
}
