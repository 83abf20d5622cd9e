//! The impairment flags (`--loss`, `--up-delay`, ...), made from the one
//! settings table so that the command line and the control socket take the
//! same names and values.

use clap::{ArgAction, ArgMatches, Command, FromArgMatches};
use socketeer::impair::options::{PREFIXES, SETTINGS};

/// The impairment flags, made from the one settings table so that the
/// command line and the control socket take the same names and values.
#[derive(Clone, Debug, Default)]
pub(super) struct ImpairFlags {
    pub(super) pairs: Vec<(String, String)>,
}

impl clap::Args for ImpairFlags {
    fn augment_args(mut cmd: Command) -> Command {
        for (prefix, _) in PREFIXES {
            let (heading, hidden) = match prefix {
                "" => ("Impairments (both directions)", false),
                "up-" => ("Client to server (or first end to second) only (hidden from -h)", true),
                _ => ("Server to client (or second end to first) only (hidden from -h)", true),
            };
            for setting in SETTINGS {
                let name = format!("{prefix}{}", setting.name);
                let help = if prefix.is_empty() {
                    setting.help.to_owned()
                } else {
                    format!("--{} for this direction only", setting.name)
                };
                let arg = clap::Arg::new(name.clone())
                    .long(name)
                    .help(help)
                    .help_heading(heading)
                    .hide_short_help(hidden);
                let arg = if setting.is_switch {
                    arg.action(ArgAction::SetTrue)
                } else {
                    arg.value_name(setting.value_name)
                        .value_parser(move |value: &str| setting.check(value).map(|()| value.to_owned()))
                };
                cmd = cmd.arg(arg);
            }
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for ImpairFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = ImpairFlags::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for (prefix, _) in PREFIXES {
            for setting in SETTINGS {
                let id = format!("{prefix}{}", setting.name);
                let value = if setting.is_switch {
                    matches.get_flag(&id).then(|| "true".to_owned())
                } else {
                    matches.get_one::<String>(&id).cloned()
                };
                self.pairs.extend(value.map(|v| (id, v)));
            }
        }
        Ok(())
    }
}
