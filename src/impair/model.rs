//! The impairment decision model: a configuration and a seed in, one
//! [`Decision`] per datagram out. Pure: it reads no clock and no OS
//! randomness, so the same seed and the same sequence of datagrams always give
//! the same decisions.
//!
//! Every datagram consumes the same number of random draws whatever the
//! configuration, so decision *k* of one feature (say, duplication) does not
//! shift when another feature (say, loss) is switched on or off.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use serde::Serialize;

use crate::units::{Rate, TimeSpan, format_size};

/// A probability from 0 to 1, written as a fraction (`0.01`) or a
/// percentage (`1%`); always displayed as a percentage.
///
/// ```
/// use socketeer::impair::Probability;
///
/// let p: Probability = "0.025".parse().unwrap();
/// assert_eq!(p, "2.5%".parse().unwrap());
/// assert_eq!(p.to_string(), "2.5%");
/// assert!("150%".parse::<Probability>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize)]
pub struct Probability(f64);

/// A probability that could not be parsed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProbabilityError {
    /// Not a number, with or without `%`.
    #[error("'{0}' is not a probability; write a percentage like 1% or a fraction like 0.01")]
    NotANumber(String),
    /// A number outside 0..=1 (or 0%..=100%).
    #[error("'{0}' is out of range; a probability is from 0% to 100% (or 0 to 1)")]
    OutOfRange(String),
}

impl Probability {
    /// Never.
    pub const ZERO: Probability = Probability(0.0);
    /// Always.
    pub const ONE: Probability = Probability(1.0);

    /// The probability as a fraction from 0 to 1.
    pub fn fraction(self) -> f64 {
        self.0
    }

    /// A probability from a fraction.
    ///
    /// # Errors
    /// When `fraction` is not within 0..=1.
    pub fn from_fraction(fraction: f64) -> Result<Self, ProbabilityError> {
        if (0.0..=1.0).contains(&fraction) {
            Ok(Probability(fraction))
        } else {
            Err(ProbabilityError::OutOfRange(fraction.to_string()))
        }
    }

    /// True for a probability of zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0.0
    }
}

impl FromStr for Probability {
    type Err = ProbabilityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let (number, scale) = match text.strip_suffix('%') {
            Some(n) => (n.trim_end(), 100.0),
            None => (text, 1.0),
        };
        let value: f64 = number.parse().map_err(|_| ProbabilityError::NotANumber(s.to_owned()))?;
        if !value.is_finite() {
            return Err(ProbabilityError::NotANumber(s.to_owned()));
        }
        Probability::from_fraction(value / scale).map_err(|_| ProbabilityError::OutOfRange(s.to_owned()))
    }
}

impl fmt::Display for Probability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let percent = format!("{:.6}", self.0 * 100.0);
        let trimmed = percent.trim_end_matches('0').trim_end_matches('.');
        write!(f, "{trimmed}%")
    }
}

/// How datagrams are lost.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "model")]
pub enum LossModel {
    /// Each datagram is lost with the same probability, independently of the others.
    Independent {
        /// The share of datagrams lost.
        rate: Probability,
    },
    /// Losses in bursts: a two-state Markov chain (Gilbert-Elliott). Each
    /// datagram is lost with the loss probability of the current state, then
    /// the state moves on.
    GilbertElliott {
        /// Probability of moving from the good state to the bad one (p).
        enter_bad: Probability,
        /// Probability of moving from the bad state back to the good one (r).
        leave_bad: Probability,
        /// Loss probability in the bad state (1 - k in the literature; usually 100%).
        loss_bad: Probability,
        /// Loss probability in the good state (1 - h; usually 0%).
        loss_good: Probability,
    },
}

impl Default for LossModel {
    fn default() -> Self {
        LossModel::Independent { rate: Probability::ZERO }
    }
}

impl LossModel {
    /// The long-run share of datagrams lost.
    pub fn mean_loss(&self) -> f64 {
        match *self {
            LossModel::Independent { rate } => rate.fraction(),
            LossModel::GilbertElliott { enter_bad: p, leave_bad: r, loss_bad, loss_good } => {
                let (p, r) = (p.fraction(), r.fraction());
                if p + r == 0.0 {
                    return loss_good.fraction();
                }
                // Stationary share of time in the bad state is p / (p + r).
                (r * loss_good.fraction() + p * loss_bad.fraction()) / (p + r)
            }
        }
    }

    /// The mean length of a stay in the bad state, in datagrams (1 / r):
    /// with the usual 100% loss there and none in the good state, the mean
    /// length of a burst of losses.
    pub fn mean_bad_period(&self) -> Option<f64> {
        match *self {
            LossModel::GilbertElliott { leave_bad, .. } if !leave_bad.is_zero() => {
                Some(1.0 / leave_bad.fraction())
            }
            _ => None,
        }
    }

    /// True when no datagram can be lost.
    pub fn is_lossless(&self) -> bool {
        self.mean_loss() == 0.0
            && !matches!(self, LossModel::GilbertElliott { loss_bad, .. } if !loss_bad.is_zero())
    }
}

impl fmt::Display for LossModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossModel::Independent { rate } => write!(f, "loss {rate}"),
            LossModel::GilbertElliott { enter_bad, leave_bad, loss_bad, loss_good } => {
                write!(f, "bursty loss p={enter_bad} r={leave_bad} bad={loss_bad} good={loss_good}")?;
                write!(f, " (mean {:.3}%", self.mean_loss() * 100.0)?;
                if let Some(period) = self.mean_bad_period() {
                    write!(f, ", bad periods of {period:.1} datagrams")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// A Gilbert-Elliott model that could not be parsed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GilbertElliottError {
    /// Not two to four comma-separated probabilities.
    #[error("'{0}' is not a burst-loss model; write P,R[,LOSS_BAD[,LOSS_GOOD]], e.g. 1%,25%")]
    Shape(String),
    /// One of them is not a probability.
    #[error(transparent)]
    Probability(#[from] ProbabilityError),
}

impl FromStr for LossModel {
    type Err = GilbertElliottError;

    /// Parses the Gilbert-Elliott form `P,R[,LOSS_BAD[,LOSS_GOOD]]` (bad-state
    /// loss defaults to 100%, good-state loss to 0%).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(',').collect();
        if !(2..=4).contains(&parts.len()) {
            return Err(GilbertElliottError::Shape(s.to_owned()));
        }
        let probability = |i: usize, default: Probability| -> Result<Probability, ProbabilityError> {
            parts.get(i).map_or(Ok(default), |p| p.parse())
        };
        Ok(LossModel::GilbertElliott {
            enter_bad: probability(0, Probability::ZERO)?,
            leave_bad: probability(1, Probability::ZERO)?,
            loss_bad: probability(2, Probability::ONE)?,
            loss_good: probability(3, Probability::ZERO)?,
        })
    }
}

/// A bottleneck: datagrams are sent at `rate`, and wait in a queue of at most
/// `queue` bytes; datagrams that do not fit are dropped at the tail.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RateLimit {
    /// The link's speed.
    #[serde(flatten)]
    pub rate: Rate,
    /// The queue's capacity in bytes.
    #[serde(rename = "queue_bytes")]
    pub queue: u64,
}

/// Everything an [`Impairment`] may do to datagrams. The default does nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ImpairmentConfig {
    /// How datagrams are lost.
    pub loss: LossModel,
    /// Fixed delay added to every datagram.
    #[serde(rename = "delay_ms", serialize_with = "crate::stats::as_millis")]
    pub delay: Duration,
    /// Each datagram's delay varies uniformly within ±jitter around `delay`.
    #[serde(rename = "jitter_ms", serialize_with = "crate::stats::as_millis")]
    pub jitter: Duration,
    /// Let jitter reorder datagrams (by default a datagram never overtakes an
    /// earlier one, as on a real link).
    pub jitter_reorders: bool,
    /// Share of datagrams held back so that later ones overtake them.
    pub reorder: Probability,
    /// How many later datagrams overtake a held-back one (1 swaps neighbours).
    pub reorder_distance: u32,
    /// Share of datagrams delivered twice.
    pub duplicate: Probability,
    /// Share of datagrams with one random bit flipped.
    pub corrupt: Probability,
    /// A bottleneck, if any.
    pub rate_limit: Option<RateLimit>,
}

impl ImpairmentConfig {
    /// A configuration that only loses datagrams, independently, at `rate`.
    pub fn loss(rate: Probability) -> Self {
        ImpairmentConfig { loss: LossModel::Independent { rate }, ..Self::default() }
    }

    /// The same, with delay and jitter cut to [`TimeSpan::MAX`] (what the
    /// parsers already refuse beyond): a release time is then never past
    /// what an `Instant` holds, whatever a caller of the library set.
    pub fn bounded(self) -> Self {
        let bound = |d: Duration| TimeSpan::saturating(d).get();
        ImpairmentConfig { delay: bound(self.delay), jitter: bound(self.jitter), ..self }
    }

    /// True when it delivers every datagram at once, unchanged.
    pub fn is_transparent(&self) -> bool {
        self.loss.is_lossless()
            && self.delay.is_zero()
            && self.jitter.is_zero()
            && self.reorder.is_zero()
            && self.duplicate.is_zero()
            && self.corrupt.is_zero()
            && self.rate_limit.is_none()
    }
}

impl fmt::Display for ImpairmentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.loss.is_lossless() {
            parts.push(self.loss.to_string());
        }
        if !self.delay.is_zero() || !self.jitter.is_zero() {
            let mut delay = format!("delay {}", humantime::format_duration(self.delay));
            if !self.jitter.is_zero() {
                delay += &format!(" ± {}", humantime::format_duration(self.jitter));
                if self.jitter_reorders {
                    delay += " (may reorder)";
                }
            }
            parts.push(delay);
        }
        if !self.reorder.is_zero() {
            parts.push(format!("reorder {} by {}", self.reorder, self.reorder_distance));
        }
        if !self.duplicate.is_zero() {
            parts.push(format!("duplicate {}", self.duplicate));
        }
        if !self.corrupt.is_zero() {
            parts.push(format!("corrupt {}", self.corrupt));
        }
        if let Some(limit) = &self.rate_limit {
            parts.push(format!("rate {} queue {}", limit.rate, format_size(limit.queue)));
        }
        if parts.is_empty() { f.write_str("no impairment") } else { f.write_str(&parts.join(", ")) }
    }
}

/// The random part of one datagram's fate; [`super::Link`] turns it into a
/// release time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Lose it.
    pub lost: bool,
    /// Deliver a second copy.
    pub duplicate: bool,
    /// Flip this bit (an index below 8 × the datagram's length).
    pub corrupt_bit: Option<usize>,
    /// Its delay, jitter included.
    pub delay: Duration,
    /// Hold it back so that later datagrams overtake it.
    pub hold_back: bool,
}

impl Decision {
    /// A decision that delivers the datagram now, unchanged.
    pub const PASS: Decision = Decision {
        lost: false,
        duplicate: false,
        corrupt_bit: None,
        delay: Duration::ZERO,
        hold_back: false,
    };
}

/// A seeded decision-maker: call [`Impairment::decide`] once per datagram, in
/// arrival order.
///
/// ```
/// use socketeer::impair::{Impairment, ImpairmentConfig};
///
/// let config = ImpairmentConfig::loss("30%".parse().unwrap());
/// let losses = |seed| {
///     let mut model = Impairment::new(config, seed);
///     (0..100).map(|_| model.decide(100).lost).collect::<Vec<_>>()
/// };
/// assert_eq!(losses(7), losses(7)); // the same seed, the same drops
/// assert!(losses(7).contains(&true));
/// ```
#[derive(Clone, Debug)]
pub struct Impairment {
    config: ImpairmentConfig,
    rng: ChaCha8Rng,
    in_bad_state: bool,
    decided: u64,
}

impl Impairment {
    /// A decision-maker for `config` whose choices depend only on `seed` and
    /// on how many datagrams it has decided on before.
    pub fn new(config: ImpairmentConfig, seed: u64) -> Self {
        Impairment {
            config: config.bounded(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            in_bad_state: false,
            decided: 0,
        }
    }

    /// The configuration it decides by.
    pub fn config(&self) -> &ImpairmentConfig {
        &self.config
    }

    /// Changes the configuration; the random sequence goes on where it was.
    pub fn set_config(&mut self, config: ImpairmentConfig) {
        self.config = config.bounded();
    }

    /// How many datagrams it has decided on.
    pub fn decided(&self) -> u64 {
        self.decided
    }

    /// The fate of the next datagram, `len` bytes long.
    pub fn decide(&mut self, len: usize) -> Decision {
        self.decided += 1;
        // A fixed number of draws per datagram, used or not (see the module doc).
        let [loss, transition, duplicate, corrupt, bit, jitter, reorder] =
            std::array::from_fn(|_| self.rng.next_u64());
        let c = &self.config;
        let lost = match c.loss {
            LossModel::Independent { rate } => chance(loss, rate),
            LossModel::GilbertElliott { enter_bad, leave_bad, loss_bad, loss_good } => {
                let lost = chance(loss, if self.in_bad_state { loss_bad } else { loss_good });
                let flip = if self.in_bad_state { leave_bad } else { enter_bad };
                self.in_bad_state ^= chance(transition, flip);
                lost
            }
        };
        let bits = len as u64 * 8;
        let corrupt_bit = (chance(corrupt, c.corrupt) && bits > 0).then(|| (bit % bits) as usize);
        // Uniform in [delay - jitter, delay + jitter], never below zero.
        let offset = (unit_interval(jitter) * 2.0 - 1.0) * c.jitter.as_secs_f64();
        let delay = Duration::try_from_secs_f64((c.delay.as_secs_f64() + offset).max(0.0)).unwrap_or(c.delay);
        Decision {
            lost,
            duplicate: chance(duplicate, c.duplicate),
            corrupt_bit,
            delay,
            hold_back: chance(reorder, c.reorder),
        }
    }
}

/// True with probability `p`, given 64 random bits.
fn chance(bits: u64, p: Probability) -> bool {
    unit_interval(bits) < p.fraction()
}

/// Maps 64 random bits to a float uniform in [0, 1) with 53 bits of precision.
fn unit_interval(bits: u64) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    (bits >> 11) as f64 * SCALE
}

#[cfg(test)]
mod tests;
