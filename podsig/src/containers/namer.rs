//! Names containers: containerd's labels, Docker's names and podman's (from its conmons)
//! by container ID, and which pid namespace belongs to which container.
//!
//! The second matters in node mode: a killed container's init is often gone from /proc
//! (its cgroup reads as the root) before its event is read, and then only the pid namespace
//! the kernel captured says where it lived. So the node's running tasks are learned every
//! second, before they die, and each task's start as containerd or Docker announces it.
//!
//! containerd and Docker are each asked by an [`Agent`], a task of its own: the watch loop
//! never awaits either. One that is down, restarting or hung (a stopped process still
//! accepts connections, and answers nothing) costs the events nothing: they go out with
//! what is known (a container's ID from its cgroup, its name once the manager answers).
//! podman runs no daemon: its conmons are read from /proc, when a container needs a name
//! and, in node mode, on the watch's ticks.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{Arc, Mutex},
    task::Poll,
    time::{Duration, Instant},
};

use anyhow::Result;

use crate::{
    containers::{
        containerd::Containerd,
        docker::{Docker, DockerAt},
        index::ContainerIndex,
        manager::{Kind, Manager, Round, Task},
        model::{ContainerInfo, Source, TaskStart},
    },
    event::{Record, Runtime},
    proc::pidns_of,
};

/// IDs and namespaces no manager knew are not waited for again before this.
const FORGET_UNKNOWN: Duration = Duration::from_secs(10);
/// Lazy naming (a `--pid` watch) asks the managers at most this often.
const LAZY_INTERVAL: Duration = Duration::from_secs(2);
/// How long an event naming a container podsig has not seen may wait for the managers:
/// for their announcement of the task that made it, or a fresh list.
const START_GRACE: Duration = Duration::from_millis(250);
/// A manager that has not answered within four times its usual answer time, and at least
/// this, is not waited for: events go out with what is known, and are named on later
/// records once it answers. (Adapted to the node: a loaded node's containerd answering in
/// 80 ms is slow, not hung.)
const STALL: Duration = Duration::from_millis(50);
/// How often a manager is asked, when asked periodically.
const INTERVAL: Duration = Duration::from_secs(1);
/// Node mode reads the conmons pid 1 adopted every tick once it has seen a podman
/// container, and this often until then.
const PODMAN_IDLE_INTERVAL: Duration = Duration::from_secs(10);

/// The container managers podsig reached: containerd and Docker answer on their sockets;
/// podman, which runs no daemon, is read from its conmons in /proc.
#[derive(Default)]
pub struct Managers {
    pub containerd: Option<Containerd>,
    pub docker: Option<Docker>,
}

impl Managers {
    /// The pid of the container's running task (its init), from whoever told of it.
    /// `podman`: the conmons read this round, if already read.
    pub async fn task_pid(&self, info: &ContainerInfo, podman: Option<&[(ContainerInfo, Option<u32>)]>) -> Option<u32> {
        match &info.source {
            Source::Containerd(ns) => self.containerd.as_ref()?.task_pid(ns, &info.id).await,
            Source::Docker => self.docker.as_ref()?.inspect(&info.id).await.ok()??.1,
            Source::Podman => match podman {
                Some(running) => running.iter().find(|(c, _)| c.id == info.id)?.1,
                None => crate::containers::podman::running().into_iter().find(|(c, _)| c.id == info.id)?.1,
            },
        }
    }
}

/// containerd as a [`Manager`]: its socket and the namespaces searched.
pub struct ContainerdAt {
    pub socket: PathBuf,
    pub namespaces: Vec<String>,
}

impl Manager for ContainerdAt {
    type Client = Containerd;
    const NAME: &'static str = "containerd";
    const KIND: Kind = Kind::Containerd;

    async fn connect(&self) -> Result<Containerd> {
        Containerd::connect(&self.socket, &self.namespaces).await
    }

    /// Every container with its labels, every running task.
    async fn ask(&self, c: &mut Containerd) -> Result<Round> {
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
        Ok(Round { containers, tasks })
    }

    async fn task_starts(self: Arc<Self>, tx: tokio::sync::mpsc::UnboundedSender<TaskStart>) {
        Containerd::task_starts(self.socket.clone(), self.namespaces.clone(), tx).await;
    }

    /// What was asked, and gRPC's own message rather than its debug rendering.
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
}

/// What a manager said in one round of questions.
#[derive(Debug)]
pub struct Snapshot {
    pub kind: Kind,
    /// When the round started: what it says is true from then on.
    pub taken: Instant,
    pub containers: Vec<ContainerInfo>,
    /// Running tasks: container, runtime, its init's pid and pid namespace.
    pub tasks: Vec<Task>,
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
    /// A round is waiting on the manager since then.
    busy_since: Option<Instant>,
    /// Rounds finished, answered or not (the manager absent counts).
    rounds: u64,
    /// How long answered rounds take, smoothed.
    usual: Option<Duration>,
}

impl Health {
    /// How long a round may be waited for before the manager counts as not answering.
    fn stall(&self) -> Duration {
        self.usual.map_or(STALL, |u| (u * 4).clamp(STALL, START_GRACE))
    }
}

/// Asks one manager on its own task: every [`INTERVAL`] when periodic, else when asked;
/// reconnects after any failure (the manager restarted) and follows task starts.
pub struct Agent {
    snapshots: tokio::sync::watch::Receiver<Option<Arc<Snapshot>>>,
    starts: Option<tokio::sync::mpsc::UnboundedReceiver<TaskStart>>,
    /// Received while waiting for news, not taken in yet.
    pending_starts: Vec<TaskStart>,
    pending_round: Option<Arc<Snapshot>>,
    /// When the newest round taken in started.
    newest: Option<Instant>,
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
    // Long: mostly the agent task's body (connect, ask, stream starts), kept beside the state it shares.
    pub fn spawn<M: Manager>(manager: M, client: Option<M::Client>, periodic: bool, follow_starts: bool) -> Self {
        let manager = Arc::new(manager);
        let (tx, snapshots) = tokio::sync::watch::channel(None);
        let refresh = Arc::new(tokio::sync::Notify::new());
        let health = Arc::new(Mutex::new(Health::default()));
        let mut tasks = Vec::new();
        let starts = follow_starts.then(|| {
            let (stx, srx) = tokio::sync::mpsc::unbounded_channel();
            tasks.push(tokio::spawn(manager.clone().task_starts(stx)));
            srx
        });
        let (r, h) = (refresh.clone(), health.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = client;
            let mut told = false;
            loop {
                if client.is_none() {
                    client = match manager.connect().await {
                        Ok(c) => Some(c),
                        Err(e) => {
                            tracing::debug!("no {} names for now: {e:#}", M::NAME);
                            None
                        }
                    };
                }
                if let Some(c) = client.as_mut() {
                    let taken = Instant::now();
                    h.lock().expect("health").busy_since = Some(taken);
                    let answer = manager.ask(c).await;
                    let mut health = h.lock().expect("health");
                    health.busy_since = None;
                    health.ok = answer.is_ok();
                    if answer.is_ok() {
                        let took = taken.elapsed();
                        health.usual = Some(health.usual.map_or(took, |u| (u * 3 + took) / 4));
                    }
                    drop(health);
                    match answer {
                        Ok(Round { containers, tasks }) => {
                            if std::mem::take(&mut told) {
                                eprintln!("podsig: {} answers again: containers are named", M::NAME);
                            }
                            tracing::trace!("{}: {} containers, {} tasks", M::NAME, containers.len(), tasks.len());
                            let snap = Snapshot { kind: M::KIND, taken, containers, tasks };
                            let _ = tx.send(Some(Arc::new(snap)));
                        }
                        Err(e) => {
                            if !std::mem::replace(&mut told, true) {
                                eprintln!(
                                    "podsig: {} does not answer ({}); still watching, new containers go unnamed \
                                     until it does",
                                    M::NAME,
                                    M::reason(&e)
                                );
                            }
                            // Connect anew next time: the manager may have restarted.
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
        Self {
            snapshots,
            starts,
            pending_starts: Vec::new(),
            pending_round: None,
            newest: None,
            refresh,
            health,
            tasks,
        }
    }

    /// Asks for a round now.
    pub fn refresh(&self) {
        self.refresh.notify_one();
    }

    /// Whether the manager answers: its last round did, and none has been waiting for
    /// longer than it usually takes (see [`STALL`]).
    pub fn answering(&self) -> bool {
        let h = self.health.lock().expect("health");
        h.ok && h.busy_since.is_none_or(|t| t.elapsed() < h.stall())
    }

    fn rounds(&self) -> u64 {
        self.health.lock().expect("health").rounds
    }

    /// The latest round's answers, once: None when there is none newer.
    fn news(&mut self) -> Option<Arc<Snapshot>> {
        let snap = match self.pending_round.take() {
            Some(s) => Some(s),
            None if self.snapshots.has_changed().unwrap_or(false) => self.snapshots.borrow_and_update().clone(),
            None => None,
        };
        if let Some(s) = &snap {
            self.newest = Some(s.taken);
        }
        snap
    }

    /// The tasks announced since the last call.
    fn starts(&mut self) -> Vec<TaskStart> {
        let mut out = std::mem::take(&mut self.pending_starts);
        if let Some(rx) = self.starts.as_mut() {
            while let Ok(start) = rx.try_recv() {
                out.push(start);
            }
        }
        out
    }

    /// Waits until the manager says something (a task start, a round), kept for
    /// [`Agent::news`] and [`Agent::starts`].
    async fn arrival(&mut self) {
        let starts = self.starts.as_mut();
        let snapshots = &mut self.snapshots;
        tokio::select! {
            Some(start) = async { match starts { Some(rx) => rx.recv().await, None => None } } => {
                self.pending_starts.push(start);
            }
            Ok(()) = snapshots.changed() => {
                if let Some(s) = snapshots.borrow_and_update().clone() {
                    self.pending_round = Some(s);
                }
            }
            else => std::future::pending::<()>().await,
        }
    }
}

/// Names and pid namespaces from one round of a manager's answers.
fn apply(index: &mut ContainerIndex, snap: &Snapshot) {
    for info in &snap.containers {
        index.learn(info.clone());
    }
    for (id, runtime, _, ns) in &snap.tasks {
        if let Some(ns) = ns {
            index.learn_pidns(*ns, id.clone(), *runtime);
        }
    }
    index.forget_unnamed();
}

fn learn_start(index: &mut ContainerIndex, start: TaskStart) {
    if let Some(info) = start.info {
        index.learn(info);
    }
    if let Some(ns) = start.pidns {
        index.learn_pidns(ns, start.id, start.runtime);
    }
}

/// A round and the starts announced around it, in the order they happened: a round does
/// not undo a start announced after it began, nor does a start announced before it began
/// undo the round (the kernel reuses a gone pid namespace's number, and a container started
/// since may have a stopped one's).
fn take_in_order(index: &mut ContainerIndex, snap: Option<&Snapshot>, starts: Vec<TaskStart>) {
    let (before, after): (Vec<_>, Vec<_>) =
        starts.into_iter().partition(|s| snap.is_some_and(|snap| s.seen < snap.taken));
    before.into_iter().for_each(|s| learn_start(index, s));
    if let Some(snap) = snap {
        apply(index, snap);
    }
    after.into_iter().for_each(|s| learn_start(index, s));
}

/// podman's running containers: names, and their inits' pid namespaces (learned while
/// they live: a container killed outright is gone from /proc when its event is read).
fn learn_podman(index: &mut ContainerIndex, running: Vec<(ContainerInfo, Option<u32>)>) {
    for (info, pid) in running {
        if let Some(ns) = pid.and_then(|p| pidns_of(&p.to_string())) {
            index.learn_pidns(ns, info.id.clone(), Runtime::Podman);
        }
        index.learn(info);
    }
}

/// Where the managers are: containerd's socket and namespaces, Docker's socket as
/// `--docker-socket` names it (None: the default ones, when there).
pub struct Sockets<'a> {
    pub containerd: &'a Path,
    pub namespaces: &'a [String],
    pub docker: Option<&'a Path>,
}

/// How the watch wants the managers asked.
pub struct Asking {
    /// Name every event before it goes out (node mode, label filters, the history,
    /// metrics), rather than from the next event on.
    pub eager: bool,
    /// Ask containerd every second (a container watch follows restarts through it).
    pub containerd_periodic: bool,
    /// Ask Docker every second (a container watch follows a Docker container's restarts).
    pub docker_periodic: bool,
}

pub struct Namer {
    /// containerd's, then Docker's, where asked.
    agents: Vec<Agent>,
    /// Name every event before it goes out (label filters, the history, metrics need it),
    /// rather than from the next event on; waits a moment for the managers that answer.
    eager: bool,
    /// When lazy naming last asked.
    asked: Option<Instant>,
    /// The newest rounds taken in and not yet handed to the container follower.
    for_follower: Vec<Arc<Snapshot>>,
    /// When podman's conmons were last read on a tick, and whether any was ever there.
    podman_read: Option<(Instant, bool)>,
    unknown_ids: BTreeSet<String>,
    unknown_pidns: BTreeSet<u32>,
    unknown_since: Instant,
}

impl Namer {
    /// containerd is asked unless a lazy watch finds no socket (quietly: plenty of hosts
    /// run none); node mode and container watches keep asking for one, since containerd
    /// may start, or restart, after podsig. The same for Docker, except that a socket
    /// `--docker-socket` names must answer now. `clients`: connections already made (a
    /// container watch resolved its containers with them).
    pub async fn start(sockets: Sockets<'_>, clients: Managers, asking: Asking) -> Result<Self> {
        let Asking { eager, containerd_periodic, docker_periodic } = asking;
        let mut agents = Vec::new();
        let persistent = eager || containerd_periodic;
        if persistent || clients.containerd.is_some() || sockets.containerd.exists() {
            let at = ContainerdAt { socket: sockets.containerd.to_path_buf(), namespaces: sockets.namespaces.to_vec() };
            agents.push(Agent::spawn(at, clients.containerd, containerd_periodic || eager, eager));
        } else {
            tracing::debug!("no containerd names: no containerd socket at {}", sockets.containerd.display());
        }
        let docker = match (clients.docker, sockets.docker) {
            (Some(d), _) => Some(d),
            // A socket named with --docker-socket must answer.
            (None, Some(s)) => Some(Docker::open(s).await?),
            (None, None) => None,
        };
        if persistent || docker.is_some() || crate::containers::docker::default_socket().is_some() {
            let at = DockerAt { socket: sockets.docker.map(Path::to_path_buf) };
            agents.push(Agent::spawn(at, docker.map(Into::into), docker_periodic || eager, eager));
        } else {
            tracing::debug!(
                "no Docker names: no Docker socket at {}",
                crate::containers::docker::DEFAULT_SOCKETS.join(" or ")
            );
        }
        Ok(Self {
            agents,
            eager,
            asked: None,
            for_follower: Vec::new(),
            podman_read: None,
            unknown_ids: BTreeSet::new(),
            unknown_pidns: BTreeSet::new(),
            unknown_since: Instant::now(),
        })
    }

    /// Takes in what the managers said since the last call, without waiting: names, pid
    /// namespaces, task starts. True when there was anything new.
    fn take(&mut self, index: &mut ContainerIndex) -> bool {
        let mut any = false;
        for i in 0..self.agents.len() {
            let starts = self.agents[i].starts();
            let snap = self.agents[i].news();
            any |= !starts.is_empty() || snap.is_some();
            take_in_order(index, snap.as_deref(), starts);
            if let Some(snap) = snap {
                self.for_follower.retain(|s| s.kind != snap.kind);
                self.for_follower.push(snap);
            }
        }
        any
    }

    /// On the watch's periodic tick: what the managers said (for the container follower:
    /// the newest round of each); node mode reads podman's conmons; a lazy watch with
    /// unnamed containers asks again.
    pub fn tick(&mut self, index: &mut ContainerIndex) -> Vec<Arc<Snapshot>> {
        self.take(index);
        if self.eager && self.podman_read.is_none_or(|(at, seen)| seen || at.elapsed() > PODMAN_IDLE_INTERVAL) {
            self.read_podman_adopted(index);
        }
        let snaps = std::mem::take(&mut self.for_follower);
        if !self.eager && !index.unnamed().is_empty() && self.asked.is_none_or(|t| t.elapsed() > LAZY_INTERVAL) {
            self.agents.iter().for_each(Agent::refresh);
            learn_podman(index, crate::containers::podman::running());
            // Asked: each is asked about again when an event names it again.
            index.forget_unnamed();
            self.asked = Some(Instant::now());
        }
        snaps
    }

    /// podman's conmons that pid 1 adopted (conmon double-forks): cheap enough for every
    /// tick once podman containers were seen.
    fn read_podman_adopted(&mut self, index: &mut ContainerIndex) {
        let running = crate::containers::podman::running_adopted();
        let seen = self.podman_read.is_some_and(|(_, seen)| seen) || !running.is_empty();
        self.podman_read = Some((Instant::now(), seen));
        learn_podman(index, running);
    }

    /// Before attaching: what the managers say now, if they answer within `bound` (at once
    /// when there is none to ask), and podman's running containers.
    pub async fn first(&mut self, index: &mut ContainerIndex, bound: Duration) {
        let start: Vec<u64> = self.agents.iter().map(Agent::rounds).collect();
        self.agents.iter().for_each(Agent::refresh);
        let deadline = Instant::now() + bound;
        while self.agents.iter().zip(&start).any(|(a, &s)| a.rounds() == s) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.take(index);
        let running = crate::containers::podman::running();
        self.podman_read = Some((Instant::now(), !running.is_empty()));
        learn_podman(index, running);
    }

    /// Before enriched records go out: what the managers said meanwhile is taken in (names
    /// come back the moment one answers), even when every record looks placed: a container
    /// started since may have the pid namespace number a stopped one had. Then, when naming
    /// eagerly and a record names a container the managers have not been asked about, or
    /// lies in a pid namespace no known container has: podman's conmons are read, and the
    /// managers that answer are waited for a moment (their announcement of a task just
    /// started, or a fresh list), and the records placed again.
    pub async fn name(&mut self, index: &mut ContainerIndex, ready: &mut [Record]) {
        if self.take(index) {
            ready.iter_mut().for_each(|r| index.place(r));
        }
        if !self.eager {
            return;
        }
        if self.unknown_since.elapsed() > FORGET_UNKNOWN {
            self.unknown_ids.clear();
            self.unknown_pidns.clear();
            self.unknown_since = Instant::now();
        }
        if !self.news(index, ready) {
            return;
        }
        if self.unnamed_news(index) {
            learn_podman(index, crate::containers::podman::running());
            // Placed again, the records leave unnamed only what is still nameless.
            index.forget_unnamed();
            ready.iter_mut().for_each(|r| index.place(r));
        }
        if self.news(index, ready) {
            self.wait(index, ready).await;
        }
        self.unknown_ids.extend(index.take_unnamed());
        self.unknown_pidns.extend(ready.iter().filter_map(|r| index.unplaced_pidns(r)));
    }

    /// Asks the managers now, and waits — at most [`START_GRACE`], and only while one
    /// answers — until each that answers has listed since, and no record lies in a pid
    /// namespace not asked about.
    async fn wait(&mut self, index: &mut ContainerIndex, ready: &mut [Record]) {
        tracing::debug!("asking about containers {:?} not asked about lately", index.unnamed());
        self.agents.iter().for_each(Agent::refresh);
        let asked = Instant::now();
        let deadline = asked + START_GRACE;
        // A new round starts at once; until it is under way, the last one's health stands.
        tokio::task::yield_now().await;
        while Instant::now() < deadline {
            let answering: Vec<&Agent> = self.agents.iter().filter(|a| a.answering()).collect();
            if answering.is_empty() {
                break;
            }
            let listed = answering.iter().all(|a| a.newest.is_some_and(|t| t >= asked));
            if listed && !self.unplaced_news(index, ready) {
                break;
            }
            let mut arrivals: Vec<Pin<Box<_>>> = self.agents.iter_mut().map(|a| Box::pin(a.arrival())).collect();
            let any = std::future::poll_fn(|cx| {
                if arrivals.iter_mut().any(|f| f.as_mut().poll(cx).is_ready()) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            });
            tokio::select! {
                () = any => {}
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
            drop(arrivals);
            self.take(index);
            ready.iter_mut().for_each(|r| index.place(r));
            if !self.news(index, ready) {
                break;
            }
        }
    }

    /// Whether `ready` names a container or pid namespace the managers have not been asked
    /// about lately.
    fn news(&self, index: &ContainerIndex, ready: &[Record]) -> bool {
        self.unnamed_news(index) || self.unplaced_news(index, ready)
    }

    fn unnamed_news(&self, index: &ContainerIndex) -> bool {
        index.unnamed().iter().any(|id| !self.unknown_ids.contains(id))
    }

    fn unplaced_news(&self, index: &ContainerIndex, ready: &[Record]) -> bool {
        ready.iter().filter_map(|r| index.unplaced_pidns(r)).any(|ns| !self.unknown_pidns.contains(&ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(id: &str, pidns: u32, seen: Instant) -> TaskStart {
        TaskStart { id: id.into(), runtime: Runtime::Docker, pidns: Some(pidns), info: None, seen }
    }

    fn round(taken: Instant, id: &str, pidns: u32) -> Snapshot {
        Snapshot {
            kind: Kind::Docker,
            taken,
            containers: Vec::new(),
            tasks: vec![(id.into(), Runtime::Docker, 4242, Some(pidns))],
        }
    }

    /// The kernel gave the new container `b` the pid namespace number the stopped `a` had.
    const NS: u32 = 4_026_599_999;

    #[test]
    fn a_round_older_than_a_start_does_not_undo_it() {
        let mut e = ContainerIndex::new();
        let asked = Instant::now();
        let started = asked + Duration::from_millis(5);
        take_in_order(&mut e, Some(&round(asked, "a", NS)), vec![start("b", NS, started)]);
        assert_eq!(e.pidns_owner(NS).unwrap(), "b");
    }

    #[test]
    fn a_start_older_than_a_round_does_not_undo_it() {
        let mut e = ContainerIndex::new();
        let started = Instant::now();
        let asked = started + Duration::from_millis(5);
        take_in_order(&mut e, Some(&round(asked, "b", NS)), vec![start("a", NS, started)]);
        assert_eq!(e.pidns_owner(NS).unwrap(), "b");
        // Starts alone, in the order announced.
        let mut e = ContainerIndex::new();
        take_in_order(&mut e, None, vec![start("a", NS, started), start("b", NS, asked)]);
        assert_eq!(e.pidns_owner(NS).unwrap(), "b");
    }

    #[test]
    fn a_start_carries_dockers_names() {
        let mut e = ContainerIndex::new();
        let info = ContainerInfo {
            id: "c".into(),
            source: Source::Docker,
            labels: Default::default(),
            name: Some("web".into()),
        };
        take_in_order(&mut e, None, vec![TaskStart { info: Some(info), ..start("c", NS, Instant::now()) }]);
        let r = e.reference("c", Runtime::Unknown);
        assert_eq!((r.name.as_deref(), r.runtime), (Some("web"), Runtime::Docker));
    }
}
