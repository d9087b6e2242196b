//! Project tasks: `cargo xtask <task>`.
//!
//! Every task that builds first makes sure the eBPF build prerequisites are present,
//! installing what is missing, one printed line per step, so a fresh machine needs nothing
//! but this repository and cargo.

use std::{
    env,
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, Result, bail};

mod bench;
mod floating;
mod image;
mod stapvm;
mod vm;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  run [-- ARGS…]   install prerequisites, build podsig (release), run it as root
                   (no ARGS: `podsig demo`)
  build            install prerequisites, build podsig (release)
  install          build, then copy podsig to /usr/local/bin
  test             check rustfmt and clippy (-D warnings), install prerequisites, build,
                   run every test (unit, end-to-end, and vm-test on other kernels)
  bench            podsig beside bpftrace and sigsnoop: ready time, miss/hit path,
                   memory, ancestry (installs the peers; writes target/bench.{md,json})
  image            build the container image (static musl podsig, OCI archive in
                   target/image/) without a Docker daemon
  vm-test [--kernel K …]  boot Debian kernels (5.10, 6.1, 6.12) under QEMU and run the
                   end-to-end scenario in each, then SystemTap live on trixie's 6.12
                   (a module built by `podsig stap-build` in a cached sid root) beside
                   eBPF (K: part of a release, e.g. 5.10, or `stap`)
  prereqs          install the eBPF build prerequisites only";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("build") => prereqs().and_then(|()| build(true)),
        Some("install") => install(),
        Some("test") => test(),
        Some("prereqs") => prereqs(),
        Some("bench") => bench_task(),
        Some("vm-test") => vm_test(&args[1..]),
        Some("image") => {
            image_task().map(|p| println!("xtask: image {} written to {}", image::reference(), p.display()))
        }
        // Used by the bench: the signal storm, as a separate process.
        Some("storm") => bench::storm(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => {
            eprintln!("xtask: unknown task '{other}'\n{USAGE}");
            return ExitCode::from(2);
        }
        None => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn root_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").into()
}

fn cargo_home_bin() -> PathBuf {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
        .join("bin")
}

/// PATH with cargo's bin directory first, so a just-installed bpf-linker is found by the
/// nightly build that aya-build starts.
fn path_with_cargo_bin() -> OsString {
    let mut paths = vec![cargo_home_bin()];
    if let Some(p) = env::var_os("PATH") {
        paths.extend(env::split_paths(&p));
    }
    env::join_paths(paths).expect("PATH entries are valid")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Runs a command, echoing it; fails with its exit status.
fn sh(cmd: &mut Command) -> Result<()> {
    cmd.env("PATH", path_with_cargo_bin());
    let shown = format!("{cmd:?}").replace('"', "");
    let status = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

fn quiet_ok(cmd: &mut Command) -> bool {
    cmd.env("PATH", path_with_cargo_bin()).output().is_ok_and(|o| o.status.success())
}

fn as_root(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.arg(program);
        c
    }
}

fn step(n: usize, what: &str, present: bool) {
    let state = if present { "present, skipped" } else { "missing, installing" };
    println!("xtask: [{n}/4] {what}: {state}");
}

/// The pinned nightly + rust-src (the eBPF crate is built with `-Z build-std=core`), Debian's
/// LLVM of the same major, and bpf-linker built against it; then the pair is checked, so a
/// mismatch stops here in one line instead of as `Invalid record` from inside the link.
fn prereqs() -> Result<()> {
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

/// Whether apt knows a package (it has a candidate version to install).
fn apt_has(package: &str) -> bool {
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

fn cargo() -> Command {
    let mut c = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root_dir());
    c
}

fn build(release: bool) -> Result<()> {
    let mut c = cargo();
    c.args(["build", "--package", "podsig"]);
    if release {
        c.arg("--release");
    }
    sh(&mut c)
}

fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root_dir().join("target"))
}

fn binary(release: bool) -> PathBuf {
    target_dir().join(if release { "release" } else { "debug" }).join("podsig")
}

/// The static build the image holds: Rust's musl target, and musl-gcc for the C that
/// SQLite is.
fn image_task() -> Result<PathBuf> {
    prereqs()?;
    let musl_std = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l == image::MUSL_TARGET));
    println!(
        "xtask: image: Rust target {}: {}",
        image::MUSL_TARGET,
        if musl_std { "present, skipped" } else { "missing, installing" }
    );
    if !musl_std {
        sh(Command::new("rustup").args(["target", "add", image::MUSL_TARGET]))?;
    }
    apt_ensure("image: C toolchain for musl", &[("musl-tools", "/usr/bin/musl-gcc")])?;
    sh(cargo().args(["build", "--release", "--package", "podsig", "--target", image::MUSL_TARGET]))?;
    image::build(&target_dir())
}

fn run(args: &[String]) -> Result<()> {
    prereqs()?;
    build(true)?;
    let args: Vec<String> = match args {
        [] => vec!["demo".into()],
        [sep, rest @ ..] if sep == "--" => {
            if rest.is_empty() {
                vec!["demo".into()]
            } else {
                rest.to_vec()
            }
        }
        rest => rest.to_vec(),
    };
    let bin = binary(true);
    println!("xtask: running {} {}", bin.display(), args.join(" "));
    let status =
        as_root(&bin.to_string_lossy()).args(&args).status().with_context(|| format!("starting {}", bin.display()))?;
    if !status.success() {
        bail!("podsig exited with {status}");
    }
    Ok(())
}

/// Installs missing Debian packages, one printed line for the group.
fn apt_ensure(what: &str, packages: &[(&str, &str)]) -> Result<()> {
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

fn apt_install(packages: &[&str]) -> Result<()> {
    sh(as_root("apt-get").args(["update", "-q"]))?;
    sh(as_root("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

const VM_PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    ("cpio", "/usr/bin/cpio"),
    ("busybox-static", "/bin/busybox"),
    // The sid root where SystemTap builds the module for the live run.
    ("debootstrap", "/usr/sbin/debootstrap"),
];

fn vm_test(args: &[String]) -> Result<()> {
    let mut only = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--kernel" => only.push(it.next().context("--kernel needs a value, e.g. 5.10")?.clone()),
            other => bail!("vm-test: unknown argument {other}"),
        }
    }
    prereqs()?;
    apt_ensure("vm-test packages", VM_PACKAGES)?;
    if !is_root() {
        bail!("vm-test downloads kernels into /var/cache and runs apt: run it as root");
    }
    build(true)?;
    vm::run(&binary(true), &only)
}

fn bench_task() -> Result<()> {
    prereqs()?;
    apt_ensure("peers", &[("bpftrace", "/usr/bin/bpftrace"), ("libbpf-tools", "/usr/sbin/sigsnoop")])?;
    build(true)?;
    if !is_root() {
        bail!("the bench loads eBPF programs: run it as root (sudo cargo xtask bench)");
    }
    bench::run(&binary(true))
}

fn install() -> Result<()> {
    prereqs()?;
    build(true)?;
    let dest = "/usr/local/bin/podsig";
    sh(as_root("install").args(["-m", "0755"]).arg(binary(true)).arg(dest))?;
    println!("xtask: installed {dest}; try: sudo podsig watch --pid <PID>");
    Ok(())
}

/// Debian packages the end-to-end tests drive (beyond a standard Debian machine).
const TEST_PACKAGES: &[(&str, &str)] = &[
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
    // The read-only fault test: ext4 on a loop device, checked with e2fsck.
    ("e2fsprogs", "/usr/sbin/mkfs.ext4"),
];

/// The sandbox image containerd's CRI plugin runs for every pod. No registry is reachable:
/// the CRI test builds one from busybox and imports it under this name.
const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.6";

/// A containerd of the tests' own: private socket, root and state, its CRI plugin on (pods
/// are made the way kubelet makes them), stopped on drop. Without CAP_SYS_RESOURCE (as
/// here) the sandbox's default oom_score_adj of -998 cannot be set: restrict_oom_score_adj
/// keeps it at containerd's own.
struct TestContainerd {
    child: std::process::Child,
    socket: PathBuf,
}

impl TestContainerd {
    fn start() -> Result<Self> {
        // PODSIG_TEST_CONTAINERD_NAME lets two checkouts test side by side on one machine.
        let name = env::var("PODSIG_TEST_CONTAINERD_NAME").unwrap_or_else(|_| "podsig-test-containerd".into());
        let base = PathBuf::from("/run").join(&name);
        let _ = std::fs::create_dir_all(&base);
        let socket = base.join("containerd.sock");
        let _ = std::fs::remove_file(&socket);
        let config = base.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"/var/lib/{name}\"\nstate = \"{}\"\n\
                 [grpc]\n  address = \"{}\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"{PAUSE_IMAGE}\"\n\
                 restrict_oom_score_adj = true\n",
                base.join("state").display(),
                socket.display()
            ),
        )?;
        let log = std::fs::File::create(base.join("containerd.log"))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting containerd")?;
        let t0 = std::time::Instant::now();
        while !socket.exists() {
            if t0.elapsed() > std::time::Duration::from_secs(30) {
                bail!("containerd did not create {} (see {}/containerd.log)", socket.display(), base.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        println!("xtask: test containerd on {}", socket.display());
        let me = Self { child, socket };
        me.remove_leftovers();
        Ok(me)
    }

    /// Containers an interrupted earlier run left behind (its state outlives it): killed
    /// and removed, so each run starts clean.
    fn remove_leftovers(&self) {
        let ctr = |args: &[&str]| {
            Command::new("ctr")
                .arg("--address")
                .arg(&self.socket)
                .args(["-n", "k8s.io"])
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        for id in ctr(&["task", "ls", "-q"]).lines() {
            ctr(&["task", "kill", "-s", "SIGKILL", id]);
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        for id in ctr(&["task", "ls", "-q"]).lines() {
            ctr(&["task", "delete", "-f", id]);
        }
        for id in ctr(&["container", "ls", "-q"]).lines() {
            ctr(&["container", "delete", id]);
        }
    }
}

impl Drop for TestContainerd {
    fn drop(&mut self) {
        // SAFETY: signalling our own child; SIGTERM lets containerd shut down cleanly.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// kubernetes-validate (PyPI; it carries the Kubernetes schemas, so it validates offline),
/// in a virtualenv kept outside the clone.
fn kubernetes_validate() -> Result<PathBuf> {
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

/// Clippy over every crate and target, warnings as errors. The eBPF crate is left out: it
/// builds only for bpfel-unknown-none with the pinned nightly (podsig's build.rs drives it).
fn clippy() -> Result<()> {
    sh(cargo().args(["clippy", "--workspace", "--exclude", "podsig-ebpf", "--all-targets", "--", "-D", "warnings"]))
}

/// Every test: unit tests of each crate, and the end-to-end tests, which run the real binary
/// against the real kernel (as root; under CI a missing privilege fails them).
fn test() -> Result<()> {
    // The cheap checks first, so CI fails fast: layout, then lints (clippy builds podsig, and
    // with it the eBPF object, so it needs the prerequisites).
    sh(cargo().args(["fmt", "--all", "--check"]))?;
    prereqs()?;
    clippy()?;
    apt_ensure("test packages", TEST_PACKAGES)?;
    build(false)?;
    // The eBPF object the tests run was built by the pin, not by whatever nightly is around.
    let pin = podsig_toolchain::pin(&root_dir())?;
    podsig_toolchain::check_producers(&binary(false), &pin)?;
    println!("xtask: the embedded eBPF object was built by the pinned {pin}");
    // The DaemonSet's image, run in the test containerd the way the DaemonSet runs it.
    let image = image_task()?;
    let validator = kubernetes_validate()?;
    let containerd = if is_root() { Some(TestContainerd::start()?) } else { None };
    let mut c = cargo();
    c.args(["test", "--workspace", "--exclude", "podsig-ebpf", "--no-fail-fast"])
        .env("PODSIG_BIN", binary(false))
        .env("PODSIG_TEST_IMAGE", &image)
        .env("PODSIG_TEST_IMAGE_REF", image::reference())
        .env("PODSIG_KUBERNETES_VALIDATE", &validator);
    if let Some(ct) = &containerd {
        c.env("PODSIG_TEST_CONTAINERD", &ct.socket).env("PODSIG_TEST_PAUSE_IMAGE", PAUSE_IMAGE);
    }
    let result = sh(&mut c);
    drop(containerd);
    result?;
    // Other kernels, booted under QEMU: the portability claims, tested.
    if is_root() {
        vm_test(&[])
    } else if env::var_os("CI").is_some() {
        bail!("vm-test needs root (apt, /var/cache); CI must run as root")
    } else {
        println!("xtask: vm-test skipped: needs root (sudo cargo xtask test)");
        Ok(())
    }
}
