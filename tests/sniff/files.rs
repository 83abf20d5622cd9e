//! `sniff -r` on files made here: tcpdump's habits, checks before writing,
//! `-i any` captures, timestamps no date can hold, filters too deep.

#[allow(unused_imports)]
use super::*;

/// A classic pcap file (Ethernet, microseconds) holding `frames`.
fn pcap_with(frames: &[&[u8]]) -> Vec<u8> {
    let mut file = [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1].map(u32::to_le_bytes).concat();
    for frame in frames {
        let len = (frame.len() as u32).to_le_bytes();
        file.extend([[0; 4], [0; 4], len, len].concat());
        file.extend_from_slice(frame);
    }
    file
}

#[test]
fn tcpdump_habits_and_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.pcap");
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2([0; 6], [0; 6])
        .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
        .udp(5000, 9)
        .write(&mut frame, b"x")
        .unwrap();
    std::fs::write(&one, pcap_with(&[&frame])).unwrap();
    // -s 0 is the most, as in tcpdump; one packet is "1 packet".
    let out = run(&["sniff", "-r", one.to_str().unwrap(), "-s", "0"], b"");
    assert!(out.ok().contains("UDP, length 1"));
    assert!(out.stderr.contains("1 packet read from"), "{}", out.stderr);
    // Options that only shape printed packets say why nothing prints with -w.
    let out = run(&["sniff", "-r", one.to_str().unwrap(), "-x", "-w", "/dev/null"], b"");
    assert_eq!(out.ok(), "");
    assert!(out.stderr.contains("-v, -x and -A need --print"), "{}", out.stderr);
    // Words are compared with the help's line wrapping undone.
    let help = run(&["sniff", "--help"], b"").ok().split_whitespace().collect::<Vec<_>>().join(" ");
    for words in ["as tcpdump prints them", "-XX)", "`socketeer -v sniff` logs more", "add `-w /dev/null`"] {
        assert!(help.contains(words), "{words}: {help}");
    }
}

#[test]
fn files_are_checked_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    let header = pcap_with(&[]);
    std::fs::write(&input, &header).unwrap();
    let link = dir.path().join("link.pcap");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    for same in [&input, &link] {
        let out = run(&["sniff", "-r", input.to_str().unwrap(), "-w", same.to_str().unwrap()], b"");
        assert_eq!(out.code(), Some(2), "{out:?}");
        assert!(out.stderr.contains("would overwrite the file -r reads"), "{}", out.stderr);
        assert_eq!(std::fs::read(&input).unwrap(), header, "the input survives");
    }

    let missing = dir.path().join("nodir").join("out.pcap");
    let out = run(&["sniff", "-r", input.to_str().unwrap(), "-w", missing.to_str().unwrap()], b"");
    assert_eq!(out.code(), Some(1), "a runtime error, not a usage error: {out:?}");
    assert!(out.stderr.contains("No such file or directory"), "{}", out.stderr);

    // Failing before the first write leaves no empty file behind.
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"not a capture").unwrap();
    let out_file = dir.path().join("out.pcap");
    for args in [&["-r", junk.to_str().unwrap()][..], &["-i", "nosuch0"]] {
        let out = run(&[&["sniff", "-w", out_file.to_str().unwrap()][..], args].concat(), b"");
        assert_eq!(out.code(), Some(1), "{out:?}");
        assert!(!out_file.exists(), "{args:?} left {}", out_file.display());
    }

    let out = run(&["sniff", "-r", dir.path().to_str().unwrap()], b"");
    assert_eq!(out.code(), Some(1), "{out:?}");
    let expected = format!("error: reading {}: Is a directory\n", dir.path().display());
    assert_eq!(out.stderr, expected);
}

#[test]
fn a_tcpdump_any_capture_reads_back() {
    require("tcpdump", "tcpdump");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("any.pcap");
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    // `-i any` writes Linux cooked frames (v2 since tcpdump 4.99, v1 before).
    let mut child = Command::new("tcpdump")
        .args(["-i", "any", "-n", "-U", "-c", "4", "-w"])
        .arg(&path)
        .args(["udp", "dst", "port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tcpdump captured fewer than 4 frames");
        }
        receiver.send_to(b"cooked", ("127.0.0.1", port)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let header = std::fs::read(&path).unwrap();
    let link = u32::from_le_bytes(header[20..24].try_into().unwrap());
    assert!(link == 276 || link == 113, "link type {link}");
    let filter = format!("udp dst port {port} and ip host 127.0.0.1");
    let read = run(&["sniff", "-r", path.to_str().unwrap(), "--json", "-A", "-v", &filter], b"");
    let packets: Vec<Value> = read.json_lines().into_iter().filter(|v| v["type"] == "packet").collect();
    assert_eq!(packets.len(), 4, "{read:?}");
    assert!(packets.iter().all(|p| p["dport"] == port && p["text"] == "cooked" && p["problem"].is_null()));
    let details = packets[0]["details"][0].as_str().unwrap();
    assert!(details.starts_with("cooked v") && details.contains("hardware type 772"), "{details}");
}

/// A pcapng file of one Ethernet frame (IPv4, UDP 1234 > 53) whose
/// timestamp's high 32 bits are `ts_high` (microseconds since 1970).
fn pcapng_at(ts_high: u32) -> Vec<u8> {
    let block = |kind: u32, body: &[u8]| {
        let len = (12 + body.len()) as u32;
        [&kind.to_le_bytes()[..], &len.to_le_bytes(), body, &len.to_le_bytes()].concat()
    };
    let section =
        [&0x1A2B_3C4Du32.to_le_bytes()[..], &1u16.to_le_bytes(), &0u16.to_le_bytes(), &(-1i64).to_le_bytes()]
            .concat();
    let interface = [&1u16.to_le_bytes()[..], &0u16.to_le_bytes(), &65535u32.to_le_bytes()].concat();
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
    frame.extend_from_slice(&[0x04, 0xd2, 0, 53, 0, 8, 0, 0]);
    let len = frame.len() as u32;
    frame.resize(frame.len().next_multiple_of(4), 0);
    let packet = [
        &0u32.to_le_bytes()[..],
        &ts_high.to_le_bytes(),
        &0u32.to_le_bytes(),
        &len.to_le_bytes(),
        &len.to_le_bytes(),
        &frame,
    ]
    .concat();
    [block(0x0A0D_0D0A, &section), block(1, &interface), block(6, &packet)].concat()
}

/// Issue 18: a timestamp past what a calendar date can hold panicked
/// `sniff -r` ('DateTime + TimeDelta overflowed'); tcpdump prints
/// `[Error converting time]` and goes on, and so must we.
#[test]
fn a_timestamp_no_date_can_hold_is_shown_as_such() {
    let dir = tempfile::tempdir().unwrap();
    for ts_high in [0x7FFF_FFFF, 0x8000_0000, u32::MAX] {
        let file = dir.path().join(format!("{ts_high}.pcapng"));
        std::fs::write(&file, pcapng_at(ts_high)).unwrap();
        let out = run(&["sniff", "-r", file.to_str().unwrap()], b"");
        assert!(
            out.ok().starts_with("[Error converting time] IP 127.0.0.1.1234 > 127.0.0.1.53: domain"),
            "{out:#?}"
        );
        let json = run(&["sniff", "-r", file.to_str().unwrap(), "--json"], b"");
        assert!(json.ok().contains("\"time\":null"), "{json:#?}");
    }
    // A timestamp within range still prints as a time of day.
    let file = dir.path().join("fine.pcapng");
    std::fs::write(&file, pcapng_at(0x0006_0000)).unwrap();
    let out = run(&["sniff", "-r", file.to_str().unwrap()], b"");
    assert!(out.ok().contains(".53: domain") && !out.stdout.contains("Error"), "{out:#?}");
}

/// Issue 14: a filter nested 100,000 deep overflowed the stack; now it is a
/// usage error that says what the limit is.
#[test]
fn a_filter_too_deep_is_refused_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.pcapng");
    std::fs::write(&file, pcapng_at(0x0006_0000)).unwrap();
    let mut args = vec!["sniff", "-r", file.to_str().unwrap()];
    args.extend(std::iter::repeat_n("(", 100_000));
    args.push("udp");
    args.extend(std::iter::repeat_n(")", 100_000));
    let out = run(&args, b"");
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("at most 100 deep"), "{}", out.stderr);
}
