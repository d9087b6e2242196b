//! containerd's API: listing containers and tasks in the namespaces searched, and the task
//! starts it announces.

use std::{
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

use super::model::{ContainerInfo, Source, TaskStart};
use crate::event::Runtime;

pub const DEFAULT_SOCKET: &str = "/run/containerd/containerd.sock";
/// Kubernetes (CRI), Docker, and `ctr`'s default.
pub const DEFAULT_NAMESPACES: &[&str] = &["k8s.io", "moby", "default"];
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

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
    pub async fn task_pids(&self) -> Result<Vec<(String, Runtime, u32)>> {
        let mut out = Vec::new();
        for ns in &self.namespaces {
            let mut t = TasksClient::new(self.channel.clone());
            let req = ListTasksRequest { filter: String::new() };
            let resp = tokio::time::timeout(CONNECT_TIMEOUT, t.list(with_namespace!(req, ns.as_str())))
                .await
                .map_err(|_| anyhow!("containerd did not list the tasks of namespace {ns} in time"))?
                .with_context(|| format!("listing tasks in containerd namespace {ns}"))?;
            let runtime = if ns == "moby" { Runtime::Docker } else { Runtime::Containerd };
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
                let runtime = if env.namespace == "moby" { Runtime::Docker } else { Runtime::Containerd };
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
