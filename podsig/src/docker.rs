//! Docker Engine: the names of Docker's containers. Docker 20.10+ keeps a container's name
//! (`docker run --name web`) to itself — containerd's labels for it carry none — so where
//! Docker's socket is, its API (through bollard) names the containers and says which pid
//! each one's init is.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, anyhow, bail};
use bollard::query_parameters::{EventsOptions, InspectContainerOptions, ListContainersOptions};
use futures_util::StreamExt as _;
use tokio::sync::mpsc;

use crate::container::{ContainerInfo, Learned, Source, TaskStart};

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
        let Some(socket) = explicit.or_else(|| DEFAULT_SOCKETS.iter().map(Path::new).find(|p| p.exists())) else {
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

    async fn open(socket: &Path) -> Result<Self> {
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

    /// Every container Docker has, running or not.
    pub async fn list(&self) -> Result<Vec<ContainerInfo>> {
        self.list_some(true).await
    }

    async fn list_some(&self, all: bool) -> Result<Vec<ContainerInfo>> {
        let opts = ListContainersOptions { all, ..Default::default() };
        let list = tokio::time::timeout(TIMEOUT, self.client.list_containers(Some(opts)))
            .await
            .map_err(|_| anyhow!("Docker at {} did not list its containers in time", self.socket.display()))?
            .with_context(|| format!("listing the containers of Docker at {}", self.socket.display()))?;
        Ok(list
            .into_iter()
            .filter_map(|c| Some(info(c.id?, c.names.unwrap_or_default(), c.labels.unwrap_or_default())))
            .collect())
    }

    /// One container (by ID, ID prefix or name, as Docker resolves them) and its init's pid
    /// while it runs.
    pub async fn inspect(&self, id: &str) -> Option<(ContainerInfo, Option<u32>)> {
        let c = tokio::time::timeout(TIMEOUT, self.client.inspect_container(id, None::<InspectContainerOptions>))
            .await
            .ok()?
            .ok()?;
        let pid = c
            .state
            .as_ref()
            .filter(|s| s.running == Some(true))
            .and_then(|s| u32::try_from(s.pid?).ok())
            .filter(|&p| p > 0);
        let labels = c.config.and_then(|c| c.labels).unwrap_or_default();
        Some((info(c.id?, c.name.into_iter().collect(), labels), pid))
    }

    /// Every running container, with its init's pid namespace.
    async fn running(&self) -> Vec<(ContainerInfo, Option<u32>)> {
        let mut out = Vec::new();
        for c in self.list_some(false).await.unwrap_or_default() {
            let pidns = match self.inspect(&c.id).await {
                Some((_, Some(pid))) => crate::enrich::pidns_of(&pid.to_string()),
                _ => None,
            };
            out.push((c, pidns));
        }
        out
    }

    /// What runs now, sent at once: names, and each running container's pid namespace.
    pub async fn send_running(&self, tx: &mpsc::UnboundedSender<Learned>) {
        let running = self.running().await;
        let _ = tx.send(Learned::Listed(running.iter().map(|(c, _)| c.clone()).collect()));
        for (c, pidns) in running {
            let _ = tx.send(Learned::Start(TaskStart { id: c.id, runtime: "docker", pidns }));
        }
    }

    /// Serves the namer in the background, so naming never holds up events: Docker's whole
    /// list each time `refresh` asks, and with `starts_since`, every container Docker
    /// started since then — its names, and its init's pid namespace read at once, while it
    /// surely lives (a container killed within a second of starting is still placed).
    pub fn serve(
        self,
        tx: mpsc::UnboundedSender<Learned>,
        mut refresh: mpsc::Receiver<()>,
        starts_since: Option<SystemTime>,
    ) {
        tokio::spawn(async move {
            let filters = HashMap::from([
                ("type".to_string(), vec!["container".to_string()]),
                ("event".to_string(), vec!["start".to_string()]),
            ]);
            // Docker takes whole seconds: a second earlier replays a little, misses nothing.
            let since = starts_since
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs().saturating_sub(1).to_string());
            let opts = EventsOptions { since, filters: Some(filters), ..Default::default() };
            let events = self.client.events(Some(opts));
            tokio::pin!(events);
            let mut events_open = starts_since.is_some();
            loop {
                tokio::select! {
                    ev = events.next(), if events_open => match ev {
                        Some(Ok(msg)) => {
                            let Some(id) = msg.actor.and_then(|a| a.id) else { continue };
                            let Some((info, pid)) = self.inspect(&id).await else { continue };
                            let pidns = pid.and_then(|p| crate::enrich::pidns_of(&p.to_string()));
                            let _ = tx.send(Learned::Info(info));
                            let _ = tx.send(Learned::Start(TaskStart { id, runtime: "docker", pidns }));
                        }
                        end => {
                            let why = match end {
                                Some(Err(e)) => e.to_string(),
                                _ => "the stream ended".into(),
                            };
                            tracing::warn!(
                                "Docker events: {why}; containers killed within a second of starting may go unnamed"
                            );
                            events_open = false;
                        }
                    },
                    asked = refresh.recv() => {
                        if asked.is_none() {
                            break;
                        }
                        match self.list().await {
                            Ok(list) => {
                                let _ = tx.send(Learned::Listed(list));
                            }
                            Err(e) => tracing::debug!("{e:#}"),
                        }
                    }
                }
                if tx.is_closed() {
                    break;
                }
            }
        });
    }
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
        assert_eq!(c.runtime(), "docker");
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
