//! The transfer protocol's datagrams come from the network: decoding any
//! bytes must never panic, and whatever decodes must encode to bytes that
//! decode to the same thing. Half the inputs get a valid checksum, so the
//! body parsers are reached, not just the CRC check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketeer::transfer::packet::{Packet, Repr};

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    if data.first().is_some_and(|b| b & 1 == 1) {
        Packet::seal(&mut bytes);
    }
    let Ok(packet) = Packet::new_checked(&bytes) else { return };
    let Ok(repr) = Repr::parse(&packet) else { return };
    let mut again = Vec::new();
    repr.emit(packet.session(), &mut again);
    let reparsed = Packet::new_checked(&again).expect("our own encoding checks");
    assert_eq!(Repr::parse(&reparsed).expect("our own encoding parses"), repr);
});
