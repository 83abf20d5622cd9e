//! The sniffer's filter parser and its BPF compiler: no input may panic;
//! whatever parses prints in a form that parses back to the same filter, and
//! compiles (or is left to userspace) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketeer::sniff::LinkType;
use socketeer::sniff::filter::{Filter, bpf};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(filter) = text.parse::<Filter>() else { return };
    assert_eq!(filter.to_string().parse::<Filter>().as_ref(), Ok(&filter), "{text}");
    if let Some(program) = bpf::compile(&filter, LinkType::Ethernet, 65535) {
        assert!(!program.is_empty() && program.len() <= 4096);
    }
});
