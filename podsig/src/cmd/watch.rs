//! The watch loop: the source's records through the [`Pipeline`] to the sinks (stdout, the
//! history, metrics), a container or unit watch kept in step with its targets, and when to
//! stop.

use std::{
    collections::BTreeSet,
    io,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    cli,
    cmd::require_root,
    containers::{
        self, Follower,
        manager::Kind,
        namer::{self, Namer},
    },
    event::Record,
    pipeline::{self, Pipeline, node_filter, redact::Redactor, story},
    proc::proc_state,
    requests,
    sink::history,
    sink::metrics::{self, Metrics},
    sink::output::{self, Format, Output, Stdout},
    source::{self, Backend, BackendKind, RequestCapture, WatchSpec, target},
    units::Units,
};

pub struct WatchOptions {
    pub spec: WatchSpec,
    pub backend: BackendKind,
    /// Containers being watched: their processes and restarts are followed.
    pub follower: Option<Follower>,
    /// systemd units being watched: likewise.
    pub units: Units,
    /// How events go to stdout; None prints nothing (a recorder without -o).
    pub print: Option<Format>,
    pub node: NodeOptions,
    /// Stop after this many signal reports.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Masks secrets in argv before any output, metric or the history sees a record.
    pub redact: Redactor,
    /// How far back a terminating signal is linked to the next one to the same target.
    pub stop_window: Duration,
}

/// Node mode's additions: the node name, label filters, the history, metrics.
#[derive(Default)]
pub struct NodeOptions {
    pub name: Option<String>,
    pub filter: node_filter::Filter,
    pub history: Option<history::Writer>,
    pub metrics: Option<Arc<Metrics>>,
    /// containerd to name containers from, when not following containers (socket,
    /// namespaces); the default socket when None.
    pub containerd: Option<(PathBuf, Vec<String>)>,
    /// Docker's socket (`--docker-socket`); None: the default one, if present.
    pub docker_socket: Option<PathBuf>,
}

impl WatchOptions {
    /// A watch of `spec` that prints nothing, follows nothing and stops only when its
    /// targets exit; each subcommand then sets what it adds.
    pub fn new(backend: BackendKind, spec: WatchSpec) -> Self {
        Self {
            spec,
            backend,
            follower: None,
            units: Units::default(),
            print: None,
            node: NodeOptions::default(),
            count: None,
            duration: None,
            redact: Redactor::default(),
            stop_window: story::DEFAULT_WINDOW,
        }
    }

    /// What the flags `watch` and `record` share make of a watch: of nothing yet, its
    /// metrics served when asked (before anything attaches, so a bad address fails at once).
    pub async fn from_flags(shared: Shared<'_>) -> Result<Self> {
        let spec = WatchSpec {
            ring_bytes: shared.ring_bytes,
            verbose: shared.verbose,
            requests: if shared.managed { request_sockets(shared.containerd) } else { Vec::new() },
            ..Default::default()
        };
        let mut opts = Self::new(shared.backend, spec);
        opts.node = NodeOptions {
            name: node_filter::name(shared.node.node_name.clone()),
            filter: node_filter::Filter { exclude_comm: shared.node.exclude_comm.clone(), ..Default::default() },
            history: None,
            metrics: metrics::start(shared.node.metrics_addr).await?,
            containerd: Some((shared.containerd.socket.clone(), shared.containerd.namespaces())),
            docker_socket: shared.containerd.docker_socket.clone(),
        };
        opts.redact = shared.redact.redactor();
        opts.stop_window = shared.stop_window;
        Ok(opts)
    }
}

/// The flags `watch` and `record` share.
pub struct Shared<'a> {
    pub backend: BackendKind,
    pub ring_bytes: u32,
    pub verbose: bool,
    pub node: &'a cli::NodeArgs,
    pub containerd: &'a cli::ContainerdArgs,
    pub redact: &'a cli::RedactArgs,
    pub stop_window: Duration,
    /// Who asked a manager is wanted: where managers stop things (node mode, units,
    /// containers).
    pub managed: bool,
}

/// The manager sockets whose clients' requests are captured, unless `--no-requests`.
fn request_sockets(args: &cli::ContainerdArgs) -> Vec<(PathBuf, requests::wire::Socket)> {
    if args.no_requests {
        return Vec::new();
    }
    requests::manager_sockets(args.docker_socket.as_deref(), &args.socket)
}

/// `podsig watch`: the CLI mapped to a watch of pids, containers, a pod, units or the node.
pub async fn command(mut args: cli::WatchArgs, verbose: bool) -> Result<()> {
    if !args.all && args.pod.is_none() && (args.pod_namespace.is_some() || args.container_name.is_some()) {
        bail!("--namespace and --container-name narrow --pod (or --all): add one of them");
    }
    let signals =
        if args.all { node_filter::signals(&args.signals, args.node.any_signal) } else { args.signals.clone() };
    if args.print_script {
        return print_script(args, signals);
    }
    require_root()?;
    source::prefetch(args.backend);
    let mut pids = target::resolve_pids(&args.pids)?;
    let (selector, filter) = watch_scope(&mut args);
    let follower = if selector.is_empty() {
        None
    } else {
        let f = Follower::new(selector).await?;
        pids.extend(f.pids());
        Some(f)
    };
    let shared = Shared {
        backend: args.backend,
        ring_bytes: args.common.ring_size,
        verbose,
        node: &args.node,
        containerd: &args.containerd,
        redact: &args.redact,
        stop_window: args.stop_window,
        managed: args.all || follower.is_some() || !args.units.is_empty(),
    };
    let mut opts = WatchOptions::from_flags(shared).await?;
    let units = Units::new(args.units);
    let unit_pids = units.pids();
    if !units.is_empty() && unit_pids.is_empty() {
        // Not an error: a unit watch follows the unit's starts. But a misspelt unit never
        // starts, so say it once.
        let names = units.names().join(" ");
        eprintln!(
            "podsig: no process runs in {names} now (stopped, or no such unit: `systemctl status {names}`); waiting \
             for it to start"
        );
    }
    pids.extend(unit_pids);
    opts.spec.pids = pids;
    opts.spec.all = args.all;
    opts.spec.signals = signals;
    opts.spec.follow = follower.is_some() || !units.is_empty();
    opts.spec.stap_module = args.stap_module;
    opts.units = units;
    opts.follower = follower;
    opts.print = Some(args.common.output.unwrap_or_else(output::default_format));
    opts.node.filter = node_filter::Filter { exclude_comm: opts.node.filter.exclude_comm, ..filter };
    opts.count = args.count;
    opts.duration = args.duration;
    let summary = run(opts, || {}).await?;
    tracing::debug!("stopped: {:?} after {} signals", summary.stop, summary.signals);
    Ok(())
}

/// `watch --print-script`: the SystemTap script and how to run it, instead of a watch.
fn print_script(args: cli::WatchArgs, signals: Vec<i32>) -> Result<()> {
    if args.backend != BackendKind::Stap {
        bail!("--print-script prints the SystemTap script: add --backend stap");
    }
    let spec = WatchSpec { pids: args.pids, all: args.all, signals, ..Default::default() };
    let params: Vec<String> =
        source::stap::script_spec(&spec).params().into_iter().map(|(k, v)| format!("-G {k}={v}")).collect();
    let run = format!("// Run as root: stap {} podsig.stp\n", params.join(" "));
    output::print((run + &source::stap::script::generate()).as_bytes())
}

/// With --all the pod flags filter what is reported (the label filter); without, they pick
/// what to watch (the selector).
fn watch_scope(args: &mut cli::WatchArgs) -> (containers::Selector, node_filter::Filter) {
    let (selector_pod, filter) = if args.all {
        let filter = node_filter::Filter {
            namespace: args.pod_namespace.take(),
            pod: args.pod.take(),
            container_name: args.container_name.take(),
            exclude_comm: Vec::new(),
        };
        (None, filter)
    } else {
        (Some((args.pod.take(), args.pod_namespace.take(), args.container_name.take())), Default::default())
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

/// How often a container watch is brought in step with the containers.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);
/// How long attaching waits for containerd's first answers (node mode): a containerd that
/// is down or hung delays nothing longer.
const FIRST_NAMES: Duration = Duration::from_secs(1);

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

/// A warning given at most once per 10 s, with what happened since it was last given.
#[derive(Default)]
struct Throttled {
    last: Option<Instant>,
}

impl Throttled {
    fn due(&mut self) -> bool {
        let due = self.last.is_none_or(|t| t.elapsed() > Duration::from_secs(10));
        if due {
            self.last = Some(Instant::now());
        }
        due
    }
}

/// One watch, attached: the source (`backend`), the `pipeline` every record goes through,
/// and the sinks (`out`, metrics and the history in `opts.node`).
struct Watch {
    opts: WatchOptions,
    backend: source::AnyBackend,
    pipeline: Pipeline,
    out: Option<Output<Stdout>>,
    /// Processes whose exits are reported; the watch ends when the last one exits.
    watched: BTreeSet<u32>,
    /// Exited between our check and the attach? Then no exit record will ever come for it
    /// unless it exited after the attach; the first drain tells which.
    gone_at_attach: BTreeSet<u32>,
    first: bool,
    signals: u64,
    batch: Vec<Record>,
    malformed_warned: Throttled,
    malformed_unreported: u64,
    history_dropped_warned: Throttled,
}

/// Runs a watch to its end. `on_attached` runs once the probes are live (the demo starts
/// its sender there).
pub async fn run(opts: WatchOptions, on_attached: impl FnOnce()) -> Result<Summary> {
    let started = Instant::now();
    let mut w = Watch::attach(opts).await?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    w.announce(started, on_attached);
    let mut follow_tick = tokio::time::interval(FOLLOW_INTERVAL);
    follow_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = w.opts.duration.map(|d| tokio::time::Instant::now() + d);
    let sleep = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);
    let stop = loop {
        let mut interrupted = None;
        tokio::select! {
            r = w.backend.ready() => r?,
            _ = sigint.recv() => interrupted = Some(Stop::Interrupted),
            _ = sigterm.recv() => interrupted = Some(Stop::Interrupted),
            _ = &mut sleep => interrupted = Some(Stop::Duration),
            _ = follow_tick.tick() => w.follow()?,
        }
        if let Some(stop) = w.step(interrupted).await? {
            break stop;
        }
    };
    w.finish(stop)
}

impl Watch {
    /// Starts the namer, attaches the backend, and puts a container watch's processes in
    /// the filter.
    async fn attach(mut opts: WatchOptions) -> Result<Self> {
        let (namer, eager) = start_namer(&mut opts).await?;
        let config = pipeline::Config {
            node: opts.node.name.clone(),
            filter: std::mem::take(&mut opts.node.filter),
            redact: std::mem::take(&mut opts.redact),
            stop_window: opts.stop_window,
        };
        let mut pipeline = Pipeline::new(config, namer);
        // Before attaching: a container killed the moment `attached` is printed must already
        // be known (its init leaves /proc at once; tasks started later are announced by events).
        if eager {
            pipeline.name_first(FIRST_NAMES).await;
        }
        let mut backend = source::attach(opts.backend, &opts.spec).await?;
        pipeline.capturing_requests(backend.captures_requests());
        if let Some(f) = opts.follower.as_mut() {
            // Forks are followed in the kernel from now on; a process the container started
            // between resolving it and attaching is in its cgroup already: pick those up, and
            // put every member in the filter, before saying `attached`.
            f.resync(&[]);
            for pid in f.members_only() {
                backend.watch(pid)?;
            }
            f.announce();
        }
        let watched: BTreeSet<u32> = opts.spec.pids.iter().copied().collect();
        let out = opts.print.map(|format| Output::stdout(format, opts.spec.verbose));
        Ok(Self {
            opts,
            backend,
            pipeline,
            out,
            watched,
            gone_at_attach: BTreeSet::new(),
            first: true,
            signals: 0,
            batch: Vec::new(),
            malformed_warned: Throttled::default(),
            malformed_unreported: 0,
            history_dropped_warned: Throttled::default(),
        })
    }

    /// Says `attached` (the signal handlers are in place by now), and notes which watched
    /// processes were gone by then.
    fn announce(&mut self, started: Instant, on_attached: impl FnOnce()) {
        self.gone_at_attach = self
            .watched
            .iter()
            .copied()
            .filter(|&p| !matches!(proc_state(p), Some(s) if s != 'Z' && s != 'X'))
            .collect();
        let what = watching(&self.opts, &self.watched);
        let (name, ms) = (self.backend.name(), started.elapsed().as_millis());
        // Said at once: request capture's syscall tracepoints tax every syscall on the node.
        let requests = match self.backend.captures_requests() {
            RequestCapture::Off => "",
            RequestCapture::Whole => ", capturing requests to managers",
            RequestCapture::NewClientsOnly => ", capturing requests to managers (from new clients only)",
        };
        eprintln!("podsig: attached (backend {name}, watching {what}{requests}, {ms} ms)");
        on_attached();
        if let Some(m) = &self.opts.node.metrics {
            m.set_attached();
        }
        if let Some(f) = &self.opts.follower {
            self.pipeline.learn_membership(f.membership());
        }
    }

    /// The follow tick: brings a container watch in step with what the managers already
    /// said (this never waits on them), new tasks and processes into the filter.
    fn follow(&mut self) -> Result<()> {
        if self.opts.spec.all || !self.opts.units.is_empty() {
            self.pipeline.refresh_units();
        }
        for pid in self.opts.units.pids() {
            // A unit's new process (a restart's new main process): its exit is reported.
            if self.watched.insert(pid) {
                self.backend.watch_root(pid)?;
            }
        }
        let snaps = self.pipeline.tick();
        if let Some(f) = self.opts.follower.as_mut() {
            let inits = f.pids();
            for pid in f.resync(&snaps) {
                if f.pids().contains(&pid) && !inits.contains(&pid) {
                    // A new task: its exit is reported, like the first one's.
                    self.backend.watch_root(pid)?;
                    self.watched.insert(pid);
                } else {
                    self.backend.watch(pid)?;
                }
            }
            f.announce();
            self.pipeline.learn_membership(f.membership());
        }
        Ok(())
    }

    /// One turn of the loop: drain the source, take what is ready through the pipeline to
    /// the sinks, and say whether the watch is over.
    async fn step(&mut self, interrupted: Option<Stop>) -> Result<Option<Stop>> {
        // Always drain before deciding: nothing captured is dropped on the way out.
        self.drain()?;
        self.pipeline.prepare(Instant::now(), interrupted.is_some()).await;
        let done = self.emit()?;
        if done == Some(Stop::OutputClosed) {
            return Ok(done);
        }
        if self.first {
            self.first = false;
            self.settle_attach(done.is_some())?;
        }
        self.account_history();
        if let Some(out) = self.out.as_mut()
            && let Err(e) = out.flush()
        {
            return self.output_failed(e).map(Some);
        }
        Ok(done.or(interrupted))
    }

    /// Moves what the backend has into the pipeline, counting what it could not decode.
    fn drain(&mut self) -> Result<()> {
        self.backend.drain(&mut self.batch)?;
        let malformed = self.backend.take_malformed();
        if malformed > 0 {
            if let Some(m) = &self.opts.node.metrics {
                m.malformed(self.backend.name(), malformed);
            }
            self.malformed_unreported += malformed;
            if self.malformed_warned.due() {
                self.warn_malformed();
            }
        }
        let now = Instant::now();
        for record in self.batch.drain(..) {
            if let Record::Exit(e) = &record {
                self.gone_at_attach.remove(&e.pid);
            }
            self.pipeline.push(record, now);
        }
        Ok(())
    }

    fn warn_malformed(&mut self) {
        eprintln!(
            "podsig: skipped {} malformed records from the {} backend (podsig_malformed_records_total)",
            self.malformed_unreported,
            self.backend.name()
        );
        self.malformed_unreported = 0;
    }

    /// The pipeline's finished records to the sinks, until a stop says the watch is over.
    fn emit(&mut self) -> Result<Option<Stop>> {
        let mut done = None;
        while let Some(record) = self.pipeline.next_out() {
            if let Some(m) = &self.opts.node.metrics {
                m.record(&record);
            }
            if let Some(out) = self.out.as_mut()
                && let Err(e) = out.write(&record)
            {
                return self.output_failed(e).map(Some);
            }
            if let Some(stop) = self.count(&record)? {
                done = Some(stop);
            }
            // Last, so the record moves into the history rather than being copied per event.
            if let Some(h) = self.opts.node.history.as_mut()
                && matches!(record, Record::Signal(_) | Record::Exit(_) | Record::Lost(_))
                && !h.push(record)
            {
                return match self.opts.node.history.take().map(history::Writer::finish) {
                    Some(Err(e)) => Err(e),
                    _ => Err(anyhow::anyhow!("the history writer stopped")),
                };
            }
            if done == Some(Stop::Count) {
                // What the stop left unread is dropped.
                self.pipeline.discard();
                break;
            }
        }
        Ok(done)
    }

    /// Counts a shown record: signals towards --count, a watched process's exit towards
    /// the end of the watch.
    fn count(&mut self, record: &Record) -> Result<Option<Stop>> {
        match record {
            Record::Signal(s) => {
                self.signals += s.count;
                if self.opts.count.is_some_and(|c| self.signals >= c) {
                    return Ok(Some(Stop::Count));
                }
            }
            Record::Exit(e) => {
                if self.watched.remove(&e.pid) {
                    self.backend.unwatch(e.pid)?;
                    if let Some(f) = self.opts.follower.as_mut() {
                        // A container's task may be restarted: keep watching for it.
                        f.forget(e.pid);
                    } else if self.watched.is_empty() && !self.opts.spec.all && self.opts.units.is_empty() {
                        return Ok(Some(Stop::TargetsExited));
                    }
                }
            }
            Record::Lost(_) | Record::Oom(_) | Record::Request(_) => {}
        }
        Ok(None)
    }

    /// After the first drain: processes that were gone before the attach (no exit of theirs
    /// came) are not watched; if that leaves nothing, there is nothing to watch.
    fn settle_attach(&mut self, done: bool) -> Result<()> {
        for pid in std::mem::take(&mut self.gone_at_attach) {
            if self.opts.follower.is_some() {
                tracing::debug!("container process {pid} exited before podsig attached");
            } else {
                tracing::warn!("process {pid} exited before podsig attached; not watching it");
            }
            self.watched.remove(&pid);
            self.backend.unwatch(pid)?;
        }
        // A container or unit watch waits for its target's next start.
        if self.watched.is_empty()
            && !self.opts.spec.all
            && self.opts.follower.is_none()
            && self.opts.units.is_empty()
            && !done
            && self.pipeline.is_empty()
        {
            bail!("every watched process exited before podsig attached; nothing to watch");
        }
        Ok(())
    }

    /// What the history could not keep: counted in the metrics, warned about now and then.
    fn account_history(&mut self) {
        if let Some(h) = self.opts.node.history.as_ref()
            && let Some(m) = &self.opts.node.metrics
        {
            // Not stored because the history's file system failed (the writer says so).
            m.history_dropped(h.take_unstored());
        }
        if let Some(h) = self.opts.node.history.as_mut()
            && h.dropped > 0
        {
            if let Some(m) = &self.opts.node.metrics {
                m.history_dropped(h.dropped);
            }
            if self.history_dropped_warned.due() {
                eprintln!("podsig: the history writer fell behind: {} events not stored", h.dropped);
            }
            h.dropped = 0;
        }
    }

    /// A closed stdout (`podsig … | head -1`) ends the watch quietly; other write errors
    /// fail, once the history has kept what was queued.
    fn output_failed(&mut self, e: io::Error) -> Result<Stop> {
        if !output::closed(&e)
            && let Some(h) = self.opts.node.history.take()
        {
            h.finish()?;
        }
        output::written(Err(e), "writing events to stdout").map(|()| Stop::OutputClosed)
    }

    fn finish(mut self, stop: Stop) -> Result<Summary> {
        // Not once stdout is closed: whoever reads podsig has stopped reading.
        if self.malformed_unreported > 0 && stop != Stop::OutputClosed {
            self.warn_malformed();
        }
        if let Some(h) = self.opts.node.history.take() {
            h.finish()?;
        }
        Ok(Summary { stop, signals: self.signals })
    }
}

/// containerd and Docker name the containers events mention, each asked by an agent of its
/// own so that nothing in the loop waits on them: every second for a container watch
/// (restarts, new containers of a pod), else when a container goes unnamed (quietly: hosts
/// without them); podman's conmons are read from /proc. Node mode, filters on pod labels,
/// the history and metrics need a container's names on its first event (often its init's
/// death): those name eagerly (the second value).
async fn start_namer(opts: &mut WatchOptions) -> Result<(Namer, bool)> {
    let (socket, namespaces) = opts.node.containerd.clone().unwrap_or_else(|| {
        (containers::DEFAULT_SOCKET.into(), containers::DEFAULT_NAMESPACES.iter().map(|s| s.to_string()).collect())
    });
    let eager =
        opts.spec.all || opts.node.filter.needs_labels() || opts.node.history.is_some() || opts.node.metrics.is_some();
    let clients = opts.follower.as_mut().map(Follower::take_clients).unwrap_or_default();
    let asking = namer::Asking {
        eager,
        containerd_periodic: opts.follower.is_some(),
        docker_periodic: opts.follower.as_ref().is_some_and(|f| f.watches(Kind::Docker)),
    };
    let sockets =
        namer::Sockets { containerd: &socket, namespaces: &namespaces, docker: opts.node.docker_socket.as_deref() };
    Ok((Namer::start(sockets, clients, asking).await?, eager))
}

/// What `attached` says is watched.
fn watching(opts: &WatchOptions, watched: &BTreeSet<u32>) -> String {
    if opts.spec.all {
        "every process".to_string()
    } else if let Some(f) = &opts.follower {
        format!("container {}", f.ids().join(", "))
    } else if !opts.units.is_empty() {
        format!("unit {}", opts.units.names().join(", "))
    } else {
        let pids: Vec<String> = watched.iter().map(u32::to_string).collect();
        format!("pid {}", pids.join(", "))
    }
}
