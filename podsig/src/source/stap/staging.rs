//! Where the SystemTap backend's files live while stap needs them (a directory only root
//! can enter), the switch that skips its preflight, and its one-line failures.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::PathBuf,
};

use anyhow::{Context as _, Result, anyhow, bail};

/// Set to skip the headers/debuginfo/module checks before running stap (tests with a
/// stand-in stap; hosts with a prebuilt setup podsig cannot see).
pub const NO_PREFLIGHT_ENV: &str = "PODSIG_STAP_NO_PREFLIGHT";

/// A directory only root can enter, removed on drop: the script lives only as long as stap
/// needs it to compile.
pub(super) struct PrivateDir(pub(super) PathBuf);

impl PrivateDir {
    pub(super) fn new() -> Result<Self> {
        let base = std::env::temp_dir();
        for n in 0..100u32 {
            let p = base.join(format!("podsig-stap-{}-{n}", std::process::id()));
            match fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => return Ok(Self(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("creating {}", p.display())),
            }
        }
        bail!("could not create a private directory in {}", base.display())
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Writes `text` to a new file only root can read (the script, in a [`PrivateDir`]).
pub(super) fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

/// One line: what failed, for which kernel, what to do. stap's log only with --verbose.
pub(super) fn stap_failure(
    action: &str,
    release: &str,
    log: &[String],
    status: Option<std::process::ExitStatus>,
    verbose: bool,
) -> anyhow::Error {
    if verbose {
        for l in log {
            eprintln!("podsig: stap: {l}");
        }
    }
    let first_error = log
        .iter()
        .find(|l| l.contains("error:") || l.starts_with("semantic error") || l.contains("ERROR"))
        .or(log.last())
        .map_or("no output".to_string(), |l| l.trim().to_string());
    let hint = if verbose { "" } else { " (--verbose shows stap's output)" };
    if action == "load" {
        return anyhow!(
            "staprun could not load the module on kernel {release} ({}; {first_error}): check that \
             it was built for this kernel and that debugfs is mounted, or use --backend ebpf{hint}",
            status.map_or("staprun exited".to_string(), |s| format!("staprun {s}")),
        );
    }
    anyhow!(
        "{} could not {action} its module for kernel {} ({}; {first_error}): upgrade \
         SystemTap to a release that supports this kernel, or use --backend ebpf{}",
        crate::source::features::stap_version().unwrap_or_else(|| "stap (version unknown)".into()),
        release,
        status.map_or("stap exited".to_string(), |s| format!("stap {s}")),
        if verbose { "" } else { " (--verbose shows stap's output)" }
    )
}
