//! Network impairment: what a bad network does to datagrams, made repeatable.
//!
//! - [`model`] (pure): a configuration and a seed in, one [`Decision`] per
//!   datagram out. `udp serve --loss` uses it alone.
//! - [`link`] (sans-IO): one direction of a link, turning decisions into
//!   release times through a bottleneck, delay, jitter and reordering.
//! - [`options`]: settings by name, shared by the command line and the
//!   control socket; values parse through [`crate::units`], as every flag's do.
//! - [`clients`] (sans-IO): the proxy's clients, and where their datagrams go.
//! - [`proxy`] (the driver): the UDP relay that owns the sockets, with a
//!   timer precise to microseconds, and its [`control`] socket.

pub mod clients;
pub mod control;
pub mod link;
pub mod model;
pub mod options;
pub mod proxy;

pub use link::{Link, LinkCounters};
pub use model::{
    Decision, GilbertElliottError, Impairment, ImpairmentConfig, LossModel, Probability, ProbabilityError,
    RateLimit,
};
pub use proxy::{Control, ControlSender, Proxy, ProxyConfig, ProxyStats, RunningProxy, Settings, Stopped};
