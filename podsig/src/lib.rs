//! podsig: who sent a signal to a process, with the sender's ancestry, from eBPF.
//!
//! Data flows one way: `target` (what to watch) → `backend` (kernel hooks) → `event`
//! (one model for every backend) → `correlate` (OOM marks) → `enrich` (/proc facts, wall
//! time, `findings`) → `cause` (the verdict) → `output`.

pub mod backend;
pub mod cause;
pub mod cli;
pub mod container;
pub mod correlate;
pub mod demo;
pub mod doctor;
pub mod enrich;
pub mod event;
pub mod explain;
pub mod findings;
pub mod output;
pub mod signals;
pub mod target;
pub mod watch;

use std::io::Write;

use anyhow::{Context as _, Result, bail};
use clap::CommandFactory;

use crate::{
    backend::WatchSpec,
    cli::{Cli, Command},
    watch::WatchOptions,
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
        Command::Watch(args) => {
            if args.print_script {
                if args.backend != backend::BackendKind::Stap {
                    bail!("--print-script prints the SystemTap script: add --backend stap");
                }
                let spec = WatchSpec { pids: args.pids, all: args.all, signals: args.signals, ..Default::default() };
                return print_out(&backend::stap::script::generate(&backend::stap::script_spec(&spec)));
            }
            require_root()?;
            let mut pids = target::resolve_pids(&args.pids)?;
            let selector = container::Selector {
                ids: args.containers,
                pod: args.pod,
                pod_namespace: args.pod_namespace,
                container_name: args.container_name,
                socket: args.containerd_socket,
                namespaces: if args.containerd_namespaces.is_empty() {
                    container::DEFAULT_NAMESPACES.iter().map(|s| s.to_string()).collect()
                } else {
                    args.containerd_namespaces
                },
            };
            let follower = if selector.is_empty() {
                None
            } else {
                let f = watch::Follower::new(selector).await?;
                pids.extend(f.pids());
                Some(f)
            };
            let opts = WatchOptions {
                backend: args.backend,
                spec: WatchSpec {
                    pids,
                    all: args.all,
                    signals: args.signals,
                    ring_bytes: args.common.ring_size,
                    verbose,
                    follow: follower.is_some(),
                },
                follower,
                format: args.common.output.unwrap_or_else(watch::default_format),
                count: args.count,
                duration: args.duration,
            };
            let summary = watch::run(opts, || {}).await?;
            tracing::debug!("stopped: {:?} after {} signals", summary.stop, summary.signals);
            Ok(())
        }
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
        Command::Doctor(args) => {
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
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "podsig", &mut out);
            print_bytes(&out)
        }
        Command::Floor => {
            require_root()?;
            let _held = backend::ebpf::attach_empty()?;
            eprintln!("podsig: attached (empty program on signal_generate)");
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
