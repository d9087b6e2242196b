//! Containers: naming them (containerd's API, Docker's API, podman's conmon, the process's
//! cgroup path), resolving a container ID, name or pod to processes, and noticing restarts.

pub mod docker;
pub mod namer;
pub mod podman;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use containerd_client::{
    services::v1::{
        GetRequest, ListContainersRequest, ListTasksRequest, SubscribeRequest, containers_client::ContainersClient,
        events_client::EventsClient, tasks_client::TasksClient,
    },
    tonic::{Request, transport::Channel},
    types::v1::Status,
    with_namespace,
};

use crate::{containers::docker::Docker, event::ContainerRef, proc::pids_in_cgroups_of};

pub const DEFAULT_SOCKET: &str = "/run/containerd/containerd.sock";
/// Kubernetes (CRI), Docker, and `ctr`'s default.
pub const DEFAULT_NAMESPACES: &[&str] = &["k8s.io", "moby", "default"];
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

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
    fn label(&self, k: &str) -> Option<String> {
        self.labels.get(k).cloned()
    }

    /// The name events show: the Kubernetes container name, else the runtime's own.
    pub fn display_name(&self) -> Option<String> {
        self.label(LABEL_CONTAINER).or_else(|| self.name.clone())
    }

    pub fn runtime(&self) -> &'static str {
        match &self.source {
            // Docker 20.10+ keeps its containers in containerd's `moby` namespace.
            Source::Containerd(ns) if ns == "moby" => "docker",
            Source::Containerd(_) => "containerd",
            Source::Docker => "docker",
            Source::Podman => "podman",
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
    pub runtime: &'static str,
    /// Its init's pid namespace, read when the announcement arrived.
    pub pidns: Option<u32>,
    /// What the manager said of the container with it (Docker's names), if anything.
    pub info: Option<ContainerInfo>,
    /// When the pid namespace was read: a round of answers taken before then cannot
    /// overrule it (the kernel reuses a gone namespace's number).
    pub seen: Instant,
}

pub struct Containerd {
    channel: Channel,
    pub namespaces: Vec<String>,
}

impl Containerd {
    pub async fn connect(socket: &Path, namespaces: &[String]) -> Result<Self> {
        if !socket.exists() {
            bail!(
                "no containerd socket at {} (is containerd running? --containerd-socket names another)",
                socket.display()
            );
        }
        let channel = tokio::time::timeout(CONNECT_TIMEOUT, containerd_client::connect(socket))
            .await
            .map_err(|_| anyhow!("containerd at {} did not answer", socket.display()))?
            .with_context(|| format!("connecting to containerd at {}", socket.display()))?;
        Ok(Self { channel, namespaces: namespaces.to_vec() })
    }

    /// Every container in the namespaces searched.
    pub async fn list(&self) -> Result<Vec<ContainerInfo>> {
        let mut out = Vec::new();
        for ns in &self.namespaces {
            let mut c = ContainersClient::new(self.channel.clone());
            let req = ListContainersRequest { filters: vec![] };
            let resp = tokio::time::timeout(CONNECT_TIMEOUT, c.list(with_namespace!(req, ns.as_str())))
                .await
                .map_err(|_| anyhow!("containerd did not list namespace {ns} in time"))?
                .with_context(|| format!("listing containers in containerd namespace {ns}"))?;
            out.extend(resp.into_inner().containers.into_iter().map(|c| ContainerInfo {
                id: c.id,
                source: Source::Containerd(ns.clone()),
                labels: c.labels,
                name: None,
            }));
        }
        Ok(out)
    }

    /// Every running task's container, its runtime and its init's pid: one call per
    /// namespace, however many containers the node runs.
    pub async fn task_pids(&self) -> Result<Vec<(String, &'static str, u32)>> {
        let mut out = Vec::new();
        for ns in &self.namespaces {
            let mut t = TasksClient::new(self.channel.clone());
            let req = ListTasksRequest { filter: String::new() };
            let resp = tokio::time::timeout(CONNECT_TIMEOUT, t.list(with_namespace!(req, ns.as_str())))
                .await
                .map_err(|_| anyhow!("containerd did not list the tasks of namespace {ns} in time"))?
                .with_context(|| format!("listing tasks in containerd namespace {ns}"))?;
            let runtime = if ns == "moby" { "docker" } else { "containerd" };
            out.extend(
                resp.into_inner()
                    .tasks
                    .into_iter()
                    .filter(|p| p.status == Status::Running as i32 && p.pid > 0)
                    // A task's `id` is its container's; `container_id` is left empty here.
                    .map(|p| (if p.container_id.is_empty() { p.id } else { p.container_id }, runtime, p.pid)),
            );
        }
        Ok(out)
    }

    /// Sends every task started from now on (container, runtime, its pid namespace) as
    /// containerd announces it: a container killed within a second of starting (a crash
    /// loop) is still placed, though polling would never have seen it run. Connects and
    /// subscribes again whenever containerd goes away (a restart), until `tx` is closed.
    pub async fn task_starts(
        socket: PathBuf,
        namespaces: Vec<String>,
        tx: tokio::sync::mpsc::UnboundedSender<TaskStart>,
    ) {
        use prost::Message as _;
        let mut warned = false;
        while !tx.is_closed() {
            let stream = match Self::connect(&socket, &namespaces).await {
                Ok(c) => {
                    let req = SubscribeRequest { filters: vec![r#"topic=="/tasks/start""#.to_string()] };
                    // containerd answers a subscription only with its first event.
                    EventsClient::new(c.channel)
                        .subscribe(req)
                        .await
                        .map(|s| s.into_inner())
                        .map_err(anyhow::Error::from)
                }
                Err(e) => Err(e),
            };
            let mut stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    if !std::mem::replace(&mut warned, true) {
                        tracing::info!(
                            "containerd task events: {e:#}; until they come, containers killed within a second of \
                             starting may go unnamed"
                        );
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            while let Ok(Some(env)) = stream.message().await {
                if !namespaces.contains(&env.namespace) {
                    continue;
                }
                let Some(start) =
                    env.event.and_then(|any| containerd_client::events::TaskStart::decode(any.value.as_slice()).ok())
                else {
                    continue;
                };
                let runtime = if env.namespace == "moby" { "docker" } else { "containerd" };
                // Read now, while the task surely lives: it may be killed before the watch
                // loop takes this in, and then /proc has nothing to say.
                let pidns = crate::proc::pidns_of(&start.pid.to_string());
                let started = TaskStart { id: start.container_id, runtime, pidns, info: None, seen: Instant::now() };
                if tx.send(started).is_err() {
                    return;
                }
            }
            tracing::debug!("containerd task events ended (containerd restarted?); subscribing again");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The pid of the container's running task in namespace `ns`, if it has one.
    pub async fn task_pid(&self, ns: &str, id: &str) -> Option<u32> {
        let mut t = TasksClient::new(self.channel.clone());
        let req = GetRequest { container_id: id.to_string(), exec_id: String::new() };
        let resp = tokio::time::timeout(CONNECT_TIMEOUT, t.get(with_namespace!(req, ns))).await.ok()?.ok()?;
        let p = resp.into_inner().process?;
        (p.status == Status::Running as i32 && p.pid > 0).then_some(p.pid)
    }
}

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

    fn matches_pod(&self, c: &ContainerInfo) -> bool {
        let Some(pod) = &self.pod else { return false };
        c.labels.get(LABEL_POD) == Some(pod)
            && self.pod_namespace.as_ref().is_none_or(|ns| c.labels.get(LABEL_POD_NAMESPACE) == Some(ns))
            && self.container_name.as_ref().is_none_or(|n| c.labels.get(LABEL_CONTAINER) == Some(n))
            // The pod's sandbox (pause) container is not one of its workloads.
            && c.labels.get("io.cri-containerd.kind").is_none_or(|k| k == "container")
    }
}

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
fn joined(old: &ContainerInfo, mut new: ContainerInfo) -> ContainerInfo {
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

/// A container being watched: its identity and the task pid currently known.
#[derive(Clone, Debug)]
pub struct Watched {
    pub id: String,
    pub info: Option<ContainerInfo>,
    pub pid: Option<u32>,
}

/// Resolves the selector to containers and their running tasks: by containerd's, Docker's
/// and podman's lists, or, for an ID none of them knows, in every process's cgroup path.
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
                return Err(anyhow!("{}; pods are found through containerd's labels", crate::error_line(&e)));
            }
            tracing::info!(
                "{}; looking for containers elsewhere (Docker, podman, process cgroups)",
                crate::error_line(&e)
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
    merge(&mut listed, crate::containers::podman::running().into_iter().map(|(info, _)| info).collect());
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

pub fn short(id: &str) -> String {
    if id.len() > 12 && id.chars().all(|c| c.is_ascii_hexdigit()) {
        format!("{}…", &id[..12])
    } else {
        id.to_string()
    }
}

/// Names and labels by container ID (containerd's, Docker's, podman's), for naming where
/// processes live.
#[derive(Default)]
pub struct Names {
    pub by_id: HashMap<String, ContainerInfo>,
}

impl Names {
    /// Takes in what a manager says of a container, keeping what another said before (a
    /// Docker container's name survives containerd's nameless view of it).
    pub fn learn(&mut self, info: ContainerInfo) {
        let info = match self.by_id.get(&info.id) {
            Some(old) => joined(old, info),
            None => info,
        };
        self.by_id.insert(info.id.clone(), info);
    }

    pub fn reference(&self, id: &str, runtime: &'static str) -> ContainerRef {
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

    fn info(id: &str, source: Source, name: Option<&str>, labels: &[(&str, &str)]) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            source,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            name: name.map(str::to_string),
        }
    }

    #[test]
    fn a_full_id_then_a_name_then_a_prefix() {
        let listed = [
            info(ID, Source::Docker, Some("web"), &[]),
            info("5fb8aaaa", Source::Podman, Some("db"), &[]),
            info("web", Source::Containerd("default".into()), None, &[]),
            info("abc123", Source::Docker, Some("dup"), &[]),
            info("abc456", Source::Podman, Some("dup"), &[]),
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

    #[test]
    fn names_from_one_manager_survive_anothers_view() {
        let mut names = Names::default();
        // Docker names it; containerd's namespace moby lists it without a name, later.
        names.learn(info(ID, Source::Docker, Some("web"), &[("com.example", "1")]));
        names.learn(info(ID, Source::Containerd("moby".into()), None, &[("com.docker/engine.bundle.path", "/x")]));
        let r = names.reference(ID, "unknown");
        assert_eq!((r.name.as_deref(), r.runtime), (Some("web"), "docker"));
        assert_eq!(names.by_id[ID].labels.len(), 2);
        // A Kubernetes container name is the name events show, over the runtime's own.
        names.learn(info("k", Source::Docker, Some("k8s_app_web_prod_1"), &[(LABEL_CONTAINER, "app")]));
        assert_eq!(names.reference("k", "docker").name.as_deref(), Some("app"));
        names.learn(info("p", Source::Podman, Some("db"), &[]));
        assert_eq!(names.reference("p", "unknown").runtime, "podman");
        // Unknown to every manager: the cgroup path's runtime, no name.
        let r = names.reference("zzz", "cri-o");
        assert_eq!((r.name, r.runtime), (None, "cri-o"));
    }

    #[test]
    fn short_ids() {
        assert_eq!(short(ID), "5fb8adf9ee62…");
        assert_eq!(short("web"), "web");
    }
}
