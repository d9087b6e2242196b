//! What the container managers tell of a container, as podsig keeps it: its ID, who told
//! (containerd, Docker, podman), its names and labels, and a task start.

use std::{collections::HashMap, time::Instant};

use crate::event::Runtime;

pub const LABEL_POD: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_CONTAINER: &str = "io.kubernetes.container.name";

/// Who told podsig about a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// containerd, in this namespace (k8s.io, moby, default…).
    Containerd(String),
    /// Docker Engine's API.
    Docker,
    /// podman, through its conmon's command line.
    Podman,
}

#[derive(Clone, Debug)]
pub struct ContainerInfo {
    pub id: String,
    pub source: Source,
    pub labels: HashMap<String, String>,
    /// The runtime's own name for it (`docker run --name`, `podman run --name`).
    pub name: Option<String>,
}

impl ContainerInfo {
    /// A container as a manager lists it (for tests).
    #[cfg(test)]
    pub(crate) fn sample(id: &str, source: Source, name: Option<&str>, labels: &[(&str, &str)]) -> Self {
        Self {
            id: id.into(),
            source,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            name: name.map(str::to_string),
        }
    }

    pub(crate) fn label(&self, k: &str) -> Option<String> {
        self.labels.get(k).cloned()
    }

    /// The name events show: the Kubernetes container name, else the runtime's own.
    pub fn display_name(&self) -> Option<String> {
        self.label(LABEL_CONTAINER).or_else(|| self.name.clone())
    }

    pub fn runtime(&self) -> Runtime {
        match &self.source {
            // Docker 20.10+ keeps its containers in containerd's `moby` namespace.
            Source::Containerd(ns) if ns == "moby" => Runtime::Docker,
            Source::Containerd(_) => Runtime::Containerd,
            Source::Docker => Runtime::Docker,
            Source::Podman => Runtime::Podman,
        }
    }
}

/// `containerd://ID`, `docker://ID` (as `kubectl describe pod` prints them) or a bare ID.
pub fn normalize_id(s: &str) -> Result<String, String> {
    let id = s.trim();
    let id = id.split_once("://").map_or(id, |(_, rest)| rest);
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(format!("'{s}' is not a container ID (expected hex or a name, optionally containerd://…)"));
    }
    Ok(id.to_string())
}

/// A task a manager (containerd, Docker) announced starting.
#[derive(Debug)]
pub struct TaskStart {
    pub id: String,
    pub runtime: Runtime,
    /// Its init's pid namespace, read when the announcement arrived.
    pub pidns: Option<u32>,
    /// What the manager said of the container with it (Docker's names), if anything.
    pub info: Option<ContainerInfo>,
    /// When the pid namespace was read: a round of answers taken before then cannot
    /// overrule it (the kernel reuses a gone namespace's number).
    pub seen: Instant,
}

/// Adds `more` to `list`, one entry per ID: names and labels join the entry already there.
pub fn merge(list: &mut Vec<ContainerInfo>, more: Vec<ContainerInfo>) {
    for info in more {
        match list.iter_mut().find(|c| c.id == info.id) {
            Some(have) => *have = joined(have, info),
            None => list.push(info),
        }
    }
}

/// `new` with what `old` knew that it does not: containerd lists a Docker container
/// without the name Docker gave it.
pub(crate) fn joined(old: &ContainerInfo, mut new: ContainerInfo) -> ContainerInfo {
    if new.name.is_none() {
        new.name.clone_from(&old.name);
    }
    for (k, v) in &old.labels {
        new.labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if old.source == Source::Docker {
        new.source = Source::Docker;
    }
    new
}

pub fn short(id: &str) -> String {
    if id.len() > 12 && id.chars().all(|c| c.is_ascii_hexdigit()) {
        format!("{}…", &id[..12])
    } else {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "5fb8adf9ee62afc6d3f6f3d9590041818750b392dff015d7091eaaf99cf1c945";

    #[test]
    fn ids_as_users_paste_them() {
        assert_eq!(normalize_id(&format!("docker://{ID}")).unwrap(), ID);
        assert_eq!(normalize_id("containerd://web-1").unwrap(), "web-1");
        assert_eq!(normalize_id("5fb8").unwrap(), "5fb8");
        assert!(normalize_id("a b").is_err());
        assert!(normalize_id("").is_err());
    }

    #[test]
    fn short_ids() {
        assert_eq!(short(ID), "5fb8adf9ee62…");
        assert_eq!(short("web"), "web");
    }
}
