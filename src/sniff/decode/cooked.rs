//! Linux "cooked" capture headers, which `tcpdump -i any` writes: version 1
//! (LINKTYPE_LINUX_SLL, 16 bytes) and version 2 (LINKTYPE_LINUX_SLL2, 20
//! bytes, tcpdump's default since 4.99). Read here rather than by
//! etherparse, which has no version 2 and refuses version 1 headers of
//! hardware types it does not list (loopback's among them): what decoding
//! needs is the protocol field, an EtherType whatever the hardware.

/// The header's fields and the payload after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Cooked<'a> {
    /// 1 or 2.
    pub version: u8,
    /// Linux's PACKET_HOST (0), _BROADCAST, _MULTICAST, _OTHERHOST, _OUTGOING (4).
    pub packet_type: u16,
    /// The interface's ARPHRD_* hardware type.
    pub hardware: u16,
    /// The interface's index (version 2 only).
    pub ifindex: Option<u32>,
    /// The link-layer source address (at most 8 bytes kept).
    pub address: &'a [u8],
    /// The payload's EtherType; below 0x0600, a Linux protocol number.
    pub protocol: u16,
    /// What follows the header.
    pub payload: &'a [u8],
}

impl Cooked<'_> {
    /// Whether the protocol field is an EtherType (not a Linux protocol number
    /// such as 802.2 LLC or CAN).
    pub fn is_ether_type(&self) -> bool {
        self.protocol >= 0x0600
    }

    /// Which way the frame went, in tcpdump's words.
    pub fn direction(&self) -> &'static str {
        match self.packet_type {
            0 => "In",
            1 => "B",
            2 => "M",
            3 => "P",
            4 => "Out",
            _ => "?",
        }
    }
}

/// Reads a cooked header of `version` 1 or 2 from the start of `frame`.
pub(super) fn parse(frame: &[u8], version: u8) -> Result<Cooked<'_>, String> {
    let len = if version == 1 { 16 } else { 20 };
    let Some(header) = frame.get(..len) else {
        return Err(format!("truncated Linux cooked v{version} header: {} of {len} bytes", frame.len()));
    };
    let u16_at = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
    let cooked = |packet_type, hardware, ifindex, address_at: usize, address_len: usize, protocol| Cooked {
        version,
        packet_type,
        hardware,
        ifindex,
        address: &header[address_at..address_at + address_len.min(8)],
        protocol,
        payload: &frame[len..],
    };
    Ok(if version == 1 {
        cooked(u16_at(0), u16_at(2), None, 6, usize::from(u16_at(4)), u16_at(14))
    } else {
        let ifindex = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        cooked(u16::from(header[10]), u16_at(8), Some(ifindex), 12, usize::from(header[11]), u16_at(0))
    })
}
