//! The stage that remembers requests and links a manager's signals to them.
//!
//! A request is kept when it asks for something to be stopped or signalled (from its bytes,
//! else from a known client's argv), for the story window. A signal is linked when its
//! sender is a manager — systemd, or the runtime that dockerd or containerd ran — and a
//! request named its target (the unit, or the container by ID or name) before it: the
//! latest such request, from a client that is not itself a manager relaying one (dockerd
//! asking containerd on behalf of `docker stop`). Nothing is guessed: no match, no requester,
//! and the record says why only where podsig saw everything a request could have been (its
//! capture covered the whole window, nothing was lost, the manager's socket is followed).
//!
//! A request is not used past its purpose: a kill request only for the signal it asked for,
//! and, once linked, only for the same run of its unit or container (the cgroup the kernel
//! saw: systemd and the runtimes make a new one for every start), so a later restart's kill
//! by a watchdog is never put down to an old `systemctl restart`.

use std::{
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
    time::Duration,
};

use super::{
    argv,
    wire::{self, Socket},
};
use crate::{
    event::{Cause, ContainerRef, RequestRecord, RequestedBy, Runtime, SignalRecord},
    source::RequestCapture,
};

/// Requests kept at most (a busy node's recent stop requests; each holds a client's ancestry).
const MAX_KEPT: usize = 4096;

/// How soon after its start a command systemd ran signals, to be taken for a stop command.
const STOP_COMMAND_WITHIN_NS: u64 = 5_000_000_000;

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
    /// Per object the request named, the run of it the request was about, once a signal
    /// was linked to it.
    runs: Vec<Option<Run>>,
    /// Per request to systemd, the unit an alias it named stands for (`sshd.service` is
    /// `ssh.service`): systemd resolves it, and its signals name the real unit.
    aliased: Vec<Option<String>>,
}

/// The run of a unit or container a request was about: the cgroups (unified hierarchy
/// inodes) its signals went to. systemd and the runtimes make new ones at every start; a
/// unit's processes may sit in several below it (a user manager's, a delegated service's),
/// and the manager signals them all in one pass.
struct Run {
    /// When the first signal was linked (boot ns).
    first_ns: u64,
    cgroups: Vec<u64>,
}

impl Run {
    /// Whether a signal at `at` to a process in `cgroup` belongs to this run: a cgroup
    /// already signalled, or one signalled in the same pass as the first.
    fn admits(&mut self, cgroup: u64, at: u64) -> bool {
        if self.cgroups.contains(&cgroup) {
            return true;
        }
        let same_pass = at.saturating_sub(self.first_ns) <= RUN_PASS_NS && self.cgroups.len() < MAX_RUN_CGROUPS;
        if same_pass {
            self.cgroups.push(cgroup);
        }
        same_pass
    }
}

/// How long after a request's first signal the manager may still be making its first pass
/// over the run's processes (systemd's SIGTERM to each process of a unit).
const RUN_PASS_NS: u64 = 1_000_000_000;

/// Cgroups kept per run (a unit with more processes' cgroups than this is rare).
const MAX_RUN_CGROUPS: usize = 64;

/// How soon a manager acts on a request it carries out: its first signal for it follows
/// within this (systemd's SIGTERM, a runtime's kill), or the request is not taken for the
/// reason of a later one.
const FIRST_SIGNAL_WITHIN_NS: u64 = 10_000_000_000;

/// Why no request was linked though one named the target.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unlinked {
    /// None named it.
    None,
    /// One named it, for another signal (a kill request's) or another run of it.
    Other,
    /// One named it this long (ns) before, and nothing was linked to it since.
    Stale(u64),
}

/// What a manager's signal is about.
enum Object<'a> {
    Unit(&'a str),
    Container(&'a ContainerRef),
}

/// Who sent a manager's signal.
struct Manager {
    /// Its name, for the text.
    who: String,
    /// A command systemd ran (ExecStop=/bin/kill …), not systemd itself: it can only have
    /// been asked for by a request made before the command started, and its own signals are
    /// never said to be systemd's own doing.
    through: Option<u64>,
}

pub struct Requests {
    window_ns: u64,
    kept: VecDeque<Kept>,
    /// Per client connection (pid, fd), the bytes of its last write to containerd that
    /// carried no whole request: gRPC clients write a call's HEADERS (its method) and its
    /// DATA (its object) apart, and only the two together name what was asked.
    partial: HashMap<(u32, u32), Vec<u8>>,
    /// Since when (boot ns) requests are captured; None: they are not, and a signal with
    /// no match says nothing.
    capturing_since: Option<u64>,
    /// Clients connected before the capture began could not be listed: any of them may ask
    /// unseen, so no signal is said to have gone unasked.
    earlier_clients_unseen: bool,
    /// When (boot ns) records were last lost, or a kept request dropped before its window
    /// ended: a request may have been among them.
    blind_at: Option<u64>,
    /// Newest record time seen (boot ns).
    newest_ns: u64,
    /// Containers (by ID) a client's call on containerd named without a method podsig could
    /// read (`wire::unread_ids`), and when: maybe a stop, so none is claimed absent.
    unread: VecDeque<(u64, String)>,
    users: HashMap<u32, Option<String>>,
}

impl Requests {
    /// `capturing`: what the kernel follows of the manager sockets for this watch, from now on.
    pub fn new(window: Duration, capturing: RequestCapture) -> Self {
        let mut me = Self {
            window_ns: window.as_nanos() as u64,
            kept: VecDeque::new(),
            partial: HashMap::new(),
            capturing_since: None,
            earlier_clients_unseen: false,
            blind_at: None,
            newest_ns: 0,
            unread: VecDeque::new(),
            users: HashMap::new(),
        };
        me.set_capturing(capturing);
        me
    }

    /// Whether the source turned out to capture requests (known once it is attached).
    pub fn set_capturing(&mut self, capturing: RequestCapture) {
        self.capturing_since =
            (capturing != RequestCapture::Off).then(|| crate::pipeline::enrich::clock_ns(libc::CLOCK_BOOTTIME) as u64);
        self.earlier_clients_unseen = capturing == RequestCapture::NewClientsOnly;
    }

    /// Records were lost (the ring buffer was full): requests may have been among them.
    pub fn lost(&mut self) {
        self.blind_at = Some(self.newest_ns.max(crate::pipeline::enrich::clock_ns(libc::CLOCK_BOOTTIME) as u64));
    }

    /// Keeps a request that asks for a stop or a signal; anything else is dropped here.
    pub fn remember(&mut self, mut r: RequestRecord) {
        r.requests = wire::parse(r.socket, &r.bytes);
        self.newest_ns = self.newest_ns.max(r.boot_ns);
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
            if r.requests.is_empty() && !RELAYS.iter().any(|m| r.client.comm.starts_with(m)) {
                for id in wire::unread_ids(r.socket, &r.bytes) {
                    while self.unread.front().is_some_and(|(t, _)| r.boot_ns.saturating_sub(*t) > self.window_ns)
                        || self.unread.len() >= MAX_KEPT
                    {
                        self.unread.pop_front();
                    }
                    self.unread.push_back((r.boot_ns, id));
                }
            }
            // Only a whole write can be the start of a call the next one ends: the rest of a
            // cut one would be read as the next write's fields.
            if r.requests.is_empty() && r.bytes.len() as u64 >= r.total {
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
        while let Some(front) = self.kept.front() {
            let expired = newest.saturating_sub(front.record.boot_ns) > self.window_ns;
            if !expired && self.kept.len() < MAX_KEPT {
                break;
            }
            if !expired {
                self.blind_at = Some(newest);
            }
            self.kept.pop_front();
        }
        let aliased = match r.socket {
            Socket::SystemdPrivate | Socket::SystemBus => {
                r.requests.iter().map(|q| alias_of(&argv::unit_name(&q.object))).collect()
            }
            _ => Vec::new(),
        };
        self.kept.push_back(Kept { record: r, link, runs: Vec::new(), aliased });
    }

    /// Sets the signal's `requested_by` when a manager sent it and a request named its
    /// target; else, when requests are captured, `no_request` says why none is named.
    pub fn link(&mut self, s: &mut SignalRecord) {
        let Some(at) = s.boot_ns else { return };
        self.newest_ns = self.newest_ns.max(at);
        let Some((sender, object)) = sent_by_manager(s) else { return };
        let (signal, run) = (s.signal.number, s.target.cgroup);
        // A request that named the target but is not this signal's (see `Unlinked`): there
        // was a request, so no absence is claimed.
        let mut unlinked = Unlinked::None;
        let found = self
            .kept
            .iter_mut()
            .rev()
            .filter(|k| k.record.boot_ns <= at && at - k.record.boot_ns <= self.window_ns)
            .filter(|k| !RELAYS.iter().any(|r| k.record.client.comm.starts_with(r)))
            .filter(|k| sender.through.is_none_or(|started| k.record.boot_ns <= started))
            .find_map(|k| {
                let i = k.record.requests.iter().enumerate().position(|(i, q)| {
                    names(&object, k.record.socket, q)
                        || matches!((&object, k.aliased.get(i)), (Object::Unit(u), Some(Some(a))) if a == u)
                })?;
                let q = &k.record.requests[i];
                let kill = matches!(q.method.as_str(), "KillUnit" | "kill" | "Kill");
                if kill && q.signal.is_some_and(|n| n != signal) {
                    unlinked = Unlinked::Other;
                    return None;
                }
                if k.runs.len() <= i {
                    k.runs.resize_with(i + 1, || None);
                }
                // A request nothing followed soon may never have been carried out (refused by
                // polkit, a unit already stopped): a signal long after it is not put down to it.
                if k.runs[i].is_none() && at - k.record.boot_ns > FIRST_SIGNAL_WITHIN_NS {
                    unlinked = Unlinked::Stale(at - k.record.boot_ns);
                    return None;
                }
                match (&mut k.runs[i], run) {
                    (Some(r), Some(cgroup)) => {
                        if !r.admits(cgroup, at) {
                            unlinked = Unlinked::Other;
                            return None;
                        }
                    }
                    (Some(_), None) => {}
                    (slot @ None, cgroup) => *slot = Some(Run { first_ns: at, cgroups: cgroup.into_iter().collect() }),
                }
                Some((&*k, i))
            });
        match found {
            Some((k, i)) => {
                let (r, q) = (&k.record, &k.record.requests[i]);
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
            None if sender.through.is_none() => s.no_request = self.no_request(at, &sender, &object, unlinked),
            None => {}
        }
    }

    /// Why no requester is named, where podsig saw all a request could have been: its
    /// capture covers the window before `at`, nothing was lost since, and the manager's
    /// socket is one it follows. Else nothing: a missing request proves nothing.
    fn no_request(&self, at: u64, manager: &Manager, object: &Object<'_>, unlinked: Unlinked) -> Option<String> {
        let since = self.capturing_since?;
        let from = at.saturating_sub(self.window_ns);
        let ms = |ns: u64| crate::pipeline::story::duration(ns / 1_000_000);
        let (what, asked) = match object {
            Object::Unit(u) => (u.to_string(), "systemd (on its private socket or the system bus)"),
            Object::Container(c) => (
                c.name.clone().unwrap_or_else(|| crate::containers::short(&c.id)),
                "Docker or containerd (on their sockets)",
            ),
        };
        // Each reason a missing request proves nothing comes before the claim.
        Some(if unlinked == Unlinked::Other {
            format!("a request named {what}, but for another signal or an earlier run of it: not this signal's")
        } else if let Unlinked::Stale(ns) = unlinked {
            format!(
                "a request named {what} {} before this signal, and no signal followed it sooner: whether this one is \
                 its, podsig cannot tell",
                ms(ns)
            )
        } else if let Object::Container(c) = object
            && !matches!(c.runtime, Runtime::Docker | Runtime::Containerd)
        {
            format!(
                "requests to {} are not captured, so whether a client asked for this is unknown",
                c.runtime.as_str()
            )
        } else if self.earlier_clients_unseen {
            format!(
                "no request naming {what} was captured, but the clients connected to the managers' sockets before \
                 podsig started could not be listed: one of them may have asked"
            )
        } else if since > from {
            format!(
                "no client asked {asked} to stop or signal {what} in the {} podsig has been capturing requests; one \
                 made before it started cannot be seen",
                ms(at.saturating_sub(since))
            )
        } else if self.blind_at.is_some_and(|b| b >= from) {
            format!("no request naming {what} was captured, but records were lost since: one may have been among them")
        } else if let Object::Container(c) = object
            && self.unread.iter().any(|(t, id)| (from..=at).contains(t) && *id == c.id)
        {
            format!("a call on containerd's socket named {what} with a method podsig could not read: it may have asked")
        } else {
            format!(
                "no client asked {asked} to stop or signal {what} in the {} before: {} acted on its own (a timeout, \
                 watchdog, restart policy, health check, dependency or shutdown)",
                ms(self.window_ns),
                manager.who
            )
        })
    }

    /// The login user's name, from the host's passwd (cached; a name the host does not
    /// know stays a number).
    fn user(&mut self, uid: u32) -> Option<String> {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                // The host's, seen through pid 1's root: in the DaemonSet /etc is the image's.
                let passwd = std::fs::read_to_string("/proc/1/root/etc/passwd")
                    .or_else(|_| std::fs::read_to_string("/etc/passwd"))
                    .ok()?;
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
fn sent_by_manager(s: &SignalRecord) -> Option<(Manager, Object<'_>)> {
    // The kernel's own (an OOM kill's sender is whoever was allocating): no one asked.
    if matches!(s.cause, Cause::OomKill | Cause::Kernel) {
        return None;
    }
    let sender = s.sender.as_ref()?;
    // systemd is the host's pid 1 (a user manager or a container's systemd is not the one
    // whose sockets are followed).
    if sender.is_host_systemd() {
        let unit = s.target.unit.as_deref()?;
        return Some((Manager { who: "systemd".into(), through: None }, Object::Unit(unit)));
    }
    // A stop command systemd ran for the unit (ExecStop=/bin/kill …): a child of pid 1 that
    // signals within seconds of its start. A service's main process is a child of pid 1 too
    // (a master killing its worker, minutes on), which is why the signal must follow the
    // command's start closely, and only a request made before that start can be its reason.
    let mut up = s.ancestry.iter().rev();
    let (me, parent) = (up.next(), up.next());
    if let (Some(me), Some(parent), Some(at)) = (me, parent, s.boot_ns)
        && parent.pid == 1
        && parent.comm == "systemd"
        && me.pid == sender.pid
        && s.target.unit.is_some()
        && at.saturating_sub(me.start_ns) <= STOP_COMMAND_WITHIN_NS
    {
        let unit = s.target.unit.as_deref()?;
        let who = format!("systemd (through {})", sender.comm);
        return Some((Manager { who, through: Some(me.start_ns) }, Object::Unit(unit)));
    }
    let container = s.target.container.as_ref()?;
    // A runtime no manager ran (`runc kill` typed in a shell) is the one who asked, not a
    // manager acting for someone.
    let runtime = s.runtime.as_ref().and_then(|r| r.manager.clone());
    let who =
        runtime.or_else(|| RELAYS[..3].iter().any(|m| sender.comm.starts_with(m)).then(|| sender.comm.clone()))?;
    Some((Manager { who, through: None }, Object::Container(container)))
}

/// The unit `name` is an alias of: its unit file a symlink to another unit's, in the
/// directories systemd reads (the host's, through pid 1's root from the DaemonSet).
fn alias_of(name: &str) -> Option<String> {
    const DIRS: [&str; 4] =
        ["/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"];
    let root = if Path::new("/proc/1/root/etc").exists() { "/proc/1/root" } else { "" };
    DIRS.iter().find_map(|d| {
        let target = std::fs::read_link(format!("{root}{d}/{name}")).ok()?;
        let real = target.file_name()?.to_str()?.to_string();
        // A masked unit links to /dev/null.
        (real != name && real.contains('.')).then_some(real)
    })
}

/// Whether request `q`, made on `socket`, names `object`.
fn names(object: &Object<'_>, socket: Socket, q: &wire::Request) -> bool {
    match (object, socket) {
        (Object::Unit(u), Socket::SystemdPrivate | Socket::SystemBus) => argv::unit_name(&q.object) == *u,
        (Object::Container(c), Socket::Docker) => {
            let o = q.object.as_str();
            // As Docker resolves one: a full ID, a name (Docker's own: a Kubernetes container's
            // name is another runtime's, and not unique), or an ID prefix.
            o == c.id
                || (c.runtime == Runtime::Docker && c.name.as_deref() == Some(o))
                || (o.len() >= 4 && c.id.starts_with(o))
        }
        // containerd's clients name a container by its ID.
        (Object::Container(c), Socket::Containerd) => q.object == c.id,
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
        s.target.container = Some(ContainerRef {
            id: "0123456789abcdef".repeat(4),
            runtime: Runtime::Docker,
            ..sample_container("web")
        });
        s.cause = Cause::RuntimeStop;
        s
    }

    /// `no_request` gives `why` a request may have been missed, and claims nothing.
    fn unclaimed(s: &SignalRecord, why: &str) {
        let n = s.no_request.as_deref().unwrap_or_default();
        assert!(n.contains(why) && !n.contains("acted on its own"), "{n:?}");
    }

    /// Capturing for as long as any window: a missing request may be claimed.
    fn capturing_all_along(window: Duration) -> Requests {
        let mut r = Requests::new(window, RequestCapture::Whole);
        r.capturing_since = Some(0);
        r
    }

    #[test]
    fn a_manager_signal_is_linked_to_the_request_that_named_its_target() {
        let mut r = Requests::new(Duration::from_secs(600), RequestCapture::Whole);
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
        let mut r = capturing_all_along(Duration::from_secs(600));
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
        Requests::new(Duration::from_secs(600), RequestCapture::Off).link(&mut s);
        assert_eq!((s.requested_by, s.no_request), (None, None));
    }

    #[test]
    fn a_missing_request_is_claimed_only_where_podsig_saw_all_there_was() {
        let window = Duration::from_secs(600);
        // Capturing for less than the window: a request before it started is not seen.
        let mut s = from_runc(3_000);
        Requests::new(window, RequestCapture::Whole).link(&mut s);
        assert_eq!(s.requested_by, None);
        unclaimed(&s, "podsig has been capturing requests");
        // Records lost within the window.
        let mut r = capturing_all_along(window);
        r.remember(request(Socket::Docker, 1_000, "docker", &["docker", "ps"]));
        r.lost();
        let mut s = from_runc(r.newest_ns + 1);
        r.link(&mut s);
        unclaimed(&s, "records were lost");
        // A container whose manager's clients are not followed (podman).
        let mut r = capturing_all_along(window);
        let mut s = from_runc(3_000);
        s.target.container.as_mut().unwrap().runtime = Runtime::Podman;
        r.link(&mut s);
        unclaimed(&s, "not captured");
        // A call on containerd that named the container with a method podsig could not read.
        let mut r = capturing_all_along(window);
        let mut s = from_runc(3_000);
        let c = s.target.container.as_mut().unwrap();
        c.runtime = Runtime::Containerd;
        r.unread.push_back((2_000, c.id.clone()));
        r.link(&mut s);
        unclaimed(&s, "could not read");
        // The kernel's own kill (an OOM kill's sender is whoever was allocating).
        let mut s = from_runc(3_000);
        s.cause = Cause::OomKill;
        r.link(&mut s);
        assert_eq!((s.requested_by, s.no_request), (None, None));
    }

    #[test]
    fn a_request_serves_its_own_signal_and_run_only() {
        let mut r = capturing_all_along(Duration::from_secs(600));
        r.remember(request(Socket::Docker, 1_000, "docker", &["docker", "kill", "-s", "HUP", "web"]));
        let named = |at: u64, sig: i32, cgroup: u64| {
            let mut s = from_runc(at);
            s.signal.number = sig;
            s.target.cgroup = Some(cgroup);
            s.target.container.as_mut().unwrap().name = Some("web".into());
            s
        };
        // A SIGTERM minutes after a SIGHUP was asked for: not what it asked, and there was a
        // request, so nothing is claimed either way.
        let mut term = named(2_000, libc::SIGTERM, 7);
        r.link(&mut term);
        assert_eq!(term.requested_by, None);
        unclaimed(&term, "another signal or an earlier run");
        let mut hup = named(2_000, libc::SIGHUP, 7);
        r.link(&mut hup);
        assert!(hup.requested_by.is_some());
        // The same container started again (a new cgroup, after the stop's pass over its
        // processes): the old request is not its reason.
        let mut later = named(2_000 + 2 * RUN_PASS_NS, libc::SIGHUP, 8);
        r.link(&mut later);
        assert_eq!(later.requested_by, None);
        unclaimed(&later, "another signal or an earlier run");
    }

    fn from_systemd(at: u64, unit: &str, cgroup: u64) -> SignalRecord {
        let mut s = sample_signal();
        s.boot_ns = Some(at);
        s.sender = Some(Sender { pid: 1, comm: "systemd".into(), ..Default::default() });
        s.target.unit = Some(unit.into());
        s.target.cgroup = Some(cgroup);
        s.cause = Cause::Process;
        s
    }

    #[test]
    fn one_stop_reaches_every_cgroup_of_its_unit_and_every_object_it_named() {
        let mut r = capturing_all_along(Duration::from_secs(600));
        let argv = ["systemctl", "stop", "user@1000.service", "db.service"];
        r.remember(request(Socket::SystemdPrivate, 1_000, "systemctl", &argv));
        // systemd's pass over a user manager's processes, in cgroups below the unit's.
        for (at, cgroup) in [(2_000, 11), (3_000, 12), (4_000, 13)] {
            let mut s = from_systemd(at, "user@1000.service", cgroup);
            r.link(&mut s);
            assert!(s.requested_by.is_some(), "cgroup {cgroup}: {:?}", s.no_request);
        }
        // The other unit the same command named has a run of its own.
        let mut db = from_systemd(5_000, "db.service", 20);
        r.link(&mut db);
        assert_eq!(db.requested_by.map(|b| b.request.object), Some("db.service".into()));
        // TimeoutStopSec later: the SIGKILL to a process of a cgroup in the pass still is its.
        let mut kill = from_systemd(90 * 1_000_000_000, "user@1000.service", 12);
        kill.signal.number = libc::SIGKILL;
        r.link(&mut kill);
        assert!(kill.requested_by.is_some(), "{:?}", kill.no_request);
    }

    #[test]
    fn a_request_nothing_followed_is_not_the_reason_for_a_later_signal() {
        let mut r = capturing_all_along(Duration::from_secs(600));
        // Refused by polkit, or the unit was not running: systemd signalled nothing.
        r.remember(request(Socket::SystemBus, 1_000, "systemctl", &["systemctl", "restart", "web"]));
        let mut watchdog = from_systemd(1_000 + 2 * FIRST_SIGNAL_WITHIN_NS, "web.service", 5);
        watchdog.signal.number = libc::SIGABRT;
        r.link(&mut watchdog);
        assert_eq!(watchdog.requested_by, None);
        unclaimed(&watchdog, "podsig cannot tell");
    }

    #[test]
    fn a_runtime_run_by_hand_is_not_a_manager_acting_on_its_own() {
        let mut r = capturing_all_along(Duration::from_secs(600));
        // `runc kill ID 9` typed in a shell: runc with no shim, dockerd or containerd above it.
        let mut s = from_runc(3_000);
        s.runtime.as_mut().unwrap().manager = None;
        r.link(&mut s);
        assert_eq!((s.requested_by, s.no_request), (None, None));
    }

    #[test]
    fn clients_connected_before_podsig_that_could_not_be_listed_keep_the_absence_unsaid() {
        let mut r = Requests::new(Duration::from_secs(600), RequestCapture::NewClientsOnly);
        r.capturing_since = Some(0);
        let mut s = from_runc(3_000);
        r.link(&mut s);
        assert_eq!(s.requested_by, None);
        unclaimed(&s, "could not be listed");
    }

    #[test]
    fn a_unit_asked_for_by_an_alias_is_linked() {
        let mut r = capturing_all_along(Duration::from_secs(600));
        r.remember(request(Socket::SystemdPrivate, 1_000, "systemctl", &["systemctl", "stop", "sshd"]));
        // What alias_of reads from /etc/systemd/system/sshd.service -> …/ssh.service.
        r.kept.back_mut().unwrap().aliased = vec![Some("ssh.service".into())];
        let mut s = sample_signal();
        s.boot_ns = Some(2_000);
        s.sender = Some(Sender { pid: 1, comm: "systemd".into(), ..Default::default() });
        s.target.unit = Some("ssh.service".into());
        s.cause = Cause::Process;
        r.link(&mut s);
        let by = s.requested_by.expect("linked through the alias");
        assert_eq!((by.request.method.as_str(), by.request.object.as_str()), ("StopUnit", "sshd.service"));
    }

    #[test]
    fn a_docker_name_is_dockers_own() {
        let mut r = capturing_all_along(Duration::from_secs(600));
        r.remember(request(Socket::Docker, 1_000, "docker", &["docker", "stop", "app"]));
        // A Kubernetes container named app (containerd's): another container altogether.
        let mut s = from_runc(2_000);
        let c = s.target.container.as_mut().unwrap();
        (c.runtime, c.name) = (Runtime::Containerd, Some("app".into()));
        r.link(&mut s);
        assert_eq!(s.requested_by, None);
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
