//! Why decoding stopped, in a few words of ours.

use etherparse::err::packet::SliceError;

/// A decoding error in a few words of ours (etherparse's run long, and
/// carry its typos): truncation says how much was there.
pub(super) fn describe(error: &SliceError) -> String {
    use etherparse::err::{ip, ipv4, tcp};
    match error {
        SliceError::Len(len) => describe_len(len),
        SliceError::Ip(ip::HeaderError::UnsupportedIpVersion { version_number }) => {
            format!("malformed: IP version {version_number}")
        }
        SliceError::Ip(ip::HeaderError::Ipv4HeaderLengthSmallerThanHeader { ihl })
        | SliceError::Ipv4(ipv4::HeaderError::HeaderLengthSmallerThanHeader { ihl }) => {
            format!("malformed: IPv4 header length {} bytes, under the minimum 20", usize::from(*ihl) * 4)
        }
        SliceError::Ipv4(ipv4::HeaderError::UnexpectedVersion { version_number }) => {
            format!("malformed: IP version {version_number} in an IPv4 frame")
        }
        SliceError::Tcp(tcp::HeaderError::DataOffsetTooSmall { data_offset }) => {
            format!(
                "malformed: TCP header length {} bytes, under the minimum 20",
                usize::from(*data_offset) * 4
            )
        }
        other => shorten(format!("malformed: {other}")),
    }
}

pub(super) fn describe_len(len: &etherparse::err::LenError) -> String {
    format!(
        "truncated {}: {} of {} bytes",
        len.layer,
        len.len,
        len.required_len.max(len.len.saturating_add(1))
    )
}

/// Keeps error text to one line of reasonable length, cut between words.
pub(super) fn shorten(text: String) -> String {
    const MAX: usize = 120;
    let line = text.lines().next().unwrap_or_default();
    let Some((limit, _)) = line.char_indices().nth(MAX) else { return line.to_owned() };
    let cut = line[..limit].rfind(' ').unwrap_or(limit);
    format!("{}...", line[..cut].trim_end_matches([',', ';', ':', '.']))
}
