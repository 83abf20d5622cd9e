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

/// The message in tcpdump's words; `None` when it is too short to be DNS.
pub(super) fn line(message: &[u8]) -> Option<String> {
    let field = |at: usize| message.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let (id, flags) = (field(0)?, field(2)?);
    let (questions, answers, authority, additional) = (field(4)?, field(6)?, field(8)?, field(10)?);
    let response = flags & 0x8000 != 0;
    let mut out = id.to_string();
    let mut at = 12;
    let mut question = String::new();
    for _ in 0..questions {
        let (name, next) = name(message, at)?;
        let kind = field(next)?;
        at = next + 4;
        if question.is_empty() {
            question = format!(" {}? {name}", type_name(kind));
        }
    }
    if !response {
        if flags & 0x0100 != 0 {
            out.push('+');
        }
        out.push_str(&question);
        return Some(out);
    }
    if flags & 0x0400 != 0 {
        out.push('*');
    }
    match flags & 0x000f {
        0 => {}
        1 => out.push_str(" FormErr"),
        2 => out.push_str(" ServFail"),
        3 => out.push_str(" NXDomain"),
        4 => out.push_str(" NotImp"),
        5 => out.push_str(" Refused"),
        code => {
            let _ = write!(out, " Resp{code}");
        }
    }
    let _ = write!(out, " {answers}/{authority}/{additional}");
    let mut records = Vec::new();
    for _ in 0..answers {
        let Some((record, next)) = answer(message, at) else { break };
        records.push(record);
        at = next;
    }
    if !records.is_empty() {
        let _ = write!(out, " {}", records.join(", "));
    }
    Some(out)
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
    fn crafted_names_end() {
        // A pointer to itself, a label running off the end, a short header.
        let mut looping = query();
        looping.truncate(12);
        looping.extend([0xc0, 0x0c]);
        assert_eq!(line(&looping), None);
        assert_eq!(line(&[0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 9, b'a']), None);
        assert_eq!(line(&[0; 5]), None);
    }
}
