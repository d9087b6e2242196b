//! Names containers for watches that do not follow particular containers (`--pid`,
//! `--all`, `record`): containerd's labels by container ID, and which pid namespace
//! belongs to which container.
//!
//! The second matters in node mode: a killed container's init is often gone from /proc
//! (its cgroup reads as the root) before its event is read, and then only the pid namespace
//! the kernel captured says where it lived. So the node's running tasks are learned every
//! tick, before they die.

use std::{
    collections::BTreeSet,
    path::Path,
    time::{Duration, Instant},
};

use crate::{
    container::{Containerd, TaskStart},
    enrich::{Enricher, pidns_of},
    event::Record,
};

/// IDs and namespaces containerd did not know are not asked about again before this.
const FORGET_UNKNOWN: Duration = Duration::from_secs(10);
/// Lazy naming (a `--pid` watch printing text) asks containerd at most this often.
const LAZY_INTERVAL: Duration = Duration::from_secs(2);
/// How long an event in an unknown pid namespace waits for containerd's announcement of
/// the task that made it.
const START_GRACE: Duration = Duration::from_millis(250);

fn learn_start(enricher: &mut Enricher, start: TaskStart) {
    if let Some(ns) = start.pidns {
        enricher.learn_pidns(ns, start.id, start.runtime);
    }
}

pub struct Namer {
    client: Containerd,
    /// Tasks containerd started since (node mode): their pid namespaces are learned while
    /// the processes live.
    starts: Option<tokio::sync::mpsc::UnboundedReceiver<TaskStart>>,
    /// Name every event before it goes out (label filters, the history, metrics need it),
    /// rather than from the next event on.
    eager: bool,
    refreshed: Option<Instant>,
    unknown_ids: BTreeSet<String>,
    unknown_pidns: BTreeSet<u32>,
    unknown_since: Instant,
}

impl Namer {
    /// None when containerd is not there (quietly: plenty of hosts run none).
    pub async fn connect(socket: &Path, namespaces: &[String], eager: bool) -> Option<Self> {
        let client = Containerd::connect(socket, namespaces)
            .await
            .map_err(|e| tracing::debug!("no container names: {e:#}"))
            .ok()?;
        let starts = eager.then(|| client.task_starts());
        Some(Self {
            client,
            starts,
            eager,
            refreshed: None,
            unknown_ids: BTreeSet::new(),
            unknown_pidns: BTreeSet::new(),
            unknown_since: Instant::now(),
        })
    }

    /// Takes in the tasks containerd announced; true when there were any.
    fn take_starts(&mut self, enricher: &mut Enricher) -> bool {
        let Some(rx) = self.starts.as_mut() else { return false };
        let mut any = false;
        while let Ok(start) = rx.try_recv() {
            learn_start(enricher, start);
            any = true;
        }
        any
    }

    /// On the watch's periodic tick.
    pub async fn tick(&mut self, enricher: &mut Enricher) {
        self.take_starts(enricher);
        let stale = self.refreshed.is_none_or(|t| t.elapsed() > LAZY_INTERVAL);
        if self.eager || (!enricher.unnamed.is_empty() && stale) {
            self.learn(enricher).await;
        }
    }

    /// Before enriched records go out: when one names a container containerd has not been
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
        if !self.news(enricher, ready) {
            return;
        }
        // A container killed right after it started can be reported before containerd's
        // announcement of its start arrives: wait for that a moment (once per unknown pid
        // namespace, which is then remembered as unknown for a while).
        if self.take_starts(enricher) {
            ready.iter_mut().for_each(|r| enricher.place(r));
        }
        let deadline = tokio::time::Instant::now() + START_GRACE;
        while self.unplaced_news(enricher, ready)
            && let Some(rx) = self.starts.as_mut()
            && let Ok(Some(start)) = tokio::time::timeout_at(deadline, rx.recv()).await
        {
            learn_start(enricher, start);
            ready.iter_mut().for_each(|r| enricher.place(r));
        }
        if !self.news(enricher, ready) {
            return;
        }
        tracing::debug!("asking containerd about containers {:?} it was not asked about lately", enricher.unnamed);
        self.learn(enricher).await;
        self.unknown_ids.extend(std::mem::take(&mut enricher.unnamed));
        for r in ready.iter_mut() {
            enricher.place(r);
        }
        self.unknown_pidns.extend(ready.iter().filter_map(|r| enricher.unplaced_pidns(r)));
        enricher.unnamed.clear();
    }

    /// Whether `ready` names a container or pid namespace containerd has not been asked
    /// about lately.
    fn news(&self, enricher: &Enricher, ready: &[Record]) -> bool {
        enricher.unnamed.iter().any(|id| !self.unknown_ids.contains(id)) || self.unplaced_news(enricher, ready)
    }

    fn unplaced_news(&self, enricher: &Enricher, ready: &[Record]) -> bool {
        ready.iter().filter_map(|r| enricher.unplaced_pidns(r)).any(|ns| !self.unknown_pidns.contains(&ns))
    }

    async fn learn(&mut self, enricher: &mut Enricher) {
        if let Ok(list) = self.client.list().await {
            for info in list {
                enricher.names.by_id.insert(info.id.clone(), info);
            }
        }
        for (id, runtime, pid) in self.client.task_pids().await {
            if let Some(ns) = pidns_of(&pid.to_string()) {
                enricher.learn_pidns(ns, id, runtime);
            }
        }
        enricher.unnamed.clear();
        self.refreshed = Some(Instant::now());
        tracing::trace!("containerd: {} names, {} pid namespaces", enricher.names.by_id.len(), enricher.pidns.len());
    }
}
