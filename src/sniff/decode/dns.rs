//! DNS messages on one line, the way tcpdump prints them: a query as
//! `4660+ A? example.com.`, an answer as `4660 1/0/0 A 93.184.216.34`,
//! an error as `4660 NXDomain 0/1/0`. Names are decompressed with a bound
//! on jumps, so a crafted message cannot loop.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The UDP ports whose payload is read as DNS (DNS, mDNS).
pub(super) const PORTS: [u16; 2] = [53, 5353];

/// The most compression pointers one name may follow.
const MAX_JUMPS: usize = 16;

/// Bytes of a DNS header: a datagram shorter than this is no message.
pub(super) const HEADER_LEN: usize = 12;

/// tcpdump's words for a datagram of `len` bytes on a DNS port that is too
/// short to hold a DNS header.
pub(super) fn too_short(len: usize) -> String {
    format!("domain [length {len} < {HEADER_LEN}] (invalid)")
}

/// What tcpdump adds where a message ends before its counts say it does.
pub(super) const CUT: &str = " [|domain]";

/// The message in tcpdump's words; `None` when it is too short to be DNS.
///
/// As tcpdump: a query is its id, opcode, `+` (recursion desired), `%`
/// (checking disabled), flags a query should not have, section counts
/// other than one question (`[1au]` for an EDNS record), then the first
/// question; a response is its id, opcode, error, `*` (authoritative),
/// `-` (recursion not available), `|` (truncated), `$` (authenticated),
/// the question count if not one, the section counts and the answers.
/// Where the message runs out (or a name cannot be read), the line ends
/// with [`CUT`].
pub(super) fn line(message: &[u8]) -> Option<String> {
    let field = |at: usize| message.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let (id, flags) = (field(0)?, field(2)?);
    let (questions, answers, authority, additional) = (field(4)?, field(6)?, field(8)?, field(10)?);
    let response = flags & 0x8000 != 0;
    let mut out = id.to_string();
    out.push_str(opcode_name(flags >> 11 & 0xf));
    let mark = |out: &mut String, bit: u16, set: bool, text: &str| {
        if (flags & bit != 0) == set {
            out.push_str(text);
        }
    };
    if response {
        out.push_str(rcode_name(flags & 0x000f).as_str());
        mark(&mut out, 0x0400, true, "*");
        mark(&mut out, 0x0080, false, "-");
        mark(&mut out, 0x0200, true, "|");
        mark(&mut out, 0x0020, true, "$");
        if questions != 1 {
            let _ = write!(out, " [{questions}q]");
        }
    } else {
        mark(&mut out, 0x0100, true, "+");
        mark(&mut out, 0x0010, true, "%");
        // Answer-only flags, Z or an error code in a query.
        if flags & 0x06cf != 0 {
            let _ = write!(out, " [b2&3=0x{flags:x}]");
        }
        let counts = [(questions, "q", questions != 1), (answers, "a", answers != 0)];
        let others = [(authority, "n", authority != 0), (additional, "au", additional != 0)];
        for (count, unit, shown) in counts.into_iter().chain(others) {
            if shown {
                let _ = write!(out, " [{count}{unit}]");
            }
        }
    }
    let mut at = HEADER_LEN;
    for i in 0..questions {
        // The name, its type and its class.
        let question =
            name(message, at).and_then(|(name, next)| Some((name, field(next)?, field(next + 2)?, next)));
        let Some((name, kind, _class, next)) = question else {
            out.push_str(CUT);
            return Some(out);
        };
        at = next + 4;
        if i == 0 && !response {
            let _ = write!(out, " {}? {name}", type_name(kind));
        }
    }
    if !response {
        return Some(out);
    }
    let _ = write!(out, " {answers}/{authority}/{additional}");
    let mut records = Vec::new();
    let mut cut = false;
    for _ in 0..answers {
        let Some((record, next)) = answer(message, at) else {
            cut = true;
            break;
        };
        records.push(record);
        at = next;
    }
    if !records.is_empty() {
        let _ = write!(out, " {}", records.join(", "));
    }
    if cut {
        out.push_str(CUT);
    }
    Some(out)
}

/// An opcode as tcpdump shows it after the id (nothing for a standard query).
fn opcode_name(opcode: u16) -> &'static str {
    const NAMES: [&str; 16] = [
        "",
        " inv_q",
        " stat",
        " op3",
        " notify",
        " update",
        " op6",
        " op7",
        " op8",
        " updateA",
        " updateD",
        " updateDA",
        " updateM",
        " updateMA",
        " zoneInit",
        " zoneRef",
    ];
    NAMES[usize::from(opcode & 0xf)]
}

/// A response code as tcpdump shows it (nothing for no error).
fn rcode_name(rcode: u16) -> String {
    const NAMES: [&str; 11] = [
        "",
        " FormErr",
        " ServFail",
        " NXDomain",
        " NotImp",
        " Refused",
        " YXDomain",
        " YXRRSet",
        " NXRRSet",
        " NotAuth",
        " NotZone",
    ];
    NAMES.get(usize::from(rcode)).map_or_else(|| format!(" Resp{rcode}"), |name| (*name).to_owned())
}

/// One answer record: `A 93.184.216.34`, `CNAME example.org.`.
fn answer(message: &[u8], at: usize) -> Option<(String, usize)> {
    let (_, at) = name(message, at)?;
    let header = message.get(at..at + 10)?;
    let kind = u16::from_be_bytes([header[0], header[1]]);
    let length = usize::from(u16::from_be_bytes([header[8], header[9]]));
    let start = at + 10;
    let data = message.get(start..start + length)?;
    let text = match (kind, data.len()) {
        (1, 4) => format!("A {}", Ipv4Addr::new(data[0], data[1], data[2], data[3])),
        (28, 16) => format!("AAAA {}", Ipv6Addr::from(<[u8; 16]>::try_from(data).ok()?)),
        (5 | 12 | 2, _) => format!("{} {}", type_name(kind), name(message, start)?.0),
        (15, _) if data.len() > 2 => {
            format!("MX {} {}", name(message, start + 2)?.0, u16::from_be_bytes([data[0], data[1]]))
        }
        _ => type_name(kind).to_owned(),
    };
    Some((text, start + length))
}

/// The name at `at` (dotted, with the final dot) and where the record goes
/// on after it.
fn name(message: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut after = None;
    let mut jumps = 0;
    loop {
        let len = *message.get(at)?;
        match len {
            0 => {
                if out.is_empty() {
                    out.push('.');
                }
                return Some((out, after.unwrap_or(at + 1)));
            }
            0xc0..=0xff => {
                let target = usize::from(u16::from_be_bytes([len & 0x3f, *message.get(at + 1)?]));
                after.get_or_insert(at + 2);
                jumps += 1;
                if jumps > MAX_JUMPS {
                    return None;
                }
                at = target;
            }
            1..=63 => {
                let label = message.get(at + 1..at + 1 + usize::from(len))?;
                out.push_str(&crate::text::dotted(label, false));
                out.push('.');
                if out.len() > 255 {
                    return None;
                }
                at += 1 + usize::from(len);
            }
            _ => return None,
        }
    }
}

fn type_name(kind: u16) -> &'static str {
    match kind {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        65 => "HTTPS",
        255 => "ANY",
        _ => "Type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query() -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend(b"\x07example\x03com\x00\x00\x01\x00\x01");
        q
    }

    #[test]
    fn queries_and_answers_read_like_tcpdump() {
        assert_eq!(line(&query()).as_deref(), Some("4660+ A? example.com."));
        let mut answer = query();
        answer[2..4].copy_from_slice(&[0x81, 0x80]);
        answer[7] = 1;
        answer.extend([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 93, 184, 216, 34]);
        assert_eq!(line(&answer).as_deref(), Some("4660 1/0/0 A 93.184.216.34"));
        let mut nx = query();
        nx[2..4].copy_from_slice(&[0x81, 0x83]);
        assert_eq!(line(&nx).as_deref(), Some("4660 NXDomain 0/0/0"));
    }

    #[test]
    fn counts_and_flags_tcpdump_marks() {
        let mut edns = query();
        edns[11] = 1;
        assert_eq!(line(&edns).as_deref(), Some("4660+ [1au] A? example.com."));
        let mut empty = query()[..12].to_vec();
        empty[5] = 0;
        assert_eq!(line(&empty).as_deref(), Some("4660+ [0q]"));
        // A question cut short, an answer cut short.
        assert_eq!(line(&query()[..20]).as_deref(), Some("4660+ [|domain]"));
        let mut answer = query();
        answer[2..4].copy_from_slice(&[0x81, 0x80]);
        answer[7] = 2;
        answer.extend([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 93, 184, 216, 34, 0xc0]);
        assert_eq!(line(&answer).as_deref(), Some("4660 2/0/0 A 93.184.216.34 [|domain]"));
        let mut odd = query();
        odd[2..4].copy_from_slice(&[0x05, 0x00]);
        assert_eq!(line(&odd).as_deref(), Some("4660+ [b2&3=0x500] A? example.com."));
        let mut nx = query();
        nx[2..4].copy_from_slice(&[0x85, 0x03]);
        assert_eq!(line(&nx).as_deref(), Some("4660 NXDomain*- 0/0/0"));
        let mut update = query();
        update[2..4].copy_from_slice(&[0xa8, 0x80]);
        assert_eq!(line(&update).as_deref(), Some("4660 update 0/0/0"));
        assert_eq!(too_short(3), "domain [length 3 < 12] (invalid)");
    }

    #[test]
    fn crafted_names_end() {
        // A pointer to itself, a label running off the end: the line ends
        // where reading stopped. A short header is no message.
        let mut looping = query();
        looping.truncate(12);
        looping.extend([0xc0, 0x0c]);
        assert_eq!(line(&looping).as_deref(), Some("4660+ [|domain]"));
        let running_off = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 9, b'a'];
        assert_eq!(line(&running_off).as_deref(), Some("4660+ [|domain]"));
        assert_eq!(line(&[0; 5]), None);
    }
}
