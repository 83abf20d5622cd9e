//! The capture driver: one packet socket, read in batches until told to stop.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use super::filter::{CompileError, Filter, Program, compile};
use super::{Frame, LinkType};
use crate::poll::{self, Waker};
use crate::rawsock::{BATCH, NEEDS_CAP_NET_RAW, PacketSocket, WHOLE_FRAME};
use socket2::SockFilter;

/// The longest a stopped capture spends reading what was already queued.
const DRAIN_LIMIT: Duration = Duration::from_millis(200);
/// How long frames may gather in the socket after a read that did not fill
/// a batch: bounds the system calls per frame under load, at the cost of
/// this much latency.
const GATHER: Duration = Duration::from_millis(1);

/// What to capture, and how.
#[derive(Clone, Debug)]
pub struct Config {
    /// The interface's name (`lo`, `eth0`).
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
    socket: PacketSocket,
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
        let ifindex = nix::net::if_::if_nametoindex(name.as_str())
            .map_err(|_| CaptureError::NoSuchInterface { name: name.clone() })?;
        let (link, loopback) = link_of(name)?;
        let program = match &config.filter {
            Some(filter) => Some(
                compile(filter, link, WHOLE_FRAME)
                    .map_err(|source| CaptureError::Filter { name: name.clone(), source })?,
            ),
            None => None,
        };
        // A NIC that strips 802.1Q tags shows the kernel's program untagged
        // frames, so a filter that tests tags runs here instead, on frames
        // as they were on the wire.
        let in_kernel =
            program.as_ref().filter(|_| !config.filter.as_ref().is_some_and(Filter::mentions_vlan));
        let kernel_filter = in_kernel.is_some();
        let kernel_program = in_kernel.map(|program| {
            program
                .instructions()
                .iter()
                .map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k))
                .collect::<Vec<_>>()
        });
        let snaplen = config.snaplen as usize;
        let socket =
            PacketSocket::open(ifindex, loopback, snaplen, config.buffer, kernel_program).map_err(|e| {
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    CaptureError::NeedsPrivilege
                } else {
                    CaptureError::Io { name: name.clone(), source: e }
                }
            })?;
        Ok(Capture { socket, link, kernel_filter, program })
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
        self.socket.dropped()
    }

    /// Hands every frame to `consumer` until it breaks or `waker` is
    /// stopped; after a stop, frames already queued are still read (for at
    /// most 200 ms).
    ///
    /// # Errors
    /// When the socket or the wait fails.
    pub fn run(&mut self, waker: &Waker, consumer: &mut impl Consumer) -> std::io::Result<()> {
        let mut done = false;
        loop {
            if waker.is_stopped() {
                let until = Instant::now() + DRAIN_LIMIT;
                while Instant::now() < until && read(&mut self.socket, consumer, &mut done)? > 0 {}
                return Ok(());
            }
            let count = read(&mut self.socket, consumer, &mut done)?;
            if done {
                return Ok(());
            }
            if count == BATCH {
                continue;
            }
            if count > 0 {
                // A part batch: let frames gather for a moment rather than
                // pay a wake-up and a read per frame (TPACKET_V3 rings do the
                // same with their block timeout).
                poll::wait(&[waker.as_fd()], Some(Instant::now() + GATHER))?;
                continue;
            }
            let ready = poll::wait(&[std::os::fd::AsFd::as_fd(&self.socket), waker.as_fd()], None)?;
            if ready[1] {
                waker.clear();
            }
        }
    }
}

/// Reads one batch into `consumer`, which sets `done` when it has had enough.
fn read(socket: &mut PacketSocket, consumer: &mut impl Consumer, done: &mut bool) -> std::io::Result<usize> {
    let read = socket.recv(|time, len, data| {
        if !*done {
            *done = consumer.frame(Frame { time, len, data }).is_break();
        }
    })?;
    if read > 0 && !*done {
        *done = consumer.batch(read < BATCH).is_break();
    }
    Ok(read)
}

/// What a [`Capture`] hands its frames to.
pub trait Consumer {
    /// One frame; `Break` ends the capture.
    fn frame(&mut self, frame: Frame<'_>) -> ControlFlow<()>;

    /// After each read of one or more frames; `drained` when the socket had
    /// no more waiting, so the capture is about to wait: the moment to flush
    /// what was buffered. `Break` ends the capture.
    fn batch(&mut self, drained: bool) -> ControlFlow<()>;
}

/// The link type of an interface, and whether it is a loopback.
fn link_of(name: &str) -> Result<(LinkType, bool), CaptureError> {
    const ETHER: u32 = 1;
    const LOOPBACK: u32 = 772;
    const NONE: u32 = 65534;
    let path = format!("/sys/class/net/{name}/type");
    let hatype = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .ok_or_else(|| CaptureError::NoSuchInterface { name: name.to_owned() })?;
    match hatype {
        ETHER => Ok((LinkType::Ethernet, false)),
        LOOPBACK => Ok((LinkType::Ethernet, true)),
        NONE => Ok((LinkType::RawIp, false)),
        _ => Err(CaptureError::UnsupportedLink { name: name.to_owned(), hatype }),
    }
}
