//! `socketeer sniff`'s arguments, and tcpdump's habits in them.

use std::ffi::OsString;
use std::path::PathBuf;

use super::super::args::subcommand_args;

const EXAMPLES: &str = "\
Examples:
  socketeer sniff -r echo.pcap                       # read a pcap or pcapng file (no root needed)
  socketeer sniff -r echo.pcap 'tcp and port 7007' --json
  socketeer sniff -r echo.pcap --stats               # protocols, ports and top talkers
  sudo socketeer sniff                               # everything on lo, one line per packet
  sudo socketeer sniff -i lo tcp port 7007 -c 10     # the first 10 packets to or from port 7007
  sudo socketeer sniff 'udp and not port 53' -v -x   # header details and a hex dump
  sudo socketeer sniff -i any port 53                # all interfaces, each line named, In/Out
  sudo socketeer sniff -w echo.pcap port 7007        # save for Wireshark/tshark; Ctrl-C stops
  socketeer sniff -r echo.pcap 'tcp[tcpflags] & tcp-syn != 0'   # SYNs only
  socketeer sniff -d 'vlan 100 and port 53'          # the BPF program, as tcpdump -d

Filters are tcpdump's (pcap-filter(7)) with libpcap's meaning: tcp udp sctp icmp icmp6 igmp
arp rarp ip ip6, [ip|ip6|arp|rarp] [src|dst] host ADDR|NAME, net N[/LEN] | net N mask M,
[tcp|udp|sctp] [src|dst] port N|NAME, portrange N-M, ether [src|dst] host MAC, ether proto N,
[ip|ip6] proto N, vlan [ID], broadcast, multicast, less/greater N, byte offsets and arithmetic
('tcp[tcpflags] & tcp-syn != 0', 'ip[6:2] & 0x1fff = 0', 'len > 100'), and/or/not, ( ).
Service names come from /etc/services (port http is TCP's 80). -d prints the BPF program.
TCP sequence numbers are relative to each connection's first, as in tcpdump; -S shows them absolute.
After `sniff`, -v means --detail (tcpdump's habit); `socketeer -v sniff` logs more.
Capturing needs root or CAP_NET_RAW; reading a file does not.";

/// The largest snap length (tcpdump's too): `-s 0` means this.
pub(super) const MAX_SNAPLEN: u32 = 262_144;

fn snaplen(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) => Ok(MAX_SNAPLEN),
        Ok(n @ 64..=MAX_SNAPLEN) => Ok(n),
        _ => Err(format!("expected 64 to {MAX_SNAPLEN} bytes, or 0 for the most")),
    }
}

/// Arguments of `socketeer sniff`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Which frames to keep, in tcpdump's syntax (quote it, or give it as several words).
    #[arg(value_name = "FILTER")]
    pub(super) filter: Vec<String>,
    /// The interface to capture on (`any`: all of them, with Linux cooked headers, as tcpdump).
    #[arg(short, long, value_name = "IFACE", default_value = "lo", conflicts_with = "read")]
    pub(super) interface: String,
    /// Stop after this many matching packets.
    #[arg(short = 'c', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) count: Option<u64>,
    /// Write matching packets to a pcap file (- for stdout) instead of printing them.
    #[arg(short, long, value_name = "FILE")]
    pub(super) write: Option<PathBuf>,
    /// Print packets even while writing them to a file.
    #[arg(long, requires = "write")]
    pub(super) print: bool,
    /// Read packets from a pcap or pcapng file (- for stdin) instead of capturing.
    #[arg(short, long, value_name = "FILE")]
    pub(super) read: Option<PathBuf>,
    /// Bytes kept of each packet, at least 64 (0: the most, as in tcpdump).
    #[arg(short, long, value_name = "BYTES", default_value_t = MAX_SNAPLEN, value_parser = snaplen)]
    pub(super) snaplen: u32,
    /// Ring buffer for packets waiting to be read, in KiB (tcpdump's -B): memory shared
    /// with the kernel, which stores each frame's captured bytes and a small header.
    #[arg(short = 'B', long, value_name = "KIB", default_value_t = 32768, value_parser = clap::value_parser!(u32).range(64..=1_048_576), conflicts_with = "read")]
    pub(super) buffer_size: u32,
    /// Write nanosecond timestamps (default: microseconds, which every tool reads).
    #[arg(long, requires = "write")]
    pub(super) nano: bool,
    /// Header details under each packet. `-v` after `sniff` means this, as in tcpdump
    /// (for debug logging, put -v before `sniff`, or set RUST_LOG).
    #[arg(long)]
    pub(super) detail: bool,
    /// Hex and ASCII of the whole frame, link-layer header included (tcpdump's -XX).
    #[arg(short = 'x', long)]
    pub(super) hex: bool,
    /// The payload of each packet as text.
    #[arg(short = 'A', long)]
    pub(super) ascii: bool,
    /// Counters by protocol, port and sender at the end. Packets still print, as
    /// tcpdump's do; for the counters alone, add `-w /dev/null`.
    #[arg(long)]
    pub(super) stats: bool,
    /// Addresses and ports are never resolved to names; accepted (also as -nn) for tcpdump habits.
    #[arg(short = 'n', hide = true, action = clap::ArgAction::Count)]
    pub(super) numeric: u8,
    /// Absolute TCP sequence and acknowledgement numbers (default: relative to each
    /// connection's first, as tcpdump prints them).
    #[arg(short = 'S', long = "absolute-tcp-sequence-numbers")]
    pub(super) absolute: bool,
    /// The link-level header on each line (MAC addresses, EtherType, frame length).
    #[arg(short = 'e')]
    pub(super) link_header: bool,
    /// Hex and ASCII of each packet from the network layer; -XX from the link layer.
    #[arg(short = 'X', action = clap::ArgAction::Count)]
    pub(super) hex_ascii: u8,
    /// Timestamps as tcpdump's -t: once, none; -tt, seconds since 1970; -ttt, time since
    /// the previous packet; -tttt, date and time; -ttttt, time since the first packet.
    #[arg(short = 't', action = clap::ArgAction::Count)]
    pub(super) time: u8,
    /// Less protocol information per line: `tcp 6` for a TCP segment. `-q` after `sniff`
    /// means this, as in tcpdump (for less logging, put -q before `sniff`).
    #[arg(long)]
    pub(super) quick: bool,
    /// Read the filter from this file (as tcpdump -F).
    #[arg(short = 'F', value_name = "FILE")]
    pub(super) filter_file: Option<PathBuf>,
    /// List the interfaces a capture can use, and exit.
    #[arg(short = 'D', long = "list-interfaces")]
    pub(super) list_interfaces: bool,
    /// JSON Lines: one object per packet, then a summary.
    #[arg(long)]
    pub(super) json: bool,
    /// Print the filter's BPF program, as tcpdump -d does, and exit (for the link type
    /// of the -r file, of -i any, or Ethernet).
    #[arg(short = 'd')]
    pub(super) dump: bool,
}

/// Rewrites tcpdump habits after `sniff`: `-v` (header details) becomes
/// `--detail` and `-q` (quick lines) `--quick`, since `-v` and `-q`
/// elsewhere mean more and less logging; clusters such as `-vx` or `-nvA`
/// keep their other flags.
pub fn tcpdump_style_args(args: Vec<OsString>) -> Vec<OsString> {
    const FLAGS: &str = "vxAnXeSqtd";
    let Some(start) = subcommand_args(&args, "sniff") else { return args };
    let mut out = args[..start].to_vec();
    for arg in &args[start..] {
        match arg.to_str().and_then(|a| a.strip_prefix('-')) {
            Some(flags)
                if !flags.is_empty()
                    && (flags.contains('v') || flags.contains('q'))
                    && flags.chars().all(|c| FLAGS.contains(c)) =>
            {
                if flags.contains('v') {
                    out.push("--detail".into());
                }
                if flags.contains('q') {
                    out.push("--quick".into());
                }
                let rest: String = flags.chars().filter(|&c| c != 'v' && c != 'q').collect();
                if !rest.is_empty() {
                    out.push(format!("-{rest}").into());
                }
            }
            _ => out.push(arg.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(args: &[&str]) -> Vec<String> {
        let args = args.iter().map(OsString::from).collect();
        tcpdump_style_args(args).into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn dash_v_means_details_after_sniff_only() {
        assert_eq!(
            rewrite(&["socketeer", "-v", "sniff", "-v", "port", "80"]),
            ["socketeer", "-v", "sniff", "--detail", "port", "80"]
        );
        assert_eq!(
            rewrite(&["socketeer", "sniff", "-vx", "-nvvA"]),
            ["socketeer", "sniff", "--detail", "-x", "--detail", "-nA"]
        );
        assert_eq!(
            rewrite(&["socketeer", "sniff", "-vw", "-i", "lo"]),
            ["socketeer", "sniff", "-vw", "-i", "lo"]
        );
        assert_eq!(rewrite(&["socketeer", "echo", "serve", "-v"]), ["socketeer", "echo", "serve", "-v"]);
        assert_eq!(
            rewrite(&["socketeer", "sniff", "-qnn", "-q"]),
            ["socketeer", "sniff", "--quick", "-nn", "--quick"]
        );
    }
}
