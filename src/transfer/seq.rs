//! Sequence numbers: engines number blocks 0, 1, 2, ... without end (u64),
//! and only the low `bits` bits travel, so numbers on the wire wrap around
//! after 2^bits blocks. A receiver recovers the full number from the lowest
//! number it could still see, which is unambiguous exactly when the window
//! obeys its protocol's limit (Go-Back-N: W <= 2^bits - 1; selective
//! repeat: W <= 2^(bits-1)).

/// A space of `bits`-bit sequence numbers, 1 to 32 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqSpace {
    bits: u8,
}

impl SeqSpace {
    /// The space of `bits`-bit numbers; `None` outside 1..=32.
    pub fn new(bits: u8) -> Option<Self> {
        (1..=32).contains(&bits).then_some(SeqSpace { bits })
    }

    /// Bits per number.
    pub fn bits(self) -> u8 {
        self.bits
    }

    /// How many distinct numbers there are (2^bits).
    pub fn size(self) -> u64 {
        1 << self.bits
    }

    /// The number that travels for block `index`.
    pub fn wire(self, index: u64) -> u32 {
        (index & (self.size() - 1)) as u32
    }

    /// The block index in `[lowest, lowest + 2^bits)` whose number is `wire`.
    pub fn index(self, wire: u32, lowest: u64) -> u64 {
        let offset = u64::from(wire).wrapping_sub(lowest) & (self.size() - 1);
        lowest + offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_wrap_and_unwrap() {
        let space = SeqSpace::new(3).unwrap();
        assert_eq!(space.size(), 8);
        assert_eq!((0..10).map(|i| space.wire(i)).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]);
        // With 14 the lowest still possible, wire 1 is block 17 and wire 6 is block 14.
        assert_eq!(space.index(1, 14), 17);
        assert_eq!(space.index(6, 14), 14);
        assert_eq!(space.index(5, 14), 21);
        for lowest in [0u64, 5, 1 << 40] {
            for index in lowest..lowest + 8 {
                assert_eq!(space.index(space.wire(index), lowest), index);
            }
        }
    }

    #[test]
    fn thirty_two_bits_is_the_whole_field() {
        let space = SeqSpace::new(32).unwrap();
        assert_eq!(space.wire(u64::from(u32::MAX) + 3), 2);
        assert_eq!(space.index(2, u64::from(u32::MAX)), u64::from(u32::MAX) + 3);
        assert!(SeqSpace::new(0).is_none() && SeqSpace::new(33).is_none());
    }
}
