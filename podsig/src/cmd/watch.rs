//! The watch loop: target → backend → records → enrich → output, and when to stop.

use std::{
    collections::BTreeSet,
    io::{self, BufWriter, Write},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    containers::manager::Kind,
    containers::namer::{self, Namer, Snapshot},
    containers::{self, ContainerIndex, Managers, Selector, Source, Watched},
    event::Record,
    pipeline::cause,
    pipeline::correlate::Correlator,
    pipeline::enrich::Enricher,
    pipeline::node_filter,
    pipeline::redact::Redactor,
    pipeline::story::Stories,
    proc::proc_state,
    requests::Requests,
    sink::history,
    sink::metrics::Metrics,
    sink::output::{Format, Output},
    source::{self, Backend, BackendKind, WatchSpec},
};

pub struct WatchOptions {
    pub spec: WatchSpec,
    pub backend: BackendKind,
    /// Containers being watched: their processes and restarts are followed.
    pub follower: Option<Follower>,
    /// systemd units being watched: likewise.
    pub units: crate::units::Units,
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

/// Keeps a container watch in step with the containers: processes started in them by
/// other means than fork (exec through the runtime), new tasks after a restart, and a pod's
/// new containers of the same name.
pub struct Follower {
    selector: Selector,
    containers: Vec<Watched>,
    /// The connections that resolved the containers, handed on to the naming agents,
    /// which ask containerd and Docker from then on (the watch loop never waits on them).
    clients: Managers,
    /// Pids handed to the backend, so each is added once.
    known: BTreeSet<u32>,
    /// When each container's task was last seen to exit: its manager's answers from before
    /// that cannot bring it back.
    exited: std::collections::HashMap<String, Instant>,
    /// `following …` lines not yet printed.
    followed: Vec<String>,
}

impl Follower {
    pub async fn new(selector: Selector) -> Result<Self> {
        let (containers, clients) = containers::resolve(&selector).await?;
        let mut f = Self {
            selector,
            containers,
            clients,
            known: BTreeSet::new(),
            exited: Default::default(),
            followed: Vec::new(),
        };
        let pids: Vec<u32> = f.current_pids().into_iter().map(|(p, _)| p).collect();
        f.known.extend(pids);
        Ok(f)
    }

    /// Every process now in the watched containers, with its container.
    fn current_pids(&self) -> Vec<(u32, &Watched)> {
        let mut pids = Vec::new();
        for w in &self.containers {
            if let Some(p) = w.pid {
                pids.push((p, w));
                pids.extend(crate::proc::cgroup_procs(p).into_iter().filter(|&c| c != p).map(|c| (c, w)));
            }
        }
        pids
    }

    /// Which container each known process belongs to: a killed process's /proc no longer
    /// says (its cgroup reads as the root once it exits).
    pub fn members(&self) -> Vec<(u32, String, &'static str)> {
        self.current_pids()
            .into_iter()
            .map(|(p, w)| {
                let runtime = w.info.as_ref().map_or("containerd", containers::ContainerInfo::runtime);
                (p, w.id.clone(), runtime)
            })
            .collect()
    }

    /// Tells the container index which container each known process and pid namespace belongs
    /// to, and the containers' names.
    fn share_membership(&self, index: &mut ContainerIndex) {
        index.learn_members(self.members().into_iter().map(|(p, id, rt)| (p, (id, rt))), self.pid_namespaces());
        for info in self.containers.iter().filter_map(|w| w.info.clone()) {
            index.learn(info);
        }
    }

    /// Each watched container's pid namespace (its init's).
    pub fn pid_namespaces(&self) -> Vec<(u32, (String, &'static str))> {
        self.members()
            .into_iter()
            .filter_map(|(p, id, rt)| Some((crate::proc::pidns_of(&p.to_string())?, (id, rt))))
            .filter(|(ns, _)| Some(*ns) != crate::proc::pidns_of("self"))
            .collect()
    }

    /// The containers' inits: the processes whose exits are reported.
    pub fn pids(&self) -> Vec<u32> {
        self.containers.iter().filter_map(|w| w.pid).collect()
    }

    /// The containers' other processes, watched without exit records (a container's shell
    /// loop would otherwise report every `sleep 1`).
    pub fn members_only(&self) -> Vec<u32> {
        let inits = self.pids();
        self.known.iter().copied().filter(|p| !inits.contains(p)).collect()
    }

    pub fn ids(&self) -> Vec<String> {
        self.containers.iter().map(|w| containers::short(&w.id)).collect()
    }

    /// Whether a watched container is one `kind` of manager tells about (its restarts are
    /// followed through that manager's answers).
    pub fn watches(&self, kind: Kind) -> bool {
        self.containers.iter().any(|w| w.info.as_ref().is_some_and(|i| Kind::of(&i.source) == Some(kind)))
    }

    /// New pids to watch since the last call, from the managers' latest answers (`snaps`,
    /// the rounds new since the last call), podman's conmons and the containers' cgroups. A
    /// container's new task is announced by [`Follower::announce`], once the caller
    /// watches it.
    fn resync(&mut self, snaps: &[Arc<Snapshot>]) -> Vec<u32> {
        // A pod's restarted container is a new container with the same labels, in
        // containerd (pods are found there only).
        if let Some(snap) = snaps.iter().find(|s| s.kind == Kind::Containerd)
            && (self.selector.pod.is_some()
                || self
                    .containers
                    .iter()
                    .any(|w| w.info.as_ref().is_some_and(|i| i.labels.contains_key(containers::LABEL_POD))))
        {
            for c in &snap.containers {
                if self.containers.iter().any(|w| w.id == c.id) {
                    continue;
                }
                let same_as = |w: &Watched| {
                    w.info.as_ref().is_some_and(|i| {
                        [containers::LABEL_POD, containers::LABEL_POD_NAMESPACE, containers::LABEL_CONTAINER]
                            .iter()
                            .all(|k| i.labels.contains_key(*k) && i.labels.get(*k) == c.labels.get(*k))
                    })
                };
                let pod_match =
                    self.selector.pod.as_ref().is_some_and(|p| c.labels.get(containers::LABEL_POD) == Some(p))
                        && self
                            .selector
                            .pod_namespace
                            .as_ref()
                            .is_none_or(|n| c.labels.get(containers::LABEL_POD_NAMESPACE) == Some(n))
                        && self
                            .selector
                            .container_name
                            .as_ref()
                            .is_none_or(|n| c.labels.get(containers::LABEL_CONTAINER) == Some(n))
                        && c.labels.get("io.cri-containerd.kind").is_none_or(|k| k == "container");
                if pod_match || self.containers.iter().any(same_as) {
                    self.containers.push(Watched { id: c.id.clone(), info: Some(c.clone()), pid: None });
                }
            }
        }
        // podman's conmons, read once for every podman container watched.
        let podman = self
            .containers
            .iter()
            .any(|w| w.info.as_ref().is_some_and(|i| i.source == Source::Podman))
            .then(crate::containers::podman::running);
        for w in &mut self.containers {
            let now = match &w.info {
                Some(info) => match Kind::of(&info.source) {
                    Some(kind) => match snaps.iter().find(|s| s.kind == kind) {
                        Some(snap) if self.exited.get(&w.id).is_none_or(|&t| snap.taken > t) => snap.task_pid(&w.id),
                        // Nothing new from its manager (down, restarting, hung): keep what is
                        // known.
                        _ => None,
                    },
                    None => podman.iter().flatten().find(|(c, _)| c.id == w.id).and_then(|(_, pid)| *pid),
                },
                None => crate::proc::pids_in_cgroups_of(&w.id).first().copied(),
            };
            if let Some(pid) = now
                && w.pid != Some(pid)
            {
                self.followed.push(format!("podsig: following {} (new pid {pid})", containers::short(&w.id)));
                w.pid = Some(pid);
            }
        }
        let pids: Vec<u32> = self.current_pids().into_iter().map(|(p, _)| p).collect();
        pids.into_iter().filter(|&p| self.known.insert(p)).collect()
    }

    /// Says on stderr which containers have a new task: after its pid is in the filter, so a
    /// signal sent upon reading the line is reported.
    fn announce(&mut self) {
        for line in self.followed.drain(..) {
            eprintln!("{line}");
        }
    }

    /// A watched process exited: if it comes back (a pid reused inside the container), it is
    /// added again by the next resync.
    fn forget(&mut self, pid: u32) {
        self.known.remove(&pid);
        for w in &mut self.containers {
            if w.pid == Some(pid) {
                w.pid = None;
                self.exited.insert(w.id.clone(), Instant::now());
            }
        }
    }
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

/// How a step of the loop ended the watch: a clean stop, or a summary already final (stdout
/// closed).
enum Ended {
    Stop(Stop),
    Summary(Summary),
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

/// One watch, attached: the source (`backend`), the pipeline a record goes through in
/// order (`correlator` → `enricher` and `namer` → cause → `opts.redact` → `stories` → the
/// node filter), and the sinks (`out`, metrics and the history in `opts.node`).
struct Watch {
    opts: WatchOptions,
    backend: source::AnyBackend,
    enricher: Enricher,
    namer: Namer,
    correlator: Correlator,
    stories: Stories,
    /// Requests to managers, kept to link the managers' signals to who asked.
    requests: Requests,
    out: Option<Output<BufWriter<io::StdoutLock<'static>>>>,
    /// Processes whose exits are reported; the watch ends when the last one exits.
    watched: BTreeSet<u32>,
    /// Exited between our check and the attach? Then no exit record will ever come for it
    /// unless it exited after the attach; the first drain tells which.
    gone_at_attach: BTreeSet<u32>,
    first: bool,
    signals: u64,
    batch: Vec<Record>,
    ready: Vec<Record>,
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
        match w.step(interrupted).await? {
            None => {}
            Some(Ended::Stop(stop)) => break stop,
            Some(Ended::Summary(summary)) => return Ok(summary),
        }
    };
    w.finish(stop)
}

impl Watch {
    /// Starts the namer, attaches the backend, and puts a container watch's processes in
    /// the filter.
    async fn attach(mut opts: WatchOptions) -> Result<Self> {
        let mut enricher = Enricher::new();
        enricher.node = opts.node.name.clone();
        let (mut namer, eager) = start_namer(&mut opts).await?;
        // Before attaching: a container killed the moment `attached` is printed must already
        // be known (its init leaves /proc at once; tasks started later are announced by events).
        if eager {
            namer.first(enricher.containers(), FIRST_NAMES).await;
        }
        let mut backend = source::attach(opts.backend, &opts.spec).await?;
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
        let out = opts.print.map(|format| {
            Output::new(format, BufWriter::new(io::stdout().lock()))
                .with_color(format == Format::Text && color_wanted())
                .with_notes(opts.spec.verbose)
        });
        Ok(Self {
            stories: Stories::new(opts.stop_window),
            requests: Requests::new(opts.stop_window, backend.captures_requests()),
            opts,
            backend,
            enricher,
            namer,
            correlator: Correlator::default(),
            out,
            watched,
            gone_at_attach: BTreeSet::new(),
            first: true,
            signals: 0,
            batch: Vec::new(),
            ready: Vec::new(),
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
        eprintln!("podsig: attached (backend {name}, watching {what}, {ms} ms)");
        on_attached();
        if let Some(m) = &self.opts.node.metrics {
            m.set_attached();
        }
        if let Some(f) = &self.opts.follower {
            f.share_membership(self.enricher.containers());
        }
    }

    /// The follow tick: brings a container watch in step with what the managers already
    /// said (this never waits on them), new tasks and processes into the filter.
    fn follow(&mut self) -> Result<()> {
        if self.opts.spec.all || !self.opts.units.is_empty() {
            self.enricher.refresh_units();
        }
        for pid in self.opts.units.pids() {
            // A unit's new process (a restart's new main process): its exit is reported.
            if self.watched.insert(pid) {
                self.backend.watch_root(pid)?;
            }
        }
        let snaps = self.namer.tick(self.enricher.containers());
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
            f.share_membership(self.enricher.containers());
        }
        Ok(())
    }

    /// One turn of the loop: drain the source, take what is ready through the pipeline to
    /// the sinks, and say whether the watch is over.
    async fn step(&mut self, interrupted: Option<Stop>) -> Result<Option<Ended>> {
        // Always drain before deciding: nothing captured is dropped on the way out.
        self.drain()?;
        let now = Instant::now();
        if interrupted.is_some() {
            self.correlator.flush(&mut self.ready);
        } else {
            self.correlator.ready(now, &mut self.ready);
        }
        for record in self.ready.iter_mut() {
            self.enricher.enrich(record);
        }
        self.namer.name(self.enricher.containers(), &mut self.ready).await;
        let done = match self.emit()? {
            Ok(done) => done,
            Err(summary) => return Ok(Some(Ended::Summary(summary))),
        };
        if self.first {
            self.first = false;
            self.settle_attach(done.is_some())?;
        }
        self.account_history();
        if let Some(out) = self.out.as_mut()
            && let Err(e) = out.flush()
        {
            return finish(e, self.signals, self.opts.node.history.take()).map(|s| Some(Ended::Summary(s)));
        }
        Ok(done.or(interrupted).map(Ended::Stop))
    }

    /// Moves what the backend has into the correlator, counting what it could not decode.
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
            self.correlator.push(record, now);
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

    /// The ready records, each through cause, redaction, stories and the filter, to the
    /// sinks. Ok(Err(summary)): stdout closed, the watch is over.
    fn emit(&mut self) -> Result<Result<Option<Stop>, Summary>> {
        let mut done = None;
        let mut ready = std::mem::take(&mut self.ready);
        for mut record in ready.drain(..) {
            match &mut record {
                Record::Signal(s) => {
                    cause::classify(s);
                    self.requests.link(s);
                }
                Record::Lost(l) => {
                    eprintln!("podsig: lost {} events: the ring buffer was full (raise --ring-size)", l.count)
                }
                _ => {}
            }
            self.opts.redact.record(&mut record);
            if let Record::Request(r) = record {
                self.requests.remember(*r);
                continue;
            }
            // Before the filters: a story's verdict does not depend on what is shown.
            self.stories.apply(&mut record);
            if !self.opts.node.filter.keeps(&record) {
                continue;
            }
            if let Some(m) = &self.opts.node.metrics {
                m.record(&record);
            }
            if let Some(out) = self.out.as_mut()
                && let Err(e) = out.write(&record)
            {
                return finish(e, self.signals, self.opts.node.history.take()).map(Err);
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
                break;
            }
        }
        // What a --count stop left unread is dropped, as before; the buffer is kept.
        ready.clear();
        self.ready = ready;
        Ok(Ok(done))
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
        if self.watched.is_empty()
            && !self.opts.spec.all
            && self.opts.follower.is_none()
            && !done
            && self.correlator.is_empty()
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

    fn finish(mut self, stop: Stop) -> Result<Summary> {
        if self.malformed_unreported > 0 {
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
    let clients = opts.follower.as_mut().map(|f| std::mem::take(&mut f.clients)).unwrap_or_default();
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

/// A closed stdout (`podsig … | head -1`) ends the watch quietly; other write errors fail.
/// Either way the history keeps what was queued.
fn finish(e: io::Error, signals: u64, history: Option<history::Writer>) -> Result<Summary> {
    if let Some(h) = history {
        h.finish()?;
    }
    if e.kind() == io::ErrorKind::BrokenPipe {
        return Ok(Summary { stop: Stop::OutputClosed, signals });
    }
    Err(e).context("writing events to stdout")
}

/// Colour only for a person at a terminal, and never against NO_COLOR (no-color.org).
pub fn color_wanted() -> bool {
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
