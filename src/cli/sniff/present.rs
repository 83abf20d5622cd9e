//! What tcpdump's line carries besides the packet: the timestamp in the
//! form `-t`... asks for, and TCP numbers relative to each connection's
//! first, which is tcpdump's default (`-S` turns it off).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use socketeer::sniff::decode::{Summary, TcpFlags};

/// How timestamps are written: tcpdump's `-t` count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TimeFormat {
    /// `20:49:34.987387`, local time (no -t).
    Clock,
    /// None (-t).
    Hidden,
    /// `1764968974.987387` (-tt).
    Epoch,
    /// `00:00:00.000049` since the previous packet (-ttt).
    SincePrevious,
    /// `2026-12-06 20:49:34.987387` (-tttt).
    Date,
    /// `00:00:01.204512` since the first packet (-ttttt).
    SinceFirst,
}

impl TimeFormat {
    pub(super) fn from_count(count: u8) -> Self {
        match count {
            0 => TimeFormat::Clock,
            1 => TimeFormat::Hidden,
            2 => TimeFormat::Epoch,
            3 => TimeFormat::SincePrevious,
            4 => TimeFormat::Date,
            _ => TimeFormat::SinceFirst,
        }
    }
}

/// The state the line's extras keep from packet to packet.
#[derive(Debug)]
pub(super) struct Presenter {
    time: TimeFormat,
    first: Option<Duration>,
    previous: Option<Duration>,
    /// `None` with -S.
    conversations: Option<HashMap<(Endpoint, Endpoint), (u32, u32)>>,
}

type Endpoint = (IpAddr, u16);

/// A clock-style duration: `00:00:01.204512`.
fn elapsed(d: Duration) -> String {
    let secs = d.as_secs();
    format!("{:02}:{:02}:{:02}.{:06}", secs / 3600, secs / 60 % 60, secs % 60, d.subsec_micros())
}

impl Presenter {
    pub(super) fn new(time: TimeFormat, absolute: bool) -> Self {
        Presenter { time, first: None, previous: None, conversations: (!absolute).then(HashMap::new) }
    }

    /// The timestamp to print, `None` for none; `[Error converting time]`
    /// (tcpdump's words) when no calendar date can hold it.
    pub(super) fn stamp(&mut self, time: Duration) -> Option<String> {
        let first = *self.first.get_or_insert(time);
        let previous = self.previous.replace(time).unwrap_or(time);
        let date = || {
            chrono::TimeDelta::from_std(time)
                .ok()
                .and_then(|since| DateTime::<Utc>::UNIX_EPOCH.checked_add_signed(since))
                .map(|t| t.with_timezone(&Local))
        };
        let unconvertible = || "[Error converting time]".to_owned();
        Some(match self.time {
            TimeFormat::Hidden => return None,
            TimeFormat::Clock => date().map_or_else(unconvertible, |t| t.format("%H:%M:%S%.6f").to_string()),
            TimeFormat::Date => {
                date().map_or_else(unconvertible, |t| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
            }
            TimeFormat::Epoch => format!("{}.{:06}", time.as_secs(), time.subsec_micros()),
            // tcpdump starts these with a space.
            TimeFormat::SincePrevious => format!(" {}", elapsed(time.saturating_sub(previous))),
            TimeFormat::SinceFirst => format!(" {}", elapsed(time.saturating_sub(first))),
        })
    }

    /// The summary with its TCP numbers made relative as tcpdump makes
    /// them: a segment carrying an ACK starts a conversation when it is the
    /// first seen between its two ends, or a SYN, and is shown absolute;
    /// later ones count from that segment's numbers, each direction from its
    /// own start. `None` when nothing changes.
    pub(super) fn relative(&mut self, summary: &Summary) -> Option<Summary> {
        let conversations = self.conversations.as_mut()?;
        let tcp = summary.tcp?;
        if !tcp.flags.has(TcpFlags::ACK) {
            return None;
        }
        let (src, dst) = ((summary.src?, summary.sport?), (summary.dst?, summary.dport?));
        let reverse = src > dst;
        let key = if reverse { (dst, src) } else { (src, dst) };
        let known = conversations.get(&key).filter(|_| !tcp.flags.has(TcpFlags::SYN));
        let Some(&(forward, backward)) = known else {
            // (start of the low end's numbers, start of the high end's)
            let starts =
                if reverse { (tcp.ack.wrapping_sub(1), tcp.seq) } else { (tcp.seq, tcp.ack.wrapping_sub(1)) };
            conversations.insert(key, starts);
            return None;
        };
        let (own, other) = if reverse { (backward, forward) } else { (forward, backward) };
        let mut relative = summary.clone();
        if let Some(numbers) = &mut relative.tcp {
            numbers.seq = tcp.seq.wrapping_sub(own);
            numbers.ack = tcp.ack.wrapping_sub(other);
        }
        Some(relative)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socketeer::sniff::decode::Tcp;

    fn segment(from: u16, to: u16, flags: u8, seq: u32, ack: u32) -> Summary {
        Summary {
            src: Some("127.0.0.1".parse().unwrap()),
            dst: Some("127.0.0.1".parse().unwrap()),
            sport: Some(from),
            dport: Some(to),
            tcp: Some(Tcp { flags: TcpFlags(flags), seq, ack, win: 1, urg: 0 }),
            ..Summary::default()
        }
    }

    #[test]
    fn numbers_count_from_each_direction_s_first() {
        let mut presenter = Presenter::new(TimeFormat::Clock, false);
        let (syn, ack) = (TcpFlags::SYN, TcpFlags::ACK);
        assert_eq!(presenter.relative(&segment(40000, 7, syn, 1000, 0)), None, "a SYN shows absolute");
        assert_eq!(
            presenter.relative(&segment(7, 40000, syn | ack, 5000, 1001)),
            None,
            "so does the SYN-ACK"
        );
        let third = presenter.relative(&segment(40000, 7, ack, 1001, 5001)).unwrap().tcp.unwrap();
        assert_eq!((third.seq, third.ack), (1, 1));
        let reply = presenter.relative(&segment(7, 40000, ack, 5001, 1007)).unwrap().tcp.unwrap();
        assert_eq!((reply.seq, reply.ack), (1, 7));
        let mut absolute = Presenter::new(TimeFormat::Clock, true);
        assert_eq!(absolute.relative(&segment(40000, 7, ack, 1001, 5001)), None);
    }

    #[test]
    fn timestamps_in_each_form() {
        let mut presenter = Presenter::new(TimeFormat::SincePrevious, true);
        assert_eq!(presenter.stamp(Duration::from_millis(1500)).as_deref(), Some(" 00:00:00.000000"));
        assert_eq!(presenter.stamp(Duration::from_micros(3_501_234)).as_deref(), Some(" 00:00:02.001234"));
        let mut epoch = Presenter::new(TimeFormat::Epoch, true);
        assert_eq!(epoch.stamp(Duration::new(5, 42_000)).as_deref(), Some("5.000042"));
        assert_eq!(Presenter::new(TimeFormat::Hidden, true).stamp(Duration::ZERO), None);
    }
}
