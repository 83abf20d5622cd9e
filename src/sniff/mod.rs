//! Packet capture and analysis: frames from a Linux `AF_PACKET` socket (or a
//! pcap file), decoded, filtered, counted and saved as pcap.
//!
//! | module | what | touches |
//! |---|---|---|
//! | [`decode`] | frames to one-line [`decode::Summary`]s (etherparse underneath) | nothing |
//! | [`filter`] | tcpdump-style filter expressions: parse, match, compile to classic BPF | nothing |
//! | [`pcap`] | the pcap file format: write, read (and pcapng read) | files |
//! | [`stats`] | per-protocol and per-port counters, top talkers | nothing |
//! | [`capture`] | the capture loop over a packet socket | the socket (`rawsock`), the clock |
//!
//! The loop hands every frame to a callback and never prints.

pub mod capture;
pub mod decode;
pub mod filter;
pub mod pcap;
pub mod stats;

use std::time::Duration;

use serde::Serialize;

/// How a frame starts: the pcap link-layer header type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkType {
    /// Ethernet II (also what Linux loopback frames look like).
    Ethernet,
    /// No link header: the frame is an IPv4 or IPv6 packet (tun devices, many VPNs).
    RawIp,
    /// Linux "cooked" capture v1 (`tcpdump -i any`).
    LinuxSll,
}

impl LinkType {
    /// The number pcap files use (LINKTYPE_*).
    pub fn pcap_code(self) -> u32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::RawIp => 101,
            LinkType::LinuxSll => 113,
        }
    }

    /// The link type of a pcap LINKTYPE number, when decodable here.
    pub fn from_pcap_code(code: u32) -> Option<LinkType> {
        match code {
            1 => Some(LinkType::Ethernet),
            // LINKTYPE_RAW, and DLT_RAW's numbers on some systems.
            101 | 12 | 14 => Some(LinkType::RawIp),
            113 => Some(LinkType::LinuxSll),
            _ => None,
        }
    }
}

/// One captured frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// When the kernel received it, since the Unix epoch.
    pub time: Duration,
    /// Its length on the wire; `data` may hold less (the snap length).
    pub len: u32,
    /// The bytes captured, from the link-layer header on.
    pub data: Vec<u8>,
}

/// What a capture or a file read counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Frames that reached the program (after the kernel filter, if one was attached).
    pub received: u64,
    /// Frames that passed the filter (printed or written).
    pub matched: u64,
    /// Frames the kernel dropped because the socket's queue was full.
    pub dropped: u64,
}
