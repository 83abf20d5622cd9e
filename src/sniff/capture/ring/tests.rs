use super::*;

#[test]
fn blocks_hold_a_whole_kept_frame_and_there_are_at_least_two() {
    // tcpdump's default snap length needs no more than the longest frame.
    assert_eq!(geometry(262_144, 32 << 20), (128 << 10, 256));
    assert_eq!(geometry(262_144, 2 << 20), (128 << 10, 16));
    assert_eq!(geometry(96, 2 << 20), (128 << 10, 16));
    assert_eq!(geometry(65_535, 1), (128 << 10, 2));
}

/// The ring's system calls and its memory, on a real socket (as root,
/// as the suite runs): a datagram sent to ourselves on loopback is read
/// from the mapped block, whole and with its length, and the block goes
/// back to the kernel.
#[test]
fn a_ring_on_loopback_sees_a_datagram_we_send() {
    let lo = nix::net::if_::if_nametoindex("lo").unwrap();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // Only our datagram (both of its loopback copies), so no one
    // else's traffic can fill the ring.
    let filter: crate::sniff::filter::Filter =
        format!("udp port {}", socket.local_addr().unwrap().port()).parse().unwrap();
    let compiled = crate::sniff::filter::compile(&filter, crate::sniff::LinkType::Ethernet, 65_535).unwrap();
    let program: Vec<SockFilter> =
        compiled.instructions().iter().map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k)).collect();
    let mut ring = match Ring::open(Source::Interface(lo), 65_535, 1 << 20, &program) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => panic!("run the tests as root: {e}"),
        other => other.unwrap(),
    };
    let payload = format!("ring test {}", std::process::id());
    socket.send_to(payload.as_bytes(), socket.local_addr().unwrap()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen = None;
    while seen.is_none() && std::time::Instant::now() < deadline {
        let ready = crate::poll::wait(&[ring.as_fd()], Some(deadline)).unwrap();
        while ready[0]
            && ring
                .read_block(|_, len, data| {
                    if data.ends_with(payload.as_bytes()) {
                        seen = Some((len, data.len()));
                    }
                })
                .is_some()
        {}
    }
    let expected = 14 + 20 + 8 + payload.len();
    assert_eq!(seen, Some((expected as u32, expected)));
    assert_eq!(ring.dropped(), 0);
}
