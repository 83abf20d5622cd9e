//! nmap's command lines, as written: its options are rewritten into this
//! command's own before clap sees them, and its timing templates become
//! settings.

use std::ffi::OsString;
use std::time::Duration;

use super::super::args::subcommand_args;

/// nmap's spellings and what they stand for here. Options that take a
/// value keep it: the value follows as the next word, as with nmap.
const SPELLINGS: &[(&str, &[&str])] = &[
    ("-sT", &["--tcp"]),
    ("-sS", &["--syn"]),
    ("-sU", &["--udp"]),
    ("-sSU", &["--syn", "--udp"]),
    ("-sUS", &["--syn", "--udp"]),
    ("-sTU", &["--tcp", "--udp"]),
    ("-sUT", &["--tcp", "--udp"]),
    ("-sV", &["--banner"]),
    ("-Pn", &["--skip-discovery"]),
    ("-PN", &["--skip-discovery"]),
    ("-P0", &["--skip-discovery"]),
    ("-n", &["--no-dns"]),
    ("-F", &["--top-ports", "100"]),
    ("-iL", &["--input-list"]),
    ("-oN", &["--output-normal"]),
    ("-oG", &["--output-grep"]),
    ("-oX", &["--output-xml"]),
    ("-oA", &["--output-all"]),
    ("--excludefile", &["--exclude-file"]),
    ("--max-retries", &["--retries"]),
    ("--max-rate", &["--rate"]),
    ("--max-parallelism", &["--max-inflight"]),
    // The address family follows from the targets; nmap needs telling.
    ("-6", &[]),
    ("-4", &[]),
];

/// Rewrites nmap's options in `scan`'s own arguments into this command's
/// (see [`SPELLINGS`]; `-T4` and `-T aggressive` become `--timing`), so
/// nmap command lines work as written. Arguments of other commands are
/// someone's data and stay as they are.
pub fn nmap_style_args(args: Vec<OsString>) -> Vec<OsString> {
    let Some(start) = subcommand_args(&args, "scan") else { return args };
    let mut rewritten = args[..start].to_vec();
    for arg in &args[start..] {
        let Some(text) = arg.to_str() else {
            rewritten.push(arg.clone());
            continue;
        };
        if let Some((_, ours)) = SPELLINGS.iter().find(|(theirs, _)| *theirs == text) {
            rewritten.extend(ours.iter().map(OsString::from));
        } else if text == "-T" {
            rewritten.push("--timing".into());
        } else if let Some(level) = text.strip_prefix("-T").filter(|l| !l.is_empty()) {
            rewritten.push(format!("--timing={level}").into());
        } else {
            rewritten.push(arg.clone());
        }
    }
    rewritten
}

/// nmap's timing templates, `-T0` to `-T5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Timing {
    /// -T0: one probe at a time, five minutes apart.
    #[value(name = "paranoid", alias = "0")]
    Paranoid,
    /// -T1: one probe at a time, 15 seconds apart.
    #[value(name = "sneaky", alias = "1")]
    Sneaky,
    /// -T2: one probe at a time, 0.4 seconds apart.
    #[value(name = "polite", alias = "2")]
    Polite,
    /// -T3: the defaults.
    #[value(name = "normal", alias = "3")]
    Normal,
    /// -T4: answers waited for 1.25 s at most.
    #[value(name = "aggressive", alias = "4")]
    Aggressive,
    /// -T5: answers waited for 300 ms at most, hosts given up after 15 minutes.
    #[value(name = "insane", alias = "5")]
    Insane,
}

/// What a template sets, where the command line does not say otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TimingSettings {
    /// Probes per second.
    pub rate: Option<f64>,
    /// Probes in flight.
    pub max_inflight: Option<usize>,
    /// How long an answer is waited for.
    pub timeout: Option<Duration>,
    /// When a host is given up.
    pub host_timeout: Option<Duration>,
}

impl Timing {
    /// The settings this template stands for (nmap's, in socketeer's terms:
    /// scan delays become rates, serial scanning a window of one).
    pub fn settings(self) -> TimingSettings {
        let serial = |seconds_apart: f64| TimingSettings {
            rate: Some(1.0 / seconds_apart),
            max_inflight: Some(1),
            ..TimingSettings::default()
        };
        match self {
            Timing::Paranoid => serial(300.0),
            Timing::Sneaky => serial(15.0),
            Timing::Polite => serial(0.4),
            Timing::Normal => TimingSettings::default(),
            Timing::Aggressive => {
                TimingSettings { timeout: Some(Duration::from_millis(1250)), ..TimingSettings::default() }
            }
            Timing::Insane => TimingSettings {
                timeout: Some(Duration::from_millis(300)),
                host_timeout: Some(Duration::from_secs(15 * 60)),
                ..TimingSettings::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(line: &str) -> String {
        let args = line.split(' ').map(OsString::from).collect();
        let out: Vec<String> = nmap_style_args(args).into_iter().map(|a| a.into_string().unwrap()).collect();
        out.join(" ")
    }

    #[test]
    fn nmap_lines_become_ours() {
        assert_eq!(
            rewrite("socketeer scan -sSU -sV -Pn -n -T4 -F -oG out.gnmap -oX out.xml 10.0.0.1"),
            "socketeer scan --syn --udp --banner --skip-discovery --no-dns --timing=4 --top-ports 100 \
             --output-grep out.gnmap --output-xml out.xml 10.0.0.1"
        );
        assert_eq!(
            rewrite("socketeer -v scan -6 ::1 -T insane --max-retries 3 --max-rate 100 -oA base"),
            "socketeer -v scan ::1 --timing insane --retries 3 --rate 100 --output-all base"
        );
    }

    #[test]
    fn other_commands_arguments_stay_as_they_are() {
        assert_eq!(rewrite("socketeer echo send host scan -sS -T4"), "socketeer echo send host scan -sS -T4");
    }

    #[test]
    fn templates_slow_down_or_tighten() {
        assert_eq!(Timing::Normal.settings(), TimingSettings::default());
        let polite = Timing::Polite.settings();
        assert_eq!((polite.rate, polite.max_inflight), (Some(2.5), Some(1)));
        assert_eq!(Timing::Insane.settings().timeout, Some(Duration::from_millis(300)));
    }
}
