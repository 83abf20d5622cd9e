//! Packet capture and analysis: frames from a Linux `AF_PACKET` socket (or a
//! pcap file), decoded, filtered, counted and saved as pcap.
//!
//! | module | what | touches |
//! |---|---|---|
//! | [`decode`] | frames to one-line [`decode::Summary`]s (etherparse underneath) | nothing |
//! | [`filter`] | tcpdump-style filter expressions: parse, match, compile to classic BPF | nothing |
//! | [`pcap`] | the pcap file format: write, read (and pcapng read) | files |
//! | [`stats`] | per-protocol and per-port counters, top talkers | nothing |
//! | [`capture`] | the capture loop over a packet socket and its memory-mapped ring | the socket (its ring in `capture::ring`, the one `unsafe` module), the clock |
//!
//! The loop hands every frame to a callback and never prints.

pub mod capture;
pub mod decode;
pub mod filter;
pub mod pcap;
pub mod stats;

use std::time::Duration;

use serde::Serialize;

use decode::Summary;

/// How a frame starts: the pcap link-layer header type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkType {
    /// Ethernet II (also what Linux loopback frames look like).
    Ethernet,
    /// No link header: the frame is an IPv4 or IPv6 packet (tun devices, many VPNs).
    RawIp,
    /// Linux "cooked" capture v1 (`tcpdump -i any` before 4.99).
    LinuxSll,
    /// Linux "cooked" capture v2 (`tcpdump -i any` since 4.99).
    LinuxSll2,
    /// BSD loopback (DLT_NULL): a 4-byte address family in the capturing
    /// host's byte order, then an IPv4 or IPv6 packet (macOS's `lo0`).
    Null,
}

impl LinkType {
    /// The number pcap files use (LINKTYPE_*).
    pub fn pcap_code(self) -> u32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::RawIp => 101,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
            LinkType::Null => 0,
        }
    }

    /// The link type of a pcap LINKTYPE number, when decodable here.
    pub fn from_pcap_code(code: u32) -> Option<LinkType> {
        match code {
            1 => Some(LinkType::Ethernet),
            // LINKTYPE_RAW, and DLT_RAW's numbers on some systems.
            101 | 12 | 14 => Some(LinkType::RawIp),
            113 => Some(LinkType::LinuxSll),
            276 => Some(LinkType::LinuxSll2),
            0 => Some(LinkType::Null),
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

/// A frame as it is read, borrowed from the reader's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// When the kernel received it, since the Unix epoch.
    pub time: Duration,
    /// Its length on the wire; `data` may hold less (the snap length).
    pub len: u32,
    /// The bytes captured, from the link-layer header on.
    pub data: &'a [u8],
}

impl Packet {
    /// A borrowed view.
    pub fn frame(&self) -> Frame<'_> {
        Frame { time: self.time, len: self.len, data: &self.data }
    }
}

/// What [`Matcher::offer`] decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// The filter rejected the frame.
    Rejected,
    /// Keep the frame; its summary when one was asked for or needed.
    Accepted(Option<Box<Summary>>),
}

/// Applies the filter's program to each frame, counts, and keeps
/// `--stats`; decodes only when something needs the summary.
#[derive(Debug)]
pub struct Matcher {
    program: Option<filter::Program>,
    /// The kernel ran the same program: every frame that arrives passed it.
    kernel_filtered: bool,
    stats: Option<stats::Stats>,
    want_summary: bool,
    counts: Counts,
}

impl Matcher {
    /// A matcher running `program` (compiled for the frames' link type);
    /// `want_summary` when the caller prints frames, `stats` to keep counters.
    pub fn new(program: Option<filter::Program>, want_summary: bool, stats: bool) -> Self {
        let stats = stats.then(stats::Stats::default);
        Matcher { program, kernel_filtered: false, stats, want_summary, counts: Counts::default() }
    }

    /// Tells the matcher the kernel already ran the program.
    pub fn kernel_filtered(mut self, yes: bool) -> Self {
        self.kernel_filtered = yes;
        self
    }

    /// Decides on one frame of `link` type.
    pub fn offer(&mut self, link: LinkType, frame: Frame<'_>) -> Verdict {
        self.counts.received += 1;
        if let Some(program) = self.program.as_ref().filter(|_| !self.kernel_filtered)
            && !program.matches(frame.data, frame.len)
        {
            return Verdict::Rejected;
        }
        self.counts.matched += 1;
        let needs = self.want_summary || self.stats.is_some();
        let summary = needs.then(|| decode::decode(link, frame.data));
        if let (Some(stats), Some(summary)) = (&mut self.stats, &summary) {
            stats.add(summary, frame.len);
        }
        Verdict::Accepted(summary.filter(|_| self.want_summary).map(Box::new))
    }

    /// The counts so far (`dropped` is the capture's to fill in).
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The `--stats` tables, when kept.
    pub fn stats(&self) -> Option<stats::Report> {
        self.stats.as_ref().map(stats::Stats::report)
    }
}
