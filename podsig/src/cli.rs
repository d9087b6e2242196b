//! Command-line interface.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::{
    backend::{BackendKind, ebpf::DEFAULT_RING_BYTES},
    container,
    output::Format,
    signals,
    target::parse_pid,
};

/// `0.1.0 (abc1234)`: the commit tells which build a node runs.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("PODSIG_GIT_COMMIT"), ")");

const EXAMPLES: &str = "Examples:
  sudo podsig watch --pid 7942                 who signals process 7942, until it exits
  sudo podsig watch --pid 7942 --signal KILL   only SIGKILL
  sudo podsig watch --all --signal KILL -o json | jq 'select(.kind==\"signal\") | {cause, sender: .sender.comm, target: .target.comm}'
  sudo podsig watch --pid 7942 -o json | jq -r '.sender.argv | join(\" \")'
  podsig explain 137                           what exit code 137 means and who sends it
  sudo podsig doctor                           can this host run podsig, and if not, why
  sudo podsig demo                             see it work on a throwaway process";

#[derive(Debug, Parser)]
#[command(
    name = "podsig",
    version = VERSION,
    about = "Who sent that signal? Reports the sender of every signal to a process, with its \
             full ancestry, using eBPF.",
    after_help = EXAMPLES,
    propagate_version = true
)]
pub struct Cli {
    /// Log what podsig does (to stderr); repeat for more.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report every signal sent to the given processes, with who sent it.
    Watch(WatchArgs),
    /// See podsig work: watch a throwaway process while a chain of shells kills it.
    Demo(DemoArgs),
    /// What an exit code (0-255) or a signal means, who usually sends it, how to catch it.
    Explain(ExplainArgs),
    /// Check this host: kernel features, privileges, tracefs, BTF, containerd, SystemTap.
    Doctor(DoctorArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    Man,
    /// Attach a program that does nothing to signal_generate until interrupted: the cost
    /// floor `cargo xtask bench` compares against.
    #[command(hide = true)]
    Floor,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// An exit code such as 137, or a signal such as SIGTERM or KILL.
    #[arg(value_name = "CODE")]
    pub code: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Format,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Format,
}

#[derive(Debug, Args)]
#[command(
    group(clap::ArgGroup::new("what").required(true).multiple(true).args(["pids", "all", "containers", "pod"])),
    after_help = EXAMPLES
)]
pub struct WatchArgs {
    /// Process to watch (repeatable). Signals to any of its threads are reported; podsig
    /// exits once every watched process has exited.
    #[arg(short = 'p', long = "pid", value_name = "PID", value_parser = parse_pid)]
    pub pids: Vec<u32>,
    /// Watch every process on the host.
    #[arg(long, conflicts_with_all = ["pids", "containers", "pod"])]
    pub all: bool,
    /// Watch a container, every process in it, across restarts: full ID, unique prefix, or
    /// as `kubectl describe pod` prints it (containerd://…, docker://…). Repeatable.
    #[arg(long = "container", value_name = "ID", value_parser = container::normalize_id)]
    pub containers: Vec<String>,
    /// Watch a pod's containers, found by their CRI labels in containerd (no API server).
    #[arg(long, value_name = "NAME")]
    pub pod: Option<String>,
    /// The pod's Kubernetes namespace.
    #[arg(long = "namespace", value_name = "NS", requires = "pod")]
    pub pod_namespace: Option<String>,
    /// Only the pod's container of this name.
    #[arg(long, value_name = "NAME", requires = "pod")]
    pub container_name: Option<String>,
    /// containerd's socket.
    #[arg(long, value_name = "PATH", default_value = container::DEFAULT_SOCKET)]
    pub containerd_socket: PathBuf,
    /// containerd namespace to search (repeatable; default: k8s.io, moby, default).
    #[arg(long = "containerd-namespace", value_name = "NS")]
    pub containerd_namespaces: Vec<String>,
    /// Only report these signals (repeatable; names such as KILL or SIGTERM, or numbers).
    #[arg(short = 's', long = "signal", value_name = "SIG", value_parser = signals::parse)]
    pub signals: Vec<i32>,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Stop after reporting N signals.
    #[arg(short = 'c', long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after this long (e.g. 30s, 5m, 1h).
    #[arg(short = 'd', long, value_name = "D", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Tracing backend: eBPF, SystemTap (old kernels), or the first that works here.
    #[arg(short = 'b', long, value_enum, default_value = "auto")]
    pub backend: BackendKind,
    /// Print the SystemTap script for this watch and exit (with --backend stap), for users
    /// who want to run it themselves.
    #[arg(long)]
    pub print_script: bool,
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Output format: `text` (as the SystemTap recipe printed) or `json` (one object per
    /// line). Default: text on a terminal, json otherwise.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
    /// Kernel ring buffer size in bytes (rounded up to a power of two).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_RING_BYTES)]
    pub ring_size: u32,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}
