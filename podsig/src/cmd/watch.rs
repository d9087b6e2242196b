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

/// Runs a watch to its end. `on_attached` runs once the probes are live (the demo starts
/// its sender there).
pub async fn run(mut opts: WatchOptions, on_attached: impl FnOnce()) -> Result<Summary> {
    let started = Instant::now();
    let mut enricher = Enricher::new();
    enricher.node = opts.node.name.clone();
    // containerd and Docker name the containers events mention, each asked by an agent
    // of its own so that nothing here waits on them: every second for a container watch
    // (restarts, new containers of a pod), else when a container goes unnamed (quietly:
    // hosts without them); podman's conmons are read from /proc. Node mode, filters on pod
    // labels, the history and metrics need a container's names on its first event (often
    // its init's death): those name eagerly.
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
    let mut namer = Namer::start(sockets, clients, asking).await?;
    // Before attaching: a container killed the moment `attached` is printed must already be
    // known (its init leaves /proc at once; tasks started later are announced by events).
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
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut watched: BTreeSet<u32> = opts.spec.pids.iter().copied().collect();
    // Exited between our check and the attach? Then no exit record will ever come for it
    // unless it exited after the attach; the first drain tells which.
    let mut gone_at_attach: BTreeSet<u32> =
        watched.iter().copied().filter(|&p| !matches!(proc_state(p), Some(s) if s != 'Z' && s != 'X')).collect();

    let what = if opts.spec.all {
        "every process".to_string()
    } else if let Some(f) = &opts.follower {
        format!("container {}", f.ids().join(", "))
    } else {
        let pids: Vec<String> = watched.iter().map(u32::to_string).collect();
        format!("pid {}", pids.join(", "))
    };
    eprintln!("podsig: attached (backend {}, watching {what}, {} ms)", backend.name(), started.elapsed().as_millis());
    on_attached();
    if let Some(m) = &opts.node.metrics {
        m.set_attached();
    }

    if let Some(f) = &opts.follower {
        f.share_membership(enricher.containers());
    }
    let mut follow_tick = tokio::time::interval(FOLLOW_INTERVAL);
    follow_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut correlator = Correlator::default();
    let mut stories = Stories::new(opts.stop_window);
    let mut out = opts.print.map(|format| {
        Output::new(format, BufWriter::new(io::stdout().lock()))
            .with_color(format == Format::Text && color_wanted())
            .with_notes(opts.spec.verbose)
    });
    // When each warning was last given (at most one per 10 s each).
    let mut history_dropped_warned: Option<Instant> = None;
    let mut malformed_warned: Option<Instant> = None;
    let mut malformed_unreported = 0u64;
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
            _ = follow_tick.tick() => {
                // Only what containerd already said: this never waits on it.
                let snaps = namer.tick(enricher.containers());
                if let Some(f) = opts.follower.as_mut() {
                    let inits = f.pids();
                    for pid in f.resync(&snaps) {
                        if f.pids().contains(&pid) && !inits.contains(&pid) {
                            // A new task: its exit is reported, like the first one's.
                            backend.watch_root(pid)?;
                            watched.insert(pid);
                        } else {
                            backend.watch(pid)?;
                        }
                    }
                    f.announce();
                    f.share_membership(enricher.containers());
                }
            }
        }
        // Always drain before deciding: nothing captured is dropped on the way out.
        backend.drain(&mut batch)?;
        let malformed = backend.take_malformed();
        if malformed > 0 {
            if let Some(m) = &opts.node.metrics {
                m.malformed(backend.name(), malformed);
            }
            malformed_unreported += malformed;
            if malformed_warned.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                eprintln!(
                    "podsig: skipped {malformed_unreported} malformed records from the {} backend \
                     (podsig_malformed_records_total)",
                    backend.name()
                );
                malformed_warned = Some(Instant::now());
                malformed_unreported = 0;
            }
        }
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
        for record in ready.iter_mut() {
            enricher.enrich(record);
        }
        namer.name(enricher.containers(), &mut ready).await;
        for mut record in ready.drain(..) {
            match &mut record {
                Record::Signal(s) => cause::classify(s),
                Record::Lost(l) => {
                    eprintln!("podsig: lost {} events: the ring buffer was full (raise --ring-size)", l.count)
                }
                _ => {}
            }
            opts.redact.record(&mut record);
            // Before the filters: a story's verdict does not depend on what is shown.
            stories.apply(&mut record);
            if !opts.node.filter.keeps(&record) {
                continue;
            }
            if let Some(m) = &opts.node.metrics {
                m.record(&record);
            }
            if let Some(out) = out.as_mut()
                && let Err(e) = out.write(&record)
            {
                return finish(e, signals, opts.node.history.take());
            }
            match &record {
                Record::Signal(s) => {
                    signals += s.count;
                    if opts.count.is_some_and(|c| signals >= c) {
                        done = Some(Stop::Count);
                    }
                }
                Record::Exit(e) => {
                    if watched.remove(&e.pid) {
                        backend.unwatch(e.pid)?;
                        if let Some(f) = opts.follower.as_mut() {
                            // A container's task may be restarted: keep watching for it.
                            f.forget(e.pid);
                        } else if watched.is_empty() && !opts.spec.all {
                            done = Some(Stop::TargetsExited);
                        }
                    }
                }
                Record::Lost(_) | Record::Oom(_) => {}
            }
            // Last, so the record moves into the history rather than being copied per event.
            if let Some(h) = opts.node.history.as_mut()
                && matches!(record, Record::Signal(_) | Record::Exit(_) | Record::Lost(_))
                && !h.push(record)
            {
                return match opts.node.history.take().map(history::Writer::finish) {
                    Some(Err(e)) => Err(e),
                    _ => Err(anyhow::anyhow!("the history writer stopped")),
                };
            }
            if done == Some(Stop::Count) {
                break;
            }
        }
        if first {
            first = false;
            for pid in std::mem::take(&mut gone_at_attach) {
                if opts.follower.is_some() {
                    tracing::debug!("container process {pid} exited before podsig attached");
                } else {
                    tracing::warn!("process {pid} exited before podsig attached; not watching it");
                }
                watched.remove(&pid);
                backend.unwatch(pid)?;
            }
            if watched.is_empty()
                && !opts.spec.all
                && opts.follower.is_none()
                && done.is_none()
                && correlator.is_empty()
            {
                bail!("every watched process exited before podsig attached; nothing to watch");
            }
        }
        if let Some(h) = opts.node.history.as_ref()
            && let Some(m) = &opts.node.metrics
        {
            // Not stored because the history's file system failed (the writer says so).
            m.history_dropped(h.take_unstored());
        }
        if let Some(h) = opts.node.history.as_mut()
            && h.dropped > 0
        {
            if let Some(m) = &opts.node.metrics {
                m.history_dropped(h.dropped);
            }
            if history_dropped_warned.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                eprintln!("podsig: the history writer fell behind: {} events not stored", h.dropped);
                history_dropped_warned = Some(Instant::now());
            }
            h.dropped = 0;
        }
        if let Some(out) = out.as_mut()
            && let Err(e) = out.flush()
        {
            return finish(e, signals, opts.node.history.take());
        }
        if let Some(stop) = done.or(interrupted) {
            break stop;
        }
    };
    if malformed_unreported > 0 {
        eprintln!(
            "podsig: skipped {malformed_unreported} malformed records from the {} backend \
             (podsig_malformed_records_total)",
            backend.name()
        );
    }
    if let Some(h) = opts.node.history.take() {
        h.finish()?;
    }
    Ok(Summary { stop, signals })
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
