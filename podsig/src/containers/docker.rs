//! Docker Engine: the names of Docker's containers. Docker 20.10+ keeps a container's name
//! (`docker run --name web`) to itself — containerd's labels for it carry none — so where
//! Docker's socket is, its API (through bollard) names the containers and says which pid
//! each one's init is.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, anyhow, bail};
use bollard::models::ContainerSummaryStateEnum;
use bollard::query_parameters::{EventsOptions, InspectContainerOptions, ListContainersOptions};
use futures_util::StreamExt as _;
use tokio::sync::mpsc;

use crate::{
    containers::manager::{Kind, Manager, Round},
    containers::model::{ContainerInfo, Source, TaskStart},
    event::Runtime,
};

/// Where Docker listens unless --docker-socket says otherwise (/var/run is usually /run).
pub const DEFAULT_SOCKETS: &[&str] = &["/run/docker.sock", "/var/run/docker.sock"];
/// Each request to Docker, connecting included.
const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Docker {
    client: bollard::Docker,
    pub socket: PathBuf,
}

impl Docker {
    /// Docker on the socket `--docker-socket` names, which must answer; or, without one,
    /// on the first default socket present, if it answers (quietly: plenty of hosts run
    /// no Docker, and a stopped one leaves its socket behind).
    pub async fn connect(explicit: Option<&Path>) -> Result<Option<Self>> {
        let Some(socket) = (match explicit {
            Some(s) => Some(s),
            None => default_socket(),
        }) else {
            tracing::debug!("no Docker socket at {}: Docker's containers are not named", DEFAULT_SOCKETS.join(" or "));
            return Ok(None);
        };
        match Self::open(socket).await {
            Ok(d) => Ok(Some(d)),
            Err(e) if explicit.is_some() => Err(e),
            Err(e) => {
                tracing::debug!("{e:#}: Docker's containers are not named");
                Ok(None)
            }
        }
    }

    pub async fn open(socket: &Path) -> Result<Self> {
        if !socket.exists() {
            bail!("no Docker socket at {} (is dockerd running? --docker-socket names another)", socket.display());
        }
        let path = socket.to_str().ok_or_else(|| anyhow!("Docker socket path {} is not UTF-8", socket.display()))?;
        let client = bollard::Docker::connect_with_unix(path, TIMEOUT.as_secs(), bollard::API_DEFAULT_VERSION)
            .with_context(|| format!("connecting to Docker at {}", socket.display()))?;
        // Older engines (Debian's 20.10 speaks API 1.41) refuse a newer client's requests.
        let client = tokio::time::timeout(TIMEOUT, client.negotiate_version())
            .await
            .map_err(|_| anyhow!("Docker at {} did not answer", socket.display()))?
            .with_context(|| format!("Docker at {} did not answer", socket.display()))?;
        tracing::debug!("Docker at {}, API {}", socket.display(), client.client_version());
        Ok(Self { client, socket: socket.to_path_buf() })
    }

    /// Every container Docker has, running or not, and whether it runs.
    pub async fn list(&self) -> Result<Vec<(ContainerInfo, bool)>> {
        let opts = ListContainersOptions { all: true, ..Default::default() };
        let list = tokio::time::timeout(TIMEOUT, self.client.list_containers(Some(opts)))
            .await
            .map_err(|_| anyhow!("Docker at {} did not list its containers in time", self.socket.display()))?
            .with_context(|| format!("listing the containers of Docker at {}", self.socket.display()))?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let running =
                    matches!(c.state, Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::PAUSED));
                Some((info(c.id?, c.names.unwrap_or_default(), c.labels.unwrap_or_default()), running))
            })
            .collect())
    }

    /// One container (by ID, ID prefix or name, as Docker resolves them) and its init's pid
    /// while it runs; None when Docker does not know it. An error when Docker does not
    /// answer.
    pub async fn inspect(&self, id: &str) -> Result<Option<(ContainerInfo, Option<u32>)>> {
        let c = match tokio::time::timeout(TIMEOUT, self.client.inspect_container(id, None::<InspectContainerOptions>))
            .await
            .map_err(|_| anyhow!("Docker at {} did not answer in time", self.socket.display()))?
        {
            Ok(c) => c,
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("inspecting container {id} in Docker")),
        };
        let pid = c
            .state
            .as_ref()
            .filter(|s| s.running == Some(true))
            .and_then(|s| u32::try_from(s.pid?).ok())
            .filter(|&p| p > 0);
        let labels = c.config.and_then(|c| c.labels).unwrap_or_default();
        Ok(c.id.map(|id| (info(id, c.name.into_iter().collect(), labels), pid)))
    }
}

/// Docker as a [`Manager`] the naming agent asks: on the socket `--docker-socket` named,
/// else on the first default one present (looked for anew at each connection: Docker may
/// start after podsig).
pub struct DockerAt {
    pub socket: Option<PathBuf>,
}

/// A connection, with the running containers' pids as last seen: Docker's list has no
/// pids, and a container whose init still lives in the pid namespace it had is not asked
/// about again.
pub struct Connection {
    docker: Docker,
    inits: HashMap<String, (u32, Option<u32>)>,
}

impl From<Docker> for Connection {
    fn from(docker: Docker) -> Self {
        Self { docker, inits: HashMap::new() }
    }
}

impl Manager for DockerAt {
    type Client = Connection;
    const NAME: &'static str = "Docker";
    const KIND: Kind = Kind::Docker;

    async fn connect(&self) -> Result<Connection> {
        let socket = match &self.socket {
            Some(s) => s.clone(),
            None => default_socket()
                .ok_or_else(|| anyhow!("no Docker socket at {}", DEFAULT_SOCKETS.join(" or ")))?
                .to_path_buf(),
        };
        Ok(Docker::open(&socket).await?.into())
    }

    async fn ask(&self, c: &mut Connection) -> Result<Round> {
        let list = c.docker.list().await?;
        let mut inits = HashMap::new();
        let mut tasks = Vec::new();
        for (info, running) in &list {
            if !running {
                continue;
            }
            let known = c
                .inits
                .get(&info.id)
                .copied()
                .filter(|&(pid, ns)| ns.is_some() && crate::proc::pidns_of(&pid.to_string()) == ns);
            let (pid, ns) = match known {
                Some(k) => k,
                None => match c.docker.inspect(&info.id).await? {
                    Some((_, Some(pid))) => (pid, crate::proc::pidns_of(&pid.to_string())),
                    _ => continue,
                },
            };
            inits.insert(info.id.clone(), (pid, ns));
            tasks.push((info.id.clone(), Runtime::Docker, pid, ns));
        }
        c.inits = inits;
        Ok(Round { containers: list.into_iter().map(|(info, _)| info).collect(), tasks })
    }

    /// Every container Docker starts from now on, from its event stream: its names, and
    /// its init's pid namespace read at once, while it surely lives (a container killed
    /// within a second of starting is still placed). Connects and subscribes again when
    /// Docker goes away, replaying from where the stream broke, until `tx` is closed.
    async fn task_starts(self: Arc<Self>, tx: mpsc::UnboundedSender<TaskStart>) {
        let mut since = SystemTime::now();
        let mut connected = false;
        let mut warned = false;
        while !tx.is_closed() {
            let c = match self.connect().await {
                Ok(c) => c,
                Err(e) => {
                    // A Docker never reached has no starts podsig could have missed: a
                    // Docker that starts in an hour is not asked to replay that hour.
                    if !connected {
                        since = SystemTime::now();
                    }
                    if !std::mem::replace(&mut warned, true) {
                        tracing::debug!(
                            "Docker events: {e:#}; until they come, Docker containers killed within a second of \
                             starting may go unnamed"
                        );
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            connected = true;
            let filters = HashMap::from([
                ("type".to_string(), vec!["container".to_string()]),
                ("event".to_string(), vec!["start".to_string()]),
            ]);
            // Docker takes whole seconds: a second earlier replays a little, misses nothing.
            let from = since.duration_since(UNIX_EPOCH).map(|d| d.as_secs().saturating_sub(1).to_string()).ok();
            let opts = EventsOptions { since: from, filters: Some(filters), ..Default::default() };
            let events = c.docker.client.events(Some(opts));
            tokio::pin!(events);
            while let Some(ev) = events.next().await {
                let msg = match ev {
                    Ok(msg) => msg,
                    Err(e) => {
                        tracing::debug!("Docker events: {e}");
                        break;
                    }
                };
                let Some(id) = msg.actor.and_then(|a| a.id) else { continue };
                let Ok(Some((info, pid))) = c.docker.inspect(&id).await else { continue };
                let pidns = pid.and_then(|p| crate::proc::pidns_of(&p.to_string()));
                let seen = Instant::now();
                if tx.send(TaskStart { id, runtime: Runtime::Docker, pidns, info: Some(info), seen }).is_err() {
                    return;
                }
            }
            since = SystemTime::now();
            tracing::debug!("Docker events ended (Docker restarted?); subscribing again");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn reason(e: &anyhow::Error) -> String {
        crate::error::error_line(e)
    }
}

/// The first of Docker's default sockets that is there.
pub fn default_socket() -> Option<&'static Path> {
    DEFAULT_SOCKETS.iter().map(Path::new).find(|p| p.exists())
}

/// A container as Docker describes it. Its names are `/web` (and `/other/alias` for a
/// legacy link): the one without a link's slash is its own.
fn info(id: String, names: Vec<String>, labels: HashMap<String, String>) -> ContainerInfo {
    let name = names.iter().map(|n| n.trim_start_matches('/')).find(|n| !n.is_empty() && !n.contains('/'));
    ContainerInfo { id, source: Source::Docker, labels, name: name.map(str::to_string) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_containers_own_name_not_a_links() {
        let c = info("abc".into(), vec!["/db/web-link".into(), "/web".into()], HashMap::new());
        assert_eq!(c.name.as_deref(), Some("web"));
        assert_eq!(c.runtime(), Runtime::Docker);
        assert_eq!(info("abc".into(), vec![], HashMap::new()).name, None);
    }

    #[tokio::test]
    async fn an_absent_socket_given_is_an_error_and_by_default_is_quiet() {
        let e = Docker::connect(Some(Path::new("/nonexistent/docker.sock"))).await.err().expect("an error");
        assert!(format!("{e:#}").starts_with("no Docker socket at /nonexistent/docker.sock"), "{e:#}");
        if DEFAULT_SOCKETS.iter().all(|s| !Path::new(s).exists()) {
            assert!(Docker::connect(None).await.unwrap().is_none());
        }
    }
}
