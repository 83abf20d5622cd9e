//! Impairment for any IP traffic (`impair --tun`): netem in user space.
//!
//! Two places, each a network namespace or the host, are joined by a pair
//! of TUN devices, one in each, with a point-to-point address on each
//! (198.18.0.1 and 198.18.0.2 by default, RFC 2544's benchmarking range,
//! and the same in IPv6 under 2001:2::/48). Whatever one end sends to the
//! other's address leaves through its TUN device, where the relay reads it,
//! passes it through the [`Link`](crate::impair::Link) of its direction
//! (the same seeded model as the UDP proxy: loss, bursts, delay, jitter,
//! duplication, reordering, corruption, rate), and writes it into the other
//! end's device, where the kernel receives it. So real TCP, ICMP, DNS, any
//! program, crosses an impaired path, and nothing needs `sch_netem`.
//!
//! ```text
//!   first end (ns a)                                    second end (ns b)
//!   198.18.0.1  --> tun --> [ up: loss, delay... ] --> tun -->  198.18.0.2
//!               <-- tun <-- [ down: ...           ] <-- tun <--
//! ```
//!
//! [`ImpairedPath`] is the library's handle: it makes (or joins) the
//! namespaces, the devices and the addresses, runs the relay on a thread of
//! its own, lets any thread [`enter`](End::enter) either end, and tears it
//! all down when dropped (namespaces it made are deleted; the devices vanish
//! with the relay's descriptors). Root is needed.

mod device;
mod relay;

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};

use serde::Serialize;

pub use device::TunDevice;

use super::link::LinkCounters;
use super::model::ImpairmentConfig;
use super::running::{ControlSender, Links, Running};
use crate::netns::{self, Current, Namespace, NetnsError};
use crate::poll::DriverDied;

/// The addresses of the two ends when none are given: RFC 2544's
/// benchmarking range, never routed on the Internet.
pub const DEFAULT_ADDRESSES: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2)];

/// The MTU of both devices when none is given: Ethernet's.
pub const DEFAULT_MTU: u16 = 1500;

/// The smallest MTU IPv6 allows; IPv4 would take less, but a path that
/// carries both must carry this.
pub const MIN_MTU: u16 = 1280;

/// Where one end of the path is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndAt {
    /// The namespace of the thread that starts the path (the host, usually).
    Host,
    /// The namespace of this name: joined if it exists (and left there
    /// afterwards), made otherwise (and deleted afterwards).
    Namespace(String),
    /// A namespace of the path's own, made and deleted with it.
    Private,
}

/// What to build and how to impair it.
#[derive(Clone, Debug, PartialEq)]
pub struct TunConfig {
    /// The first end, then the second.
    pub ends: [EndAt; 2],
    /// Their IPv4 addresses, in the same order; the IPv6 ones follow from these.
    pub addresses: [Ipv4Addr; 2],
    /// The devices' MTU.
    pub mtu: u16,
    /// From the first end to the second.
    pub up: ImpairmentConfig,
    /// From the second end to the first.
    pub down: ImpairmentConfig,
    /// Seed of both directions' decisions.
    pub seed: u64,
    /// Relay from a real-time thread (see [`crate::poll::make_realtime`]).
    pub realtime: bool,
}

impl TunConfig {
    /// Two namespaces of the path's own, with the default addresses, impaired
    /// by `up` one way and `down` the other: what an experiment needs.
    pub fn private(up: ImpairmentConfig, down: ImpairmentConfig, seed: u64) -> Self {
        TunConfig {
            ends: [EndAt::Private, EndAt::Private],
            addresses: DEFAULT_ADDRESSES,
            mtu: DEFAULT_MTU,
            up,
            down,
            seed,
            realtime: false,
        }
    }
}

/// Why a path could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    /// Not root: namespaces and TUN devices need privileges.
    #[error("impair --tun needs root: it makes network namespaces and TUN devices (run it with sudo)")]
    NeedsRoot,
    /// Both ends would be one place.
    #[error("both ends are {0}; a path joins two different places")]
    SameEnd(String),
    /// Addresses that cannot be the two ends' own.
    #[error("{0}")]
    BadAddresses(String),
    /// An end's address is in use where the end is.
    #[error(
        "{address} is already an address of {place} (another impair --tun?); choose others with --addresses"
    )]
    AddressTaken {
        /// The address.
        address: IpAddr,
        /// The end's place.
        place: String,
    },
    /// A namespace could not be made, joined or configured.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A device or the relay could not be made.
    #[error("{context}: {}", crate::net::describe(.error))]
    Io {
        /// What was being done.
        context: String,
        /// What the operating system said.
        error: io::Error,
    },
}

impl TunError {
    fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> TunError {
        let context = context.into();
        move |error| TunError::Io { context, error }
    }
}

/// Counters of a running path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TunStats {
    /// First end to second.
    pub up: LinkCounters,
    /// Second end to first.
    pub down: LinkCounters,
    /// Reads from a device that failed.
    pub read_errors: u64,
    /// Packets a device refused (counted as unsendable in their link too).
    pub write_errors: u64,
}

impl fmt::Display for TunStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "up: {}", self.up)?;
        writeln!(f, "down: {}", self.down)?;
        write!(f, "{} read errors, {} packets refused by a device", self.read_errors, self.write_errors)
    }
}

/// Where an end is, kept open so that threads can go there.
#[derive(Debug)]
enum Place {
    Host(Current),
    Namespace(Namespace),
}

/// One end of the path.
#[derive(Debug)]
pub struct End {
    place: Place,
    interface: String,
    v4: Ipv4Addr,
    v6: Option<Ipv6Addr>,
}

impl End {
    /// The namespace's name, or `host`.
    pub fn name(&self) -> &str {
        match &self.place {
            Place::Host(_) => "host",
            Place::Namespace(ns) => ns.name(),
        }
    }

    /// The namespace's name, or `None` for the host.
    pub fn namespace(&self) -> Option<&str> {
        match &self.place {
            Place::Host(_) => None,
            Place::Namespace(ns) => Some(ns.name()),
        }
    }

    /// The TUN device's name there.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Its IPv4 address.
    pub fn v4(&self) -> Ipv4Addr {
        self.v4
    }

    /// Its IPv6 address, unless IPv6 is off there.
    pub fn v6(&self) -> Option<Ipv6Addr> {
        self.v6
    }

    /// Moves the calling thread (only it) into this end's namespace: the
    /// sockets it makes from now on are this end's.
    ///
    /// # Errors
    /// When the namespace cannot be entered.
    pub fn enter(&self) -> Result<(), NetnsError> {
        match &self.place {
            Place::Host(home) => home.enter(),
            Place::Namespace(ns) => ns.enter(),
        }
    }

    /// Runs `make` (a socket's creation, say) at this end and returns what
    /// it made: a socket belongs to the namespace it was made in, whichever
    /// thread uses it later.
    ///
    /// # Errors
    /// What `make` returned, or why the end could not be entered.
    pub fn open<T: Send>(&self, make: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
        self.run(make).map_err(io::Error::other)?
    }

    /// Runs `work` on a thread of its own at this end and returns its result.
    ///
    /// # Errors
    /// When the end cannot be entered or the thread panicked.
    pub fn run<T: Send>(&self, work: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| self.enter().map(|()| work()))
                .join()
                .map_err(|_| NetnsError::Panicked(self.name().to_owned()))?
        })
    }
}

/// Both ends of an impaired path, and the relay between them. Dropping it
/// stops the relay and removes what it made.
#[derive(Debug)]
pub struct ImpairedPath {
    running: Option<Running<TunStats>>,
    ends: [End; 2],
}

impl ImpairedPath {
    /// Makes the ends (namespaces, devices, addresses) and starts relaying.
    ///
    /// # Errors
    /// Without root, with ends or addresses that cannot be, and when a
    /// namespace, a device or the relay thread cannot be made.
    pub fn start(config: TunConfig) -> Result<ImpairedPath, TunError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(TunError::NeedsRoot);
        }
        check_addresses(config.addresses)?;
        if config.ends[0] == config.ends[1] && config.ends[0] != EndAt::Private {
            let place = match &config.ends[0] {
                EndAt::Namespace(name) => format!("namespace {name}"),
                _ => "the host".to_owned(),
            };
            return Err(TunError::SameEnd(place));
        }
        let [first, second] = &config.ends;
        let [a, b] = config.addresses;
        let places = [place(first, "a")?, place(second, "b")?];
        let (device_a, v6_a) = in_place(&places[0], || make_end(a, b, config.mtu))??;
        let (device_b, v6_b) = in_place(&places[1], || make_end(b, a, config.mtu))??;
        let [place_a, place_b] = places;
        let ends = [
            End { place: place_a, interface: device_a.name().to_owned(), v4: a, v6: v6_a },
            End { place: place_b, interface: device_b.name().to_owned(), v4: b, v6: v6_b },
        ];
        let links = Links::new(config.up, config.down, config.seed);
        let relay = relay::Relay::new([device_a, device_b], links, config.realtime);
        let running = Running::spawn("impair-tun", move |waker, inbox| relay.run(waker, inbox))
            .map_err(TunError::io("starting the relay thread"))?;
        Ok(ImpairedPath { running: Some(running), ends })
    }

    /// The first end, then the second.
    pub fn ends(&self) -> &[End; 2] {
        &self.ends
    }

    /// A handle for changing settings and reading counters.
    pub fn control(&self) -> Option<ControlSender<TunStats>> {
        self.running.as_ref().map(Running::control)
    }

    /// Completes when the relay has stopped on its own (it died), saying why. Cancel-safe.
    pub async fn died(&mut self) -> DriverDied {
        match &mut self.running {
            Some(running) => running.died().await,
            None => std::future::pending().await,
        }
    }

    /// Stops the relay and returns its counters; the ends are removed as the
    /// path is dropped.
    ///
    /// # Errors
    /// Why the relay died, if it did.
    pub fn stop(mut self) -> Result<TunStats, DriverDied> {
        match self.running.take() {
            Some(running) => running.stop(),
            None => Ok(TunStats::default()),
        }
    }
}

impl Drop for ImpairedPath {
    fn drop(&mut self) {
        // The devices go with the relay's descriptors; the namespaces after them.
        if let Some(running) = self.running.take() {
            let _ = running.stop();
        }
    }
}

/// The place an end names.
fn place(at: &EndAt, tag: &str) -> Result<Place, TunError> {
    Ok(match at {
        EndAt::Host => Place::Host(Current::here()?),
        EndAt::Namespace(name) => Place::Namespace(Namespace::create_or_join(name)?),
        EndAt::Private => Place::Namespace(Namespace::private(tag)?),
    })
}

/// Runs `work` where `place` is: here for the host, on a thread of its own
/// inside a namespace.
fn in_place<T: Send>(place: &Place, work: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
    match place {
        Place::Host(_) => Ok(work()),
        Place::Namespace(ns) => ns.run(work),
    }
}

/// In the calling thread's namespace: checks that `local` is free, makes a
/// TUN device, gives it `local` with `peer` at the other side (and their
/// IPv6 twins, when IPv6 is on there), and brings it up.
fn make_end(local: Ipv4Addr, peer: Ipv4Addr, mtu: u16) -> Result<(TunDevice, Option<Ipv6Addr>), TunError> {
    let place = || {
        std::fs::read_link("/proc/thread-self/ns/net")
            .map_or("this host".to_owned(), |p| p.display().to_string())
    };
    // Asked of the interfaces, not of bind(): in a namespace whose loopback
    // is down the kernel lets a socket bind any address.
    let taken = nix::ifaddrs::getifaddrs()
        .map_err(|e| TunError::Io { context: "listing the addresses here".to_owned(), error: e.into() })?
        .filter_map(|interface| interface.address)
        .any(|address| address.as_sockaddr_in().is_some_and(|v4| v4.ip() == local));
    if taken {
        return Err(TunError::AddressTaken { address: local.into(), place: place() });
    }
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!("skt{}t{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let device = TunDevice::create(&name).map_err(TunError::io(format!("making TUN device {name}")))?;
    let dev = device.name().to_owned();
    // No link-local address: the kernel would send router solicitations
    // and the like through the path, noise in its counters.
    let _ = netns::ip(&["link", "set", "dev", &dev, "addrgenmode", "none"]);
    netns::ip(&["link", "set", "dev", &dev, "mtu", &mtu.to_string(), "up"])?;
    netns::ip(&["addr", "add", &local.to_string(), "peer", &peer.to_string(), "dev", &dev])?;
    let (local6, peer6) = (twin(local), twin(peer));
    // IPv6 may be off in this namespace (disable_ipv6): then the path carries IPv4 only.
    let v6 = netns::ip(&[
        "-6",
        "addr",
        "add",
        &local6.to_string(),
        "peer",
        &peer6.to_string(),
        "dev",
        &dev,
        "nodad",
    ])
    .ok()
    .map(|()| local6);
    Ok((device, v6))
}

/// The IPv6 address of an end: 2001:2::/48 (RFC 5180's benchmarking
/// range) with the IPv4 address in its last 32 bits.
pub fn twin(v4: Ipv4Addr) -> Ipv6Addr {
    let [a, b, c, d] = v4.octets();
    Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]))
}

fn check_addresses([a, b]: [Ipv4Addr; 2]) -> Result<(), TunError> {
    if a == b {
        return Err(TunError::BadAddresses(format!("the two ends need two addresses, not {a} twice")));
    }
    for address in [a, b] {
        if address.is_loopback()
            || address.is_multicast()
            || address.is_unspecified()
            || address.is_broadcast()
        {
            return Err(TunError::BadAddresses(format!(
                "{address} cannot be an end's address (loopback, multicast, broadcast and 0.0.0.0 are not); \
                 the default is 198.18.0.1,198.18.0.2"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_twins_carry_the_ipv4_address() {
        assert_eq!(twin(DEFAULT_ADDRESSES[0]), "2001:2::c612:1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(twin(Ipv4Addr::new(198, 18, 77, 2)), "2001:2::c612:4d02".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn the_ends_need_two_ordinary_addresses() {
        assert!(check_addresses(DEFAULT_ADDRESSES).is_ok());
        let one = Ipv4Addr::new(10, 0, 0, 1);
        assert!(check_addresses([one, one]).unwrap_err().to_string().contains("twice"));
        assert!(check_addresses([one, Ipv4Addr::LOCALHOST]).is_err());
        assert!(check_addresses([Ipv4Addr::new(224, 0, 0, 1), one]).is_err());
    }
}
