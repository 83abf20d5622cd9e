//! The impairment decision model: configuration and a seed in, one verdict per
//! datagram out. Pure: it reads no clock and no OS randomness, so the same
//! seed and the same sequence of datagrams always give the same verdicts.

use std::fmt;
use std::str::FromStr;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use serde::Serialize;

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
}

impl Default for LossModel {
    fn default() -> Self {
        LossModel::Independent { rate: Probability::ZERO }
    }
}

impl fmt::Display for LossModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossModel::Independent { rate } => write!(f, "loss {rate}"),
        }
    }
}

/// Everything an [`Impairment`] may do to datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ImpairmentConfig {
    /// How datagrams are lost.
    pub loss: LossModel,
}

/// The fate of one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Pass it on.
    Deliver,
    /// Lose it.
    Drop,
}

/// A seeded decision-maker: call [`Impairment::decide`] once per datagram, in
/// arrival order.
///
/// ```
/// use socketeer::impair::{Impairment, ImpairmentConfig, LossModel, Verdict};
///
/// let config = ImpairmentConfig { loss: LossModel::Independent { rate: "30%".parse().unwrap() } };
/// let verdicts = |seed| {
///     let mut model = Impairment::new(config, seed);
///     (0..100).map(|_| model.decide()).collect::<Vec<_>>()
/// };
/// assert_eq!(verdicts(7), verdicts(7)); // the same seed, the same drops
/// assert!(verdicts(7).contains(&Verdict::Drop));
/// ```
#[derive(Clone, Debug)]
pub struct Impairment {
    config: ImpairmentConfig,
    rng: ChaCha8Rng,
    decided: u64,
}

impl Impairment {
    /// A decision-maker for `config` whose choices depend only on `seed` and
    /// on how many datagrams it has decided on before.
    pub fn new(config: ImpairmentConfig, seed: u64) -> Self {
        Impairment { config, rng: ChaCha8Rng::seed_from_u64(seed), decided: 0 }
    }

    /// The configuration it decides by.
    pub fn config(&self) -> &ImpairmentConfig {
        &self.config
    }

    /// How many datagrams it has decided on.
    pub fn decided(&self) -> u64 {
        self.decided
    }

    /// The verdict for the next datagram.
    pub fn decide(&mut self) -> Verdict {
        self.decided += 1;
        let LossModel::Independent { rate } = self.config.loss;
        if self.chance(rate) { Verdict::Drop } else { Verdict::Deliver }
    }

    /// True with probability `p`. Draws from the generator even for 0 and 1,
    /// so that changing one probability does not shift every later decision.
    fn chance(&mut self, p: Probability) -> bool {
        unit_interval(self.rng.next_u64()) < p.fraction()
    }
}

/// Maps 64 random bits to a float uniform in [0, 1) with 53 bits of precision.
fn unit_interval(bits: u64) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    (bits >> 11) as f64 * SCALE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Probability {
        s.parse().unwrap()
    }

    #[test]
    fn probabilities_parse_as_percent_or_fraction() {
        assert_eq!(p("1%"), p("0.01"));
        assert_eq!(p(" 12.5 % "), p("0.125"));
        assert_eq!(p("0"), Probability::ZERO);
        assert_eq!(p("100%"), Probability::ONE);
        assert_eq!(p("1"), Probability::ONE);
    }

    #[test]
    fn bad_probabilities_name_the_input() {
        let err = |s: &str| s.parse::<Probability>().unwrap_err();
        assert_eq!(err("10"), ProbabilityError::OutOfRange("10".into()));
        assert_eq!(err("101%"), ProbabilityError::OutOfRange("101%".into()));
        assert_eq!(err("-1%"), ProbabilityError::OutOfRange("-1%".into()));
        assert_eq!(err("lots"), ProbabilityError::NotANumber("lots".into()));
        assert_eq!(err("NaN"), ProbabilityError::NotANumber("NaN".into()));
        assert_eq!(err("%"), ProbabilityError::NotANumber("%".into()));
    }

    #[test]
    fn probabilities_display_as_one_percentage_form() {
        assert_eq!(p("0.01").to_string(), "1%");
        assert_eq!(p("0.07").to_string(), "7%");
        assert_eq!(p("0.005").to_string(), "0.5%");
        assert_eq!(p("0").to_string(), "0%");
        assert_eq!(p("1").to_string(), "100%");
        assert_eq!(p("33.3333%").to_string(), "33.3333%");
    }

    fn losses(rate: &str, seed: u64, n: usize) -> Vec<bool> {
        let config = ImpairmentConfig { loss: LossModel::Independent { rate: p(rate) } };
        let mut model = Impairment::new(config, seed);
        (0..n).map(|_| model.decide() == Verdict::Drop).collect()
    }

    #[test]
    fn independent_loss_rate_is_within_three_tenths_of_a_point() {
        for rate in ["1%", "10%", "30%", "50%"] {
            let dropped = losses(rate, 7, 100_000).iter().filter(|&&d| d).count();
            let measured = dropped as f64 / 1000.0;
            let expected = p(rate).fraction() * 100.0;
            assert!((measured - expected).abs() <= 0.3, "{rate}: measured {measured}%");
        }
    }

    #[test]
    fn zero_and_one_are_exact() {
        assert!(losses("0%", 1, 10_000).iter().all(|&d| !d));
        assert!(losses("100%", 1, 10_000).iter().all(|&d| d));
    }

    #[test]
    fn the_same_seed_gives_the_same_decisions() {
        assert_eq!(losses("20%", 42, 1000), losses("20%", 42, 1000));
        assert_ne!(losses("20%", 42, 1000), losses("20%", 43, 1000));
    }

    #[test]
    fn unit_interval_covers_zero_to_just_below_one() {
        assert_eq!(unit_interval(0), 0.0);
        assert!(unit_interval(u64::MAX) < 1.0);
    }
}
