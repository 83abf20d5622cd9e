use super::*;

fn round_trip(repr: &Repr<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    repr.emit(0xdead_beef, &mut out);
    let packet = Packet::new_checked(&out).unwrap();
    assert_eq!(packet.session(), 0xdead_beef);
    assert_eq!(&Repr::parse(&packet).unwrap(), repr);
    out
}

#[test]
fn every_kind_round_trips() {
    round_trip(&Repr::Hello(Hello {
        protocol: Protocol::SelectiveRepeat,
        seq_bits: 16,
        window: 256,
        block: 1400,
        size: Some(50 << 20),
        name: "report.pdf",
        token: &[],
    }));
    round_trip(&Repr::Hello(Hello {
        protocol: Protocol::StopAndWait,
        seq_bits: 1,
        window: 1,
        block: 512,
        size: None,
        name: "",
        token: &[7; 32],
    }));
    round_trip(&Repr::HelloAck { window: 64, block: 1400, timeout_ms: 10_000 });
    round_trip(&Repr::Ping);
    round_trip(&Repr::Data { seq: 65_535, stamp: 3, payload: b"block" });
    let echo = Echo { seq: 8, stamp: 2, fresh: true };
    round_trip(&Repr::Ack { cumulative: 7, echo: Some(echo), sack: vec![(9, 12), (20, 21)] });
    let repeated = Echo { fresh: false, ..echo };
    round_trip(&Repr::Ack { cumulative: 7, echo: Some(repeated), sack: vec![] });
    round_trip(&Repr::Retry { token: b"0123456789abcdef" });
    round_trip(&Repr::Ack { cumulative: 7, echo: None, sack: vec![] });
    round_trip(&Repr::Fin { total_bytes: 10, total_blocks: 1, sha256: [7; 32] });
    round_trip(&Repr::FinAck { status: FinStatus::DigestMismatch, message: "digest differs" });
    round_trip(&Repr::Error { code: ErrorCode::Refused, message: "file exists" });
}

#[test]
fn the_header_is_laid_out_as_documented() {
    let bytes = round_trip(&Repr::Data { seq: 0x0102_0304, stamp: 2, payload: &[0xaa] });
    assert_eq!(&bytes[..12], &[1, 3, 0, 2, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]);
    assert_eq!(bytes.len(), HEADER_LEN + 1);
}

#[test]
fn every_flipped_bit_is_caught() {
    let mut bytes = Vec::new();
    Repr::Data { seq: 42, stamp: 1, payload: b"some content" }.emit(1, &mut bytes);
    for bit in 0..bytes.len() * 8 {
        let mut corrupt = bytes.clone();
        corrupt[bit / 8] ^= 1 << (bit % 8);
        assert!(Packet::new_checked(&corrupt).is_err(), "bit {bit} went unnoticed");
    }
}

#[test]
fn malformed_datagrams_are_rejected_without_panicking() {
    assert_eq!(Packet::new_checked(&[1, 3, 0]).unwrap_err(), PacketError::TooShort(3));
    let mut bytes = Vec::new();
    Repr::HelloAck { window: 1, block: 1, timeout_ms: 1 }.emit(1, &mut bytes);
    let mut other_version = bytes.clone();
    other_version[0] = 9;
    assert_eq!(Packet::new_checked(&other_version).unwrap_err(), PacketError::Version(9));
    // A body cut short, with a valid checksum over what is there.
    let mut short = bytes[..HEADER_LEN + 3].to_vec();
    Packet::seal(&mut short);
    let packet = Packet::new_checked(&short).unwrap();
    assert!(matches!(Repr::parse(&packet), Err(PacketError::TooShort(_))));
    // A name length pointing past the end.
    let mut hello = Vec::new();
    Repr::Hello(Hello {
        protocol: Protocol::GoBackN,
        seq_bits: 8,
        window: 8,
        block: 8,
        size: None,
        name: "ab",
        token: &[],
    })
    .emit(1, &mut hello);
    hello[HEADER_LEN + 16] = 200;
    Packet::seal(&mut hello);
    assert!(Repr::parse(&Packet::new_checked(&hello).unwrap()).is_err());
}

#[test]
fn messages_longer_than_any_sender_writes_are_refused() {
    // Found by the fuzzer: the parser took what the encoder would cut.
    let mut bytes = Vec::new();
    Repr::FinAck { status: FinStatus::Stored, message: "" }.emit(1, &mut bytes);
    bytes.extend_from_slice(&[b'x'; MAX_MESSAGE + 1]);
    Packet::seal(&mut bytes);
    let packet = Packet::new_checked(&bytes).unwrap();
    assert_eq!(Repr::parse(&packet), Err(PacketError::Malformed("message too long")));
}

#[test]
fn long_texts_are_cut_at_a_character_boundary() {
    let name = "é".repeat(200);
    let mut out = Vec::new();
    Repr::Hello(Hello {
        protocol: Protocol::GoBackN,
        seq_bits: 8,
        window: 8,
        block: 8,
        size: None,
        name: &name,
        token: &[],
    })
    .emit(1, &mut out);
    let packet = Packet::new_checked(&out).unwrap();
    let Repr::Hello(h) = Repr::parse(&packet).unwrap() else { panic!() };
    assert_eq!(h.name.len(), 254);
}

#[test]
fn tokens_are_length_checked() {
    let mut hello = Vec::new();
    let named = Hello {
        protocol: Protocol::GoBackN,
        seq_bits: 8,
        window: 8,
        block: 8,
        size: None,
        name: "ab",
        token: b"tok",
    };
    Repr::Hello(named).emit(1, &mut hello);
    // A token length past the end, and bytes after the token.
    let mut past = hello.clone();
    *past.iter_mut().rev().nth(3).unwrap() = 4;
    Packet::seal(&mut past);
    assert_eq!(Repr::parse(&Packet::new_checked(&past).unwrap()), Err(PacketError::Malformed("token")));
    let mut trailing = hello.clone();
    trailing.push(0);
    Packet::seal(&mut trailing);
    assert_eq!(Repr::parse(&Packet::new_checked(&trailing).unwrap()), Err(PacketError::Malformed("token")));
    let mut retry = Vec::new();
    Repr::Retry { token: &[1; MAX_TOKEN + 5] }.emit(1, &mut retry);
    let Ok(Repr::Retry { token }) = Repr::parse(&Packet::new_checked(&retry).unwrap()) else { panic!() };
    assert_eq!(token.len(), MAX_TOKEN, "cut to the longest token");
}
