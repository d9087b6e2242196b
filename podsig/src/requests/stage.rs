//! The stage that remembers requests and links a manager's signals to them.
//!
//! A request is kept when it asks for something to be stopped or signalled (from its bytes,
//! else from a known client's argv), for the story window. A signal is linked when its
//! sender is a manager — systemd, or the runtime that dockerd or containerd ran — and a
//! request named its target (the unit, or the container by ID or name) before it: the
//! latest such request, from a client that is not itself a manager relaying one (dockerd
//! asking containerd on behalf of `docker stop`). Nothing is guessed: no match, no requester,
//! and the record says why.

use std::{
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
    time::Duration,
};

use super::{
    argv,
    wire::{self, Socket},
};
use crate::event::{ContainerRef, RequestRecord, RequestedBy, SignalRecord};

/// Requests kept at most (a busy node's recent stop requests; each holds a client's ancestry).
const MAX_KEPT: usize = 4096;

/// Clients that relay a request rather than make one: a manager asking another.
const RELAYS: &[&str] = &["dockerd", "containerd", "containerd-shim", "systemd", "conmon", "podman"];

/// The manager sockets a watch asks the kernel to follow: systemd's private socket, the
/// system bus, Docker's and containerd's sockets (defaults and the ones named on the command
/// line), each as clients spell it (`/var/run` is `/run`).
pub fn manager_sockets(docker: Option<&Path>, containerd: &Path) -> Vec<(PathBuf, Socket)> {
    let mut out: Vec<(PathBuf, Socket)> = Vec::new();
    let mut add = |p: &Path, s: Socket| {
        let mut forms = vec![p.to_path_buf()];
        if let Ok(rest) = p.strip_prefix("/run") {
            forms.push(Path::new("/var/run").join(rest));
        }
        if let Ok(rest) = p.strip_prefix("/var/run") {
            forms.push(Path::new("/run").join(rest));
        }
        if let Ok(real) = std::fs::canonicalize(p) {
            forms.push(real);
        }
        for f in forms {
            if !out.iter().any(|(q, _)| *q == f) {
                out.push((f, s));
            }
        }
    };
    add(Path::new("/run/systemd/private"), Socket::SystemdPrivate);
    add(Path::new("/run/dbus/system_bus_socket"), Socket::SystemBus);
    for d in crate::containers::docker::DEFAULT_SOCKETS {
        add(Path::new(d), Socket::Docker);
    }
    if let Some(d) = docker {
        add(d, Socket::Docker);
    }
    add(Path::new("/run/containerd/containerd.sock"), Socket::Containerd);
    add(containerd, Socket::Containerd);
    out
}

/// Which manager a socket belongs to, in the words records use.
fn manager(socket: Socket) -> &'static str {
    match socket {
        Socket::SystemdPrivate | Socket::SystemBus => "systemd",
        Socket::Docker => "docker",
        Socket::Containerd => "containerd",
    }
}

struct Kept {
    record: RequestRecord,
    /// `request` or `argv`: what named the object.
    link: &'static str,
}

/// What a manager's signal is about.
enum Object<'a> {
    Unit(&'a str),
    Container(&'a ContainerRef),
}

pub struct Requests {
    window_ns: u64,
    kept: VecDeque<Kept>,
    /// Per client connection (pid, fd), the bytes of its last write to containerd that
    /// carried no whole request: gRPC clients write a call's HEADERS (its method) and its
    /// DATA (its object) apart, and only the two together name what was asked.
    partial: HashMap<(u32, u32), Vec<u8>>,
    /// Requests are captured: without them, a signal with no match says nothing.
    capturing: bool,
    users: HashMap<u32, Option<String>>,
}

impl Requests {
    /// `capturing`: the kernel follows the manager sockets for this watch.
    pub fn new(window: Duration, capturing: bool) -> Self {
        Self {
            window_ns: window.as_nanos() as u64,
            kept: VecDeque::new(),
            partial: HashMap::new(),
            capturing,
            users: HashMap::new(),
        }
    }

    /// Whether the source turned out to capture requests (known once it is attached).
    pub fn set_capturing(&mut self, capturing: bool) {
        self.capturing = capturing;
    }

    /// Keeps a request that asks for a stop or a signal; anything else is dropped here.
    pub fn remember(&mut self, mut r: RequestRecord) {
        r.requests = wire::parse(r.socket, &r.bytes);
        tracing::trace!(
            "request from {}({}) fd {} on {:?} by {}: {} of {} bytes {:02x?}",
            r.client.comm,
            r.client.pid,
            r.fd,
            r.socket,
            r.syscall,
            r.bytes.len(),
            r.total,
            &r.bytes[..r.bytes.len().min(256)]
        );
        if r.socket == Socket::Containerd {
            let conn = (r.client.pid, r.fd);
            match self.partial.remove(&conn) {
                Some(mut before) if r.requests.is_empty() => {
                    before.extend_from_slice(&r.bytes);
                    r.requests = wire::parse(r.socket, &before);
                }
                _ => {}
            }
            if r.requests.is_empty() {
                if self.partial.len() >= MAX_KEPT {
                    self.partial.clear();
                }
                self.partial.insert(conn, std::mem::take(&mut r.bytes));
            }
        }
        let mut link = "request";
        // A command line names what it asks once: its other writes (a ping, a status
        // call, the bytes after its request) add nothing, and must not stand in for the
        // request its own bytes named.
        let seen = |k: &Kept| k.record.client.pid == r.client.pid && k.record.client.start_ns == r.client.start_ns;
        if r.requests.is_empty() && !self.kept.iter().any(seen) {
            r.requests = argv::requests(r.socket, &r.client.argv);
            link = "argv";
        }
        if r.requests.is_empty() {
            return;
        }
        r.client.login_user = r.client.login_uid.and_then(|uid| self.user(uid));
        r.bytes = Vec::new();
        let newest = r.boot_ns;
        while self.kept.front().is_some_and(|k| newest.saturating_sub(k.record.boot_ns) > self.window_ns)
            || self.kept.len() >= MAX_KEPT
        {
            self.kept.pop_front();
        }
        self.kept.push_back(Kept { record: r, link });
    }

    /// Sets the signal's `requested_by` when a manager sent it and a request named its
    /// target; else, when requests are captured, `no_request` says why none is named.
    pub fn link(&self, s: &mut SignalRecord) {
        let Some((who, object)) = sent_by_manager(s) else { return };
        let Some(at) = s.boot_ns else { return };
        let found = self
            .kept
            .iter()
            .rev()
            .filter(|k| k.record.boot_ns <= at && at - k.record.boot_ns <= self.window_ns)
            .filter(|k| !RELAYS.iter().any(|r| k.record.client.comm.starts_with(r)))
            .find_map(|k| k.record.requests.iter().find(|q| names(&object, k.record.socket, q)).map(|q| (k, q)));
        match found {
            Some((k, q)) => {
                let r = &k.record;
                s.requested_by = Some(RequestedBy {
                    manager: manager(r.socket).into(),
                    request: q.clone(),
                    link: k.link.into(),
                    time: r.time.clone(),
                    elapsed_ms: (at - r.boot_ns) / 1_000_000,
                    client: r.client.clone(),
                    ancestry: r.ancestry.clone(),
                });
            }
            None if self.capturing => {
                let (what, asked) = match object {
                    Object::Unit(u) => (u.to_string(), "systemd (on its private socket or the system bus)"),
                    Object::Container(c) => (
                        c.name.clone().unwrap_or_else(|| crate::containers::short(&c.id)),
                        "Docker or containerd (on their sockets)",
                    ),
                };
                s.no_request = Some(format!(
                    "no client asked {asked} to stop or signal {what} in the {} before: {who} acted on its own (a \
                     timeout, watchdog, restart policy, health check, dependency or shutdown)",
                    crate::pipeline::story::duration(self.window_ns / 1_000_000)
                ));
            }
            None => {}
        }
    }

    /// The login user's name, from the host's passwd (cached; a name the host does not
    /// know stays a number).
    fn user(&mut self, uid: u32) -> Option<String> {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
                passwd.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() > 2 && f[2].parse() == Ok(uid)).then(|| f[0].to_string())
                })
            })
            .clone()
    }
}

/// The manager that sent `s` (its name, for the text) and what it is about, when a
/// manager sent it: systemd to a process of a unit, or a container runtime (or its shim,
/// dockerd, containerd) to a container's process.
fn sent_by_manager(s: &SignalRecord) -> Option<(String, Object<'_>)> {
    let sender = s.sender.as_ref()?;
    let parent = s.ancestry.iter().rev().nth(1).map(|a| a.comm.as_str());
    // systemd itself, or a stop command it ran (ExecStop=/bin/kill …).
    if sender.comm == "systemd" || parent == Some("systemd") && s.target.unit.is_some() && sender.pid != 1 {
        let unit = s.target.unit.as_deref()?;
        let who =
            if sender.comm == "systemd" { "systemd".to_string() } else { format!("systemd (through {})", sender.comm) };
        return Some((who, Object::Unit(unit)));
    }
    let container = s.target.container.as_ref()?;
    let runtime = s.runtime.as_ref().map(|r| r.manager.clone().unwrap_or_else(|| r.runtime.clone()));
    let manager =
        runtime.or_else(|| RELAYS[..3].iter().any(|m| sender.comm.starts_with(m)).then(|| sender.comm.clone()))?;
    Some((manager, Object::Container(container)))
}

/// Whether request `q`, made on `socket`, names `object`.
fn names(object: &Object<'_>, socket: Socket, q: &wire::Request) -> bool {
    match (object, socket) {
        (Object::Unit(u), Socket::SystemdPrivate | Socket::SystemBus) => argv::unit_name(&q.object) == *u,
        (Object::Container(c), Socket::Docker | Socket::Containerd) => {
            let o = q.object.as_str();
            // As Docker resolves one: a full ID, a name, or an ID prefix.
            o == c.id || c.name.as_deref() == Some(o) || (o.len() >= 4 && c.id.starts_with(o))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Client, RuntimeInfo, Sender, sample_container, sample_signal};

    fn request(socket: Socket, boot_ns: u64, comm: &str, argv: &[&str]) -> RequestRecord {
        RequestRecord {
            time: String::new(),
            node: None,
            boot_ns,
            socket,
            syscall: "write".into(),
            fd: 3,
            client: Client {
                pid: 900,
                comm: comm.into(),
                argv: argv.iter().map(|a| a.to_string()).collect(),
                ..Default::default()
            },
            ancestry: Default::default(),
            ancestry_complete: true,
            bytes: Vec::new(),
            total: 0,
            requests: Vec::new(),
        }
    }

    fn from_runc(boot_ns: u64) -> SignalRecord {
        let mut s = sample_signal();
        s.boot_ns = Some(boot_ns);
        s.sender = Some(Sender { pid: 50, comm: "runc".into(), ..Default::default() });
        s.runtime = Some(RuntimeInfo { runtime: "runc".into(), manager: Some("containerd-shim".into()) });
        s.target.container = Some(ContainerRef { id: "0123456789abcdef".repeat(4), ..sample_container("web") });
        s
    }

    #[test]
    fn a_manager_signal_is_linked_to_the_request_that_named_its_target() {
        let mut r = Requests::new(Duration::from_secs(600), true);
        r.remember(request(Socket::Docker, 1_000, "docker", &["docker", "stop", "-t", "2", "web"]));
        // A relay of the same stop: dockerd asking containerd.
        r.remember(request(Socket::Containerd, 2_000, "dockerd", &["dockerd"]));
        let mut s = from_runc(3_000_000);
        s.target.container.as_mut().unwrap().name = Some("web".into());
        r.link(&mut s);
        let by = s.requested_by.as_ref().expect("linked");
        assert_eq!((by.client.comm.as_str(), by.link.as_str(), by.request.method.as_str()), ("docker", "argv", "stop"));
        assert_eq!((by.request.timeout_s, by.elapsed_ms), (Some(2), 2));
        assert_eq!(s.no_request, None);
    }

    #[test]
    fn no_request_no_requester() {
        let mut r = Requests::new(Duration::from_secs(600), true);
        // Another container's stop, and a status query: neither names this one.
        r.remember(request(Socket::Docker, 1_000, "docker", &["docker", "stop", "db"]));
        r.remember(request(Socket::Docker, 1_500, "docker", &["docker", "ps"]));
        let mut s = from_runc(3_000);
        r.link(&mut s);
        assert_eq!(s.requested_by, None);
        assert!(s.no_request.as_deref().unwrap().contains("acted on its own"), "{:?}", s.no_request);
        // A request after the signal is not why it was sent.
        r.remember(request(Socket::Docker, 5_000, "docker", &["docker", "kill", "app"]));
        let mut s = from_runc(4_000);
        s.target.container.as_mut().unwrap().name = Some("app".into());
        r.link(&mut s);
        assert_eq!(s.requested_by, None);
        // Without capture, nothing is claimed either way.
        let mut s = from_runc(3_000);
        Requests::new(Duration::from_secs(600), false).link(&mut s);
        assert_eq!((s.requested_by, s.no_request), (None, None));
    }
}

#[cfg(test)]
mod captured {
    use super::*;

    /// What `ctr task kill -s SIGTERM rq1` (containerd 1.6.20's ctr) wrote for its Kill call,
    /// as podsig captured it: the HEADERS with the method's path, then the DATA, in one write.
    const CTR_KILL: &[u8] = &[
        0x00, 0x00, 0x26, 0x01, 0x04, 0x00, 0x00, 0x00, 0x05, 0x83, 0x86, 0x45, 0x9d, 0x60, 0x87, 0xa9, 0x23, 0x35,
        0x45, 0xb2, 0x45, 0xd0, 0x5b, 0x3b, 0x98, 0x85, 0x42, 0xe9, 0x1a, 0x3a, 0xa1, 0x7e, 0xe1, 0x5f, 0x78, 0xd1,
        0xd5, 0x0c, 0x66, 0x35, 0x14, 0x7f, 0xc4, 0xc3, 0xc2, 0xc1, 0xc0, 0x00, 0x00, 0x0c, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x07, 0x0a, 0x03, 0x72, 0x71, 0x31, 0x18, 0x0f,
    ];

    #[test]
    fn a_real_ctr_kill_is_read_from_its_bytes() {
        let got = wire::parse(Socket::Containerd, CTR_KILL);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!((got[0].method.as_str(), got[0].object.as_str(), got[0].signal), ("Kill", "rq1", Some(15)));
    }
}
