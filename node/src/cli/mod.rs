//! Argument parsing and dispatch.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::Value;

mod credential;
mod demo;
mod id;
mod join;
mod progress;
mod session;

/// Exit status for "checked and invalid".
pub const EXIT_INVALID: u8 = 1;
/// Exit status for usage and input errors.
pub const EXIT_USAGE: u8 = 2;

/// What a command produced.
#[derive(Debug)]
pub enum Outcome {
    /// Success: print the JSON, exit 0.
    Done(Value),
    /// The checked document is invalid: print the JSON, the reason on
    /// stderr, exit 1.
    Invalid {
        /// JSON report.
        report: Value,
        /// Human reason.
        reason: String,
    },
}

/// A usage or input error (exit 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// A file could not be read or written.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Input is not what the command needs.
    #[error("{0}")]
    Input(String),
    /// Key file problems.
    #[error(transparent)]
    KeyFile(#[from] identity::KeyFileError),
}

#[derive(Debug, Parser)]
#[command(
    name = "mpc-node",
    version,
    about = "A party in a secure multiparty computation: identity, credentials, sessions",
    long_about = "A party in a secure multiparty computation.\n\nOutput is JSON on stdout. \
Exit status: 0 success/valid, 1 checked and invalid (reason on stderr), 2 usage or input error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, show and resolve did:key identities.
    #[command(subcommand)]
    Id(id::IdCommand),
    /// Issue, present and verify W3C verifiable credentials.
    #[command(subcommand)]
    Credential(credential::CredentialCommand),
    /// Organizer commands: publish, show and seal sessions on a broker.
    #[command(subcommand)]
    Session(session::SessionCommand),
    /// Join a session: authenticate, verify everyone, build the mesh, compute.
    Join(join::JoinArgs),
    /// Run a whole session on this machine: broker, organizer, issuer, parties.
    Demo(demo::DemoArgs),
}

/// Runs the CLI with the process arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Id(c) => id::run(c),
        Command::Credential(c) => credential::run(c),
        Command::Session(c) => session::run(c),
        Command::Join(a) => join::run(a),
        Command::Demo(a) => demo::run(a),
    };
    finish(result)
}

fn finish(result: Result<Outcome, CliError>) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match result {
        Ok(Outcome::Done(v)) => {
            let _ = writeln!(out, "{}", pretty(&v));
            ExitCode::SUCCESS
        }
        Ok(Outcome::Invalid { report, reason }) => {
            let _ = writeln!(out, "{}", pretty(&report));
            eprintln!("invalid: {reason}");
            ExitCode::from(EXIT_INVALID)
        }
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// An error and its sources, joined with ": ", skipping sources whose text
/// the message already shows.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        src = s.source();
    }
    msg
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// A multi-threaded runtime for the commands that talk to the network on behalf of several
/// parties at once (`demo`) or do nothing latency-bound (`session`).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Input(format!("cannot start the async runtime: {e}")))
}

/// The runtime of one party (`join`): a single thread. A party's work is a chain of short
/// steps that wake each other (socket → `webrtc` driver → channel reader → MPC engine and
/// back); on a multi-threaded runtime each hand-off may have to wake a parked worker. Measured
/// with `cargo bench -p node --bench mesh` (each party on its own runtime, 2-core machine):
/// sort of 32 values over the mesh took 20.2–20.9 ms with 3 single-threaded parties and
/// 23.2–24.0 ms with 3 two-worker ones (two runs each).
pub(crate) fn party_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Input(format!("cannot start the async runtime: {e}")))
}

/// Reads a file, or standard input for `-`.
pub(crate) fn read_input(path: &std::path::Path) -> Result<String, CliError> {
    let read = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    read.map_err(|source| CliError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads and parses a JSON file.
pub(crate) fn read_json(path: &std::path::Path) -> Result<Value, CliError> {
    let text = read_input(path)?;
    serde_json::from_str(&text)
        .map_err(|e| CliError::Input(format!("{} is not valid JSON: {e}", path.display())))
}

/// Parses a date-time argument.
pub(crate) fn parse_time(s: &str) -> Result<std::time::SystemTime, CliError> {
    identity::parse_timestamp(s).map_err(|e| CliError::Input(e.to_string()))
}
