//! UDP probe payloads: a request each common service answers, so an open
//! port shows itself instead of staying silent (open|filtered). Every
//! payload is a minimal, harmless query built from the protocol's RFC; other
//! ports get an empty datagram.

/// DNS (RFC 1035): a standard query for the root's NS records, id 0x50c7.
const DNS: &[u8] = &[
    0x50, 0xc7, 0x00, 0x00, // id, flags: standard query, no recursion
    0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 1 question
    0x00, 0x00, 0x02, 0x00, 0x01, // root name, type NS, class IN
];

/// NTP (RFC 5905): a version 4 client request, 48 bytes.
const NTP: &[u8] = &[
    0xe3, 0x00, 0x06, 0xec, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// SNMP v2c (RFC 3416): get-request for sysDescr.0 with community "public".
const SNMP: &[u8] = &[
    0x30, 0x29, 0x02, 0x01, 0x01, // sequence, version 2c
    0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c', // community
    0xa0, 0x1c, 0x02, 0x04, 0x00, 0x00, 0x53, 0x4b, // get-request, request id
    0x02, 0x01, 0x00, 0x02, 0x01, 0x00, // error status, error index
    0x30, 0x0e, 0x30, 0x0c, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x01, 0x01, 0x00, 0x05, 0x00,
];

/// NetBIOS name service (RFC 1002): a node status request for `*`.
const NETBIOS_NS: &[u8] = b"\x53\x4b\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\
\x20CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\x00\x00\x21\x00\x01";

/// SSDP (UPnP device architecture): a discovery search.
const SSDP: &[u8] = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\
MAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n";

/// mDNS (RFC 6762/6763): a query for the DNS-SD service list.
const MDNS: &[u8] = b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\
\x09_services\x07_dns-sd\x04_udp\x05local\x00\x00\x0c\x00\x01";

/// memcached's UDP protocol: frame header, then `version`.
const MEMCACHED: &[u8] = b"\x53\x4b\x00\x00\x00\x01\x00\x00version\r\n";

/// TFTP (RFC 1350): a read request; a server answers with data or an error.
const TFTP: &[u8] = b"\x00\x01socketeer-probe\x00octet\x00";

/// ONC RPC (RFC 5531): a NULL call to the portmapper, program 100000 version 2.
const SUNRPC: &[u8] = &[
    0x53, 0x4b, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 2, // xid, call, RPC version 2
    0x00, 0x01, 0x86, 0xa0, 0, 0, 0, 2, 0, 0, 0, 0, // program, version, procedure NULL
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // AUTH_NONE credentials and verifier
];

/// STUN (RFC 8489): a binding request with a fixed transaction id.
const STUN: &[u8] = b"\x00\x01\x00\x00\x21\x12\xa4\x42socketeer-tx";

/// SIP (RFC 3261): an OPTIONS request, which every SIP element must answer.
const SIP: &[u8] = b"OPTIONS sip:nm SIP/2.0\r\nVia: SIP/2.0/UDP nm;branch=z9hG4bK-sk\r\n\
From: <sip:nm@nm>;tag=sk\r\nTo: <sip:nm2@nm2>\r\nCall-ID: socketeer@nm\r\nCSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

/// The probe payload for `port`: a query its usual service answers, or nothing.
pub fn for_port(port: u16) -> &'static [u8] {
    match port {
        53 | 5300 => DNS,
        123 => NTP,
        161 => SNMP,
        137 => NETBIOS_NS,
        1900 => SSDP,
        5353 => MDNS,
        11211 => MEMCACHED,
        69 => TFTP,
        111 => SUNRPC,
        3478 => STUN,
        5060 => SIP,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_their_protocols_lengths() {
        assert_eq!(NTP.len(), 48);
        assert_eq!(usize::from(SNMP[1]) + 2, SNMP.len(), "BER length covers the message");
        assert_eq!(usize::from(SNMP[14]) + 15, SNMP.len(), "PDU length covers the PDU");
        assert_eq!(SUNRPC.len(), 40);
        assert_eq!(STUN.len(), 20);
        assert_eq!(NETBIOS_NS.len(), 50);
        assert_eq!(&DNS[4..6], [0, 1], "one question");
        assert!(SIP.ends_with(b"\r\n\r\n") && SSDP.ends_with(b"\r\n\r\n"));
        assert!(for_port(9).is_empty());
    }
}
