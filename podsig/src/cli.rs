//! Command-line interface.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::{
    containers, signals,
    sink::history,
    sink::output::Format,
    source::target::parse_pid,
    source::{BackendKind, ebpf::DEFAULT_RING_BYTES},
};

/// `0.1.0 (abc1234)`: the commit tells which build a node runs.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("PODSIG_GIT_COMMIT"), ")");

const EXAMPLES: &str = "Examples:
  sudo podsig watch --pid 7942                 who signals process 7942, until it exits
  sudo podsig watch --pid 7942 --signal KILL   only SIGKILL
  sudo podsig watch --all --signal KILL -o json | jq 'select(.kind==\"signal\") | {cause, sender: .sender.comm, target: .target.comm}'
  sudo podsig watch --pid 7942 -o json | jq -r '.sender.argv | join(\" \")'
  sudo podsig record --metrics-addr 127.0.0.1:9090   keep every kill on this node, for later
  sudo podsig history --pod web --since 1h     who killed pod web (answered from the recorder)
  sudo podsig why --pod web                    why pod web's last stop went as it did, and the fix
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
    /// Build the SystemTap module for a node's kernel release, here, once: the node then
    /// needs only staprun (`watch --backend stap --stap-module FILE`).
    StapBuild(StapBuildArgs),
    /// Flight recorder: watch every process on the node and keep each kill, with its pod and
    /// sender, in a history file that `podsig history` answers from later.
    Record(RecordArgs),
    /// Who signalled a pod, container or process, from what `podsig record` kept.
    History(HistoryArgs),
    /// Why a pod, container or process was last stopped (SIGTERM ignored, handled too
    /// slowly, a bare SIGKILL, the OOM killer…) and what to change, from `podsig record`'s
    /// history.
    Why(WhyArgs),
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
    /// Attach a program that does nothing to signal_generate (or, with --write, to
    /// sys_enter_write) until interrupted: the cost floor `cargo xtask bench` compares against.
    #[command(hide = true)]
    Floor {
        #[arg(long)]
        write: bool,
    },
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
    group(clap::ArgGroup::new("what").required(true).multiple(true).args(["pids", "all", "containers", "pod", "units"])),
    after_help = EXAMPLES
)]
pub struct WatchArgs {
    /// Process to watch (repeatable). Signals to any of its threads are reported; podsig
    /// exits once every watched process has exited.
    #[arg(short = 'p', long = "pid", value_name = "PID", value_parser = parse_pid, allow_negative_numbers = true)]
    pub pids: Vec<u32>,
    /// Watch every process on the node (node mode: only terminating signals unless
    /// --signal or --any-signal; --pod, --namespace and --container-name then filter on
    /// the target's labels).
    #[arg(long, conflicts_with_all = ["pids", "containers"])]
    pub all: bool,
    /// Watch a container, every process in it, across restarts: full ID, Docker or podman
    /// name, unique ID prefix, or as `kubectl describe pod` prints it (containerd://…,
    /// docker://…). Repeatable.
    #[arg(long = "container", value_name = "ID", value_parser = containers::normalize_id)]
    pub containers: Vec<String>,
    /// Watch a systemd unit, every process in it, across restarts (`nginx` is
    /// `nginx.service`). Repeatable.
    #[arg(long = "unit", value_name = "NAME", value_parser = parse_unit, conflicts_with = "all")]
    pub units: Vec<String>,
    /// Watch a pod's containers, found by their CRI labels in containerd (no API server);
    /// with --all, only report signals to this pod.
    #[arg(long, value_name = "NAME")]
    pub pod: Option<String>,
    /// The pod's Kubernetes namespace (with --pod, or --all).
    #[arg(long = "namespace", value_name = "NS")]
    pub pod_namespace: Option<String>,
    /// Only the pod's container of this name (with --pod, or --all).
    #[arg(long, value_name = "NAME")]
    pub container_name: Option<String>,
    #[command(flatten)]
    pub containerd: ContainerdArgs,
    /// Only report these signals (repeatable; names such as KILL or SIGTERM, or numbers).
    #[arg(short = 's', long = "signal", value_name = "SIG", value_parser = signals::parse)]
    pub signals: Vec<i32>,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub redact: RedactArgs,
    /// Stop after reporting N signals (1 or more).
    #[arg(short = 'c', long, value_name = "N", value_parser = parse_count)]
    pub count: Option<u64>,
    /// Stop after this long (e.g. 30s, 5m, 1h).
    #[arg(short = 'd', long, value_name = "D", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Link each terminating signal to the one sent to the same target (or its container's
    /// init) at most this long before (`preceded_by`, and the stop's verdict), and a
    /// manager's signal to the request that asked for it (`requested_by`).
    #[arg(long, value_name = "D", default_value = "10m", value_parser = parse_duration)]
    pub stop_window: Duration,
    /// Tracing backend: eBPF, SystemTap (old kernels), or the first that works here.
    #[arg(short = 'b', long, value_enum, default_value = "auto")]
    pub backend: BackendKind,
    /// Print the SystemTap script for this watch and exit (with --backend stap), for users
    /// who want to run it themselves.
    #[arg(long)]
    pub print_script: bool,
    /// A prebuilt SystemTap module (from `podsig stap-build`) to load with staprun instead
    /// of compiling one here: always with --backend stap; with auto (the default), when
    /// eBPF cannot run here.
    #[arg(long, value_name = "FILE", conflicts_with = "print_script")]
    pub stap_module: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  podsig stap-build --kernel-release 6.12.117+deb13-amd64 -o podsig-6.12.ko
  (on the node, with only systemtap-runtime) sudo podsig watch --backend stap --stap-module podsig-6.12.ko --pid 7942")]
pub struct StapBuildArgs {
    /// The node's kernel release (`uname -r` there). Its headers and debuginfo must be
    /// installed here, not there.
    #[arg(short = 'r', long, value_name = "RELEASE")]
    pub kernel_release: String,
    /// Where to write the module (default: podsig-RELEASE.ko).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// The container managers that name containers: containerd and Docker (podman is read
/// from /proc and needs no option).
#[derive(Debug, Args)]
pub struct ContainerdArgs {
    /// containerd's socket.
    #[arg(long = "containerd-socket", value_name = "PATH", default_value = containers::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// containerd namespace to search (repeatable; default: k8s.io, moby, default).
    #[arg(long = "containerd-namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Docker Engine's socket, to name Docker's containers (`docker run --name`). Default:
    /// /run/docker.sock or /var/run/docker.sock, when present; a socket named here must
    /// answer.
    #[arg(long = "docker-socket", value_name = "PATH")]
    pub docker_socket: Option<PathBuf>,
    /// Do not capture clients' requests to the managers' sockets (systemd, the system bus,
    /// Docker, containerd), so no signal names who asked the manager (`requested_by`).
    #[arg(long)]
    pub no_requests: bool,
}

impl ContainerdArgs {
    pub fn namespaces(&self) -> Vec<String> {
        if self.namespaces.is_empty() {
            containers::DEFAULT_NAMESPACES.iter().map(|s| s.to_string()).collect()
        } else {
            self.namespaces.clone()
        }
    }
}

/// What a node-wide watch needs beyond a process watch.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Report every signal, not only the terminating ones node mode defaults to (KILL,
    /// TERM, INT, QUIT, ABRT, SEGV, BUS).
    #[arg(long, conflicts_with = "signals")]
    pub any_signal: bool,
    /// Drop signals sent by processes with this comm: known noise, such as a Go program's
    /// own SIGURG preemption storms (repeatable).
    #[arg(long = "exclude-comm", value_name = "COMM")]
    pub exclude_comm: Vec<String>,
    /// The node name put on every event. Default: $NODE_NAME, else the hostname.
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (and /healthz), e.g.
    /// 127.0.0.1:9090.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_addr: Option<SocketAddr>,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  sudo podsig record                                      record kills on this node
  sudo podsig record --metrics-addr 127.0.0.1:9090 -o json   also print them, and serve metrics
  sudo podsig history --pod web                           then ask: who killed pod web?")]
pub struct RecordArgs {
    /// The history file (SQLite). `podsig history` reads it, also while this runs.
    #[arg(long, value_name = "PATH", default_value = history::DEFAULT_PATH)]
    pub history: PathBuf,
    /// Keep the history under this size, dropping the oldest events first (e.g. 256MiB, 1G).
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    pub history_max: u64,
    /// Drop events older than this (e.g. 7d, 12h).
    #[arg(long, value_name = "AGE", default_value = "14d", value_parser = parse_duration)]
    pub history_age: Duration,
    /// Let this group (name or number) read the history: its files are then 0640 and of
    /// this group, instead of 0600 (root only). They hold every sender's command line.
    #[arg(long, value_name = "GROUP", value_parser = history::parse_group)]
    pub history_group: Option<u32>,
    /// Only record signals to this pod (by the target's CRI labels).
    #[arg(long, value_name = "NAME")]
    pub pod: Option<String>,
    /// Only record signals to pods in this Kubernetes namespace.
    #[arg(long = "namespace", value_name = "NS")]
    pub pod_namespace: Option<String>,
    /// Only record signals to containers of this name.
    #[arg(long, value_name = "NAME")]
    pub container_name: Option<String>,
    /// Only record these signals (repeatable; default: the terminating ones).
    #[arg(short = 's', long = "signal", value_name = "SIG", value_parser = signals::parse)]
    pub signals: Vec<i32>,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub containerd: ContainerdArgs,
    /// Also print each event to stdout in this format (default: print nothing).
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
    /// Kernel ring buffer size in bytes (rounded up to a power of two).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_RING_BYTES)]
    pub ring_size: u32,
    /// Tracing backend: eBPF, SystemTap (old kernels), or the first that works here.
    #[arg(short = 'b', long, value_enum, default_value = "auto")]
    pub backend: BackendKind,
    #[command(flatten)]
    pub redact: RedactArgs,
    /// Link each terminating signal to the one sent to the same target (or its container's
    /// init) at most this long before (`preceded_by`, and the stop's verdict), and a
    /// manager's signal to the request that asked for it (`requested_by`).
    #[arg(long, value_name = "D", default_value = "10m", value_parser = parse_duration)]
    pub stop_window: Duration,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  podsig history --pod web                     every kill of pod web the recorder kept
  podsig history --pod web --namespace prod --since 1h -o json | jq .sender.comm
  podsig history --container 5fb8adf9 --last 5
  From outside, ask the recorder on the pod's node (each keeps only its own node's):
    NODE=$(kubectl -n prod get pod web -o jsonpath='{.spec.nodeName}')
    R=$(kubectl -n podsig get pods -l app.kubernetes.io/name=podsig --field-selector spec.nodeName=$NODE -o name)
    kubectl -n podsig exec $R -- /podsig history --pod web --namespace prod")]
pub struct HistoryArgs {
    /// The history file `podsig record` writes.
    #[arg(long, value_name = "PATH", default_value = history::DEFAULT_PATH)]
    pub history: PathBuf,
    /// Signals to this pod (its CRI name label).
    #[arg(long, value_name = "NAME")]
    pub pod: Option<String>,
    /// Signals to pods in this Kubernetes namespace.
    #[arg(long = "namespace", value_name = "NS")]
    pub pod_namespace: Option<String>,
    /// Signals to this container: full ID, a prefix (containerd://… and docker://… too), or
    /// its name (as `docker run --name` or `podman run --name` gave it).
    #[arg(long = "container", value_name = "ID", value_parser = containers::normalize_id)]
    pub container: Option<String>,
    /// Signals to containers of this name.
    #[arg(long, value_name = "NAME")]
    pub container_name: Option<String>,
    /// Signals to processes of this systemd unit (`nginx` is `nginx.service`).
    #[arg(long, value_name = "NAME", value_parser = parse_unit)]
    pub unit: Option<String>,
    /// Signals to this process.
    #[arg(short = 'p', long, value_name = "PID", value_parser = parse_pid_number, allow_negative_numbers = true)]
    pub pid: Option<u32>,
    /// Only these signals (repeatable).
    #[arg(short = 's', long = "signal", value_name = "SIG", value_parser = signals::parse)]
    pub signals: Vec<i32>,
    /// Only events from this long ago until now (e.g. 1h, 30m, 2d).
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Only the newest N matching events.
    #[arg(long, value_name = "N")]
    pub last: Option<u32>,
    /// Output format. Default: text on a terminal, json otherwise.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
    #[command(flatten)]
    pub redact: RedactArgs,
}

#[derive(Debug, Args)]
#[command(
    group(clap::ArgGroup::new("what").required(true).multiple(true).args(["pod", "container", "container_name", "pid", "unit"])),
    after_help = "Examples:
  podsig why --pod web                         the last stop of pod web: what, when, who, the verdict, the fix
  podsig why --pod web --namespace prod --container-name app --since 1d
  podsig why --container 5fb8adf9 -o json | jq -r .verdict
  podsig why --unit nginx                      who stopped nginx.service, through systemd
  podsig why --pid 7942")]
pub struct WhyArgs {
    /// The history file `podsig record` writes.
    #[arg(long, value_name = "PATH", default_value = history::DEFAULT_PATH)]
    pub history: PathBuf,
    /// This pod (its CRI name label).
    #[arg(long, value_name = "NAME")]
    pub pod: Option<String>,
    /// The pod's Kubernetes namespace.
    #[arg(long = "namespace", value_name = "NS")]
    pub pod_namespace: Option<String>,
    /// This container: full ID, a prefix (containerd://… and docker://… too), or its name
    /// (as `docker run --name` or `podman run --name` gave it).
    #[arg(long = "container", value_name = "ID", value_parser = containers::normalize_id)]
    pub container: Option<String>,
    /// Containers of this name (with --pod: that container of the pod).
    #[arg(long, value_name = "NAME")]
    pub container_name: Option<String>,
    /// This systemd unit (`nginx` is `nginx.service`).
    #[arg(long, value_name = "NAME", value_parser = parse_unit)]
    pub unit: Option<String>,
    /// This process.
    #[arg(short = 'p', long, value_name = "PID", value_parser = parse_pid_number, allow_negative_numbers = true)]
    pub pid: Option<u32>,
    /// Only a stop from this long ago until now (e.g. 1h, 30m, 2d).
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// How far back a signal is linked to the next one to the same target (as `record`'s).
    #[arg(long, value_name = "D", default_value = "10m", value_parser = parse_duration)]
    pub stop_window: Duration,
    /// Output format. Default: text on a terminal, json otherwise.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
}

/// A unit name as systemctl takes it: `nginx` is `nginx.service`.
fn parse_unit(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains('/') || s.chars().any(char::is_whitespace) {
        return Err(format!("'{s}' is not a systemd unit name (such as nginx or nginx.service)"));
    }
    Ok(crate::requests::unit_name(s))
}

/// A pid that may no longer exist (the history is about the past).
fn parse_pid_number(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("'{s}' is not a process ID (a positive number)")),
    }
}

/// `30s`, `5m`, `1h`, `2d`, `500ms`, or combinations (`1h30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|_| format!("'{s}' is not a duration: give a number with a unit, such as 500ms, 30s, 5m, 1h or 2d"))
}

/// `--count N`: at least one report, or there is nothing to wait for.
fn parse_count(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("0 would stop before the first report: give 1 or more (or leave --count out)".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a count: give a whole number, 1 or more")),
    }
}

/// `256MiB`, `1G`, `512k`, `1048576`: binary units, as `du -h` means them.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("'{s}' is not a size (e.g. 256MiB, 1G)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("unknown size unit in '{s}' (use k, M, G: e.g. 256MiB)")),
    };
    n.checked_mul(1 << shift).ok_or_else(|| format!("size '{s}' is too large"))
}

/// Secrets in command lines: masked unless told otherwise.
#[derive(Debug, Args)]
pub struct RedactArgs {
    /// Also mask what this regular expression matches in each argv element (repeatable).
    /// With capture groups only the groups are masked: --redact '--dsn=[^:]*:([^@]*)@'.
    #[arg(long = "redact", value_name = "REGEX", value_parser = crate::pipeline::redact::parse_pattern)]
    pub patterns: Vec<regex::Regex>,
    /// Print and store command lines as they are, secrets included (podsig warns once).
    #[arg(long = "no-redact", conflicts_with = "patterns")]
    pub no_redact: bool,
}

impl RedactArgs {
    pub fn redactor(&self) -> crate::pipeline::redact::Redactor {
        crate::pipeline::redact::Redactor::new(self.patterns.clone(), self.no_redact)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }
}
