//! Network impairment: a seeded, pure decision model of what a bad network
//! does to each datagram. `udp serve --loss` uses it to drop datagrams.

pub mod model;

pub use model::{Impairment, ImpairmentConfig, LossModel, Probability, ProbabilityError, Verdict};
