//! The scanner's parsers of user and network input: port specs, target
//! tokens and lists, and the TCP answers a SYN scan reads off a raw socket.
//! None may panic; whatever parses must survive its own printing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketeer::scan::packet;
use socketeer::scan::ports::PortSpec;
use socketeer::scan::targets::{self, Hosts, TargetSpec};

fuzz_target!(|data: &[u8]| {
    let _ = packet::parse_ipv4(data);
    let _ = packet::parse_tcp(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(spec) = text.parse::<PortSpec>() {
        assert!(spec.tcp.iter().all(|p| p != 0));
    }
    if let Ok(target) = text.parse::<TargetSpec>() {
        assert_eq!(target.to_string().parse::<TargetSpec>(), Ok(target.clone()));
        // Expanding is lazy: the first few hosts of any block come at once.
        let specs = [target];
        assert!(Hosts::new(&specs, &[]).take(16).count() >= 1);
    }
    if let Ok(list) = targets::parse_list(text) {
        let _ = Hosts::new(&list, &[]).take(16).count();
    }
});
