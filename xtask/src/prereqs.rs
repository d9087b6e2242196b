//! `cargo xtask prereqs`: the eBPF build prerequisites, installed where missing.

use std::{path::PathBuf, process::Command};

use anyhow::{Result, bail};

use crate::system::{apt_has, apt_install, quiet_ok, root_dir, sh};

fn step(n: usize, what: &str, present: bool) {
    let state = if present { "present, skipped" } else { "missing, installing" };
    println!("xtask: [{n}/4] {what}: {state}");
}

/// The pinned nightly + rust-src (the eBPF crate is built with `-Z build-std=core`), Debian's
/// LLVM of the same major, and bpf-linker built against it; then the pair is checked, so a
/// mismatch stops here in one line instead of as `Invalid record` from inside the link.
pub(crate) fn prereqs() -> Result<()> {
    let pin = podsig_toolchain::pin(&root_dir())?;
    let installed = quiet_ok(Command::new("rustup").args(["run", &pin, "rustc", "--version"]));
    let rust_src = installed
        && Command::new("rustup")
            .args(["component", "list", "--installed", "--toolchain", &pin])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.starts_with("rust-src")));
    step(1, &format!("Rust {pin} with rust-src (pinned in {})", podsig_toolchain::PIN_FILE), rust_src);
    if !rust_src {
        sh(Command::new("rustup").args([
            "toolchain",
            "install",
            &pin,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))?;
    }
    let llvm = podsig_toolchain::rustc_llvm_major(&pin)?;

    let prefix = PathBuf::from(format!("/usr/lib/llvm-{llvm}"));
    let dev = format!("llvm-{llvm}-dev");
    let llvm_present = prefix.join("bin/llvm-config").exists() && prefix.join("include/llvm-c/Core.h").exists();
    if !llvm_present && !apt_has(&dev) {
        bail!(
            "{pin} (pinned in {}) is built on LLVM {llvm}, but apt has no {dev} to build bpf-linker against: pin a \
             dated nightly whose `rustc -vV` names an LLVM major this system ships",
            podsig_toolchain::PIN_FILE
        );
    }
    step(2, &format!("Debian's {dev} ({pin} is built on LLVM {llvm})"), llvm_present);
    if !llvm_present {
        apt_install(&[&dev])?;
    }

    let version = podsig_toolchain::BPF_LINKER_VERSION;
    let current = podsig_toolchain::find_bpf_linker().map(|p| podsig_toolchain::inspect_bpf_linker(&p));
    let matches = current.as_ref().is_some_and(|l| l.llvm_major == Some(llvm) && l.version.as_deref() == Some(version));
    step(3, &format!("bpf-linker {version} built against LLVM {llvm}"), matches);
    if let Some(l) = current.as_ref().filter(|_| !matches) {
        println!(
            "xtask:       found {} ({}, LLVM {}): rebuilding",
            l.path.display(),
            l.version.as_deref().map_or("release unknown".into(), |v| format!("bpf-linker {v}")),
            l.llvm_major.map_or("unknown".into(), |m| m.to_string())
        );
    }
    if !matches {
        sh(Command::new("cargo")
            .args(["install", "bpf-linker", "--version", &format!("={version}"), "--locked", "--force"])
            .args(["--no-default-features", "--features", &format!("llvm-{llvm}")])
            .env("LLVM_PREFIX", &prefix))?;
    }

    // containerd's API is generated from its .proto files when podsig builds.
    let protoc = quiet_ok(Command::new("protoc").arg("--version"));
    step(4, "protoc (Debian's protobuf-compiler, for containerd's API)", protoc);
    if !protoc {
        apt_install(&["protobuf-compiler"])?;
    }

    podsig_toolchain::check_pair(&pin)?;
    println!("xtask: eBPF toolchain: {pin} and bpf-linker {version} both on LLVM {llvm}");
    Ok(())
}
