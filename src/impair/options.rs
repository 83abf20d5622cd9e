//! Impairment settings by name: one table serves the command line
//! (`--loss 1%`, `--up-delay 20ms`) and the control socket (`loss=1%`,
//! `up-delay=20ms`), so both accept exactly the same words and values.

use std::time::Duration;

use super::model::{ImpairmentConfig, LossModel, Probability, RateLimit};
use crate::units::{Rate, parse_duration, parse_size};

/// The queue behind a rate limit when none is given.
pub const DEFAULT_QUEUE: u64 = 128 * 1024;

/// One setting: its name, what it means, and how it changes a configuration.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    /// The name, as in `--NAME` and `NAME=VALUE`.
    pub name: &'static str,
    /// What the value looks like.
    pub value_name: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// True for a switch (`--jitter-reorders`, `jitter-reorders=true`).
    pub is_switch: bool,
    apply: fn(&mut ImpairmentConfig, &str) -> Result<(), String>,
}

impl Setting {
    /// Checks `value` on its own, without applying it: settings that depend
    /// on another one (a queue needs a rate) are checked when applied.
    ///
    /// # Errors
    /// What is wrong with the value.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let rate = Rate::from_bytes_per_sec(1.0).map(|rate| RateLimit { rate, queue: DEFAULT_QUEUE });
        (self.apply)(&mut ImpairmentConfig { rate_limit: rate, ..ImpairmentConfig::default() }, value)
    }
}

/// Stores a parsed value; the settings' `apply` functions end in it.
fn set<T>(field: &mut T, value: T) -> Result<(), String> {
    *field = value;
    Ok(())
}

fn probability(value: &str) -> Result<Probability, String> {
    value.parse().map_err(|e| format!("{e}"))
}

fn duration(value: &str) -> Result<Duration, String> {
    parse_duration(value).map_err(|e| e.to_string())
}

fn switch(value: &str) -> Result<bool, String> {
    match value {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => Err(format!("'{value}' is not on or off")),
    }
}

/// Every setting, in the order they are applied.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "loss",
        value_name: "P",
        help: "Lose datagrams independently with this probability (1% or 0.01)",
        is_switch: false,
        apply: |c, v| set(&mut c.loss, LossModel::Independent { rate: probability(v)? }),
    },
    Setting {
        name: "burst-loss",
        value_name: "P,R[,BAD[,GOOD]]",
        help: "Lose datagrams in bursts (Gilbert-Elliott): P enter the bad state, R leave it, \
               loss in the bad (default 100%) and good (0%) states",
        is_switch: false,
        apply: |c, v| set(&mut c.loss, v.parse().map_err(|e| format!("{e}"))?),
    },
    Setting {
        name: "delay",
        value_name: "DURATION",
        help: "Delay every datagram by this much",
        is_switch: false,
        apply: |c, v| set(&mut c.delay, duration(v)?),
    },
    Setting {
        name: "jitter",
        value_name: "DURATION",
        help: "Vary each delay uniformly by up to ± this much (order is kept, so at high rates the mean \
               delay rises toward delay + jitter; --jitter-reorders keeps the mean)",
        is_switch: false,
        apply: |c, v| set(&mut c.jitter, duration(v)?),
    },
    Setting {
        name: "jitter-reorders",
        value_name: "",
        help: "Let jitter reorder datagrams (and keep the mean delay at any rate)",
        is_switch: true,
        apply: |c, v| set(&mut c.jitter_reorders, switch(v)?),
    },
    Setting {
        name: "reorder",
        value_name: "P",
        help: "Hold back this share of datagrams so later ones overtake them",
        is_switch: false,
        apply: |c, v| {
            c.reorder = probability(v)?;
            c.reorder_distance = c.reorder_distance.max(1);
            Ok(())
        },
    },
    Setting {
        name: "reorder-distance",
        value_name: "N",
        help: "How many later datagrams overtake a held-back one (default 1: swap neighbours)",
        is_switch: false,
        apply: |c, v| match v.parse::<u32>() {
            Ok(n) if n > 0 => set(&mut c.reorder_distance, n),
            _ => Err(format!("'{v}' is not a whole number above zero")),
        },
    },
    Setting {
        name: "duplicate",
        value_name: "P",
        help: "Deliver this share of datagrams twice",
        is_switch: false,
        apply: |c, v| set(&mut c.duplicate, probability(v)?),
    },
    Setting {
        name: "corrupt",
        value_name: "P",
        help: "Flip one random bit in this share of datagrams",
        is_switch: false,
        apply: |c, v| set(&mut c.corrupt, probability(v)?),
    },
    Setting {
        name: "rate",
        value_name: "RATE",
        help: "Limit the link to this rate (10MB/s, 80Mbit/s), queueing behind it; 'off' removes it",
        is_switch: false,
        apply: |c, v| {
            c.rate_limit = match v {
                "off" => None,
                _ => {
                    let rate: Rate = v.parse().map_err(|e| format!("{e}"))?;
                    Some(RateLimit { rate, queue: c.rate_limit.map_or(DEFAULT_QUEUE, |l| l.queue) })
                }
            };
            Ok(())
        },
    },
    Setting {
        name: "queue",
        value_name: "SIZE",
        help: "Bytes that may wait behind the rate limit (default 128KiB); more are dropped",
        is_switch: false,
        apply: |c, v| {
            let queue = parse_size(v).map_err(|e| format!("{e}"))?;
            match &mut c.rate_limit {
                Some(limit) => set(&mut limit.queue, queue),
                None => Err("a queue needs a rate limit (set rate too)".to_owned()),
            }
        },
    },
];

/// Which way a setting applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
}

/// The prefixes that pick a direction: none means both.
pub const PREFIXES: [(&str, &[Direction]); 3] =
    [("", &[Direction::Up, Direction::Down]), ("up-", &[Direction::Up]), ("down-", &[Direction::Down])];

/// A setting that could not be applied.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// No setting has that name.
    #[error("unknown setting '{0}'; settings are {names}, each with an optional up- or down- prefix", names = names())]
    Unknown(String),
    /// A setting that takes a value was given none.
    #[error("{0} needs a value, as in {0}=VALUE")]
    MissingValue(String),
    /// The value is wrong for the setting.
    #[error("{name}: {reason}")]
    Invalid {
        /// The setting, as written.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

fn names() -> String {
    SETTINGS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

/// Finds the setting a key (`loss`, `up-loss`, `down-rate`) names.
pub fn lookup(key: &str) -> Option<(&'static Setting, &'static [Direction])> {
    PREFIXES.iter().find_map(|(prefix, directions)| {
        let name = key.strip_prefix(prefix)?;
        SETTINGS.iter().find(|s| s.name == name).map(|s| (s, *directions))
    })
}

/// Applies `NAME=VALUE` pairs to the up and down configurations: settings for
/// both directions first, then the directional ones, each group in table
/// order, so `--up-loss 5% --loss 1%` means 5% up and 1% down whatever the
/// order they were written in. Nothing changes unless every pair is valid.
///
/// # Errors
/// The first unknown setting or invalid value.
pub fn apply(
    up: &mut ImpairmentConfig,
    down: &mut ImpairmentConfig,
    pairs: &[(String, String)],
) -> Result<(), SettingError> {
    let mut found = Vec::new();
    for (key, value) in pairs {
        let (setting, directions) = lookup(key).ok_or_else(|| SettingError::Unknown(key.clone()))?;
        let order = SETTINGS.iter().position(|s| s.name == setting.name).unwrap_or(0);
        found.push((directions.len() == 1, order, key, setting, directions, value));
    }
    found.sort_by_key(|f| (f.0, f.1));
    let (mut new_up, mut new_down) = (*up, *down);
    for (_, _, key, setting, directions, value) in found {
        for direction in directions {
            let config = match direction {
                Direction::Up => &mut new_up,
                Direction::Down => &mut new_down,
            };
            (setting.apply)(config, value)
                .map_err(|reason| SettingError::Invalid { name: key.clone(), reason })?;
        }
    }
    // Below zero a delay would be cut to zero, piling datagrams up at "now".
    let over = |c: &ImpairmentConfig| c.jitter > c.delay;
    let too_wide = match (over(&new_up), over(&new_down)) {
        (true, true) => Some(("jitter", &new_up)),
        (true, false) => Some(("up-jitter", &new_up)),
        (false, true) => Some(("down-jitter", &new_down)),
        (false, false) => None,
    };
    if let Some((name, config)) = too_wide {
        return Err(SettingError::Invalid {
            name: name.to_owned(),
            reason: format!(
                "{} is more than the delay ({}); a delay cannot go below zero, so give a delay at least as large",
                humantime::format_duration(config.jitter),
                humantime::format_duration(config.delay)
            ),
        });
    }
    (*up, *down) = (new_up, new_down);
    Ok(())
}

/// Splits `loss=1% up-delay=20ms jitter-reorders` into pairs (a bare switch
/// name means `true`).
///
/// # Errors
/// A bare word that names no switch.
pub fn parse_pairs(words: &[&str]) -> Result<Vec<(String, String)>, SettingError> {
    words
        .iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
            None => match lookup(w) {
                Some((setting, _)) if setting.is_switch => Ok((w.to_string(), "true".to_owned())),
                Some(_) => Err(SettingError::MissingValue(w.to_string())),
                None => Err(SettingError::Unknown(w.to_string())),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configure(words: &[&str]) -> Result<(ImpairmentConfig, ImpairmentConfig), SettingError> {
        let (mut up, mut down) = Default::default();
        apply(&mut up, &mut down, &parse_pairs(words)?)?;
        Ok((up, down))
    }

    #[test]
    fn both_directions_then_each_direction() {
        let (up, down) = configure(&["up-loss=5%", "loss=1%", "down-delay=20ms"]).unwrap();
        assert_eq!(up.loss, LossModel::Independent { rate: "5%".parse().unwrap() });
        assert_eq!(down.loss, LossModel::Independent { rate: "1%".parse().unwrap() });
        assert_eq!((up.delay, down.delay), (Duration::ZERO, Duration::from_millis(20)));
    }

    #[test]
    fn every_setting_takes_effect() {
        let (up, _) = configure(&[
            "burst-loss=1%,25%",
            "delay=10ms",
            "jitter=2ms",
            "jitter-reorders",
            "reorder=3%",
            "reorder-distance=4",
            "duplicate=1%",
            "corrupt=0.5%",
            "queue=64KiB",
            "rate=10MB/s",
        ])
        .unwrap();
        assert!(matches!(up.loss, LossModel::GilbertElliott { .. }));
        assert_eq!(
            (up.delay, up.jitter, up.jitter_reorders),
            (Duration::from_millis(10), Duration::from_millis(2), true)
        );
        assert_eq!((up.reorder.to_string(), up.reorder_distance), ("3%".to_owned(), 4));
        assert_eq!((up.duplicate.to_string(), up.corrupt.to_string()), ("1%".to_owned(), "0.5%".to_owned()));
        let limit = up.rate_limit.unwrap();
        assert_eq!((limit.rate.bytes_per_sec(), limit.queue), (10e6, 65536), "queue applies after rate");
        let (up, _) = configure(&["reorder=1%"]).unwrap();
        assert_eq!(up.reorder_distance, 1, "reordering defaults to swapping neighbours");
        let (up, _) = configure(&["rate=1MB/s", "up-rate=off"]).unwrap();
        assert_eq!(up.rate_limit, None);
    }

    #[test]
    fn errors_name_the_setting_and_change_nothing() {
        let (mut up, mut down) = (ImpairmentConfig::default(), ImpairmentConfig::default());
        let err = apply(&mut up, &mut down, &parse_pairs(&["delay=5ms", "up-loss=2"]).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "up-loss: '2' is out of range; a probability is from 0% to 100% (or 0 to 1)"
        );
        assert_eq!(up, ImpairmentConfig::default(), "a failed command changes nothing");
        let err = configure(&["lossy=1%"]).unwrap_err();
        assert!(err.to_string().starts_with("unknown setting 'lossy'; settings are loss, burst-loss, delay"));
        assert!(configure(&["queue=1MB"]).unwrap_err().to_string().contains("needs a rate limit"));
        assert!(configure(&["reorder-distance=0"]).is_err());
        let err = configure(&["jitter=5ms"]).unwrap_err().to_string();
        assert_eq!(
            err,
            "jitter: 5ms is more than the delay (0s); a delay cannot go below zero, so give a delay at least as large"
        );
        assert!(configure(&["delay=5ms", "jitter=5ms"]).is_ok(), "up to the delay is fine");
        let down = configure(&["up-delay=5ms", "jitter=2ms"]).unwrap_err().to_string();
        assert!(down.starts_with("down-jitter: 2ms"), "down has no delay: {down}");
        assert!(configure(&["jitter-reorders=maybe"]).is_err());
        assert_eq!(configure(&["loss"]).unwrap_err().to_string(), "loss needs a value, as in loss=VALUE");
        assert!(configure(&["up-jitter-reorders"]).unwrap().0.jitter_reorders, "a bare switch is on");
    }
}
