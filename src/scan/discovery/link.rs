//! Neighbour discovery on a directly attached Ethernet link, as nmap does
//! it with the privilege to: our own ARP requests for IPv4 and NDP
//! neighbour solicitations for IPv6. A host on the link must answer these
//! to receive anything at all, firewall or not, so the answer is exact
//! both ways: an address that answers is there, one that does not is not
//! (it would not get our IP packets either). And it is quick: a link
//! answers within milliseconds, where a TCP ping to an absent address waits
//! for its whole timeout.
//!
//! An address is on a link when it is in the prefix of an address of one
//! of this machine's up Ethernet interfaces (or, IPv6 link-local, has that
//! interface as its zone). ARP goes out on a packet socket bound to the
//! interface, NDP on a raw ICMPv6 socket to the address's solicited-node
//! multicast group; both need CAP_NET_RAW. Without it, or off the link,
//! [`LinkProbe`] leaves the address to the pings of the parent module.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use etherparse::{ArpEthIpv4Packet, ArpOperation, ArpPacketSlice, EtherType, Ethernet2Header};
use etherparse::{Icmpv6Header, Icmpv6Slice, Icmpv6Type};
use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;
use nix::sys::socket::{LinkAddr, SockaddrStorage};
use socket2::{Domain, Protocol, Socket, Type};

/// How many times an address that has not answered is asked.
const TRIES: u32 = 3;
/// The longest the asking takes: a link answers within milliseconds, and
/// the wait is what an absent address costs. `--timeout` shortens it.
const LINK_WAIT: Duration = Duration::from_millis(600);
/// ARPHRD_ETHER: an interface with 6-byte MAC addresses (veth, bridges, Wi-Fi too).
const ETHERNET: u16 = 1;
/// NDP's source link-layer address option, and its length in units of 8 bytes.
const SOURCE_LINK_ADDRESS: [u8; 2] = [1, 1];

/// An Ethernet interface of this machine that is up and does ARP.
struct Interface {
    link: LinkAddr,
    mac: [u8; 6],
    /// Its IPv4 addresses, each with its netmask.
    v4: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// Its IPv6 addresses, each with its netmask.
    v6: Vec<(Ipv6Addr, Ipv6Addr)>,
}

impl Interface {
    fn index(&self) -> u32 {
        self.link.ifindex() as u32
    }
}

/// The interfaces this machine can ask neighbours on, by name.
fn interfaces() -> Vec<Interface> {
    let Ok(entries) = getifaddrs() else { return Vec::new() };
    let mut found: HashMap<String, Interface> = HashMap::new();
    let mut addresses: Vec<(String, IpAddr, IpAddr)> = Vec::new();
    for entry in entries {
        let wanted = entry.flags.contains(InterfaceFlags::IFF_UP)
            && !entry.flags.intersects(InterfaceFlags::IFF_LOOPBACK | InterfaceFlags::IFF_NOARP);
        let Some(address) = entry.address.filter(|_| wanted) else { continue };
        if let Some(link) = address.as_link_addr() {
            if let (ETHERNET, Some(mac)) = (link.hatype(), link.addr()) {
                let interface = Interface { link: *link, mac, v4: Vec::new(), v6: Vec::new() };
                found.insert(entry.interface_name, interface);
            }
        } else if let (Some(ip), Some(mask)) = (ip_of(&address), entry.netmask.as_ref().and_then(ip_of)) {
            addresses.push((entry.interface_name, ip, mask));
        }
    }
    for (name, ip, mask) in addresses {
        match (found.get_mut(&name), ip, mask) {
            (Some(interface), IpAddr::V4(ip), IpAddr::V4(mask)) => interface.v4.push((ip, mask)),
            (Some(interface), IpAddr::V6(ip), IpAddr::V6(mask)) => interface.v6.push((ip, mask)),
            _ => {}
        }
    }
    found.into_values().collect()
}

fn ip_of(address: &SockaddrStorage) -> Option<IpAddr> {
    match (address.as_sockaddr_in(), address.as_sockaddr_in6()) {
        (Some(v4), _) => Some(v4.ip().into()),
        (_, Some(v6)) => Some(v6.ip().into()),
        _ => None,
    }
}

/// Whether `a` and `b` are in the same network under `mask`.
fn same_network(a: IpAddr, b: IpAddr, mask: IpAddr) -> bool {
    match (a, b, mask) {
        (IpAddr::V4(a), IpAddr::V4(b), IpAddr::V4(m)) => {
            a.to_bits() & m.to_bits() == b.to_bits() & m.to_bits()
        }
        (IpAddr::V6(a), IpAddr::V6(b), IpAddr::V6(m)) => {
            a.to_bits() & m.to_bits() == b.to_bits() & m.to_bits()
        }
        _ => false,
    }
}

/// One interface's ARP requests: the socket, and per target (its index in
/// the caller's list, its address, our address on its network).
struct Arp {
    socket: Socket,
    mac: [u8; 6],
    asked: Vec<(usize, Ipv4Addr, Ipv4Addr)>,
}

/// NDP solicitations: the socket, and per target (its index, its address,
/// the interface's index and MAC address).
struct Ndp {
    socket: Socket,
    asked: Vec<(usize, Ipv6Addr, u32, [u8; 6])>,
}

/// The targets on a directly attached link, with the sockets to ask them.
#[derive(Default)]
pub(super) struct LinkProbe {
    arp: Vec<Arp>,
    ndp: Option<Ndp>,
    handled: Vec<bool>,
}

impl LinkProbe {
    /// Finds which of `targets` (address and IPv6 zone) are on a link, and
    /// opens the sockets to ask them; those it cannot ask (off the link, no
    /// CAP_NET_RAW) are left to the caller.
    pub(super) fn new(targets: &[(IpAddr, u32)]) -> LinkProbe {
        let mut probe = LinkProbe { handled: vec![false; targets.len()], ..LinkProbe::default() };
        let interfaces = interfaces();
        let mut arp: HashMap<u32, Vec<(usize, Ipv4Addr, Ipv4Addr)>> = HashMap::new();
        let mut ndp = Vec::new();
        for (k, &(ip, scope)) in targets.iter().enumerate() {
            match ip {
                IpAddr::V4(target) => {
                    let on = interfaces.iter().find_map(|i| {
                        let (source, _) = i.v4.iter().find(|&&(own, mask)| {
                            same_network(own.into(), target.into(), mask.into()) && own != target
                        })?;
                        Some((i.index(), *source))
                    });
                    if let Some((index, source)) = on {
                        arp.entry(index).or_default().push((k, target, source));
                    }
                }
                IpAddr::V6(target) => {
                    let link_local = target.is_unicast_link_local();
                    let on = interfaces.iter().find(|i| {
                        if link_local {
                            scope == i.index()
                        } else {
                            i.v6.iter()
                                .any(|&(own, mask)| same_network(own.into(), target.into(), mask.into()))
                        }
                    });
                    if let Some(interface) = on {
                        ndp.push((k, target, interface.index(), interface.mac));
                    }
                }
            }
        }
        for (index, asked) in arp {
            let Some(interface) = interfaces.iter().find(|i| i.index() == index) else { continue };
            if let Ok(socket) = arp_socket(&interface.link) {
                asked.iter().for_each(|&(k, ..)| probe.handled[k] = true);
                probe.arp.push(Arp { socket, mac: interface.mac, asked });
            }
        }
        if !ndp.is_empty()
            && let Ok(socket) = ndp_socket()
        {
            ndp.iter().for_each(|&(k, ..)| probe.handled[k] = true);
            probe.ndp = Some(Ndp { socket, asked: ndp });
        }
        probe
    }

    /// Whether target `k` is asked here (its answer, or its silence, is the verdict).
    pub(super) fn handles(&self, k: usize) -> bool {
        self.handled[k]
    }

    /// Asks every target handled here, each link at once, up to [`TRIES`]
    /// times within `timeout` (at most [`LINK_WAIT`]); whether each target
    /// answered, by its index (false for those not handled).
    pub(super) fn run(self, timeout: Duration) -> Vec<bool> {
        let per_try = timeout.min(LINK_WAIT) / TRIES;
        let mut answered = vec![false; self.handled.len()];
        let results: Vec<Vec<usize>> = std::thread::scope(|scope| {
            let mut asking: Vec<_> =
                self.arp.iter().map(|arp| scope.spawn(move || arp.ask(per_try))).collect();
            if let Some(ndp) = &self.ndp {
                asking.push(scope.spawn(move || ndp.ask(per_try)));
            }
            asking.into_iter().filter_map(|thread| thread.join().ok()).collect()
        });
        results.into_iter().flatten().for_each(|k| answered[k] = true);
        answered
    }
}

/// A packet socket for ARP frames, bound to the interface of `link`.
fn arp_socket(link: &LinkAddr) -> io::Result<Socket> {
    let protocol = i32::from(EtherType::ARP.0.to_be());
    let socket = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(protocol)))?;
    // The interface's own link address, as getifaddrs gives it: its protocol
    // is 0, which keeps the socket's (ARP).
    nix::sys::socket::bind(socket.as_raw_fd(), link)?;
    Ok(socket)
}

/// A raw ICMPv6 socket whose packets may carry NDP: the hop limit must be
/// 255 (RFC 4861, section 7.1.1), which proves they never left the link.
fn ndp_socket() -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    socket.set_multicast_hops_v6(255)?;
    socket.set_unicast_hops_v6(255)?;
    Ok(socket)
}

impl Arp {
    /// The indices of the targets that answered.
    fn ask(&self, per_try: Duration) -> Vec<usize> {
        let index: HashMap<Ipv4Addr, usize> = self.asked.iter().enumerate().map(|(j, a)| (a.1, j)).collect();
        let send = |j: usize| {
            let (_, target, source) = self.asked[j];
            // A send that fails (a full queue) is asked again in the next round.
            if let Err(e) = self.socket.send(&arp_request(self.mac, source, target)) {
                tracing::debug!("ARP request for {target}: {e}");
            }
        };
        let receive = |buf: &mut [u8]| -> Option<usize> {
            let frame = read(&self.socket, buf)?;
            let (ethernet, arp) = Ethernet2Header::from_slice(frame).ok()?;
            let arp =
                ArpPacketSlice::from_slice(arp).ok().filter(|_| ethernet.ether_type == EtherType::ARP)?;
            let sender: [u8; 4] = arp.sender_protocol_addr().try_into().ok()?;
            (arp.operation() == ArpOperation::REPLY).then(|| index.get(&Ipv4Addr::from(sender)).copied())?
        };
        ask_in_rounds(&self.socket, self.asked.len(), per_try, send, receive)
            .into_iter()
            .map(|j| self.asked[j].0)
            .collect()
    }
}

impl Ndp {
    /// The indices of the targets that answered.
    fn ask(&self, per_try: Duration) -> Vec<usize> {
        let index: HashMap<Ipv6Addr, usize> = self.asked.iter().enumerate().map(|(j, a)| (a.1, j)).collect();
        let send = |j: usize| {
            let (_, target, interface, mac) = self.asked[j];
            let group = SocketAddrV6::new(solicited_node(target), 0, 0, interface);
            if let Err(e) = self.socket.send_to(&solicitation(target, mac), &group.into()) {
                tracing::debug!("neighbour solicitation for {target}: {e}");
            }
        };
        let receive = |buf: &mut [u8]| -> Option<usize> {
            let message = Icmpv6Slice::from_slice(read(&self.socket, buf)?).ok()?;
            let Icmpv6Type::NeighborAdvertisement(_) = message.icmp_type() else { return None };
            let target: [u8; 16] = message.payload().get(..16)?.try_into().ok()?;
            index.get(&Ipv6Addr::from(target)).copied()
        };
        ask_in_rounds(&self.socket, self.asked.len(), per_try, send, receive)
            .into_iter()
            .map(|j| self.asked[j].0)
            .collect()
    }
}

/// Sends to each of `n` targets that has not answered, then reads answers
/// for `per_try`, [`TRIES`] times or until all answered; which answered.
/// `receive` reads one packet and names the target it answers for, if any.
fn ask_in_rounds(
    socket: &Socket,
    n: usize,
    per_try: Duration,
    send: impl Fn(usize),
    receive: impl Fn(&mut [u8]) -> Option<usize>,
) -> Vec<usize> {
    let mut answered = vec![false; n];
    let mut left = n;
    let mut buf = [0u8; 2048];
    for _ in 0..TRIES {
        (0..n).filter(|&j| !answered[j]).for_each(&send);
        let deadline = Instant::now() + per_try;
        while left > 0 {
            let Some(wait) = super::time_left(deadline) else {
                break;
            };
            if socket.set_read_timeout(Some(wait)).is_err() {
                break;
            }
            if let Some(j) = receive(&mut buf)
                && !std::mem::replace(&mut answered[j], true)
            {
                left -= 1;
            }
        }
        if left == 0 {
            break;
        }
    }
    (0..n).filter(|&j| answered[j]).collect()
}

/// One packet from `socket` into `buf`; `None` when none came in time (or on
/// an error, which a later round may not have).
fn read<'b>(mut socket: &Socket, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let n = socket.read(buf).ok()?;
    Some(&buf[..n])
}

/// An Ethernet broadcast asking who has `target`, from `source` at `mac`.
fn arp_request(mac: [u8; 6], source: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let ethernet = Ethernet2Header { source: mac, destination: [0xff; 6], ether_type: EtherType::ARP };
    let arp = ArpEthIpv4Packet {
        operation: ArpOperation::REQUEST,
        sender_mac: mac,
        sender_ipv4: source.octets(),
        target_mac: [0; 6],
        target_ipv4: target.octets(),
    };
    [&ethernet.to_bytes()[..], &arp.to_bytes()[..]].concat()
}

/// A neighbour solicitation for `target`, saying our link address `mac`
/// (without it, a host that has no entry for us yet does not answer a
/// multicast solicitation). The kernel fills in the checksum.
fn solicitation(target: Ipv6Addr, mac: [u8; 6]) -> Vec<u8> {
    let header = Icmpv6Header::new(Icmpv6Type::NeighborSolicitation);
    [&header.to_bytes()[..], &target.octets(), &SOURCE_LINK_ADDRESS, &mac].concat()
}

/// The multicast group `target` listens on for solicitations: ff02::1:ff
/// and its last 24 bits (RFC 4291, section 2.7.1).
fn solicited_node(target: Ipv6Addr) -> Ipv6Addr {
    Ipv6Addr::from_bits(0xff02_0000_0000_0000_0000_0001_ff00_0000 | (target.to_bits() & 0xff_ffff))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arp_request_is_a_broadcast_asking_for_the_target() {
        let mac = [2, 0, 0, 0, 0, 1];
        let frame = arp_request(mac, Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(frame.len(), 14 + 28);
        assert_eq!(&frame[..6], &[0xff; 6]);
        assert_eq!(&frame[12..14], &[0x08, 0x06]);
        let arp = ArpPacketSlice::from_slice(&frame[14..]).unwrap();
        assert_eq!(arp.operation(), ArpOperation::REQUEST);
        assert_eq!((arp.sender_hw_addr(), arp.target_protocol_addr()), (&mac[..], &[10, 0, 0, 9][..]));
    }

    #[test]
    fn a_solicitation_names_its_target_and_our_link_address() {
        let target: Ipv6Addr = "fd19::2".parse().unwrap();
        let message = solicitation(target, [2, 0, 0, 0, 0, 1]);
        assert_eq!((message[0], message.len()), (135, 8 + 16 + 8));
        assert_eq!(&message[8..24], &target.octets());
        assert_eq!(&message[24..], &[1, 1, 2, 0, 0, 0, 0, 1]);
        assert_eq!(
            solicited_node("fe80::abcd:1234:5678".parse().unwrap()),
            "ff02::1:ff34:5678".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn networks_are_compared_under_their_mask() {
        let (a, b, mask) = ("10.19.0.1", "10.19.0.200", "255.255.255.0");
        assert!(same_network(a.parse().unwrap(), b.parse().unwrap(), mask.parse().unwrap()));
        assert!(!same_network(a.parse().unwrap(), "10.19.1.2".parse().unwrap(), mask.parse().unwrap()));
    }

    #[test]
    fn loopback_is_never_a_link_to_ask_on() {
        let probe = LinkProbe::new(&[("127.0.0.2".parse().unwrap(), 0), ("::1".parse().unwrap(), 1)]);
        assert!(!probe.handles(0) && !probe.handles(1));
    }
}
