//! The sniffer's decoders of captured bytes: frames of each link type (the
//! first byte picks it) and capture files. None may panic, and whatever a
//! frame decodes to must print.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketeer::sniff::LinkType;
use socketeer::sniff::decode::{decode, details};
use socketeer::sniff::pcap::Reader;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else { return };
    let link = match selector % 4 {
        0 => LinkType::Ethernet,
        1 => LinkType::RawIp,
        2 => LinkType::LinuxSll,
        _ => LinkType::LinuxSll2,
    };
    let summary = decode(link, frame);
    let _ = summary.to_string();
    assert!(summary.payload(frame).len() <= frame.len());
    let _ = details(link, frame);
    if let Ok(reader) = Reader::new(data) {
        for record in reader.take(64) {
            let Ok(record) = record else { break };
            let _ = decode(record.link, &record.packet.data).to_string();
        }
    }
});
