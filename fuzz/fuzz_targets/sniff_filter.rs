//! The sniffer's filter parser, its BPF compiler and the BPF machine: no
//! input may panic; whatever parses prints in a form that parses back to
//! the same filter, compiles for every link type (or says why not) within
//! the kernel's limits, and runs on the input's own bytes as a frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketeer::sniff::LinkType;
use socketeer::sniff::filter::{Filter, compile};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(filter) = text.parse::<Filter>() else { return };
    assert_eq!(filter.to_string().parse::<Filter>().as_ref(), Ok(&filter), "{text}");
    for link in [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::RawIp, LinkType::Null] {
        if let Ok(program) = compile(&filter, link, 65535) {
            assert!(!program.instructions().is_empty() && program.instructions().len() <= 4096);
            let _ = program.matches(data, data.len() as u32);
        }
    }
});
