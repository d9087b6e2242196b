//! podsig: who sent a signal to a process, with the sender's ancestry, from eBPF.
//!
//! Data flows one way, and the folders follow it: `source` (what to watch, and the backend
//! whose kernel hooks fill the ring buffer) → `event` (one model for every backend) →
//! `pipeline` (its `Pipeline` runs the stages in order: correlate, enrich, name containers,
//! cause, link requests, redact, stories, node filter) → `sink` (output, the history,
//! metrics). `containers` names where processes live and follows a container watch;
//! `requests` reads what clients ask the managers; `units` follows systemd units; `cmd`
//! holds the subcommands that run it all.

pub mod cli;
pub mod cmd;
pub mod containers;
pub mod error;
pub mod event;
pub mod pipeline;
pub mod proc;
pub mod requests;
pub mod signals;
pub mod sink;
pub mod source;
pub mod units;

pub use error::error_line;

/// Every property test's configuration: `cases` each (what the property costs decides how
/// many a plain `cargo test` runs in bounded time), or PROPTEST_CASES for all of them, for a
/// longer hunt. Failures are not persisted: a case worth keeping becomes a unit test.
#[cfg(test)]
pub(crate) fn fuzz_config(cases: u32) -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(cases);
    proptest::test_runner::Config { cases, failure_persistence: None, ..Default::default() }
}

use anyhow::Result;

use crate::{
    cli::{Cli, Command},
    cmd::{demo, doctor, explain, floor, generate, history, record, stap_build, watch, why},
};

/// Runs the subcommand the command line names; each lives in `cmd/`.
pub async fn run(cli: Cli) -> Result<()> {
    let verbose = cli.verbose > 0;
    match cli.command {
        Command::Watch(args) => watch::command(args, verbose).await,
        Command::StapBuild(args) => stap_build::run(args, verbose).await,
        Command::Record(args) => record::run(args, verbose).await,
        Command::History(args) => history::run(args, verbose),
        Command::Why(args) => why::run(args, verbose),
        Command::Demo(args) => demo::run(args).await,
        Command::Explain(args) => explain::command(args),
        Command::Doctor(args) => doctor::command(args),
        Command::Completions { shell } => generate::completions(shell),
        Command::Man => generate::man(),
        Command::Floor { write } => floor::run(write).await,
    }
}
