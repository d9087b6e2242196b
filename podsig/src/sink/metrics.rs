//! Prometheus metrics for node mode (`--metrics-addr`): counts of signals by what was hit
//! and why, lost events, the history's size, and which build runs. Labels are bounded: no
//! pids, no argv, no container IDs (those change with every restart) — the container's name.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::{Context as _, Result};
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, info::Info},
    registry::Registry,
};

use crate::event::{ContainerRef, Record, Stop};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignalLabels {
    signal: String,
    cause: String,
    namespace: String,
    pod: String,
    container: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StopLabels {
    verdict: String,
    namespace: String,
    pod: String,
    container: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LackLabels {
    what: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

pub struct Metrics {
    registry: Registry,
    signals: Family<SignalLabels, Counter>,
    stops: Family<StopLabels, Counter>,
    lost: Counter,
    history_dropped: Counter,
    malformed: Family<BackendLabels, Counter>,
    lacking: Family<LackLabels, Counter>,
    pub history_bytes: Gauge,
    /// The probes are live: /healthz says ok only from then on.
    attached: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let signals = Family::<SignalLabels, Counter>::default();
        registry.register(
            "podsig_signals",
            "Signals reported, by signal, cause and the target's namespace, pod and container",
            signals.clone(),
        );
        let stops = Family::<StopLabels, Counter>::default();
        registry.register(
            "podsig_stops",
            "Stops of containers (their init's) and host processes, by verdict and the container's namespace, pod \
             and name",
            stops.clone(),
        );
        let lost = Counter::default();
        registry.register(
            "podsig_events_lost",
            "Events the kernel could not pass on: its ring buffer was full",
            lost.clone(),
        );
        let history_dropped = Counter::default();
        registry.register(
            "podsig_history_dropped",
            "Events reported but not stored: the history writer fell behind, or the history's file system was full, read-only or failing",
            history_dropped.clone(),
        );
        let malformed = Family::<BackendLabels, Counter>::default();
        registry.register(
            "podsig_malformed_records",
            "Records from the kernel side a backend could not decode: skipped and counted",
            malformed.clone(),
        );
        let lacking = Family::<LackLabels, Counter>::default();
        registry.register(
            "podsig_signals_lacking",
            "Signals reported without a capability the build of the hook that captured them does not have \
             (an older kernel, or a build the kernel refused; `podsig doctor` says which), by what they lack",
            lacking.clone(),
        );
        let history_bytes = Gauge::default();
        registry.register("podsig_history_bytes", "Size of the history store on disk", history_bytes.clone());
        registry.register(
            "podsig_build",
            "The running podsig's version and commit",
            Info::new(BuildLabels { version: crate::cli::VERSION.to_string() }),
        );
        Self {
            registry,
            signals,
            stops,
            lost,
            history_dropped,
            malformed,
            lacking,
            history_bytes,
            attached: AtomicBool::new(false),
        }
    }

    pub fn record(&self, record: &Record) {
        match record {
            Record::Signal(s) => {
                let c = s.target.container.as_ref();
                let (namespace, pod, container) = names(c);
                let labels = SignalLabels {
                    signal: s.signal.name.clone(),
                    cause: s.cause.as_str().to_string(),
                    namespace,
                    pod,
                    container,
                };
                self.signals.get_or_create(&labels).inc_by(s.count);
                for lack in &s.lacks {
                    self.lacking.get_or_create(&LackLabels { what: lack.as_str().to_string() }).inc_by(s.count);
                }
                self.stop(s.stop.as_ref(), c);
            }
            Record::Exit(e) => self.stop(e.stop.as_ref(), e.container.as_ref()),
            Record::Lost(l) => {
                self.lost.inc_by(l.count);
            }
            Record::Oom(_) | Record::Request(_) => {}
        }
    }

    /// Counts a container's stop (its init's) or a host process's; not the stops of a
    /// container's other processes, which its init's stop takes with it.
    fn stop(&self, stop: Option<&Stop>, container: Option<&ContainerRef>) {
        let Some(stop) = stop.filter(|s| s.container_init || container.is_none()) else { return };
        let (namespace, pod, container) = names(container);
        let verdict = stop.verdict.map_or("unknown", |v| v.as_str()).to_string();
        self.stops.get_or_create(&StopLabels { verdict, namespace, pod, container }).inc();
    }

    pub fn set_attached(&self) {
        self.attached.store(true, Ordering::Relaxed);
    }

    pub fn history_dropped(&self, n: u64) {
        self.history_dropped.inc_by(n);
    }

    pub fn malformed(&self, backend: &str, n: u64) {
        self.malformed.get_or_create(&BackendLabels { backend: backend.to_string() }).inc_by(n);
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// (namespace, pod, container name); empty for the host, or what containerd did not say.
fn names(c: Option<&ContainerRef>) -> (String, String, String) {
    let text = |v: Option<&String>| v.cloned().unwrap_or_default();
    (
        text(c.and_then(|c| c.namespace.as_ref())),
        text(c.and_then(|c| c.pod.as_ref())),
        text(c.and_then(|c| c.name.as_ref())),
    )
}

/// Starts the metrics endpoint when asked (`--metrics-addr`), before anything attaches, so a
/// bad address fails at once.
pub async fn start(addr: Option<SocketAddr>) -> Result<Option<Arc<Metrics>>> {
    let Some(addr) = addr else { return Ok(None) };
    let m = Arc::new(Metrics::new());
    let bound = serve(addr, m.clone()).await?;
    eprintln!("podsig: metrics at http://{bound}/metrics");
    Ok(Some(m))
}

/// Serves `/metrics` and `/healthz` on `addr` from the watch's own event loop. Binding is
/// done here, before the watch attaches, so a taken port fails the command at once.
async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for --metrics-addr (is the port taken?)"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, std::convert::Infallible>(respond(req.uri().path(), &metrics)) }
                });
                if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                    tracing::debug!("metrics connection: {e}");
                }
            });
        }
    });
    Ok(bound)
}

fn respond(path: &str, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/metrics" => (StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", metrics.text()),
        "/healthz" if metrics.attached.load(Ordering::Relaxed) => {
            (StatusCode::OK, "text/plain; charset=utf-8", "ok\n".to_string())
        }
        "/healthz" => (StatusCode::SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", "attaching\n".to_string()),
        _ => (StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "podsig serves /metrics and /healthz\n".to_string()),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{SignalRecord, Verdict, sample_container, sample_signal};

    #[test]
    fn exposition_has_bounded_labels() {
        let m = Metrics::new();
        let mut s = sample_signal();
        s.target.container = Some(sample_container("web"));
        m.record(&Record::Signal(s.clone()));
        let stop = |container_init| Stop {
            verdict: Some(Verdict::GraceExpiredTermIgnored),
            elapsed_ms: Some(2000),
            container_init,
            summary: String::new(),
            fix: String::new(),
        };
        // A member of the container: its stop goes with its init's, counted once.
        m.record(&Record::Signal(SignalRecord { stop: Some(stop(false)), ..s.clone() }));
        s.stop = Some(stop(true));
        s.lacks = vec![crate::event::Lack::ExecutableIdentity];
        m.record(&Record::Signal(s));
        m.record(&Record::Lost(crate::event::LostRecord {
            time: String::new(),
            node: None,
            backend: crate::event::BackendName::Ebpf,
            count: 3,
        }));
        m.history_dropped(2);
        m.malformed("stap", 4);
        let t = m.text();
        assert!(
            t.contains(
                r#"podsig_signals_total{signal="SIGKILL",cause="unknown",namespace="prod",pod="web",container="app"} 3"#
            ),
            "{t}"
        );
        assert!(
            t.contains(
                r#"podsig_stops_total{verdict="grace_expired_term_ignored",namespace="prod",pod="web",container="app"} 1"#
            ),
            "{t}"
        );
        assert!(t.contains("podsig_events_lost_total 3"), "{t}");
        assert!(t.contains(r#"podsig_signals_lacking_total{what="executable_identity"} 1"#), "{t}");
        assert!(t.contains("podsig_history_dropped_total 2"), "{t}");
        assert!(t.contains(r#"podsig_malformed_records_total{backend="stap"} 4"#), "{t}");
        assert!(t.contains("podsig_build_info{version="), "{t}");
        assert!(!t.contains("0123456789abcdef") && !t.contains("7942"), "no IDs or pids in labels: {t}");
    }
}
