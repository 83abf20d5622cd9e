//! Network impairment: what a bad network does to datagrams, made repeatable.
//!
//! - [`model`] (pure): a configuration and a seed in, one [`Decision`] per
//!   datagram out. `udp serve --loss` uses it alone.
//! - [`link`] (sans-IO): one direction of a link, turning decisions into
//!   release times through a bottleneck, delay, jitter and reordering.
//! - [`options`]: settings by name, shared by the command line and the
//!   control socket; values parse through [`crate::units`], as every flag's do.
//! - [`clients`] (sans-IO): the proxy's clients, and where their datagrams go.
//! - [`proxy`] (a driver): the UDP relay that owns the sockets, with a
//!   timer precise to microseconds, and its [`control`] socket.
//! - [`tun`] (a driver): every IP packet between two network namespaces
//!   (or one and the host) through a pair of TUN devices and the same
//!   links: netem in user space, for TCP, ICMP and any program.
//! - [`running`]: what both drivers share: the links of both directions,
//!   the control requests, and the running thread.

pub mod clients;
pub mod control;
pub mod link;
pub mod model;
pub mod options;
pub mod proxy;
pub mod running;
pub mod tun;

pub use link::{Link, LinkCounters};
pub use model::{
    Decision, GilbertElliottError, Impairment, ImpairmentConfig, LossModel, Probability, ProbabilityError,
    RateLimit,
};
pub use proxy::{Proxy, ProxyConfig, ProxySender, ProxyStats, RunningProxy};
pub use running::{Control, ControlSender, Running, Settings, Stopped};
pub use tun::{ImpairedPath, TunConfig, TunError, TunStats};
