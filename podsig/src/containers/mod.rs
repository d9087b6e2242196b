//! Containers: naming them (containerd's API, Docker's API, podman's conmon, the process's
//! cgroup path), resolving a container ID, name or pod to processes, and noticing restarts.
//!
//! `model` (what a manager tells) and `index` (which container a process is in, its names)
//! are the bottom; `containerd`, `docker` and `podman` ask the runtimes; `namer` keeps the
//! index fed; this module resolves what the user asked to watch, and `follow` keeps a
//! container watch in step with its containers.

pub mod containerd;
pub mod docker;
pub mod follow;
pub mod index;
pub mod manager;
pub mod model;
pub mod namer;
pub mod podman;

use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};

use self::docker::Docker;
pub use self::{
    containerd::{Containerd, DEFAULT_NAMESPACES, DEFAULT_SOCKET},
    follow::Follower,
    index::ContainerIndex,
    model::{
        ContainerInfo, LABEL_CONTAINER, LABEL_POD, LABEL_POD_NAMESPACE, Source, TaskStart, merge, normalize_id, short,
    },
    namer::Managers,
};
use crate::proc::pids_in_cgroups_of;

/// What the user asked to watch.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    pub ids: Vec<String>,
    pub pod: Option<String>,
    pub pod_namespace: Option<String>,
    pub container_name: Option<String>,
    pub socket: PathBuf,
    pub namespaces: Vec<String>,
    /// Docker's socket as --docker-socket names it; None: the default places, if present.
    pub docker_socket: Option<PathBuf>,
}

impl Selector {
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.pod.is_none()
    }

    pub fn matches_pod(&self, c: &ContainerInfo) -> bool {
        let Some(pod) = &self.pod else { return false };
        c.labels.get(LABEL_POD) == Some(pod)
            && self.pod_namespace.as_ref().is_none_or(|ns| c.labels.get(LABEL_POD_NAMESPACE) == Some(ns))
            && self.container_name.as_ref().is_none_or(|n| c.labels.get(LABEL_CONTAINER) == Some(n))
            // The pod's sandbox (pause) container is not one of its workloads.
            && c.labels.get("io.cri-containerd.kind").is_none_or(|k| k == "container")
    }
}

/// A container being watched: its identity and the task pid currently known.
#[derive(Clone, Debug)]
pub struct Watched {
    pub id: String,
    pub info: Option<ContainerInfo>,
    pub pid: Option<u32>,
}

/// Resolves the selector to containers and their running tasks: by containerd's, Docker's
/// and podman's lists, or, for an ID none of them knows, in every process's cgroup path.
// Long: ask the managers, then pick each ID, then fall back to cgroups; each step needs the last's lists.
pub async fn resolve(sel: &Selector) -> Result<(Vec<Watched>, Managers)> {
    let docker = Docker::connect(sel.docker_socket.as_deref()).await?;
    let mut listed = Vec::new();
    // A containerd that does not answer (hung, restarting) is as good as none for IDs.
    let containerd = match Containerd::connect(&sel.socket, &sel.namespaces).await {
        Ok(c) => match c.list().await {
            Ok(l) => {
                listed = l;
                Ok(c)
            }
            Err(e) if sel.pod.is_none() => {
                tracing::warn!("{e:#}; looking for containers elsewhere (Docker, podman, process cgroups)");
                Err(e)
            }
            Err(e) => return Err(e.context("pods are found through containerd's labels")),
        },
        Err(e) => {
            if sel.pod.is_some() {
                return Err(anyhow!("{}; pods are found through containerd's labels", crate::error::error_line(&e)));
            }
            tracing::info!(
                "{}; looking for containers elsewhere (Docker, podman, process cgroups)",
                crate::error::error_line(&e)
            );
            Err(e)
        }
    };
    let unreachable = containerd.is_err();
    let managers = Managers { containerd: containerd.ok(), docker };
    if let Some(d) = &managers.docker {
        // As with containerd: one that does not answer is as good as none for names.
        match d.list().await {
            Ok(l) => merge(&mut listed, l.into_iter().map(|(info, _)| info).collect()),
            Err(e) => tracing::warn!("{e:#}; looking for containers elsewhere"),
        }
    }
    merge(&mut listed, podman::running().into_iter().map(|(info, _)| info).collect());
    let where_ = || {
        let mut w = format!("containerd namespaces {}", sel.namespaces.join(", "));
        if unreachable {
            w += " (containerd unreachable)";
        }
        if let Some(d) = &managers.docker {
            w += &format!(", Docker at {}", d.socket.display());
        }
        if listed.iter().any(|c| c.source == Source::Podman) {
            w += ", podman's running containers";
        }
        w
    };
    let mut found: Vec<Watched> = Vec::new();
    for id in &sel.ids {
        match pick(&listed, id).map_err(anyhow::Error::msg)? {
            Some(one) => found.push(Watched { id: one.id.clone(), info: Some(one.clone()), pid: None }),
            None => {
                let pids = pids_in_cgroups_of(id);
                if pids.is_empty() {
                    bail!("container {} not found in {}, nor in any process cgroup", short(id), where_());
                }
                found.push(Watched { id: id.clone(), info: None, pid: pids.first().copied() });
            }
        }
    }
    if let Some(pod) = &sel.pod {
        let hits: Vec<&ContainerInfo> = listed.iter().filter(|c| sel.matches_pod(c)).collect();
        if hits.is_empty() {
            bail!(
                "no container of pod {}{}{} in {}",
                sel.pod_namespace.as_ref().map_or(String::new(), |ns| format!("{ns}/")),
                pod,
                sel.container_name.as_ref().map_or(String::new(), |n| format!(" named {n}")),
                where_()
            );
        }
        found.extend(hits.into_iter().map(|c| Watched { id: c.id.clone(), info: Some(c.clone()), pid: None }));
    }
    for w in &mut found {
        if let Some(info) = &w.info {
            w.pid = managers.task_pid(info, None).await;
        }
    }
    if found.iter().all(|w| w.pid.is_none()) {
        bail!(
            "{} no running task: nothing to watch until {} started",
            if found.len() == 1 {
                format!("container {} has", short(&found[0].id))
            } else {
                "these containers have".into()
            },
            if found.len() == 1 { "it is" } else { "they are" }
        );
    }
    Ok((found, managers))
}

/// The container `id` names, as docker resolves one: a full ID, then a name (Docker's,
/// podman's), then an ID prefix. None when nothing matches; an error when several do.
fn pick<'a>(listed: &'a [ContainerInfo], id: &str) -> Result<Option<&'a ContainerInfo>, String> {
    let exact: Vec<&ContainerInfo> = listed.iter().filter(|c| c.id == id).collect();
    let named: Vec<&ContainerInfo> = listed.iter().filter(|c| c.name.as_deref() == Some(id)).collect();
    let prefixed: Vec<&ContainerInfo> = listed.iter().filter(|c| c.id.starts_with(id)).collect();
    let (hits, what) = if exact.len() == 1 {
        (exact, "ID")
    } else if !named.is_empty() {
        (named, "name")
    } else {
        (prefixed, "ID prefix")
    };
    match hits.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(format!(
            "container {what} {id} is ambiguous: {}; give more of the ID",
            many.iter().map(|c| format!("{} ({})", short(&c.id), c.runtime())).collect::<Vec<_>>().join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "5fb8adf9ee62afc6d3f6f3d9590041818750b392dff015d7091eaaf99cf1c945";

    #[test]
    fn a_full_id_then_a_name_then_a_prefix() {
        let listed = [
            ContainerInfo::sample(ID, Source::Docker, Some("web"), &[]),
            ContainerInfo::sample("5fb8aaaa", Source::Podman, Some("db"), &[]),
            ContainerInfo::sample("web", Source::Containerd("default".into()), None, &[]),
            ContainerInfo::sample("abc123", Source::Docker, Some("dup"), &[]),
            ContainerInfo::sample("abc456", Source::Podman, Some("dup"), &[]),
        ];
        let id_of = |s: &str| pick(&listed, s).map(|c| c.map(|c| c.id.clone()));
        // `ctr run … web` is a container whose ID is web: the full ID wins over a name.
        assert_eq!(id_of("web"), Ok(Some("web".into())));
        assert_eq!(id_of("db"), Ok(Some("5fb8aaaa".into())));
        assert_eq!(id_of(&ID[..12]), Ok(Some(ID.into())));
        assert_eq!(id_of("nothing"), Ok(None));
        let e = id_of("5fb8").unwrap_err();
        assert!(
            e.starts_with("container ID prefix 5fb8 is ambiguous: 5fb8adf9ee62… (docker), 5fb8aaaa (podman)"),
            "{e}"
        );
        assert!(id_of("dup").unwrap_err().starts_with("container name dup is ambiguous"));
    }
}
