//! The documented exit codes, in one place (README "Exit codes").

use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// A fatal error (the message says what; nothing partial is visible).
    Fatal = 1,
    /// A bad command line, config, inventory or price book.
    Config = 2,
    /// Done, but input was quarantined beyond what was allowed (or `inventory check` found
    /// something).
    Quarantined = 3,
    /// Stopped by SIGTERM/SIGINT; what was read is committed and the next run continues.
    Interrupted = 4,
    /// Another run holds the warehouse lock; nothing was done.
    Busy = 5,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// Marks an error as the user's configuration's (exit code 2).
#[derive(Debug)]
pub struct ConfigProblem;

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("configuration problem")
    }
}

impl std::error::Error for ConfigProblem {}

/// Extension for marking errors as configuration problems.
pub trait ConfigContext<T> {
    /// Marks the error as the configuration's (exit code 2).
    fn config(self) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> ConfigContext<T> for Result<T, E> {
    fn config(self) -> anyhow::Result<T> {
        self.map_err(|e| e.into().context(ConfigProblem))
    }
}

/// The exit code of a failed command: a held warehouse lock is 5 whichever command met it
/// (`ingest`, `invoice` and `demo` as well as `run`), and so is losing a race to a concurrent
/// writer (a shard), so a scheduler retries later.
pub fn of_error(e: &anyhow::Error) -> Exit {
    if e.downcast_ref::<ConfigProblem>().is_some() {
        return Exit::Config;
    }
    let locked = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<linkmeter_warehouse::Error>(),
            Some(
                linkmeter_warehouse::Error::Locked { .. }
                    | linkmeter_warehouse::Error::Raced { .. }
            )
        )
    });
    if locked {
        Exit::Busy
    } else {
        Exit::Fatal
    }
}
