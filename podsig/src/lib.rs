//! podsig: who sent a signal to a process, with the sender's ancestry, from eBPF.
//!
//! Data flows one way, and the folders follow it: `source` (what to watch, and the backend
//! whose kernel hooks fill the ring buffer) → `event` (one model for every backend) →
//! `pipeline` (its `Pipeline` runs the stages in order: correlate, enrich, name containers,
//! cause, link requests, redact, stories, node filter) → `sink` (output, the history,
//! metrics). `containers` names where processes live and follows a container watch;
//! `requests` reads what clients ask the managers; `units` follows systemd units; `cmd`
//! holds the subcommands that run it all.

pub mod cli;
pub mod cmd;
pub mod containers;
pub mod error;
pub mod event;
pub mod interned;
pub mod pipeline;
pub mod proc;
pub mod requests;
pub mod signals;
pub mod sink;
pub mod source;
pub mod units;

pub use error::error_line;

use std::io::Write;

/// Property tests' configuration: 2000 cases each, so they run with every `cargo test` in
/// bounded time; PROPTEST_CASES raises the count for a longer hunt.
#[cfg(test)]
pub(crate) fn fuzz_config() -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2000);
    proptest::test_runner::Config { cases, failure_persistence: None, ..Default::default() }
}

use anyhow::{Context as _, Result, bail};
use clap::CommandFactory;

use crate::{
    cli::{Cli, Command},
    cmd::{demo, doctor, explain, watch, watch::WatchOptions, why},
    pipeline::node_filter,
    sink::{history, metrics, output},
    source::{WatchSpec, target},
};

fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("podsig loads eBPF programs and must run as root: sudo podsig …");
    }
    Ok(())
}

pub async fn run(cli: Cli) -> Result<()> {
    let verbose = cli.verbose > 0;
    match cli.command {
        Command::Watch(args) => watch_cmd(args, verbose).await,
        Command::StapBuild(args) => stap_build(args, verbose).await,
        Command::Record(args) => record(args, verbose).await,
        Command::History(args) => history_cmd(args, verbose),
        Command::Why(args) => why::run(args, verbose),
        Command::Demo(args) => {
            require_root()?;
            let format = args.common.output.unwrap_or_else(watch::default_format);
            demo::run(format, args.common.ring_size).await
        }
        Command::Explain(args) => {
            let e = explain::explain(&args.code).map_err(anyhow::Error::msg)?;
            match args.output {
                output::Format::Text => print_out(&explain::text(&e)),
                output::Format::Json => print_out(&(serde_json::to_string(&e)? + "\n")),
            }
        }
        Command::Doctor(args) => doctor_cmd(args),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "podsig", &mut out);
            print_bytes(&out)
        }
        Command::Floor { write } => {
            require_root()?;
            let _held = source::ebpf::attach_empty(write)?;
            eprintln!(
                "podsig: attached (empty program on {})",
                if write { "sys_enter_write" } else { "signal_generate" }
            );
            tokio::signal::ctrl_c().await.context("waiting for SIGINT")?;
            Ok(())
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out).context("rendering the man page")?;
            print_bytes(&out)
        }
    }
}

/// `podsig watch`: the CLI mapped to a watch of pids, containers, a pod, or the node.
async fn watch_cmd(mut args: cli::WatchArgs, verbose: bool) -> Result<()> {
    if !args.all && args.pod.is_none() && (args.pod_namespace.is_some() || args.container_name.is_some()) {
        bail!("--namespace and --container-name narrow --pod (or --all): add one of them");
    }
    let signals =
        if args.all { node_filter::signals(&args.signals, args.node.any_signal) } else { args.signals.clone() };
    if args.print_script {
        return print_script(args, signals);
    }
    let backend_kind = args.backend;
    require_root()?;
    source::prefetch(backend_kind);
    let mut pids = target::resolve_pids(&args.pids)?;
    let (selector, filter) = watch_scope(&mut args);
    let follower = if selector.is_empty() {
        None
    } else {
        let f = containers::Follower::new(selector).await?;
        pids.extend(f.pids());
        Some(f)
    };
    let metrics = serve_metrics(args.node.metrics_addr).await?;
    // Who asked a manager matters where managers stop things: node mode, units, containers.
    let managed = args.all || follower.is_some() || !args.units.is_empty();
    let units = units::Units::new(args.units.clone());
    pids.extend(units.pids());
    let opts = WatchOptions {
        backend: backend_kind,
        spec: WatchSpec {
            pids,
            all: args.all,
            signals,
            ring_bytes: args.common.ring_size,
            verbose,
            follow: follower.is_some() || !units.is_empty(),
            stap_module: args.stap_module,
            requests: request_sockets(&args.containerd, managed),
        },
        units,
        follower,
        print: Some(args.common.output.unwrap_or_else(watch::default_format)),
        node: watch::NodeOptions {
            name: node_filter::name(args.node.node_name),
            filter,
            history: None,
            metrics,
            containerd: Some((args.containerd.socket.clone(), args.containerd.namespaces())),
            docker_socket: args.containerd.docker_socket.clone(),
        },
        count: args.count,
        duration: args.duration,
        redact: args.redact.redactor(),
        stop_window: args.stop_window,
    };
    let summary = watch::run(opts, || {}).await?;
    tracing::debug!("stopped: {:?} after {} signals", summary.stop, summary.signals);
    Ok(())
}

/// `watch --print-script`: the SystemTap script and how to run it, instead of a watch.
fn print_script(args: cli::WatchArgs, signals: Vec<i32>) -> Result<()> {
    if args.backend != source::BackendKind::Stap {
        bail!("--print-script prints the SystemTap script: add --backend stap");
    }
    let spec = WatchSpec { pids: args.pids, all: args.all, signals, ..Default::default() };
    let params: Vec<String> =
        source::stap::script_spec(&spec).params().into_iter().map(|(k, v)| format!("-G {k}={v}")).collect();
    let run = format!("// Run as root: stap {} podsig.stp\n", params.join(" "));
    print_out(&(run + &source::stap::script::generate()))
}

/// With --all the pod flags filter what is reported; without, they pick what to watch.
fn watch_scope(args: &mut cli::WatchArgs) -> (containers::Selector, node_filter::Filter) {
    let (selector_pod, filter) = if args.all {
        let filter = node_filter::Filter {
            namespace: args.pod_namespace.take(),
            pod: args.pod.take(),
            container_name: args.container_name.take(),
            exclude_comm: args.node.exclude_comm.clone(),
        };
        (None, filter)
    } else {
        let filter = node_filter::Filter { exclude_comm: args.node.exclude_comm.clone(), ..Default::default() };
        (Some((args.pod.take(), args.pod_namespace.take(), args.container_name.take())), filter)
    };
    let (pod, pod_namespace, container_name) = selector_pod.unwrap_or_default();
    let selector = containers::Selector {
        ids: std::mem::take(&mut args.containers),
        pod,
        pod_namespace,
        container_name,
        socket: args.containerd.socket.clone(),
        namespaces: args.containerd.namespaces(),
        docker_socket: args.containerd.docker_socket.clone(),
    };
    (selector, filter)
}

/// The manager sockets whose clients' requests are captured, when `wanted` and not turned
/// off with `--no-requests`.
fn request_sockets(args: &cli::ContainerdArgs, wanted: bool) -> Vec<(std::path::PathBuf, requests::wire::Socket)> {
    if !wanted || args.no_requests {
        return Vec::new();
    }
    requests::manager_sockets(args.docker_socket.as_deref(), &args.socket)
}

/// `podsig stap-build`: a SystemTap module for another kernel release.
async fn stap_build(args: cli::StapBuildArgs, verbose: bool) -> Result<()> {
    let release = args.kernel_release.trim();
    if release.is_empty() || release.contains('/') || release.starts_with('-') {
        bail!("'{release}' is not a kernel release (as `uname -r` prints it, e.g. 6.12.117+deb13-amd64)");
    }
    let out = args.output.unwrap_or_else(|| format!("podsig-{release}.ko").into());
    source::stap::module::build(release, &out, verbose).await
}

/// `podsig record`: a node-wide watch into the history.
async fn record(args: cli::RecordArgs, verbose: bool) -> Result<()> {
    require_root()?;
    source::prefetch(args.backend);
    let metrics = serve_metrics(args.node.metrics_addr).await?;
    let gauges = history::Gauges { bytes: metrics.as_ref().map(|m| m.history_bytes.clone()) };
    let limits = history::Limits { max_bytes: args.history_max, max_age: Some(args.history_age) };
    let access = history::Access { group: args.history_group };
    let writer = history::Writer::open(&args.history, limits, gauges, access)?;
    eprintln!("podsig: recording to {} (at most {} MiB)", args.history.display(), args.history_max >> 20);
    let opts = WatchOptions {
        backend: args.backend,
        spec: WatchSpec {
            pids: Vec::new(),
            all: true,
            signals: node_filter::signals(&args.signals, args.node.any_signal),
            ring_bytes: args.ring_size,
            verbose,
            follow: false,
            stap_module: None,
            requests: request_sockets(&args.containerd, true),
        },
        units: units::Units::default(),
        follower: None,
        print: args.output,
        node: watch::NodeOptions {
            name: node_filter::name(args.node.node_name),
            filter: node_filter::Filter {
                namespace: args.pod_namespace,
                pod: args.pod,
                container_name: args.container_name,
                exclude_comm: args.node.exclude_comm,
            },
            history: Some(writer),
            metrics,
            containerd: Some((args.containerd.socket.clone(), args.containerd.namespaces())),
            docker_socket: args.containerd.docker_socket.clone(),
        },
        count: None,
        duration: None,
        redact: args.redact.redactor(),
        stop_window: args.stop_window,
    };
    watch::run(opts, || {}).await?;
    Ok(())
}

/// `podsig history`: the history's matching events, printed as `watch` printed them.
fn history_cmd(args: cli::HistoryArgs, verbose: bool) -> Result<()> {
    let conn = history::open_ro(&args.history)?;
    let q = history::Query {
        pod: args.pod,
        namespace: args.pod_namespace,
        container: args.container,
        container_name: args.container_name,
        unit: args.unit,
        pid: args.pid,
        signals: args.signals,
        with_exits: false,
        since: args.since,
        last: args.last,
    };
    let rows = history::query(&conn, &q)?;
    // A history kept by a podsig that did not mask (older, or --no-redact) is
    // masked on the way out all the same.
    let mut redactor = args.redact.redactor();
    let format = args.output.unwrap_or_else(watch::default_format);
    let mut out = output::Output::new(format, std::io::BufWriter::new(std::io::stdout().lock()))
        .with_color(format == output::Format::Text && watch::color_wanted())
        .with_notes(verbose);
    let mut write = || -> std::io::Result<()> {
        for json in &rows {
            let mut record: event::Record = serde_json::from_str(json).map_err(std::io::Error::other)?;
            let stored = record.clone();
            redactor.record(&mut record);
            match format {
                // The stored line is what `watch -o json` printed: passed through
                // unless masking changed it.
                output::Format::Json if record == stored => out.write_json_line(json)?,
                _ => out.write(&record)?,
            }
        }
        out.flush()
    };
    match write() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing the history to stdout")?,
        _ => {}
    }
    if rows.is_empty() {
        eprintln!("podsig: no matching events in {}", args.history.display());
    }
    Ok(())
}

fn doctor_cmd(args: cli::DoctorArgs) -> Result<()> {
    let report = doctor::run();
    match args.output {
        output::Format::Text => print_out(&doctor::text(&report))?,
        output::Format::Json => print_out(&(serde_json::to_string(&report)? + "\n"))?,
    }
    if !report.any_backend() {
        bail!("no backend can run on this host (see the missing checks above)");
    }
    Ok(())
}

/// Starts the metrics endpoint before anything attaches, so a bad address fails at once.
async fn serve_metrics(addr: Option<std::net::SocketAddr>) -> Result<Option<std::sync::Arc<metrics::Metrics>>> {
    let Some(addr) = addr else { return Ok(None) };
    let m = std::sync::Arc::new(metrics::Metrics::new());
    let bound = metrics::serve(addr, m.clone()).await?;
    eprintln!("podsig: metrics at http://{bound}/metrics");
    Ok(Some(m))
}

fn print_out(s: &str) -> Result<()> {
    print_bytes(s.as_bytes())
}

/// stdout that may be closed early (`| head`): a broken pipe is not an error.
fn print_bytes(b: &[u8]) -> Result<()> {
    match std::io::stdout().lock().write_all(b) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(()),
    }
}
