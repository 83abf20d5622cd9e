//! Network impairment: what a bad network does to datagrams, made repeatable.
//!
//! - [`model`] (pure): a configuration and a seed in, one [`Decision`] per
//!   datagram out. `udp serve --loss` uses it alone.
//! - [`link`] (sans-IO): one direction of a link, turning decisions into
//!   release times through a bottleneck, delay, jitter and reordering.
//! - [`units`]: rates and sizes as people write them.

pub mod link;
pub mod model;
pub mod units;

pub use link::{Link, LinkCounters};
pub use model::{
    Decision, GilbertElliottError, Impairment, ImpairmentConfig, LossModel, Probability, ProbabilityError,
    RateLimit,
};
pub use units::{Rate, UnitError};
