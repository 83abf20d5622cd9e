use super::*;

#[test]
fn the_window_granted_keeps_memory_bounded() {
    let limits = ReceiverLimits {
        max_window: 1 << 15,
        max_block: u16::MAX,
        peer_timeout: Duration::from_secs(1),
        progress_timeout: Duration::from_secs(1),
        linger: Duration::from_secs(1),
    };
    let hello = |window, block| Hello {
        protocol: Protocol::SelectiveRepeat,
        seq_bits: 16,
        window,
        block,
        size: None,
        name: "x",
        token: &[],
    };
    assert_eq!(granted_window(&hello(256, 1400), limits), 256);
    let greedy = granted_window(&hello(32_768, 65_000), limits);
    assert_eq!(greedy, (MAX_SESSION_BUFFER / 65_000) as u32);
    let narrow = ReceiverLimits { max_window: 8, ..limits };
    assert_eq!(granted_window(&hello(256, 1400), narrow), 8);
}
