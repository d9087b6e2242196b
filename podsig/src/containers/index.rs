//! Which container a process lives in, and the container's names: what a container watch's
//! [`Follower`](super::Follower) knows (its containers' processes and pid namespaces), what
//! the namer learns (the managers' answers), and what enrichment reads, in one place owned
//! by the [`Pipeline`](crate::pipeline::Pipeline).

use std::{
    collections::{BTreeSet, HashMap},
    time::{Duration, Instant},
};

use super::{
    follow::Membership,
    model::{ContainerInfo, LABEL_POD, LABEL_POD_NAMESPACE, joined},
};
use crate::{
    event::{ContainerRef, Record, Runtime},
    proc::{container_of_pid, pidns_of},
};

/// A container ID and its runtime, as a process's cgroup path names them.
pub type Placed = (String, Runtime);

/// How long a process's cgroup answer is trusted: a storm reads /proc once.
const CGROUP_TTL: Duration = Duration::from_secs(1);
/// Bounds each cache: past this it is cleared and learned again.
const CACHE_MAX: usize = 4096;
/// Bounds the follower's process list the same way.
const MEMBERS_MAX: usize = 65536;

pub struct ContainerIndex {
    /// Names and labels by container ID (containerd's, Docker's, podman's).
    by_id: HashMap<String, ContainerInfo>,
    /// Container IDs seen without names: the namer asks the managers about them.
    unnamed: BTreeSet<String>,
    /// pid → container, for the processes of watched containers (the follower's).
    members: HashMap<u32, Placed>,
    /// pid namespace inode → container: names short-lived processes of a container (a
    /// `kubectl exec … kill`) after they are gone from /proc.
    pidns: HashMap<u32, Placed>,
    /// pid → (when, container id and runtime from its cgroup path).
    cgroups: HashMap<u32, (Instant, Option<Placed>)>,
    /// This process's own pid namespace (the host's, for podsig on the host).
    own_pidns: Option<u32>,
}

impl Default for ContainerIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl ContainerIndex {
    pub fn new() -> Self {
        Self {
            by_id: HashMap::new(),
            unnamed: BTreeSet::new(),
            members: HashMap::new(),
            pidns: HashMap::new(),
            cgroups: HashMap::new(),
            own_pidns: pidns_of("self"),
        }
    }

    /// Takes in what a manager says of a container, keeping what another said before (a
    /// Docker container's name survives containerd's nameless view of it).
    pub fn learn(&mut self, info: ContainerInfo) {
        let info = match self.by_id.get(&info.id) {
            Some(old) => joined(old, info),
            None => info,
        };
        self.by_id.insert(info.id.clone(), info);
    }

    /// A container as events name it.
    pub fn reference(&self, id: &str, runtime: Runtime) -> ContainerRef {
        let info = self.by_id.get(id);
        ContainerRef {
            id: id.to_string(),
            name: info.and_then(ContainerInfo::display_name),
            // A manager knowing the ID settles the runtime a cgroupfs path leaves open.
            runtime: info.map_or(runtime, ContainerInfo::runtime),
            pod: info.and_then(|i| i.label(LABEL_POD)),
            namespace: info.and_then(|i| i.label(LABEL_POD_NAMESPACE)),
        }
    }

    pub fn learn_pidns(&mut self, ns: u32, id: String, runtime: Runtime) {
        if Some(ns) == self.own_pidns {
            return; // a container sharing the host's pid namespace
        }
        if self.pidns.len() >= CACHE_MAX {
            self.pidns.clear();
        }
        self.pidns.insert(ns, (id, runtime));
    }

    /// A container watch's word on which container each of its processes and pid
    /// namespaces belongs to, and the containers' names.
    pub fn learn_membership(&mut self, m: Membership) {
        if self.members.len() > MEMBERS_MAX {
            self.members.clear();
        }
        self.members.extend(m.members);
        self.pidns.extend(m.namespaces);
        for info in m.containers {
            self.learn(info);
        }
    }

    /// A watched container's process, by the follower's word (a killed process's /proc no
    /// longer says).
    pub fn member(&self, pid: u32) -> Option<ContainerRef> {
        let (id, runtime) = self.members.get(&pid)?;
        Some(self.reference(id, *runtime))
    }

    /// Where `pid` lives, from its cgroup path (cached for a second: a storm reads /proc
    /// once), named from the managers' labels when known.
    pub fn container_of(&mut self, pid: u32, pidns: Option<u32>) -> Option<ContainerRef> {
        let fresh = self.cgroups.get(&pid).filter(|(t, _)| t.elapsed() < CGROUP_TTL).map(|(_, c)| c.clone());
        let found = match fresh {
            Some(c) => c,
            None => {
                let c = container_of_pid(pid);
                if self.cgroups.len() >= CACHE_MAX {
                    self.cgroups.clear();
                }
                self.cgroups.insert(pid, (Instant::now(), c.clone()));
                c
            }
        };
        let foreign_ns = pidns.filter(|&n| Some(n) != self.own_pidns);
        if let (Some(found), Some(ns)) = (&found, foreign_ns) {
            if self.pidns.len() >= CACHE_MAX {
                self.pidns.clear();
            }
            self.pidns.insert(ns, found.clone());
        }
        let (id, runtime) = found
            .or_else(|| self.members.get(&pid).cloned())
            .or_else(|| foreign_ns.and_then(|ns| self.pidns.get(&ns).cloned()))?;
        if !self.by_id.contains_key(&id) {
            self.unnamed.insert(id.clone());
        }
        Some(self.reference(&id, runtime))
    }

    /// Places a record's processes in containers again, after the index learned more.
    pub fn place(&mut self, record: &mut Record) {
        if let Record::Signal(s) = record {
            s.target.container = self.container_of(s.target.pid, s.target.pidns);
            if let Some(sender) = s.sender.as_mut() {
                sender.container = self.container_of(sender.pid, sender.pidns);
            }
        }
    }

    /// The target's pid namespace, when it is not this host's and no known container has
    /// it: a container process that exited before its event was read.
    pub fn unplaced_pidns(&self, record: &Record) -> Option<u32> {
        let Record::Signal(s) = record else { return None };
        let ns = s.target.pidns.filter(|&n| Some(n) != self.own_pidns)?;
        (s.target.container.is_none() && !self.pidns.contains_key(&ns)).then_some(ns)
    }

    /// Container IDs seen without names.
    pub fn unnamed(&self) -> &BTreeSet<String> {
        &self.unnamed
    }

    /// The unnamed IDs, handed over (to the namer's list of IDs no manager knew).
    pub fn take_unnamed(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.unnamed)
    }

    /// The managers were asked: the unnamed IDs are theirs to answer now.
    pub fn forget_unnamed(&mut self) {
        self.unnamed.clear();
    }

    /// Which container a pid namespace was last said to be.
    pub fn pidns_owner(&self, ns: u32) -> Option<&str> {
        self.pidns.get(&ns).map(|(id, _)| id.as_str())
    }

    /// What is known of a container.
    pub fn info(&self, id: &str) -> Option<&ContainerInfo> {
        self.by_id.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::model::{LABEL_CONTAINER, Source};

    const ID: &str = "5fb8adf9ee62afc6d3f6f3d9590041818750b392dff015d7091eaaf99cf1c945";

    #[test]
    fn names_from_one_manager_survive_anothers_view() {
        let mut names = ContainerIndex::new();
        // Docker names it; containerd's namespace moby lists it without a name, later.
        names.learn(ContainerInfo::sample(ID, Source::Docker, Some("web"), &[("com.example", "1")]));
        names.learn(ContainerInfo::sample(
            ID,
            Source::Containerd("moby".into()),
            None,
            &[("com.docker/engine.bundle.path", "/x")],
        ));
        let r = names.reference(ID, Runtime::Unknown);
        assert_eq!((r.name.as_deref(), r.runtime), (Some("web"), Runtime::Docker));
        assert_eq!(names.info(ID).unwrap().labels.len(), 2);
        // A Kubernetes container name is the name events show, over the runtime's own.
        names.learn(ContainerInfo::sample(
            "k",
            Source::Docker,
            Some("k8s_app_web_prod_1"),
            &[(LABEL_CONTAINER, "app")],
        ));
        assert_eq!(names.reference("k", Runtime::Docker).name.as_deref(), Some("app"));
        names.learn(ContainerInfo::sample("p", Source::Podman, Some("db"), &[]));
        assert_eq!(names.reference("p", Runtime::Unknown).runtime, Runtime::Podman);
        // Unknown to every manager: the cgroup path's runtime, no name.
        let r = names.reference("zzz", Runtime::CriO);
        assert_eq!((r.name, r.runtime), (None, Runtime::CriO));
    }
}
