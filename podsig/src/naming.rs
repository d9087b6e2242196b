//! Names containers for watches that do not follow particular containers (`--pid`,
//! `--all`, `record`): containerd's labels, Docker's names and podman's (from its
//! conmons) by container ID, and which pid namespace belongs to which container.
//!
//! The second matters in node mode: a killed container's init is often gone from /proc
//! (its cgroup reads as the root) before its event is read, and then only the pid namespace
//! the kernel captured says where it lived. So the node's running tasks are learned every
//! tick, or as their managers announce them, before they die.
//!
//! Naming never holds events up for long: containerd is asked with timeouts; Docker is
//! asked by a task of its own, whose answers are taken in as they arrive (an event waits
//! for them a moment at most); podman's conmons are a read of /proc, made only when a
//! container needs a name.

use std::{
    collections::BTreeSet,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Result;
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::{
    container::{Containerd, Learned},
    docker::Docker,
    enrich::{Enricher, pidns_of},
    event::Record,
};

/// IDs and namespaces no manager knew are not asked about again before this.
const FORGET_UNKNOWN: Duration = Duration::from_secs(10);
/// Lazy naming (a `--pid` watch printing text) asks the managers at most this often.
const LAZY_INTERVAL: Duration = Duration::from_secs(2);
/// How long an event waits for a manager's answer: the announcement of the task that made
/// an unknown pid namespace, or Docker's list for an unknown container.
const START_GRACE: Duration = Duration::from_millis(250);
/// Node mode reads the conmons pid 1 adopted every tick once it has seen a podman
/// container, and this often until then.
const PODMAN_IDLE_INTERVAL: Duration = Duration::from_secs(10);

pub struct Namer {
    containerd: Option<Containerd>,
    /// Asks Docker's task for Docker's list (None without Docker).
    docker: Option<mpsc::Sender<()>>,
    /// A Docker list was asked for and has not come in yet.
    docker_asked: bool,
    /// What the managers announce (node mode: task starts) or answer (Docker's lists).
    learned: mpsc::UnboundedReceiver<Learned>,
    /// Name every event before it goes out (label filters, the history, metrics need it),
    /// rather than from the next event on.
    eager: bool,
    refreshed: Option<Instant>,
    /// When podman's conmons were last read in node mode, and whether any was ever there.
    podman_read: Option<(Instant, bool)>,
    unknown_ids: BTreeSet<String>,
    unknown_pidns: BTreeSet<u32>,
    unknown_since: Instant,
}

impl Namer {
    /// containerd (quietly absent: plenty of hosts run none), and Docker on the socket
    /// `--docker-socket` names (an error if it does not answer) or the default one (quietly
    /// absent too). podman needs no connection.
    pub async fn connect(
        socket: &Path,
        namespaces: &[String],
        docker_socket: Option<&Path>,
        eager: bool,
    ) -> Result<Self> {
        let docker = Docker::connect(docker_socket).await?;
        let containerd = Containerd::connect(socket, namespaces)
            .await
            .map_err(|e| tracing::debug!("no containerd names: {e:#}"))
            .ok();
        let (tx, learned) = mpsc::unbounded_channel();
        if eager && let Some(c) = &containerd {
            c.task_starts(tx.clone());
        }
        let docker = match docker {
            Some(d) => {
                // Docker replays its events since then: none is missed while it lists.
                let since = std::time::SystemTime::now();
                if eager {
                    // Before attaching: a container killed the moment `attached` is printed
                    // must already be known.
                    d.send_running(&tx).await;
                }
                let (ask, asked) = mpsc::channel(1);
                d.serve(tx, asked, eager.then_some(since));
                Some(ask)
            }
            None => None,
        };
        Ok(Self {
            containerd,
            docker,
            docker_asked: false,
            learned,
            eager,
            refreshed: None,
            podman_read: None,
            unknown_ids: BTreeSet::new(),
            unknown_pidns: BTreeSet::new(),
            unknown_since: Instant::now(),
        })
    }

    fn apply(&mut self, enricher: &mut Enricher, learned: Learned) {
        match learned {
            Learned::Start(start) => {
                if let Some(ns) = start.pidns {
                    enricher.learn_pidns(ns, start.id, start.runtime);
                }
            }
            Learned::Info(info) => enricher.names.learn(info),
            Learned::Listed(list) => {
                self.docker_asked = false;
                list.into_iter().for_each(|info| enricher.names.learn(info));
            }
        }
    }

    /// Takes in what the managers sent; true when there was anything.
    fn take_learned(&mut self, enricher: &mut Enricher) -> bool {
        let mut any = false;
        while let Ok(learned) = self.learned.try_recv() {
            self.apply(enricher, learned);
            any = true;
        }
        any
    }

    /// On the watch's periodic tick.
    pub async fn tick(&mut self, enricher: &mut Enricher) {
        self.take_learned(enricher);
        let stale = self.refreshed.is_none_or(|t| t.elapsed() > LAZY_INTERVAL);
        let demand = stale && enricher.unnamed.iter().any(|id| !self.unknown_ids.contains(id));
        if self.eager || demand {
            self.learn(enricher, demand).await;
            enricher.unnamed.clear();
        }
    }

    /// Before enriched records go out: when one names a container no manager has been
    /// asked about, or lies in a pid namespace no known container has, ask now and place
    /// the records again.
    pub async fn name(&mut self, enricher: &mut Enricher, ready: &mut [Record]) {
        if !self.eager {
            return;
        }
        if self.unknown_since.elapsed() > FORGET_UNKNOWN {
            self.unknown_ids.clear();
            self.unknown_pidns.clear();
            self.unknown_since = Instant::now();
        }
        let place = |enricher: &mut Enricher, ready: &mut [Record]| ready.iter_mut().for_each(|r| enricher.place(r));
        // Whatever the managers announced first, even when every record looks placed: the
        // kernel reuses a gone pid namespace's number, and a container started since may
        // have the number a stopped one had.
        if self.take_learned(enricher) {
            place(enricher, ready);
        }
        if !self.news(enricher, ready) {
            return;
        }
        if self.unnamed_news(enricher) {
            self.ask_docker();
            self.read_podman(enricher, crate::podman::running());
            place(enricher, ready);
        }
        // A container killed right after it started can be reported before its manager's
        // announcement of the start arrives, and Docker answers from its own task: wait for
        // those a moment (once per unknown container or pid namespace, which is then
        // remembered as unknown for a while).
        let deadline = tokio::time::Instant::now() + START_GRACE;
        while (self.unplaced_news(enricher, ready) || (self.docker_asked && self.unnamed_news(enricher)))
            && let Ok(Some(learned)) = tokio::time::timeout_at(deadline, self.learned.recv()).await
        {
            self.apply(enricher, learned);
            place(enricher, ready);
        }
        if !self.news(enricher, ready) {
            return;
        }
        tracing::debug!("asking containerd about containers {:?} it was not asked about lately", enricher.unnamed);
        self.learn(enricher, false).await;
        place(enricher, ready);
        // What is still unknown now is not asked about again for a while.
        self.unknown_ids.extend(std::mem::take(&mut enricher.unnamed));
        self.unknown_pidns.extend(ready.iter().filter_map(|r| enricher.unplaced_pidns(r)));
    }

    /// Whether `ready` names a container or pid namespace the managers have not been asked
    /// about lately.
    fn news(&self, enricher: &Enricher, ready: &[Record]) -> bool {
        self.unnamed_news(enricher) || self.unplaced_news(enricher, ready)
    }

    fn unnamed_news(&self, enricher: &Enricher) -> bool {
        enricher.unnamed.iter().any(|id| !self.unknown_ids.contains(id))
    }

    fn unplaced_news(&self, enricher: &Enricher, ready: &[Record]) -> bool {
        ready.iter().filter_map(|r| enricher.unplaced_pidns(r)).any(|ns| !self.unknown_pidns.contains(&ns))
    }

    /// Asks Docker's task for Docker's list, unless a request is pending already.
    fn ask_docker(&mut self) {
        self.docker_asked =
            matches!(self.docker.as_ref().map(|ask| ask.try_send(())), Some(Ok(()) | Err(TrySendError::Full(()))));
    }

    /// podman's running containers: names, and their inits' pid namespaces (learned while
    /// they live: a container killed outright is gone from /proc when its event is read).
    fn read_podman(&mut self, enricher: &mut Enricher, running: Vec<(crate::container::ContainerInfo, Option<u32>)>) {
        for (info, pid) in running {
            if let Some(ns) = pid.and_then(|p| pidns_of(&p.to_string())) {
                enricher.learn_pidns(ns, info.id.clone(), "podman");
            }
            enricher.names.learn(info);
        }
    }

    /// Asks containerd now (with timeouts); with `demand` (a container needs a name) also
    /// Docker, whose answer comes in later, and podman's conmons. Node mode reads the
    /// conmons pid 1 adopted on its ticks, as it asks containerd for its tasks.
    async fn learn(&mut self, enricher: &mut Enricher, demand: bool) {
        if let Some(client) = &self.containerd {
            if let Ok(list) = client.list().await {
                list.into_iter().for_each(|info| enricher.names.learn(info));
            }
            for (id, runtime, pid) in client.task_pids().await {
                if let Some(ns) = pidns_of(&pid.to_string()) {
                    enricher.learn_pidns(ns, id, runtime);
                }
            }
        }
        if demand {
            self.ask_docker();
            self.read_podman(enricher, crate::podman::running());
        } else if self.eager && self.podman_read.is_none_or(|(at, seen)| seen || at.elapsed() > PODMAN_IDLE_INTERVAL) {
            let running = crate::podman::running_adopted();
            let seen = self.podman_read.is_some_and(|(_, seen)| seen) || !running.is_empty();
            self.podman_read = Some((Instant::now(), seen));
            self.read_podman(enricher, running);
        }
        self.refreshed = Some(Instant::now());
        tracing::trace!("{} names, {} pid namespaces", enricher.names.by_id.len(), enricher.pidns.len());
    }
}
