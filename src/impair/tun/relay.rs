//! The TUN relay: one loop owns both devices and moves every packet from
//! one to the other through a [`Link`](crate::impair::Link) of its
//! direction.

use std::io;
use std::sync::mpsc;
use std::time::Instant;

use tracing::{debug, warn};

use super::TunStats;
use super::device::TunDevice;
use crate::impair::running::{Control, Links};
use crate::poll::{self, Poller, Waker};
use std::os::fd::AsFd;

/// Packets read from one device per wake-up before the loop looks at the
/// other again: amortises the wait under load without starving either side.
const BATCH: usize = 64;

/// The poller's tokens.
const WAKER: u64 = 0;
const FIRST: u64 = 1;
const SECOND: u64 = 2;

/// The largest packet a TUN device hands over (its MTU is at most 65535).
const MAX_PACKET: usize = 65_535;

/// The loop and everything it owns: `ends[0]` is the first end's device,
/// whose outgoing packets take the `up` link to the second end.
pub(super) struct Relay {
    ends: [TunDevice; 2],
    links: Links<()>,
    stats: TunStats,
    realtime: bool,
}

impl Relay {
    pub(super) fn new(ends: [TunDevice; 2], links: Links<()>, realtime: bool) -> Self {
        Relay { ends, links, stats: TunStats::default(), realtime }
    }

    pub(super) fn run(
        mut self,
        waker: &Waker,
        inbox: mpsc::Receiver<Control<TunStats>>,
    ) -> io::Result<TunStats> {
        let mut poller = Poller::new()?;
        poller.add(waker.as_fd(), WAKER)?;
        poller.add(self.ends[0].as_fd(), FIRST)?;
        poller.add(self.ends[1].as_fd(), SECOND)?;
        poll::tighten_timer_slack();
        if self.realtime
            && let Err(e) = poll::make_realtime()
        {
            warn!(error = %e, "cannot run in real time (needs root or CAP_SYS_NICE); delays will be less precise under load");
        }
        let mut buf = vec![0u8; MAX_PACKET];
        let mut ready = Vec::new();
        while !waker.is_stopped() {
            let deadline =
                [self.links.up.poll_timeout(), self.links.down.poll_timeout()].into_iter().flatten().min();
            ready.clear();
            ready.extend_from_slice(poller.wait(deadline)?);
            for &token in &ready {
                match token {
                    WAKER => {
                        waker.clear();
                        let stats = &self.stats;
                        self.links.answer(&inbox, |links| snapshot(links, stats));
                    }
                    FIRST => self.receive(0, &mut buf),
                    _ => self.receive(1, &mut buf),
                }
            }
            self.release(Instant::now());
        }
        Ok(snapshot(&self.links, &self.stats))
    }

    /// Takes up to a batch of the packets end `from` sent out into its link.
    fn receive(&mut self, from: usize, buf: &mut [u8]) {
        let now = Instant::now();
        let link = if from == 0 { &mut self.links.up } else { &mut self.links.down };
        for _ in 0..BATCH {
            match self.ends[from].recv(buf) {
                Ok(len) => link.send(now, (), buf[..len].to_vec()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.stats.read_errors += 1;
                    debug!(device = self.ends[from].name(), error = %e, "reading a packet failed");
                    return;
                }
            }
        }
    }

    /// Hands every packet due by `now` to the device at the other end.
    fn release(&mut self, now: Instant) {
        for (link, to) in [(&mut self.links.up, &self.ends[1]), (&mut self.links.down, &self.ends[0])] {
            while let Some(((), packet)) = link.poll_transmit(now) {
                if let Err(e) = to.send(&packet) {
                    // The kernel refused it (a corrupted header, say): dropped, and said so.
                    link.unsent(packet.len());
                    self.stats.write_errors += 1;
                    debug!(device = to.name(), len = packet.len(), error = %e, "writing a packet failed");
                }
            }
        }
    }
}

fn snapshot(links: &Links<()>, stats: &TunStats) -> TunStats {
    TunStats { up: links.up.counters(), down: links.down.counters(), ..*stats }
}
