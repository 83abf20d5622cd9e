//! The capture driver: one packet socket bound to its interface, with a
//! TPACKET_V3 ring (the `ring` module) read a block at a time until told to stop.

mod ring;

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use socket2::SockFilter;

use super::filter::{CompileError, Filter, Program, compile};
use super::{Frame, LinkType};
use crate::bpf::op;
use crate::poll::{self, Waker};
use crate::rawsock::NEEDS_CAP_NET_RAW;
use ring::{Ring, Source};

/// The longest a stopped capture spends reading what was already queued.
const DRAIN_LIMIT: Duration = Duration::from_millis(200);
/// How long a stopped capture waits for the kernel to hand over a block
/// it was still filling (it does after its block timeout, 10 ms).
const LAST_BLOCK_WAIT: Duration = Duration::from_millis(30);
/// The interface name that means every interface, as in tcpdump.
pub const ANY: &str = "any";
/// PACKET_OUTGOING: a frame this host sent.
const PACKET_OUTGOING: u32 = 4;

/// What to capture, and how.
#[derive(Clone, Debug)]
pub struct Config {
    /// The interface's name (`lo`, `eth0`), or [`ANY`] for all of them.
    pub interface: String,
    /// Bytes kept of each frame.
    pub snaplen: u32,
    /// Bytes the kernel may queue for us between reads.
    pub buffer: usize,
    /// Frames to keep; compiled to classic BPF for the kernel when it can be.
    pub filter: Option<Filter>,
}

/// Why a capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// No CAP_NET_RAW.
    #[error("{}", NEEDS_CAP_NET_RAW)]
    NeedsPrivilege,
    /// No such interface.
    #[error("no interface named '{name}' (`ip link` lists them)")]
    NoSuchInterface {
        /// The name given.
        name: String,
    },
    /// The interface's link layer is not one decoded here.
    #[error("interface '{name}' has link type {hatype} (ARPHRD), which socketeer cannot decode")]
    UnsupportedLink {
        /// The interface.
        name: String,
        /// Its ARPHRD_* hardware type.
        hatype: u32,
    },
    /// The filter has no program for this interface's link type.
    #[error("the filter cannot apply on '{name}': {source}")]
    Filter {
        /// The interface.
        name: String,
        /// Why.
        source: CompileError,
    },
    /// The socket could not be set up.
    #[error("cannot capture on '{name}': {source}")]
    Io {
        /// The interface.
        name: String,
        /// What failed.
        source: std::io::Error,
    },
}

/// A running capture on one interface.
#[derive(Debug)]
pub struct Capture {
    ring: Ring,
    link: LinkType,
    kernel_filter: bool,
    program: Option<Program>,
}

impl Capture {
    /// Opens the interface's packet socket, with the filter in the kernel
    /// when it compiles.
    ///
    /// # Errors
    /// Without CAP_NET_RAW, for an unknown interface or link type, or when
    /// the socket cannot be set up.
    pub fn open(config: &Config) -> Result<Capture, CaptureError> {
        let name = &config.interface;
        let (source, link, loopback) = if name == ANY {
            (Source::Any, LinkType::LinuxSll2, false)
        } else {
            let ifindex = nix::net::if_::if_nametoindex(name.as_str())
                .map_err(|_| CaptureError::NoSuchInterface { name: name.clone() })?;
            let (link, loopback) = link_of(name)?;
            (Source::Interface(ifindex), link, loopback)
        };
        let program = match &config.filter {
            Some(filter) => Some(
                compile(filter, link, config.snaplen)
                    .map_err(|source| CaptureError::Filter { name: name.clone(), source })?,
            ),
            None => None,
        };
        // A NIC that strips 802.1Q tags shows the kernel's program untagged
        // frames, so a filter that tests tags runs here instead, on frames
        // with their tags put back. On `any` the kernel sees frames without
        // the cooked header the program's offsets count, so it runs here too.
        let in_kernel = program
            .as_ref()
            .filter(|_| source != Source::Any && !config.filter.as_ref().is_some_and(Filter::mentions_vlan));
        let kernel_filter = in_kernel.is_some();
        let mut kernel_program = match source {
            Source::Interface(_) if loopback => outgoing_guard(None),
            Source::Interface(_) => Vec::new(),
            // libpcap skips loopback's outgoing copies on `any` too.
            Source::Any => {
                nix::net::if_::if_nametoindex("lo").map_or_else(|_| Vec::new(), |lo| outgoing_guard(Some(lo)))
            }
        };
        match in_kernel {
            Some(program) => kernel_program
                .extend(program.instructions().iter().map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k))),
            None => kernel_program.push(SockFilter::new(op::RET_K, 0, 0, config.snaplen)),
        }
        let ring =
            Ring::open(source, config.snaplen as usize, config.buffer, &kernel_program).map_err(|e| {
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    CaptureError::NeedsPrivilege
                } else {
                    CaptureError::Io { name: name.clone(), source: e }
                }
            })?;
        Ok(Capture { ring, link, kernel_filter, program })
    }

    /// How this interface's frames start.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// The filter's program for this interface's frames.
    pub fn program(&self) -> Option<&Program> {
        self.program.as_ref()
    }

    /// Whether the kernel runs the filter (else only this program does).
    pub fn kernel_filter(&self) -> bool {
        self.kernel_filter
    }

    /// Frames the kernel dropped because our queue was full.
    pub fn dropped(&self) -> u64 {
        self.ring.dropped()
    }

    /// Hands every frame to `consumer` until it breaks or `waker` is
    /// stopped; after a stop, frames already captured are still read (for
    /// at most 200 ms).
    ///
    /// # Errors
    /// When the wait fails.
    pub fn run(&mut self, waker: &Waker, consumer: &mut impl Consumer) -> std::io::Result<()> {
        let mut done = false;
        loop {
            if waker.is_stopped() {
                return self.drain(consumer, &mut done);
            }
            if read(&mut self.ring, consumer, &mut done).is_some() {
                if done {
                    return Ok(());
                }
                continue;
            }
            let ready = poll::wait(&[std::os::fd::AsFd::as_fd(&self.ring), waker.as_fd()], None)?;
            if ready[1] {
                waker.clear();
            }
        }
    }

    /// After a stop: the blocks already handed over, and the one the kernel
    /// is filling once its timeout hands it over too.
    fn drain(&mut self, consumer: &mut impl Consumer, done: &mut bool) -> std::io::Result<()> {
        let until = Instant::now() + DRAIN_LIMIT;
        while !*done && Instant::now() < until {
            if read(&mut self.ring, consumer, done).is_none() {
                let wait = (Instant::now() + LAST_BLOCK_WAIT).min(until);
                if !poll::wait(&[std::os::fd::AsFd::as_fd(&self.ring)], Some(wait))?[0] {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Reads one block into `consumer`, which sets `done` when it has had
/// enough; `None` when no block was ready.
fn read(ring: &mut Ring, consumer: &mut impl Consumer, done: &mut bool) -> Option<usize> {
    let read = ring.read_block(|time, len, data| {
        if !*done {
            *done = consumer.frame(Frame { time, len, data }).is_break();
        }
    })?;
    if !*done {
        *done = consumer.batch(!ring.ready()).is_break();
    }
    Some(read)
}

/// The head of a loopback capture's program: only the arriving copy of
/// each frame (loopback shows every frame twice, once leaving and once
/// arriving, as libpcap also knows). On a socket of every interface, the
/// loopback's index `on` says which outgoing frames are those copies. A
/// pass jumps over the `ret #0`.
fn outgoing_guard(on: Option<u32>) -> Vec<SockFilter> {
    let mut guard = vec![SockFilter::new(op::LD_W_ABS, 0, 0, op::AD_PKTTYPE)];
    match on {
        None => guard.push(SockFilter::new(op::JEQ_K, 0, 1, PACKET_OUTGOING)),
        Some(loopback) => guard.extend([
            SockFilter::new(op::JEQ_K, 0, 3, PACKET_OUTGOING),
            SockFilter::new(op::LD_W_ABS, 0, 0, op::AD_IFINDEX),
            SockFilter::new(op::JEQ_K, 0, 1, loopback),
        ]),
    }
    guard.push(SockFilter::new(op::RET_K, 0, 0, 0));
    guard
}

/// What a [`Capture`] hands its frames to.
pub trait Consumer {
    /// One frame; `Break` ends the capture.
    fn frame(&mut self, frame: Frame<'_>) -> ControlFlow<()>;

    /// After each block of frames; `drained` when no other block was
    /// waiting, so the capture is about to wait: the moment to flush what
    /// was buffered. `Break` ends the capture.
    fn batch(&mut self, drained: bool) -> ControlFlow<()>;
}

/// The link type of an interface, and whether it is a loopback.
fn link_of(name: &str) -> Result<(LinkType, bool), CaptureError> {
    const ETHER: u32 = 1;
    const LOOPBACK: u32 = 772;
    const NONE: u32 = 65534;
    // From the interface's link-layer address, which (unlike /sys, the
    // view of whoever mounted it) is this network namespace's.
    let hatype = nix::ifaddrs::getifaddrs()
        .ok()
        .and_then(|mut all| {
            all.find_map(|interface| {
                let address = interface.address.filter(|_| interface.interface_name == name)?;
                address.as_link_addr().map(|link| u32::from(link.hatype()))
            })
        })
        .ok_or_else(|| CaptureError::NoSuchInterface { name: name.to_owned() })?;
    match hatype {
        ETHER => Ok((LinkType::Ethernet, false)),
        LOOPBACK => Ok((LinkType::Ethernet, true)),
        NONE => Ok((LinkType::RawIp, false)),
        _ => Err(CaptureError::UnsupportedLink { name: name.to_owned(), hatype }),
    }
}
