//! Who gets a session: the address check (a stateless token, as QUIC's
//! Retry) and the caps, kept apart from the session table so the rules
//! read in one place.
//!
//! A HELLO costs the receiver a session (a file, buffers, a slot) only once
//! its sender has shown that it receives at its address: the first HELLO is
//! answered with a RETRY carrying a token that only this receiver can make
//! (a hash of a secret, the sender's address and session id, and a coarse
//! clock), and only a HELLO repeating a fresh token is considered. Forged
//! source addresses never see the token, so they cost one small reply each
//! and nothing is kept.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How long a token stays valid: one to two periods.
pub const TOKEN_PERIOD: Duration = Duration::from_secs(16);

/// Bytes of a token: the period (4) and the start of the hash (16).
const TOKEN_LEN: usize = 20;

/// Makes and checks RETRY tokens. Pure: the secret and the clock are passed in.
#[derive(Clone)]
pub struct Tokens {
    secret: [u8; 32],
    epoch: Instant,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

impl Tokens {
    /// Tokens keyed by `secret` (random, made once per receiver), with
    /// periods counted from `epoch`.
    pub fn new(secret: [u8; 32], epoch: Instant) -> Self {
        Tokens { secret, epoch }
    }

    fn period(&self, now: Instant) -> u32 {
        let since = now.saturating_duration_since(self.epoch).as_secs() / TOKEN_PERIOD.as_secs();
        u32::try_from(since).unwrap_or(u32::MAX)
    }

    fn mac(&self, period: u32, peer: SocketAddr, session: u32) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(self.secret);
        hash.update(period.to_be_bytes());
        match peer.ip() {
            IpAddr::V4(ip) => hash.update(ip.octets()),
            IpAddr::V6(ip) => hash.update(ip.octets()),
        }
        hash.update(peer.port().to_be_bytes());
        hash.update(session.to_be_bytes());
        hash.finalize().into()
    }

    /// The token for `peer`'s session `session` at `now`.
    pub fn make(&self, now: Instant, peer: SocketAddr, session: u32) -> Vec<u8> {
        let period = self.period(now);
        let mut token = period.to_be_bytes().to_vec();
        token.extend_from_slice(&self.mac(period, peer, session)[..TOKEN_LEN - 4]);
        token
    }

    /// True when `token` was made for this peer and session, this period or the last.
    pub fn check(&self, now: Instant, peer: SocketAddr, session: u32, token: &[u8]) -> bool {
        let Some((period, mac)) = token.split_first_chunk::<4>() else { return false };
        let period = u32::from_be_bytes(*period);
        let current = self.period(now);
        let fresh = period == current || period.checked_add(1) == Some(current);
        fresh && token.len() == TOKEN_LEN && self.mac(period, peer, session)[..TOKEN_LEN - 4] == *mac
    }
}

/// The caps on sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// Sessions at once, finished ones lingering included.
    pub max_sessions: usize,
    /// Sessions at once from one IP address.
    pub max_per_source: usize,
}

/// A session as the caps see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seat {
    /// Where its sender is.
    pub source: IpAddr,
    /// Finished: it only lingers to answer a repeated FIN.
    pub lingering: bool,
    /// Since when it has delivered nothing (its start, or its last block in order).
    pub idle_since: Instant,
}

/// What to do with a new session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict<K> {
    /// There is room.
    Admit,
    /// There is room once this session goes.
    Evict(K),
    /// No room, and why.
    Refuse(&'static str),
}

/// Sessions idle this long may give their place to a new one when the
/// receiver is full: a flood of sessions that never send anything cannot
/// hold out a sender that does.
pub const EVICTABLE_AFTER: Duration = Duration::from_secs(1);

/// Decides whether a new session from `source` fits among `seats` at `now`:
/// within the caps, or by evicting (first a lingering session, then the
/// longest idle one, of the same source when its own cap is what is full).
pub fn admit<K: Copy>(
    caps: Caps,
    now: Instant,
    source: IpAddr,
    seats: impl Iterator<Item = (K, Seat)> + Clone,
) -> Verdict<K> {
    let from_source = seats.clone().filter(|(_, s)| s.source == source);
    if from_source.clone().count() >= caps.max_per_source {
        return match evictable(now, from_source) {
            Some(key) => Verdict::Evict(key),
            None => Verdict::Refuse("too many transfers from your address at once; try again later"),
        };
    }
    if seats.clone().count() >= caps.max_sessions {
        return match evictable(now, seats) {
            Some(key) => Verdict::Evict(key),
            None => Verdict::Refuse("the receiver is busy; try again later"),
        };
    }
    Verdict::Admit
}

/// The session that gives way: the longest lingering one, else the longest
/// idle one if it has been idle long enough.
fn evictable<K>(now: Instant, seats: impl Iterator<Item = (K, Seat)>) -> Option<K> {
    let (key, seat) = seats.min_by_key(|(_, s)| (!s.lingering, s.idle_since))?;
    let idle = now.saturating_duration_since(seat.idle_since) >= EVICTABLE_AFTER;
    (seat.lingering || idle).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_bound_to_its_peer_session_and_time() {
        let start = Instant::now();
        let tokens = Tokens::new([9; 32], start);
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let token = tokens.make(start, peer, 7);
        assert!(tokens.check(start, peer, 7, &token));
        assert!(tokens.check(start + TOKEN_PERIOD, peer, 7, &token), "valid through the next period");
        assert!(!tokens.check(start + TOKEN_PERIOD * 2, peer, 7, &token), "expired");
        assert!(!tokens.check(start, "127.0.0.1:4001".parse().unwrap(), 7, &token), "another port");
        assert!(!tokens.check(start, peer, 8, &token), "another session");
        assert!(!Tokens::new([8; 32], start).check(start, peer, 7, &token), "another receiver");
        assert!(!tokens.check(start, peer, 7, &token[..10]));
        assert!(!tokens.check(start, peer, 7, b""));
    }

    fn seat(source: &str, lingering: bool, idle_since: Instant) -> Seat {
        Seat { source: source.parse().unwrap(), lingering, idle_since }
    }

    #[test]
    fn the_caps_evict_lingering_then_idle_sessions_and_refuse_busy_ones() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(5);
        let caps = Caps { max_sessions: 3, max_per_source: 2 };
        let busy = now; // delivered a block just now
        let seats = [
            (1, seat("10.0.0.1", false, busy)),
            (2, seat("10.0.0.1", false, t0)),
            (3, seat("10.0.0.2", true, busy)),
        ];
        let admit_from = |source: &str, seats: &[(i32, Seat)]| {
            admit(caps, now, source.parse().unwrap(), seats.iter().copied())
        };
        // Its own cap is full: its idle session goes, never another source's.
        assert_eq!(admit_from("10.0.0.1", &seats), Verdict::Evict(2));
        // The receiver is full: the lingering session goes first.
        assert_eq!(admit_from("10.0.0.3", &seats), Verdict::Evict(3));
        let all_busy = [(1, seat("10.0.0.1", false, busy)), (2, seat("10.0.0.1", false, busy))];
        assert!(
            matches!(admit_from("10.0.0.1", &all_busy), Verdict::Refuse(why) if why.contains("your address"))
        );
        assert_eq!(admit_from("10.0.0.2", &all_busy), Verdict::Admit);
        let full = [
            (1, seat("10.0.0.1", false, busy)),
            (2, seat("10.0.0.2", false, busy)),
            (3, seat("10.0.0.3", false, busy)),
        ];
        assert!(matches!(admit_from("10.0.0.4", &full), Verdict::Refuse(why) if why.contains("busy")));
    }
}
