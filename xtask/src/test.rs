//! `cargo xtask test`: rustfmt, README's module list and clippy, then every test: unit, end-to-end (as root, the
//! test containerd running), and vm-test on other kernels.

use std::{env, path::PathBuf, process::Command};

use anyhow::{Result, bail};

use crate::{
    containerd::{self, PAUSE_IMAGE},
    image,
    prereqs::prereqs,
    readme,
    system::{apt_ensure, apt_install, binary, build, cargo, is_root, quiet_ok, root_dir, sh, target_dir},
    vm,
};

/// Debian packages the end-to-end tests drive (beyond a standard Debian machine).
pub(crate) const TEST_PACKAGES: &[(&str, &str)] = &[
    ("busybox-static", "/bin/busybox"),
    ("systemtap", "/usr/bin/stap"),
    ("containerd", "/usr/bin/containerd"),
    ("runc", "/usr/sbin/runc"),
    // The runtimes test starts a dockerd of its own (private socket and data root) and
    // runs podman rootful with crun and conmon. docker.io's own service is never used (its
    // install may start one where systemd runs; the tests ignore it).
    ("docker.io", "/usr/sbin/dockerd"),
    ("podman", "/usr/bin/podman"),
    ("crun", "/usr/bin/crun"),
    ("conmon", "/usr/bin/conmon"),
    // The verdict tests: a tmux session kill, and small C scenarios (raise, timers).
    ("tmux", "/usr/bin/tmux"),
    ("gcc", "/usr/bin/cc"),
    // The findings tests: scripts run by python3 (perl is in every Debian, as perl-base).
    ("python3", "/usr/bin/python3"),
    // The read-only fault test: ext4 on a loop device, checked with e2fsck.
    ("e2fsprogs", "/usr/sbin/mkfs.ext4"),
    // The witness: another tool on the same tracepoint, against which the kernel's facts in
    // podsig's records are checked.
    ("bpftrace", "/usr/bin/bpftrace"),
];

/// kubernetes-validate (PyPI; it carries the Kubernetes schemas, so it validates offline),
/// in a virtualenv kept outside the clone.
pub(crate) fn kubernetes_validate() -> Result<PathBuf> {
    let venv = PathBuf::from("/var/cache/podsig-test/venv");
    let bin = venv.join("bin/kubernetes-validate");
    println!(
        "xtask: kubernetes-validate (PyPI, in {}): {}",
        venv.display(),
        if bin.exists() { "present, skipped" } else { "missing, installing" }
    );
    if !bin.exists() {
        if !quiet_ok(Command::new("python3").args(["-c", "import venv, ensurepip"])) {
            apt_install(&["python3-venv"])?;
        }
        sh(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        sh(Command::new(venv.join("bin/pip")).args(["install", "-q", "kubernetes-validate==1.37.0"]))?;
    }
    Ok(bin)
}

/// Clippy over every crate and target, warnings as errors: the host crates with the stable
/// toolchain, the eBPF crate with the pinned nightly for the bpf target, as podsig's build.rs
/// builds it (in a target directory of its own, so its flags rebuild nothing else).
pub(crate) fn clippy() -> Result<()> {
    sh(cargo().args(["clippy", "--workspace", "--exclude", "podsig-ebpf", "--all-targets", "--", "-D", "warnings"]))?;
    let pin = podsig_toolchain::pin(&root_dir())?;
    let present = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", &pin])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.starts_with("clippy")));
    println!("xtask: clippy for {pin}: {}", if present { "present, skipped" } else { "missing, installing" });
    if !present {
        sh(Command::new("rustup").args(["component", "add", "clippy", "--toolchain", &pin]))?;
    }
    sh(Command::new("rustup")
        .args(["run", &pin, "cargo", "clippy", "--package", "podsig-ebpf", "--bins", "--release"])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core", "--target-dir"])
        .arg(target_dir().join("clippy-ebpf"))
        .args(["--", "-D", "warnings"])
        .current_dir(root_dir().join("podsig-ebpf"))
        .env("CARGO_ENCODED_RUSTFLAGS", format!("--cfg=bpf_target_arch=\"{}\"", env::consts::ARCH))
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER"))
}

/// Every test: unit tests of each crate, and the end-to-end tests, which run the real binary
/// against the real kernel (as root; under CI a missing privilege fails them).
pub(crate) fn test() -> Result<()> {
    // The cheap checks first, so CI fails fast: layout and README's module list, then lints
    // (clippy builds podsig, and with it the eBPF object, so it needs the prerequisites).
    sh(cargo().args(["fmt", "--all", "--check"]))?;
    readme::check(&root_dir())?;
    prereqs()?;
    clippy()?;
    apt_ensure("test packages", TEST_PACKAGES)?;
    build(false)?;
    // The eBPF object the tests run was built by the pin, not by whatever nightly is around.
    let pin = podsig_toolchain::pin(&root_dir())?;
    podsig_toolchain::check_producers(&binary(false), &pin)?;
    println!("xtask: the embedded eBPF object was built by the pinned {pin}");
    // The DaemonSet's image, run in the test containerd the way the DaemonSet runs it.
    let image = image::task()?;
    let validator = kubernetes_validate()?;
    let ctrd = if is_root() { Some(containerd::start()?) } else { None };
    let mut c = cargo();
    c.args(["test", "--workspace", "--exclude", "podsig-ebpf", "--no-fail-fast"])
        .env("PODSIG_BIN", binary(false))
        .env("PODSIG_TEST_IMAGE", &image)
        .env("PODSIG_TEST_IMAGE_REF", image::reference())
        .env("PODSIG_KUBERNETES_VALIDATE", &validator);
    if let Some(ct) = &ctrd {
        c.env("PODSIG_TEST_CONTAINERD", &ct.socket).env("PODSIG_TEST_PAUSE_IMAGE", PAUSE_IMAGE);
    }
    let result = sh(&mut c);
    drop(ctrd);
    result?;
    // Other kernels, booted under QEMU: the portability claims, tested.
    if is_root() {
        vm::task(&[])
    } else if env::var_os("CI").is_some() {
        bail!("vm-test needs root (apt, /var/cache); CI must run as root")
    } else {
        println!("xtask: vm-test skipped: needs root (sudo cargo xtask test)");
        Ok(())
    }
}
