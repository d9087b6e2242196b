//! Names containers: containerd's labels by container ID, and which pid namespace belongs
//! to which container.
//!
//! The second matters in node mode: a killed container's init is often gone from /proc
//! (its cgroup reads as the root) before its event is read, and then only the pid namespace
//! the kernel captured says where it lived. So the node's running tasks are learned every
//! second, before they die, and each task's start as containerd announces it.
//!
//! containerd is asked by an [`Agent`], a task of its own: the watch loop never awaits
//! containerd. A containerd that is down, restarting or hung (a stopped process still
//! accepts connections, and answers nothing) costs the events nothing: they go out with
//! what is known (a container's ID from its cgroup, its name once containerd answers).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::{
    container::{ContainerInfo, Containerd, TaskStart},
    enrich::{Enricher, pidns_of},
    event::Record,
};

/// IDs and namespaces containerd did not know are not waited for again before this.
const FORGET_UNKNOWN: Duration = Duration::from_secs(10);
/// Lazy naming (a `--pid` watch) asks containerd at most this often.
const LAZY_INTERVAL: Duration = Duration::from_secs(2);
/// How long an event naming a container podsig has not seen may wait for containerd: for
/// its announcement of the task that made it, or a fresh list.
const START_GRACE: Duration = Duration::from_millis(250);
/// A containerd that has not answered within four times its usual answer time, and at least
/// this, is not waited for: events go out with what is known, and are named on later
/// records once it answers. (Adapted to the node: a loaded node's containerd answering in
/// 80 ms is slow, not hung.)
const STALL: Duration = Duration::from_millis(50);
/// How often containerd is asked, when asked periodically.
const INTERVAL: Duration = Duration::from_secs(1);

/// What containerd said in one round of questions.
#[derive(Debug)]
pub struct Snapshot {
    /// When the round started: what it says is true from then on.
    pub taken: Instant,
    pub containers: Vec<ContainerInfo>,
    /// Running tasks: container, runtime, its init's pid and pid namespace.
    pub tasks: Vec<(String, &'static str, u32, Option<u32>)>,
}

impl Snapshot {
    /// The init pid of `id`'s running task, if it has one.
    pub fn task_pid(&self, id: &str) -> Option<u32> {
        self.tasks.iter().find(|t| t.0 == id).map(|t| t.2)
    }
}

#[derive(Default)]
struct Health {
    /// The last round got its answers.
    ok: bool,
    /// A round is waiting on containerd since then.
    busy_since: Option<Instant>,
    /// Rounds finished, answered or not (containerd absent counts).
    rounds: u64,
    /// How long answered rounds take, smoothed.
    usual: Option<Duration>,
}

impl Health {
    /// How long a round may be waited for before containerd counts as not answering.
    fn stall(&self) -> Duration {
        self.usual.map_or(STALL, |u| (u * 4).clamp(STALL, START_GRACE))
    }
}

/// Asks containerd on its own task: every [`INTERVAL`] when periodic, else when asked;
/// reconnects after any failure (containerd restarted) and follows task starts.
pub struct Agent {
    snapshots: tokio::sync::watch::Receiver<Option<Arc<Snapshot>>>,
    starts: Option<tokio::sync::mpsc::UnboundedReceiver<TaskStart>>,
    refresh: Arc<tokio::sync::Notify>,
    health: Arc<Mutex<Health>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Agent {
    /// `client`: a connection already made (a container watch resolved its containers
    /// with it); else the agent connects itself, and keeps trying.
    pub fn spawn(
        socket: PathBuf,
        namespaces: Vec<String>,
        client: Option<Containerd>,
        periodic: bool,
        follow_starts: bool,
    ) -> Self {
        let (tx, snapshots) = tokio::sync::watch::channel(None);
        let refresh = Arc::new(tokio::sync::Notify::new());
        let health = Arc::new(Mutex::new(Health::default()));
        let mut tasks = Vec::new();
        let starts = follow_starts.then(|| {
            let (stx, srx) = tokio::sync::mpsc::unbounded_channel();
            tasks.push(tokio::spawn(Containerd::task_starts(socket.clone(), namespaces.clone(), stx)));
            srx
        });
        let (r, h) = (refresh.clone(), health.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = client;
            let mut told = false;
            loop {
                if client.is_none() {
                    client = match Containerd::connect(&socket, &namespaces).await {
                        Ok(c) => Some(c),
                        Err(e) => {
                            tracing::debug!("no container names for now: {e:#}");
                            None
                        }
                    };
                }
                if let Some(c) = &client {
                    let taken = Instant::now();
                    h.lock().expect("health").busy_since = Some(taken);
                    let answer = ask(c).await;
                    let mut health = h.lock().expect("health");
                    health.busy_since = None;
                    health.ok = answer.is_ok();
                    if answer.is_ok() {
                        let took = taken.elapsed();
                        health.usual = Some(health.usual.map_or(took, |u| (u * 3 + took) / 4));
                    }
                    drop(health);
                    match answer {
                        Ok((containers, tasks)) => {
                            if std::mem::take(&mut told) {
                                eprintln!("podsig: containerd answers again: containers are named");
                            }
                            tracing::trace!("containerd: {} containers, {} tasks", containers.len(), tasks.len());
                            let _ = tx.send(Some(Arc::new(Snapshot { taken, containers, tasks })));
                        }
                        Err(e) => {
                            if !std::mem::replace(&mut told, true) {
                                eprintln!(
                                    "podsig: containerd does not answer ({}); still watching, new containers go \
                                     unnamed until it does",
                                    reason(&e)
                                );
                            }
                            // Connect anew next time: containerd may have restarted.
                            client = None;
                        }
                    }
                } else {
                    h.lock().expect("health").ok = false;
                }
                h.lock().expect("health").rounds += 1;
                if tx.is_closed() {
                    return;
                }
                if periodic {
                    tokio::select! {
                        _ = tokio::time::sleep(INTERVAL) => {}
                        _ = r.notified() => {}
                    }
                } else {
                    r.notified().await;
                }
            }
        }));
        Self { snapshots, starts, refresh, health, tasks }
    }

    /// Asks for a round now.
    pub fn refresh(&self) {
        self.refresh.notify_one();
    }

    /// Whether containerd answers: its last round did, and none has been waiting for longer
    /// than containerd usually takes (see [`STALL`]).
    pub fn answering(&self) -> bool {
        let h = self.health.lock().expect("health");
        h.ok && h.busy_since.is_none_or(|t| t.elapsed() < h.stall())
    }

    /// The latest round's answers, once: None when there is none newer.
    pub fn news(&mut self) -> Option<Arc<Snapshot>> {
        if !self.snapshots.has_changed().unwrap_or(false) {
            return None;
        }
        self.snapshots.borrow_and_update().clone()
    }
}

/// An error from asking containerd, short: what was asked, and gRPC's own message rather
/// than its debug rendering.
fn reason(e: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in e.chain() {
        if let Some(status) = cause.downcast_ref::<containerd_client::tonic::Status>() {
            parts.push(status.message().to_string());
            break;
        }
        parts.push(cause.to_string());
    }
    parts.join(": ").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One round of questions: every container with its labels, every running task.
async fn ask(c: &Containerd) -> anyhow::Result<(Vec<ContainerInfo>, Vec<(String, &'static str, u32, Option<u32>)>)> {
    let containers = c.list().await?;
    let tasks = c
        .task_pids()
        .await?
        .into_iter()
        .map(|(id, runtime, pid)| {
            let ns = pidns_of(&pid.to_string());
            (id, runtime, pid, ns)
        })
        .collect();
    Ok((containers, tasks))
}

/// Names and pid namespaces from one round of containerd's answers.
fn apply(enricher: &mut Enricher, snap: &Snapshot) {
    for info in &snap.containers {
        enricher.names.by_id.insert(info.id.clone(), info.clone());
    }
    for (id, runtime, _, ns) in &snap.tasks {
        if let Some(ns) = ns {
            enricher.learn_pidns(*ns, id.clone(), runtime);
        }
    }
    enricher.unnamed.clear();
}

fn learn_start(enricher: &mut Enricher, start: TaskStart) {
    if let Some(ns) = start.pidns {
        enricher.learn_pidns(ns, start.id, start.runtime);
    }
}

pub struct Namer {
    agent: Agent,
    /// Name every event before it goes out (label filters, the history, metrics need it),
    /// rather than from the next event on; waits a moment for containerd when it answers.
    eager: bool,
    /// When lazy naming last asked.
    asked: Option<Instant>,
    /// The newest round taken in and not yet handed to the container follower.
    for_follower: Option<Arc<Snapshot>>,
    unknown_ids: BTreeSet<String>,
    unknown_pidns: BTreeSet<u32>,
    unknown_since: Instant,
}

impl Namer {
    /// None when a lazy watch finds no containerd socket (quietly: plenty of hosts run
    /// none). Node mode and container watches keep asking for one: containerd may start,
    /// or restart, after podsig.
    pub fn start(
        socket: &Path,
        namespaces: &[String],
        client: Option<Containerd>,
        eager: bool,
        periodic: bool,
    ) -> Option<Self> {
        if !periodic && !eager && client.is_none() && !socket.exists() {
            tracing::debug!("no container names: no containerd socket at {}", socket.display());
            return None;
        }
        let agent = Agent::spawn(socket.to_path_buf(), namespaces.to_vec(), client, periodic || eager, eager);
        Some(Self {
            agent,
            eager,
            asked: None,
            for_follower: None,
            unknown_ids: BTreeSet::new(),
            unknown_pidns: BTreeSet::new(),
            unknown_since: Instant::now(),
        })
    }

    /// Takes in what containerd said since the last call, without waiting: names, pid
    /// namespaces, task starts. True when there was anything new.
    fn take(&mut self, enricher: &mut Enricher) -> bool {
        let started = self.take_starts(enricher);
        let Some(snap) = self.agent.news() else { return started };
        self.took(enricher, snap);
        true
    }

    fn took(&mut self, enricher: &mut Enricher, snap: Arc<Snapshot>) {
        apply(enricher, &snap);
        self.for_follower = Some(snap);
    }

    /// Takes in the tasks containerd announced; true when there were any.
    fn take_starts(&mut self, enricher: &mut Enricher) -> bool {
        let Some(rx) = self.agent.starts.as_mut() else { return false };
        let mut any = false;
        while let Ok(start) = rx.try_recv() {
            learn_start(enricher, start);
            any = true;
        }
        any
    }

    /// On the watch's periodic tick: what containerd said; a lazy watch with unnamed
    /// containers asks again.
    pub fn tick(&mut self, enricher: &mut Enricher) -> Option<Arc<Snapshot>> {
        self.take(enricher);
        let snap = self.for_follower.take();
        if !self.eager && !enricher.unnamed.is_empty() && self.asked.is_none_or(|t| t.elapsed() > LAZY_INTERVAL) {
            self.agent.refresh();
            self.asked = Some(Instant::now());
        }
        snap
    }

    /// Before attaching: what containerd says now, if it answers within `bound` (at once
    /// when there is no containerd to ask).
    pub async fn first(&mut self, enricher: &mut Enricher, bound: Duration) {
        let rounds = || self.agent.health.lock().expect("health").rounds;
        let start = rounds();
        self.agent.refresh();
        let deadline = Instant::now() + bound;
        while rounds() == start && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.take(enricher);
    }

    /// Before enriched records go out: what containerd said meanwhile is taken in (names
    /// come back the moment it answers). Then, when naming eagerly and a record names a
    /// container containerd has not been asked about, or lies in a pid namespace no known
    /// container has, wait a moment for containerd (its announcement of a task just
    /// started, or a fresh list) — only while it answers — and place the records again.
    pub async fn name(&mut self, enricher: &mut Enricher, ready: &mut [Record]) {
        if self.take(enricher) {
            ready.iter_mut().for_each(|r| enricher.place(r));
        }
        if !self.eager {
            return;
        }
        if self.unknown_since.elapsed() > FORGET_UNKNOWN {
            self.unknown_ids.clear();
            self.unknown_pidns.clear();
            self.unknown_since = Instant::now();
        }
        if !self.news(enricher, ready) {
            return;
        }
        tracing::debug!("asking containerd about containers {:?} it was not asked about lately", enricher.unnamed);
        self.agent.refresh();
        let asked = Instant::now();
        let deadline = asked + START_GRACE;
        let mut listed = false;
        // A new round starts at once; until it is under way, the last one's health stands.
        tokio::task::yield_now().await;
        while self.agent.answering() && Instant::now() < deadline {
            let pidns_news = self.unplaced_news(enricher, ready);
            if listed && !pidns_news {
                break;
            }
            let snapshots = &mut self.agent.snapshots;
            let starts = self.agent.starts.as_mut();
            let mut fresh = None;
            tokio::select! {
                Some(start) = async { match starts { Some(rx) => rx.recv().await, None => None } } => {
                    learn_start(enricher, start);
                }
                Ok(()) = snapshots.changed() => fresh = snapshots.borrow_and_update().clone(),
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
            if let Some(snap) = fresh {
                listed |= snap.taken >= asked;
                self.took(enricher, snap);
            }
            ready.iter_mut().for_each(|r| enricher.place(r));
            if !self.news(enricher, ready) {
                break;
            }
        }
        self.unknown_ids.extend(std::mem::take(&mut enricher.unnamed));
        self.unknown_pidns.extend(ready.iter().filter_map(|r| enricher.unplaced_pidns(r)));
    }

    /// Whether `ready` names a container or pid namespace containerd has not been asked
    /// about lately.
    fn news(&self, enricher: &Enricher, ready: &[Record]) -> bool {
        enricher.unnamed.iter().any(|id| !self.unknown_ids.contains(id)) || self.unplaced_news(enricher, ready)
    }

    fn unplaced_news(&self, enricher: &Enricher, ready: &[Record]) -> bool {
        ready.iter().filter_map(|r| enricher.unplaced_pidns(r)).any(|ns| !self.unknown_pidns.contains(&ns))
    }
}
