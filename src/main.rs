//! The `socketeer` binary: parse the arguments, run the command, and turn the
//! outcome into an exit code (0 success, 1 runtime error, 2 usage error).

#![forbid(unsafe_code)]

mod cli;

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args =
        cli::Cli::parse_from(cli::tcpdump_style_args(cli::nmap_style_args(std::env::args_os().collect())));
    init_logging(&args.verbosity.filter());
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        // The scan's summary already said so; 1 tells scripts nothing was found.
        Err(e) if e.is::<cli::NothingOpen>() => ExitCode::FAILURE,
        // The check's report already said which cases failed and why.
        Err(e) if e.is::<cli::ChecksFailed>() => ExitCode::FAILURE,
        // The results so far are out, marked partial; 130 as for any Ctrl-C.
        Err(e) if e.is::<cli::Interrupted>() => ExitCode::from(130),
        Err(e) => {
            // If stderr is gone too there is no one left to tell.
            // Errors may quote what a peer sent: show it, never let it drive the terminal.
            let message = socketeer::net::strip_os_error(&format!("{e:#}"));
            let _ = writeln!(io::stderr(), "error: {}", socketeer::text::sanitize_lines(&message));
            // A scan that could not run is 3: its 1 means "nothing open".
            let code = if e.is::<cli::UsageError>() {
                2
            } else if e.is::<cli::ScanFailed>() {
                3
            } else {
                1
            };
            ExitCode::from(code)
        }
    }
}

/// A reader that closed our stdout (`socketeer ... | head`) is not a failure.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|io| io.kind() == io::ErrorKind::BrokenPipe)
}

/// Logs go to stderr; `RUST_LOG` wins over `-v`/`-q`.
fn init_logging(default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false)
        .init();
}
