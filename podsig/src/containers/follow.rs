//! Following the containers a watch names (`watch --container`, `--pod`) through restarts;
//! the watch loop asks [`Follower`] on its tick which pids to add to the kernel's filter.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
    time::Instant,
};

use anyhow::Result;

use crate::{event::Runtime, proc};

use super::{
    ContainerInfo, LABEL_CONTAINER, LABEL_POD, LABEL_POD_NAMESPACE, Managers, Selector, Source, Watched, index::Placed,
    manager::Kind, namer::Snapshot, podman, resolve, short,
};

/// What a container watch tells the container index: which container each of its processes
/// and pid namespaces belongs to (a killed process's /proc no longer says), and the
/// containers' names.
pub struct Membership {
    pub members: Vec<(u32, Placed)>,
    pub namespaces: Vec<(u32, Placed)>,
    pub containers: Vec<ContainerInfo>,
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
    exited: HashMap<String, Instant>,
    /// `following …` lines not yet printed.
    followed: Vec<String>,
}

impl Follower {
    pub async fn new(selector: Selector) -> Result<Self> {
        let (containers, clients) = resolve(&selector).await?;
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
                pids.extend(proc::cgroup_procs(p).into_iter().filter(|&c| c != p).map(|c| (c, w)));
            }
        }
        pids
    }

    /// Which container each known process belongs to: a killed process's /proc no longer
    /// says (its cgroup reads as the root once it exits).
    fn members(&self) -> Vec<(u32, String, Runtime)> {
        self.current_pids()
            .into_iter()
            .map(|(p, w)| {
                let runtime = w.info.as_ref().map_or(Runtime::Containerd, ContainerInfo::runtime);
                (p, w.id.clone(), runtime)
            })
            .collect()
    }

    /// What the container index cannot learn from /proc once a process is gone: which
    /// container each known process and pid namespace belongs to, and the containers' names.
    pub fn membership(&self) -> Membership {
        Membership {
            members: self.members().into_iter().map(|(p, id, rt)| (p, (id, rt))).collect(),
            namespaces: self.pid_namespaces(),
            containers: self.containers.iter().filter_map(|w| w.info.clone()).collect(),
        }
    }

    /// The connections that resolved the containers, for the namer's agents.
    pub fn take_clients(&mut self) -> Managers {
        std::mem::take(&mut self.clients)
    }

    /// Each watched container's pid namespace (its init's).
    fn pid_namespaces(&self) -> Vec<(u32, Placed)> {
        self.members()
            .into_iter()
            .filter_map(|(p, id, rt)| Some((proc::pidns_of(&p.to_string())?, (id, rt))))
            .filter(|(ns, _)| Some(*ns) != proc::pidns_of("self"))
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
        self.containers.iter().map(|w| short(&w.id)).collect()
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
    pub fn resync(&mut self, snaps: &[Arc<Snapshot>]) -> Vec<u32> {
        // A pod's restarted container is a new container with the same labels, in
        // containerd (pods are found there only).
        if let Some(snap) = snaps.iter().find(|s| s.kind == Kind::Containerd)
            && (self.selector.pod.is_some()
                || self.containers.iter().any(|w| w.info.as_ref().is_some_and(|i| i.labels.contains_key(LABEL_POD))))
        {
            for c in &snap.containers {
                if self.containers.iter().any(|w| w.id == c.id) {
                    continue;
                }
                let same_as = |w: &Watched| {
                    w.info.as_ref().is_some_and(|i| {
                        [LABEL_POD, LABEL_POD_NAMESPACE, LABEL_CONTAINER]
                            .iter()
                            .all(|k| i.labels.contains_key(*k) && i.labels.get(*k) == c.labels.get(*k))
                    })
                };
                if self.selector.matches_pod(c) || self.containers.iter().any(same_as) {
                    self.containers.push(Watched { id: c.id.clone(), info: Some(c.clone()), pid: None });
                }
            }
        }
        // podman's conmons, read once for every podman container watched.
        let podman = self
            .containers
            .iter()
            .any(|w| w.info.as_ref().is_some_and(|i| i.source == Source::Podman))
            .then(podman::running);
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
                None => proc::pids_in_cgroups_of(&w.id).first().copied(),
            };
            if let Some(pid) = now
                && w.pid != Some(pid)
            {
                self.followed.push(format!("podsig: following {} (new pid {pid})", short(&w.id)));
                w.pid = Some(pid);
            }
        }
        let pids: Vec<u32> = self.current_pids().into_iter().map(|(p, _)| p).collect();
        pids.into_iter().filter(|&p| self.known.insert(p)).collect()
    }

    /// Says on stderr which containers have a new task: after its pid is in the filter, so a
    /// signal sent upon reading the line is reported.
    pub fn announce(&mut self) {
        for line in self.followed.drain(..) {
            eprintln!("{line}");
        }
    }

    /// A watched process exited: if it comes back (a pid reused inside the container), it is
    /// added again by the next resync.
    pub fn forget(&mut self, pid: u32) {
        self.known.remove(&pid);
        for w in &mut self.containers {
            if w.pid == Some(pid) {
                w.pid = None;
                self.exited.insert(w.id.clone(), Instant::now());
            }
        }
    }
}
