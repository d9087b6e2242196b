//! What every task uses: the workspace's paths, commands run with their echo, apt.

use std::{
    env,
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

pub(crate) fn root_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").into()
}

pub(crate) fn cargo_home_bin() -> PathBuf {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
        .join("bin")
}

/// PATH with cargo's bin directory first, so a just-installed bpf-linker is found by the
/// nightly build that podsig/build.rs starts.
pub(crate) fn path_with_cargo_bin() -> OsString {
    let mut paths = vec![cargo_home_bin()];
    if let Some(p) = env::var_os("PATH") {
        paths.extend(env::split_paths(&p));
    }
    env::join_paths(paths).expect("PATH entries are valid")
}

pub(crate) fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Runs a command, echoing it; fails with its exit status.
pub(crate) fn sh(cmd: &mut Command) -> Result<()> {
    cmd.env("PATH", path_with_cargo_bin());
    let shown = format!("{cmd:?}").replace('"', "");
    let status = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

pub(crate) fn quiet_ok(cmd: &mut Command) -> bool {
    cmd.env("PATH", path_with_cargo_bin()).output().is_ok_and(|o| o.status.success())
}

pub(crate) fn as_root(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.arg(program);
        c
    }
}

pub(crate) fn cargo() -> Command {
    let mut c = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root_dir());
    c
}

pub(crate) fn build(release: bool) -> Result<()> {
    let mut c = cargo();
    c.args(["build", "--package", "podsig"]);
    if release {
        c.arg("--release");
    }
    sh(&mut c)
}

pub(crate) fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root_dir().join("target"))
}

pub(crate) fn binary(release: bool) -> PathBuf {
    target_dir().join(if release { "release" } else { "debug" }).join("podsig")
}

/// Whether apt knows a package (it has a candidate version to install).
pub(crate) fn apt_has(package: &str) -> bool {
    let candidate = || {
        Command::new("apt-cache").args(["policy", package]).output().is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim().starts_with("Candidate:") && !l.contains("(none)"))
        })
    };
    // A fresh machine's package lists may be empty or stale.
    candidate() || (quiet_ok(as_root("apt-get").args(["update", "-q"])) && candidate())
}

/// Installs missing Debian packages, one printed line for the group.
pub(crate) fn apt_ensure(what: &str, packages: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().filter(|(_, path)| !Path::new(path).exists()).map(|(p, _)| *p).collect();
    println!(
        "xtask: {what} ({}): {}",
        packages.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", "),
        if missing.is_empty() { "present, skipped" } else { "missing, installing" }
    );
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    Ok(())
}

pub(crate) fn apt_install(packages: &[&str]) -> Result<()> {
    sh(as_root("apt-get").args(["update", "-q"]))?;
    sh(as_root("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}
