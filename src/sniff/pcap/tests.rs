use std::time::Duration;

use super::*;

fn packet(secs: u64, nanos: u32, data: &[u8]) -> Packet {
    Packet { time: Duration::new(secs, nanos), len: data.len() as u32 + 10, data: data.to_vec() }
}

fn write(precision: Precision, packets: &[Packet]) -> Vec<u8> {
    let mut writer = Writer::new(Vec::new(), LinkType::Ethernet, 65535, precision).unwrap();
    for p in packets {
        writer.write(p.frame()).unwrap();
    }
    writer.into_inner().unwrap()
}

fn read_all(bytes: &[u8]) -> Result<Vec<Record>, PcapError> {
    Reader::new(bytes)?.collect()
}

#[test]
fn a_written_file_reads_back_with_its_precision() {
    let packets = [packet(1_700_000_000, 123_456_789, b"first"), packet(1_700_000_001, 0, b"")];
    let micro = write(Precision::Micro, &packets);
    assert_eq!(&micro[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    assert_eq!(micro.len(), 24 + 16 + 5 + 16);
    let back = read_all(&micro).unwrap();
    assert_eq!(back[0].packet.time, Duration::new(1_700_000_000, 123_456_000));
    assert_eq!(back[0].packet.data, b"first");
    assert_eq!(back[0].packet.len, 15);
    assert_eq!(back[1].link, LinkType::Ethernet);

    let nano = write(Precision::Nano, &packets);
    let back = read_all(&nano).unwrap();
    assert_eq!(back.iter().map(|r| r.packet.clone()).collect::<Vec<_>>(), packets);
}

#[test]
fn a_big_endian_file_with_raw_ip() {
    #[rustfmt::skip]
    let file = [
        0xa1, 0xb2, 0xc3, 0xd4, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 101,
        0, 0, 0, 9, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 2, 0x45, 0x00,
    ];
    let back = read_all(&file).unwrap();
    assert_eq!(back[0].link, LinkType::RawIp);
    assert_eq!(back[0].packet, Packet { time: Duration::new(9, 5000), len: 2, data: vec![0x45, 0] });
}

#[test]
fn bad_files_are_named_errors_never_panics() {
    assert!(matches!(read_all(b"hello world, not a capture"), Err(PcapError::NotPcap { .. })));
    assert!(matches!(read_all(&[0xd4, 0xc3]), Err(PcapError::Truncated { .. })));
    let good = write(Precision::Micro, &[packet(1, 0, b"abcdef")]);
    for cut in 24 + 1..good.len() {
        let result = read_all(&good[..cut]);
        assert!(matches!(result, Err(PcapError::Truncated { .. })), "{cut}: {result:?}");
    }
    let mut huge = good.clone();
    huge[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(read_all(&huge), Err(PcapError::Corrupt { .. })));
    let mut other_link = good.clone();
    other_link[20] = 105; // 802.11
    assert!(matches!(read_all(&other_link), Err(PcapError::UnsupportedLinkType { code: 105 })));
}

/// A pcapng file as dumpcap lays it out: section header, an Ethernet
/// interface with nanosecond timestamps, an unknown block, one packet.
fn pcapng(interface_id: u32) -> Vec<u8> {
    let mut file = Vec::new();
    let mut block = |kind: u32, body: &[u8]| {
        let total = (12 + body.len()) as u32;
        file.extend_from_slice(&kind.to_le_bytes());
        file.extend_from_slice(&total.to_le_bytes());
        file.extend_from_slice(body);
        file.extend_from_slice(&total.to_le_bytes());
    };
    let mut section = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    section.extend_from_slice(&[1, 0, 0, 0]);
    section.extend_from_slice(&(-1i64).to_le_bytes());
    block(0x0a0d_0d0a, &section);
    let mut interface = vec![1, 0, 0, 0, 0, 0, 4, 0];
    interface.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
    block(1, &interface);
    block(0x0bad, &[1, 2, 3, 4]);
    let stamp: u64 = 1_700_000_000_123_456_789;
    let mut epb = interface_id.to_le_bytes().to_vec();
    epb.extend_from_slice(&((stamp >> 32) as u32).to_le_bytes());
    epb.extend_from_slice(&(stamp as u32).to_le_bytes());
    epb.extend_from_slice(&3u32.to_le_bytes());
    epb.extend_from_slice(&60u32.to_le_bytes());
    epb.extend_from_slice(&[0xaa, 0xbb, 0xcc, 0]);
    block(6, &epb);
    file
}

#[test]
fn pcapng_reads_interfaces_resolution_and_packets() {
    let back = read_all(&pcapng(0)).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].link, LinkType::Ethernet);
    assert_eq!(
        back[0].packet,
        Packet { time: Duration::new(1_700_000_000, 123_456_789), len: 60, data: vec![0xaa, 0xbb, 0xcc] }
    );
    let file = pcapng(0);
    // Cut at a block boundary the file is whole but holds no packet yet.
    for cut in 5..file.len() {
        let result = read_all(&file[..cut]);
        assert!(result.as_ref().map_or(true, Vec::is_empty), "{cut}: {result:?}");
    }
    let result = read_all(&pcapng(9));
    assert!(
        matches!(&result, Err(PcapError::Corrupt { reason }) if reason.contains("interface 9")),
        "{result:?}"
    );
}
