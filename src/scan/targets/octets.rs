//! One octet of an IPv4 octet list (`10.0.0.2,8`, `127.0-1.*.1-5`): the
//! set of values it may take.

use std::fmt;
use std::str::FromStr;

/// The values one octet of an octet list may take (a 256-bit set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OctetSet([u64; 4]);

impl OctetSet {
    fn insert(&mut self, value: u8) {
        self.0[usize::from(value / 64)] |= 1 << (value % 64);
    }

    /// True when `value` is in the set.
    pub fn contains(&self, value: u8) -> bool {
        self.0[usize::from(value / 64)] & (1 << (value % 64)) != 0
    }

    /// The smallest value above `after` (or from 0 with `None`).
    pub(super) fn next(&self, after: Option<u8>) -> Option<u8> {
        let start = after.map_or(0, |v| u16::from(v) + 1);
        (start..=255).map(|v| v as u8).find(|&v| self.contains(v))
    }

    /// How many values it holds.
    pub fn len(&self) -> u64 {
        self.0.iter().map(|word| u64::from(word.count_ones())).sum()
    }

    /// Never true for a parsed set.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its one value, when it holds exactly one.
    pub(super) fn only(&self) -> Option<u8> {
        (self.len() == 1).then(|| self.next(None)).flatten()
    }
}

impl FromStr for OctetSet {
    type Err = ();

    /// `N`, `N-M`, `*`, or a comma list of those (`1,5-9`).
    fn from_str(part: &str) -> Result<Self, ()> {
        let number = |s: &str| s.parse::<u8>().ok().filter(|_| s.bytes().all(|b| b.is_ascii_digit()));
        let mut set = OctetSet::default();
        for item in part.split(',') {
            let (lo, hi) = match item.split_once('-') {
                _ if item == "*" => (0, 255),
                Some((lo, hi)) => (number(lo).ok_or(())?, number(hi).ok_or(())?),
                None => {
                    let n = number(item).ok_or(())?;
                    (n, n)
                }
            };
            if lo > hi {
                return Err(());
            }
            (lo..=hi).for_each(|v| set.insert(v));
        }
        Ok(set)
    }
}

impl fmt::Display for OctetSet {
    /// Runs of values as `N-M`, joined by commas; every value as `*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len() == 256 {
            return f.write_str("*");
        }
        let mut runs = Vec::new();
        let mut at = self.next(None);
        while let Some(lo) = at {
            let mut hi = lo;
            while hi < 255 && self.contains(hi + 1) {
                hi += 1;
            }
            runs.push(if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") });
            at = self.next(Some(hi));
        }
        f.write_str(&runs.join(","))
    }
}
