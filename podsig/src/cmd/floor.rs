//! `podsig floor`: the program that does nothing, attached where podsig's hooks go, for the
//! benchmark's floor (what any program on that hook costs).

use anyhow::{Context as _, Result};

use crate::{cmd::require_root, source};

/// Held until SIGINT. `write`: on sys_enter_write (the request capture's hook) rather than
/// signal_generate.
pub async fn run(write: bool) -> Result<()> {
    require_root()?;
    let _held = source::ebpf::attach_empty(write)?;
    eprintln!("podsig: attached (empty program on {})", if write { "sys_enter_write" } else { "signal_generate" });
    tokio::signal::ctrl_c().await.context("waiting for SIGINT")?;
    Ok(())
}
