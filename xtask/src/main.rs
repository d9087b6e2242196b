//! Project tasks: `cargo xtask <task>`, one file each.
//!
//! Every task that builds first makes sure the eBPF build prerequisites are present,
//! installing what is missing, one printed line per step, so a fresh machine needs nothing
//! but this repository and cargo.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

mod bench;
mod containerd;
mod floating;
mod image;
mod install;
mod prereqs;
mod readme;
mod run;
mod stapvm;
mod system;
mod systemdvm;
mod test;
mod vm;

use prereqs::prereqs;
use system::{apt_ensure, binary, build, is_root};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "podsig's project tasks", disable_version_flag = true)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install prerequisites, build podsig (release), run it as root (no ARGS: `podsig demo`)
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Install prerequisites, build podsig (release)
    Build,
    /// Build, then copy podsig to /usr/local/bin
    Install,
    /// Check rustfmt and clippy (-D warnings), install prerequisites, build, run every test
    /// (unit, end-to-end, and vm-test on other kernels)
    Test,
    /// podsig beside bpftrace and sigsnoop: ready time, miss/hit path, memory, ancestry
    /// (installs the peers; writes target/bench.{md,json})
    Bench,
    /// Build the container image (static musl podsig, OCI archive in target/image/) without a
    /// Docker daemon
    Image,
    /// Boot Debian kernels (5.10, 6.1, 6.12) under QEMU and run the end-to-end scenario in
    /// each, then SystemTap live beside eBPF on bullseye's 5.10 (its own SystemTap 4.4) and
    /// trixie's 6.12 (sid's 5.6), modules built by `podsig stap-build` in cached roots, then
    /// a trixie root with systemd as pid 1 where units are stopped through sudo, D-Bus and by
    /// systemd itself (who asked systemd)
    VmTest {
        /// Only this kernel: part of a release, e.g. 5.10, `host`, `stap` (both SystemTap
        /// pairs), `stap-bullseye`/`stap-sid`, or `systemd` (repeatable)
        #[arg(long = "kernel", value_name = "K")]
        kernels: Vec<String>,
    },
    /// Install the eBPF build prerequisites only
    Prereqs,
    /// Used by the bench: the signal storm, as a separate process.
    #[command(hide = true)]
    Storm {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Used by the bench: the storm's senders, as a separate process.
    #[command(hide = true)]
    Senders {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::Run { args } => run::run(&args),
        Task::Build => prereqs().and_then(|()| build(true)),
        Task::Install => install::install(),
        Task::Test => test::test(),
        Task::Prereqs => prereqs(),
        Task::Bench => bench_task(),
        Task::VmTest { kernels } => vm::task(&kernels),
        Task::Image => {
            image::task().map(|p| println!("xtask: image {} written to {}", image::reference(), p.display()))
        }
        Task::Storm { args } => bench::storm(&args),
        Task::Senders { args } => bench::senders(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask bench`: the peers installed, podsig built, then `bench::run`.
fn bench_task() -> Result<()> {
    prereqs()?;
    apt_ensure("peers", &[("bpftrace", "/usr/bin/bpftrace"), ("libbpf-tools", "/usr/sbin/sigsnoop")])?;
    // The fork storm runs in a container (busybox) of a containerd of the bench's own.
    apt_ensure(
        "fork storm",
        &[("busybox-static", "/bin/busybox"), ("containerd", "/usr/bin/containerd"), ("runc", "/usr/sbin/runc")],
    )?;
    build(true)?;
    if !is_root() {
        bail!("the bench loads eBPF programs: run it as root (sudo cargo xtask bench)");
    }
    bench::run(&binary(true))
}
