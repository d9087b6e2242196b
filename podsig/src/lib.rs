//! podsig: who sent a signal to a process, with the sender's ancestry, from eBPF.
//!
//! Data flows one way: `target` (what to watch) → `backend` (kernel hooks) → `event`
//! (one model for every backend) → `correlate` (OOM marks) → `enrich` (/proc facts, wall
//! time, `findings`) → `cause` (the verdict) → `output`.

pub mod backend;
pub mod cause;
pub mod cli;
pub mod correlate;
pub mod demo;
pub mod enrich;
pub mod event;
pub mod findings;
pub mod output;
pub mod signals;
pub mod target;
pub mod watch;

use anyhow::{Result, bail};

use crate::{
    backend::WatchSpec,
    cli::{Cli, Command},
    watch::WatchOptions,
};

fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("podsig loads eBPF programs and must run as root: sudo podsig …");
    }
    Ok(())
}

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Watch(args) => {
            require_root()?;
            let pids = target::resolve_pids(&args.pids)?;
            let opts = WatchOptions {
                spec: WatchSpec {
                    pids,
                    all: args.all,
                    signals: args.signals,
                    ring_bytes: args.common.ring_size,
                },
                format: args.common.output.unwrap_or_else(watch::default_format),
                count: args.count,
                duration: args.duration,
            };
            let summary = watch::run(opts, || {}).await?;
            tracing::debug!("stopped: {:?} after {} signals", summary.stop, summary.signals);
            Ok(())
        }
        Command::Demo(args) => {
            require_root()?;
            let format = args.common.output.unwrap_or_else(watch::default_format);
            demo::run(format, args.common.ring_size).await
        }
    }
}
