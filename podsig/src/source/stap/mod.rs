//! The SystemTap backend, for kernels eBPF cannot serve: writes the script, runs `stap`,
//! and parses its output into the same records as every other backend.

pub mod module;
pub mod parse;
pub mod script;
pub mod staging;

use std::{collections::BTreeSet, process::Stdio, time::Duration};

use anyhow::{Context as _, Result, bail};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};

pub use self::staging::NO_PREFLIGHT_ENV;
use self::staging::{PrivateDir, stap_failure, write_private};
use crate::event::Record;
use crate::source::backend::{Backend, Malformed, WatchSpec};
use parse::{Chunk, Line, Lines};
use script::ScriptSpec;

const POLL: Duration = Duration::from_millis(10);

pub struct StapBackend {
    child: Child,
    lines: mpsc::UnboundedReceiver<Chunk>,
    pending: Vec<Chunk>,
    malformed: Malformed,
    watched: BTreeSet<u32>,
    all: bool,
    /// A renamed module's copy under its own name, kept while it runs.
    _staged: Option<PrivateDir>,
}

pub fn script_spec(spec: &WatchSpec) -> ScriptSpec {
    // A module's filter is fixed when it loads: to follow a container's processes, it
    // reports every process and podsig filters.
    ScriptSpec { pids: spec.pids.clone(), all: spec.all || spec.follow, signals: spec.signals.clone() }
}

impl StapBackend {
    // Long: build or load, then wait for the READY line while collecting stap's log; one sequence.
    pub async fn attach(spec: &WatchSpec, verbose: bool) -> Result<Self> {
        let params = script_spec(spec).params();
        // The script's directory while stap compiles, or a renamed module's staged copy.
        let mut dir: Option<PrivateDir>;
        let (action, mut command, missing) = match &spec.stap_module {
            Some(module) => {
                let info = module::check(module, &crate::source::features::kernel_release())?;
                let (load, d) = module::staged(module, &info)?;
                dir = d;
                eprintln!("podsig: loading SystemTap module {}…", module.display());
                let mut c = Command::new("staprun");
                c.arg(&load).args(params.iter().map(|(k, v)| format!("{k}={v}")));
                let missing = "starting staprun (install systemtap-runtime: apt-get install systemtap-runtime, dnf install systemtap-runtime)";
                ("load", c, missing)
            }
            None => {
                if std::env::var_os(NO_PREFLIGHT_ENV).is_none() {
                    preflight()?;
                }
                let d = PrivateDir::new()?;
                let path = d.0.join("podsig.stp");
                write_private(&path, &script::generate())?;
                eprintln!("podsig: compiling SystemTap module…");
                let mut c = Command::new("stap");
                c.args(params.iter().flat_map(|(k, v)| ["-G".to_string(), format!("{k}={v}")])).arg(&path);
                dir = Some(d);
                ("build or load", c, "starting stap (install systemtap, or use --backend ebpf)")
            }
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context(missing)?;
        let mut stdout = Lines::new(BufReader::new(child.stdout.take().expect("piped")));
        let mut stderr = BufReader::new(child.stderr.take().expect("piped")).lines();

        // Until the module is live, stap's stderr is the compile log: kept for the report.
        let mut log = Vec::new();
        let mut stderr_open = true;
        loop {
            tokio::select! {
                line = stdout.next() => match line.context("reading stap's output")? {
                    Some(Chunk::Line(l)) if parse::parse(&l) == Line::Ready => break,
                    Some(_) => {}
                    None => {
                        let status = child.wait().await.ok();
                        while let Ok(Some(l)) = stderr.next_line().await {
                            log.push(l);
                        }
                        return Err(stap_failure(action, &crate::source::features::kernel_release(), &log, status, verbose));
                    }
                },
                line = stderr.next_line(), if stderr_open => match line {
                    Ok(Some(l)) => {
                        if verbose {
                            eprintln!("podsig: stap: {l}");
                        }
                        log.push(l);
                    }
                    _ => stderr_open = false,
                },
            }
        }
        // The script is not needed once stap runs; a staged module stays until unloaded.
        let staged = if spec.stap_module.is_some() { dir.take() } else { None };
        drop(dir.take());
        // Warnings from the build still matter once the module runs (verbose already showed
        // the whole log).
        if !verbose {
            for l in log.iter().filter(|l| l.starts_with("WARNING")) {
                eprintln!("podsig: stap: {l}");
            }
        }

        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(l)) = stdout.next().await {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            while let Ok(Some(l)) = stderr.next_line().await {
                eprintln!("podsig: stap: {l}");
            }
        });
        Ok(Self {
            child,
            lines,
            pending: Vec::new(),
            malformed: Default::default(),
            watched: spec.pids.iter().copied().collect(),
            all: spec.all,
            _staged: staged,
        })
    }
}

/// What the recipe's preparation section had people check by hand: say exactly what is
/// missing for this kernel instead of letting stap fail obscurely.
fn preflight() -> Result<()> {
    let (checks, usable, _) = crate::source::features::stap_checks(&crate::source::features::kernel_release());
    if usable {
        return Ok(());
    }
    let missing: Vec<String> = checks
        .iter()
        .filter(|c| c.status == crate::source::features::Status::Missing)
        .map(|c| format!("{} ({}; fix: {})", c.name, c.detail, c.fix.as_deref().unwrap_or("-")))
        .collect();
    bail!("the SystemTap backend cannot run here: {}", missing.join("; "))
}

impl Backend for StapBackend {
    fn name(&self) -> &'static str {
        "stap"
    }

    async fn ready(&mut self) -> Result<()> {
        tokio::select! {
            l = self.lines.recv() => match l {
                Some(l) => self.pending.push(l),
                None => {
                    let status = self.child.wait().await.ok();
                    bail!("stap exited while watching ({})", status.map_or("unknown status".into(), |s| s.to_string()));
                }
            },
            _ = tokio::time::sleep(POLL) => {}
        }
        Ok(())
    }

    fn drain(&mut self, out: &mut Vec<Record>) -> Result<()> {
        while let Ok(l) = self.lines.try_recv() {
            self.pending.push(l);
        }
        for l in self.pending.drain(..) {
            let line = match l {
                Chunk::Line(l) => parse::parse(&l),
                Chunk::TooLong => Line::Malformed,
            };
            if line == Line::Malformed {
                self.malformed.note();
            }
            if let Line::Record(r) = line {
                // The module's filter is fixed at load; a pid that exited is dropped here so
                // its reuse by another process is never reported.
                let pid = match &*r {
                    Record::Signal(s) => s.target.pid,
                    Record::Exit(e) => e.pid,
                    _ => 0,
                };
                if self.all || self.watched.contains(&pid) {
                    out.push(*r);
                }
            }
        }
        Ok(())
    }

    fn unwatch(&mut self, pid: u32) -> Result<()> {
        self.watched.remove(&pid);
        Ok(())
    }

    fn watch(&mut self, pid: u32) -> Result<()> {
        self.watched.insert(pid);
        Ok(())
    }

    fn watch_root(&mut self, pid: u32) -> Result<()> {
        self.watch(pid)
    }

    fn take_malformed(&mut self) -> u64 {
        self.malformed.take()
    }
}

impl Drop for StapBackend {
    /// SIGINT lets stap run its end probes and unload the module cleanly.
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid as i32, libc::SIGINT) };
            for _ in 0..200 {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
    }
}
