//! The watch loop: target → backend → records → enrich → output, and when to stop.

use std::{
    collections::BTreeSet,
    io::{self, BufWriter, Write},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    backend::{self, Backend, BackendKind, WatchSpec},
    cause,
    correlate::Correlator,
    enrich::{Enricher, proc_state},
    event::Record,
    output::{Format, Output},
};

#[derive(Clone, Debug)]
pub struct WatchOptions {
    pub spec: WatchSpec,
    pub backend: BackendKind,
    pub format: Format,
    /// Stop after this many signal reports.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
}

/// Why the loop ended; each is a clean exit.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    TargetsExited,
    Count,
    Duration,
    Interrupted,
    OutputClosed,
}

pub struct Summary {
    pub stop: Stop,
    pub signals: u64,
}

/// Runs a watch to its end. `on_attached` runs once the probes are live (the demo starts
/// its sender there).
pub async fn run(opts: WatchOptions, on_attached: impl FnOnce()) -> Result<Summary> {
    let started = Instant::now();
    let mut backend = backend::attach(opts.backend, &opts.spec).await?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut watched: BTreeSet<u32> = opts.spec.pids.iter().copied().collect();
    // Exited between our check and the attach? Then no exit record will ever come for it
    // unless it exited after the attach; the first drain tells which.
    let mut gone_at_attach: BTreeSet<u32> =
        watched.iter().copied().filter(|&p| !matches!(proc_state(p), Some(s) if s != 'Z' && s != 'X')).collect();

    let what = if opts.spec.all {
        "every process".to_string()
    } else {
        let pids: Vec<String> = watched.iter().map(u32::to_string).collect();
        format!("pid {}", pids.join(", "))
    };
    eprintln!(
        "podsig: attached (backend {}, watching {what}, {} ms)",
        backend.name(),
        started.elapsed().as_millis()
    );
    on_attached();

    let mut enricher = Enricher::new();
    let mut correlator = Correlator::default();
    let mut out = Output::new(opts.format, BufWriter::new(io::stdout().lock()))
        .with_color(opts.format == Format::Text && color_wanted());
    let mut signals = 0u64;
    let mut batch = Vec::new();
    let mut ready = Vec::new();
    let deadline = opts.duration.map(|d| tokio::time::Instant::now() + d);
    let sleep = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);

    let mut first = true;
    let stop = loop {
        let mut interrupted = None;
        tokio::select! {
            r = backend.ready() => r?,
            _ = sigint.recv() => interrupted = Some(Stop::Interrupted),
            _ = sigterm.recv() => interrupted = Some(Stop::Interrupted),
            _ = &mut sleep => interrupted = Some(Stop::Duration),
        }
        // Always drain before deciding: nothing captured is dropped on the way out.
        backend.drain(&mut batch)?;
        let now = Instant::now();
        for record in batch.drain(..) {
            if let Record::Exit(e) = &record {
                gone_at_attach.remove(&e.pid);
            }
            correlator.push(record, now);
        }
        if interrupted.is_some() {
            correlator.flush(&mut ready);
        } else {
            correlator.ready(now, &mut ready);
        }
        let mut done = None;
        for mut record in ready.drain(..) {
            enricher.enrich(&mut record);
            match &mut record {
                Record::Signal(s) => cause::classify(s),
                Record::Lost(l) => eprintln!(
                    "podsig: lost {} events: the ring buffer was full (raise --ring-size)",
                    l.count
                ),
                _ => {}
            }
            if let Err(e) = out.write(&record) {
                return finish(e, signals);
            }
            match &record {
                Record::Signal(_) => {
                    signals += 1;
                    if opts.count.is_some_and(|c| signals >= c) {
                        done = Some(Stop::Count);
                        break;
                    }
                }
                Record::Exit(e) => {
                    if watched.remove(&e.pid) {
                        backend.unwatch(e.pid)?;
                        if watched.is_empty() && !opts.spec.all {
                            done = Some(Stop::TargetsExited);
                        }
                    }
                }
                Record::Lost(_) | Record::Oom(_) => {}
            }
        }
        if first {
            first = false;
            for pid in std::mem::take(&mut gone_at_attach) {
                tracing::warn!("process {pid} exited before podsig attached; not watching it");
                watched.remove(&pid);
                backend.unwatch(pid)?;
            }
            if watched.is_empty() && !opts.spec.all && done.is_none() && correlator.is_empty() {
                bail!("every watched process exited before podsig attached; nothing to watch");
            }
        }
        if let Err(e) = out.flush() {
            return finish(e, signals);
        }
        if let Some(stop) = done.or(interrupted) {
            break stop;
        }
    };
    Ok(Summary { stop, signals })
}

/// A closed stdout (`podsig … | head -1`) ends the watch quietly; other write errors fail.
fn finish(e: io::Error, signals: u64) -> Result<Summary> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return Ok(Summary { stop: Stop::OutputClosed, signals });
    }
    Err(e).context("writing events to stdout")
}

/// Colour only for a person at a terminal, and never against NO_COLOR (no-color.org).
fn color_wanted() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && io::stdout().is_terminal()
}

pub fn default_format() -> Format {
    use std::io::IsTerminal;
    if io::stdout().is_terminal() { Format::Text } else { Format::Json }
}

/// Flushes stderr so status lines land before the process exits.
pub fn flush_stderr() {
    let _ = io::stderr().flush();
}
