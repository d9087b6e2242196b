//! The subcommands: each turns its options into a run of the pipeline, or a report.

pub mod demo;
pub mod doctor;
pub mod explain;
pub mod floor;
pub mod generate;
pub mod history;
pub mod record;
pub mod stap_build;
pub mod watch;
pub mod why;

use anyhow::{Result, bail};

/// The subcommands that load eBPF programs say so before anything else fails obscurely.
pub(crate) fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("podsig loads eBPF programs and must run as root: sudo podsig …");
    }
    Ok(())
}
