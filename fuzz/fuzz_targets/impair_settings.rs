//! The impairment proxy's control socket takes `NAME=VALUE` lines from
//! anyone who can connect: no line may panic, and a rejected line must leave
//! the settings exactly as they were.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketeer::impair::ImpairmentConfig;
use socketeer::impair::options::{apply, parse_pairs};

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else { return };
    let words: Vec<&str> = line.split_whitespace().collect();
    let (mut up, mut down) = (ImpairmentConfig::default(), ImpairmentConfig::default());
    let Ok(pairs) = parse_pairs(&words) else { return };
    if apply(&mut up, &mut down, &pairs).is_err() {
        assert_eq!((up, down), (ImpairmentConfig::default(), ImpairmentConfig::default()));
    }
    let _ = (up.to_string(), down.to_string());
});
