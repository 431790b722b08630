//! The `duet` binary: parse the command line, set up logging, run the
//! event loop, and map the result to an exit code. Errors are one line on
//! stderr, prefixed with `duet: `. `duet completions` and `duet man` print
//! their text and exit before any of that; so does `duet id`, the local
//! fingerprint.

use std::process::ExitCode;

use clap::Parser;
use duet::cli::{Cli, Command};
use duet::core::exit;
use duet::os::event_loop;
use simplelog::{ConfigBuilder, LevelFilter, WriteLogger};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            // Help and the version are clap's to print (to stdout, exit
            // 0); so is the help for a bare `duet` (to stderr, exit 2).
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            say(&duet::cli::usage_line(&e));
            return ExitCode::from(exit::USAGE);
        }
    };
    if let Some(text) = cli.generated() {
        return match text.write_to(&mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            // A reader that stopped early (`| head`) is no error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) => {
                say(&format_args!("cannot write to stdout: {e}"));
                ExitCode::from(exit::FAILURE)
            }
        };
    }
    if matches!(cli.command, Command::Id) {
        return print_id();
    }
    if let Some(common) = cli.common()
        && let Err(msg) = init_logging(common)
    {
        say(&msg);
        return ExitCode::from(exit::USAGE);
    }
    if matches!(cli.command, Command::Swarm { .. }) {
        return run_swarm(cli);
    }
    let opts = match cli.into_options() {
        Ok(o) => o,
        Err(e) => {
            say(&e);
            return ExitCode::from(exit::USAGE);
        }
    };
    match event_loop::run(opts) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            say(&e);
            ExitCode::from(e.exit_code())
        }
    }
}

/// `duet swarm`: its own loop (`os::swarm_loop`), its own summary.
fn run_swarm(cli: Cli) -> ExitCode {
    let opts = match cli.into_swarm() {
        Ok(Some(o)) => o,
        Ok(None) => return ExitCode::from(exit::USAGE),
        Err(e) => {
            say(&e);
            return ExitCode::from(exit::USAGE);
        }
    };
    match duet::os::swarm_loop::run(opts) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            say(&e);
            ExitCode::from(e.exit_code())
        }
    }
}

/// `duet id`: the local fingerprint on stdout, the identity created on
/// first use (said on stderr).
fn print_id() -> ExitCode {
    use duet::os::identity;
    let id = match identity::home().and_then(|home| identity::load_or_create(&home)) {
        Ok(id) => id,
        Err(e) => {
            say(&e);
            return ExitCode::from(exit::FAILURE);
        }
    };
    if id.created {
        say(&format_args!(
            "created a new identity in {}",
            id.path.display()
        ));
    }
    use std::io::Write;
    match writeln!(std::io::stdout(), "{}", id.fingerprint()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            say(&format_args!("cannot write to stdout: {e}"));
            ExitCode::from(exit::FAILURE)
        }
    }
}

/// One error line on stderr; a closed stderr is not worth a panic.
fn say(what: &dyn std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "duet: {what}");
}

fn init_logging(common: &duet::cli::Common) -> Result<(), String> {
    let level = match (common.quiet, common.verbose) {
        (true, _) => LevelFilter::Error,
        (false, 0) => LevelFilter::Warn,
        (false, 1) => LevelFilter::Debug,
        (false, _) => LevelFilter::Trace,
    };
    let config = ConfigBuilder::new()
        .set_time_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .add_filter_ignore_str("mio")
        .build();
    match &common.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    let why = duet::os::error::io_msg(&e);
                    format!("cannot open log file {}: {why}", path.display())
                })?;
            WriteLogger::init(level, config, file).map_err(|e| e.to_string())
        }
        None => duet::os::logging::init_stderr(level).map_err(|e| e.to_string()),
    }
}
