//! The event model every backend produces and every output consumes.
//!
//! Field names are the JSON schema documented in README.md; change both together.

use std::{borrow::Cow, cell::RefCell, sync::Arc};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::signals;

/// The closed sets print as the words JSON gives them.
macro_rules! display_as_str {
    ($($t:ty),*) => {
        $(impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        })*
    };
}

display_as_str!(BackendName, Runtime, Disposition, Delivery, Scope, Context);

/// The backend that captured a record.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum BackendName {
    Ebpf,
    Stap,
}

impl BackendName {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendName::Ebpf => "ebpf",
            BackendName::Stap => "stap",
        }
    }
}

/// The runtime a container runs under, as its cgroup path or its manager says.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Runtime {
    Containerd,
    Docker,
    Podman,
    #[serde(rename = "cri-o")]
    CriO,
    /// A container podsig cannot place (kubelet's cgroupfs layout names no runtime), or one
    /// a later podsig named that this one does not know.
    #[serde(other)]
    Unknown,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
            Runtime::CriO => "cri-o",
            Runtime::Unknown => "unknown",
        }
    }
}

/// What the target does with a signal, read as it was generated.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// SIG_DFL: the signal's default action.
    Default,
    /// SIG_IGN.
    Ignore,
    Handler,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Default => "default",
            Disposition::Ignore => "ignore",
            Disposition::Handler => "handler",
        }
    }
}

/// What the kernel did with a signal as it generated it (`signal_generate`'s `result`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    Delivered,
    /// Dropped: ignored by the target, or its namespace init's default action.
    Ignored,
    AlreadyPending,
    OverflowFail,
    LoseInfo,
    /// Also what a stored row's word this podsig does not know reads as.
    #[serde(other)]
    Unknown,
}

impl Delivery {
    /// The tracepoint's `result` value (TRACE_SIGNAL_*).
    pub fn from_kernel(result: i32) -> Self {
        match result {
            0 => Delivery::Delivered,
            1 => Delivery::Ignored,
            2 => Delivery::AlreadyPending,
            3 => Delivery::OverflowFail,
            4 => Delivery::LoseInfo,
            _ => Delivery::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::Ignored => "ignored",
            Delivery::AlreadyPending => "already_pending",
            Delivery::OverflowFail => "overflow_fail",
            Delivery::LoseInfo => "lose_info",
            Delivery::Unknown => "unknown",
        }
    }
}

/// Who a signal was sent to, by how it was sent (see `SignalRecord::scope`).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// kill(2), and what records before scopes existed said nothing about.
    #[default]
    Process,
    Thread,
    ProcessGroup,
    EveryProcess,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Process => "process",
            Scope::Thread => "thread",
            Scope::ProcessGroup => "process_group",
            Scope::EveryProcess => "every_process",
        }
    }
}

/// What the CPU was doing when a signal was generated.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Context {
    Task,
    Softirq,
    Hardirq,
    Nmi,
}

impl Context {
    pub fn as_str(self) -> &'static str {
        match self {
            Context::Task => "task",
            Context::Softirq => "softirq",
            Context::Hardirq => "hardirq",
            Context::Nmi => "nmi",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
// Records are boxed where they queue (the history's channel); boxing the variant would touch
// every match on a record for no gain on the hot path, which moves one record at a time.
#[allow(clippy::large_enum_variant)]
pub enum Record {
    Signal(SignalRecord),
    Exit(ExitRecord),
    Lost(LostRecord),
    /// The OOM killer's victim mark; folded into the SIGKILL it follows, never printed alone.
    Oom(OomInfo),
    /// A client's write to a manager's control socket: the evidence a manager's signal is
    /// linked to (`SignalRecord::requested_by`), never printed alone.
    Request(Box<RequestRecord>),
}

impl Record {
    /// The stop this record ended or began, when it is a signal or an exit that has one.
    pub fn stop(&self) -> Option<&Stop> {
        match self {
            Record::Signal(s) => s.stop.as_ref(),
            Record::Exit(e) => e.stop.as_ref(),
            _ => None,
        }
    }
}

/// Where a process lives, as events report it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerRef {
    pub id: String,
    /// The Kubernetes container name (its CRI label), else the runtime's own name for the
    /// container (`docker run --name`, `podman run --name`), when known.
    pub name: Option<String>,
    /// containerd, docker, podman, cri-o or unknown.
    pub runtime: Runtime,
    pub pod: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignalId {
    pub number: i32,
    pub name: String,
}

impl SignalId {
    pub fn new(number: i32) -> Self {
        Self { number, name: signals::name(number) }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Code {
    pub value: i32,
    pub name: Option<Cow<'static, str>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Target {
    pub pid: u32,
    pub tid: u32,
    /// Pid inside the process's own pid namespace (what `ps` shows in a container); null
    /// when the backend cannot see it.
    pub ns_pid: Option<u32>,
    pub comm: String,
    /// The container the process runs in; null on the host (or when it cannot be told).
    pub container: Option<ContainerRef>,
    /// What the target does with this signal, read as it was generated: `default`,
    /// `ignore` or `handler`; null when the backend cannot see it.
    #[serde(default)]
    pub disposition: Option<Disposition>,
    /// The signal is in the target thread's blocked mask.
    #[serde(default)]
    pub blocked: Option<bool>,
    /// The target is pid 1 of its pid namespace (a container's init, or the system's): the
    /// kernel drops every signal it has no handler for, unless forced from outside.
    #[serde(default)]
    pub ns_init: Option<bool>,
    /// Its process was already exiting (a fatal signal had begun its group exit) and the
    /// kernel dropped this signal for it; null when the backend cannot see it.
    #[serde(default)]
    pub exiting: Option<bool>,
    /// A SIGCONT that resumed the target from a stop (the kernel does that when SIGCONT is
    /// sent, whatever then happens to its delivery); absent for other signals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed: Option<bool>,
    /// Its process group (in the host's pid namespace), as the kernel had it.
    #[serde(default)]
    pub pgid: Option<u32>,
    /// The process tracing it (ptrace: a debugger, strace), when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traced_by: Option<u32>,
    /// The systemd unit it runs in (`nginx.service`, `session-4.scope`), from its cgroup.
    #[serde(default)]
    pub unit: Option<String>,
    /// Inode number of the process's pid namespace, when captured.
    #[serde(skip)]
    pub pidns: Option<u32>,
    /// Inode of its memory cgroup's directory, captured with SIGKILLs (OOM kills).
    #[serde(skip)]
    pub memcg: Option<u64>,
    /// Inode of its cgroup directory in the unified hierarchy, as the kernel had it.
    #[serde(skip)]
    pub cgroup: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sender {
    pub pid: u32,
    pub tid: u32,
    pub ns_pid: Option<u32>,
    pub ppid: u32,
    pub uid: u32,
    /// The audit login uid: the user who logged in, whatever `sudo` made it since; null
    /// when unset (a daemon) or not captured.
    #[serde(default)]
    pub login_uid: Option<u32>,
    /// The audit session of that login.
    #[serde(default)]
    pub session: Option<u32>,
    pub comm: String,
    /// The executable it ran at signal time: the kernel's path when it had the whole path;
    /// else /proc's, only while the same process (pid and start time) still runs the very
    /// file the kernel captured (inode and device), or, where it captured none, while a
    /// thread still has the comm it signalled with (exec keeps pid and start time); else null.
    pub exe: Option<String>,
    pub argv: Vec<String>,
    /// argv was longer than podsig captures: `argv` holds its head, `…`, and its tail.
    #[serde(default)]
    pub argv_truncated: bool,
    /// A kernel thread (no user space): its signals are the kernel's own.
    pub kthread: bool,
    /// It was exiting (PF_EXITING): what it "sent" then — SIGCHLD to its parent, a child's
    /// parent-death signal, SIGHUP to its terminal's job — the kernel sent as it died.
    #[serde(default)]
    pub exiting: bool,
    /// The systemd unit it runs in, from its cgroup.
    #[serde(default)]
    pub unit: Option<String>,
    pub container: Option<ContainerRef>,
    #[serde(skip)]
    pub pidns: Option<u32>,
}

impl Sender {
    /// The host's systemd (pid 1): the manager whose units records name and whose sockets
    /// are followed; a user manager (`systemd --user`) or a container's systemd is not it.
    pub fn is_host_systemd(&self) -> bool {
        self.pid == 1 && self.comm == "systemd"
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ancestor {
    pub pid: u32,
    pub comm: String,
    /// Start time in ns since boot.
    pub start_ns: u64,
    /// Its executable as the kernel had it at signal time; null for kernel threads, processes
    /// past their exit, and backends that cannot see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<Exe>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kthread: bool,
}

/// A process's executable, identified in the kernel at signal time.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Exe {
    /// Its path, or its last components after `…/` when the kernel walk kept only those;
    /// null when not captured (kernels without bpf_loop).
    pub path: Option<String>,
    pub ino: u64,
    /// The file system's device, `major:minor`.
    pub dev: String,
    /// The file system type (`ext4`, `overlay`, `tmpfs` — also shm and memfd —, …), or its
    /// magic number in hex when podsig does not know the name.
    pub fs: String,
    /// No links left: deleted since it started, or never linked (memfd, O_TMPFILE).
    pub unlinked: bool,
    /// On a kernel-internal mount (memfd): no file system path leads to it.
    pub internal_mount: bool,
    /// Its mount is in another mount namespace than the process's own.
    pub other_mount_ns: bool,
}

/// A sender's ancestry, root first. Shared, because a storm from one sender repeats it in
/// every record: the backend decodes it once and the JSON output renders it once (the
/// rendering was a third of a storm's cost in the reader).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ancestry(Arc<Vec<Ancestor>>);

impl Ancestry {
    pub fn shares(&self, other: &Ancestry) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl From<Vec<Ancestor>> for Ancestry {
    fn from(v: Vec<Ancestor>) -> Self {
        Self(Arc::new(v))
    }
}

impl std::ops::Deref for Ancestry {
    type Target = [Ancestor];
    fn deref(&self) -> &[Ancestor] {
        &self.0
    }
}

impl Serialize for Ancestry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        thread_local! {
            /// The last ancestry rendered, kept alive so its pointer cannot be reused.
            static RENDERED: RefCell<Option<(Ancestry, Box<RawValue>)>> = const { RefCell::new(None) };
        }
        RENDERED.with_borrow_mut(|last| {
            if !last.as_ref().is_some_and(|(a, _)| a.shares(self)) {
                let json = serde_json::to_string(&*self.0).map_err(S::Error::custom)?;
                *last = Some((self.clone(), RawValue::from_string(json).map_err(S::Error::custom)?));
            }
            last.as_ref().map(|(_, raw)| raw).expect("just rendered").serialize(s)
        })
    }
}

impl<'de> Deserialize<'de> for Ancestry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<Ancestor>::deserialize(d).map(Into::into)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SignalRecord {
    pub time: String,
    /// The node (host) that saw it: `--node-name`, else $NODE_NAME, else the hostname.
    pub node: Option<String>,
    /// ns since boot (CLOCK_BOOTTIME); null from backends without that clock (stap).
    pub boot_ns: Option<u64>,
    pub backend: BackendName,
    pub signal: SignalId,
    pub code: Code,
    /// si_errno; null when the backend cannot read the siginfo.
    pub errno: Option<i32>,
    pub group: bool,
    /// Delivery outcome; null when the backend hooks before delivery is decided (stap).
    pub result: Option<Delivery>,
    /// How many identical signals this record stands for: the same sender thread sent the
    /// same signal with the same code and outcome to the same target, and the reader took
    /// them from the kernel together (a storm prints a line per batch, not per signal).
    /// `time` is the first one's, `last_time` the last one's.
    #[serde(default = "one")]
    pub count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_time: Option<String>,
    #[serde(skip)]
    pub last_boot_ns: Option<u64>,
    /// The kernel's run of identical signals this record started (ebpf); 0: none.
    #[serde(skip)]
    pub seq: u64,
    pub target: Target,
    /// Who scoped the signal: `process` (kill), `thread` (tkill, tgkill, or a thread-directed
    /// kernel signal), `process_group` (kill(-pgid) or kill(0)), `every_process` (kill(-1)).
    #[serde(default)]
    pub scope: Scope,
    /// The process group a `process_group` signal went to; null for the sender's own (kill(0)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgid: Option<u32>,
    /// The task that sent it; null when the kernel raised it in interrupt context (a timer,
    /// I/O), where the task on the CPU had nothing to do with it.
    pub sender: Option<Sender>,
    /// When a manager (systemd, dockerd, containerd and the runtime it ran) sent it: the
    /// client that asked the manager for it, from its request on the manager's socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<RequestedBy>,
    /// When a manager sent it and no request named its target: why none is named (the
    /// manager acted on its own, or requests could not be seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_request: Option<String>,
    /// In interrupt context: the task the interrupt happened to land on. Not the sender.
    #[serde(default)]
    pub interrupted: Option<Interrupted>,
    /// What the CPU was doing when the signal was generated: `task`, `softirq`, `hardirq`,
    /// `nmi`; null when this kernel does not say.
    #[serde(default)]
    pub context: Option<Context>,
    /// Root (pid 0) first, the sender last.
    pub ancestry: Ancestry,
    pub ancestry_complete: bool,
    /// Where sender details came from: captured in the kernel at signal time, or read from
    /// /proc afterwards (kernels without BTF), which misses senders that already exited.
    pub ancestry_source: AncestrySource,
    /// The signal-sending syscall the sender was in (`kill`, `tgkill`, …), or null when the
    /// kernel generated the signal (or, without BTF, when it could not be told).
    pub syscall: Option<Cow<'static, str>>,
    /// Syscall number in progress in the sender, whatever it was; None when unreadable.
    #[serde(skip)]
    pub syscall_nr: Option<i32>,
    /// That syscall's first argument (kill(2)'s pid), when read.
    #[serde(skip)]
    pub syscall_arg0: Option<i64>,
    pub cause: Cause,
    /// What the evidence says, in words: the mechanism, the runtime and manager, the syscall.
    pub cause_detail: String,
    /// OOM killer facts, when `cause` is `oom_kill`.
    pub oom: Option<OomInfo>,
    /// The OCI runtime and container manager, when `cause` is `runtime_stop`.
    pub runtime: Option<RuntimeInfo>,
    /// Suspicious processes in the sender's ancestry.
    pub findings: Vec<Finding>,
    /// The terminating signal sent before this one to the same process, or to its
    /// container's init, within the story window; null when none (or not a terminating
    /// signal).
    #[serde(default)]
    pub preceded_by: Option<PrecededBy>,
    /// When this signal ends the target's story (a SIGKILL, or a signal that is certain to
    /// kill it): the verdict for the stop; else null.
    #[serde(default)]
    pub stop: Option<Stop>,
    /// What this record leaves out because the build of the hook that captured it cannot
    /// see it (an older kernel, or a build the kernel refused: `podsig doctor` says which);
    /// absent when nothing is left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lacks: Vec<Lack>,
}

/// A capability a weaker build of the signal hook does not have (see `SignalRecord::lacks`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Lack {
    /// Each ancestor's executable as the kernel had it at signal time (inode, file system,
    /// deleted or not, path): findings come from /proc, and only for processes still alive.
    ExecutableIdentity,
    /// The sender's argv and ancestry at signal time: read from /proc afterwards, and gone
    /// for a sender that already exited.
    KernelAncestry,
    /// What the target does with the signal: its disposition, blocked mask, namespace init.
    TargetDisposition,
    /// What the CPU was doing (an interrupt's signal is not its task's) and the sender's
    /// syscall.
    Context,
}

impl Lack {
    pub fn as_str(self) -> &'static str {
        match self {
            Lack::ExecutableIdentity => "executable_identity",
            Lack::KernelAncestry => "kernel_ancestry",
            Lack::TargetDisposition => "target_disposition",
            Lack::Context => "context",
        }
    }

    /// In words, for the line that says a weaker build runs.
    pub fn words(self) -> &'static str {
        match self {
            Lack::ExecutableIdentity => "executable identity (findings come from /proc)",
            Lack::KernelAncestry => "argv and ancestry at signal time (read from /proc)",
            Lack::TargetDisposition => "the target's disposition",
            Lack::Context => "interrupt context and the sender's syscall",
        }
    }
}

/// Who wrote to a manager's socket, captured in the kernel as a signal's sender is.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Client {
    pub pid: u32,
    pub tid: u32,
    pub ns_pid: Option<u32>,
    pub ppid: u32,
    pub uid: u32,
    /// The audit login uid and session (who logged in, behind `sudo`); null when unset.
    pub login_uid: Option<u32>,
    /// The login user's name, when this host knows the uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_user: Option<String>,
    pub session: Option<u32>,
    /// Its controlling terminal (`pts/3`), if any.
    pub tty: Option<String>,
    pub comm: String,
    pub argv: Vec<String>,
    #[serde(default)]
    pub argv_truncated: bool,
    /// Its executable as the kernel had it when it wrote.
    pub exe: Option<String>,
    /// Its start, ns since boot: with the pid, which process it was.
    #[serde(skip)]
    pub start_ns: u64,
}

/// A client's write to a manager's socket (see `Record::Request`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RequestRecord {
    pub time: String,
    pub node: Option<String>,
    pub boot_ns: u64,
    pub socket: crate::requests::wire::Socket,
    /// `write`, `writev`, `sendto` or `sendmsg`.
    pub syscall: String,
    pub fd: u32,
    pub client: Client,
    pub ancestry: Ancestry,
    pub ancestry_complete: bool,
    /// What it wrote, as far as captured; `total` the bytes it asked to write.
    #[serde(skip)]
    pub bytes: Vec<u8>,
    pub total: u64,
    /// The stop-or-signal requests those bytes carry (the requests stage parses them).
    pub requests: Vec<crate::requests::wire::Request>,
}

/// The client that asked a manager for a signal (see `SignalRecord::requested_by`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RequestedBy {
    /// `systemd`, `docker` or `containerd`.
    pub manager: String,
    pub request: crate::requests::wire::Request,
    /// How the request was tied to the signal's target: `request` (the request's own body
    /// names it) or `argv` (the client's command line does, where the body could not be read).
    pub link: String,
    pub time: String,
    pub elapsed_ms: u64,
    pub client: Client,
    /// The client's ancestry, root first, the client last.
    pub ancestry: Ancestry,
}

fn one() -> u64 {
    1
}

/// The task an interrupt landed on (see `SignalRecord::interrupted`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Interrupted {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
}

impl SignalRecord {
    /// A record of signal `sig` with si_code `code` from `backend`, everything else not yet
    /// known: each backend fills in what it sees, the pipeline the rest.
    pub fn new(backend: BackendName, sig: i32, code: i32) -> Self {
        SignalRecord {
            time: String::new(),
            node: None,
            boot_ns: None,
            backend,
            signal: SignalId::new(sig),
            code: Code { value: code, name: signals::code_name(sig, code).map(Cow::Borrowed) },
            errno: None,
            group: false,
            result: None,
            count: 1,
            last_time: None,
            last_boot_ns: None,
            seq: 0,
            target: Target::default(),
            scope: Scope::Process,
            pgid: None,
            sender: None,
            requested_by: None,
            no_request: None,
            interrupted: None,
            context: None,
            ancestry: Ancestry::default(),
            ancestry_complete: false,
            ancestry_source: AncestrySource::Kernel,
            syscall: None,
            syscall_nr: None,
            syscall_arg0: None,
            cause: Cause::Unknown,
            cause_detail: String::new(),
            oom: None,
            runtime: None,
            findings: Vec::new(),
            preceded_by: None,
            stop: None,
            lacks: Vec::new(),
        }
    }

    /// The sender's comm and pid, or `kernel` when the signal came from interrupt context.
    pub fn sender_name(&self) -> String {
        self.sender.as_ref().map_or_else(|| "kernel".to_string(), |s| format!("{}({})", s.comm, s.pid))
    }
}

/// A process named by pid and comm, as a story remembers it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Party {
    pub pid: u32,
    pub comm: String,
}

/// The terminating signal that came before (see `SignalRecord::preceded_by`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PrecededBy {
    pub signal: SignalId,
    /// When it was sent (its last one, for a record standing for several).
    pub time: String,
    /// From it to this record.
    pub elapsed_ms: u64,
    /// Its delivery outcome, and what its target did with it, as captured then.
    pub result: Option<Delivery>,
    #[serde(default)]
    pub disposition: Option<Disposition>,
    #[serde(default)]
    pub blocked: Option<bool>,
    #[serde(default)]
    pub ns_init: Option<bool>,
    /// Its target was already exiting, and the kernel dropped it for that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exiting: Option<bool>,
    /// The process it went to: this one, or its container's init.
    pub target: Party,
    /// Null when the kernel raised it in interrupt context.
    pub sender: Option<Party>,
    #[serde(default)]
    pub cause: Cause,
}

/// How a target's story ended, and what to change.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stop {
    /// Null when the backend did not capture what tells the verdicts apart (SystemTap: a
    /// SIGTERM followed by SIGKILL, with no disposition).
    pub verdict: Option<Verdict>,
    /// From the first stop request (SIGTERM, SIGINT, SIGQUIT) of the story to this record:
    /// the grace it used; null when there was none.
    pub elapsed_ms: Option<u64>,
    /// The target was its container's init: this is the container's stop (what
    /// `podsig_stops_total` counts and `podsig why` answers).
    #[serde(default)]
    pub container_init: bool,
    /// What happened, in words.
    pub summary: String,
    /// What to change.
    pub fix: String,
}

/// The stop's story, named.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It had a handler for the stop request (SIGTERM), and exited without a SIGKILL.
    GracefulExit,
    /// The stop request's default action ended it: it had no handler, so nothing was
    /// cleaned up (exit code 143 for SIGTERM).
    EndedByDefaultAction,
    /// The stop request was dropped (ignored, or a namespace init without a handler), and
    /// it exited later without a SIGKILL: not because of the request.
    ExitedOnItsOwn,
    /// The stop request was dropped (ignored, or a namespace init without a handler) and
    /// SIGKILL came when the grace period ran out.
    GraceExpiredTermIgnored,
    /// It had a handler for the stop request, but had not exited when SIGKILL came.
    GraceExpiredTermHandled,
    /// SIGKILL with no stop request before it.
    KilledWithoutTerm,
    /// The OOM killer.
    OomKill,
    /// The kernel ended it (a fault, its namespace's init exiting, a limit).
    Kernel,
    /// A process ended it with a signal that is not a stop request (abort(), `kill -SEGV`).
    Process,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::GracefulExit => "graceful_exit",
            Verdict::EndedByDefaultAction => "ended_by_default_action",
            Verdict::ExitedOnItsOwn => "exited_on_its_own",
            Verdict::GraceExpiredTermIgnored => "grace_expired_term_ignored",
            Verdict::GraceExpiredTermHandled => "grace_expired_term_handled",
            Verdict::KilledWithoutTerm => "killed_without_term",
            Verdict::OomKill => "oom_kill",
            Verdict::Kernel => "kernel",
            Verdict::Process => "process",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    OomKill,
    Kernel,
    RuntimeStop,
    Process,
    #[default]
    Unknown,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::OomKill => "oom_kill",
            Cause::Kernel => "kernel",
            Cause::RuntimeStop => "runtime_stop",
            Cause::Process => "process",
            Cause::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OomInfo {
    pub pid: u32,
    #[serde(skip)]
    pub boot_ns: u64,
    pub total_vm_kb: Option<u64>,
    pub anon_rss_kb: Option<u64>,
    pub file_rss_kb: Option<u64>,
    pub shmem_rss_kb: Option<u64>,
    pub pgtables_kb: Option<u64>,
    pub oom_score_adj: Option<i32>,
    /// The victim's memory cgroup (where its limit applies), when /proc still shows it.
    pub memory_cgroup: Option<String>,
    pub memory_limit_bytes: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// runc, crun, youki, …
    pub runtime: String,
    /// containerd-shim, conmon, dockerd, … as seen in the sender's ancestry; null if none.
    pub manager: Option<String>,
}

/// Something about a process in the sender's ancestry a person would flag. `pid`, `comm`
/// and `start_ns` are the ancestor's, as captured with the signal.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Finding {
    pub pid: u32,
    pub comm: String,
    #[serde(default)]
    pub start_ns: u64,
    pub kind: FindingKind,
    #[serde(default)]
    pub severity: Severity,
    /// Where the fact came from: the kernel at signal time, /proc afterwards (for the same
    /// process, pid and start time, still running what it ran then), or, for a script or a
    /// program run by the loader, the argv that named it (see `Evidence`).
    #[serde(default)]
    pub evidence: Evidence,
    pub detail: String,
    /// The script an interpreter ran (`python3 /tmp/x.py`), or the program the dynamic
    /// loader ran (`ld-linux-x86-64.so.2 /tmp/x`), when the finding is about that file
    /// rather than the executable; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The executable was deleted after the process started (and nothing replaced it).
    DeletedExecutable,
    /// The executable was replaced by a newer file at the same path (an upgrade).
    ReplacedExecutable,
    /// Runs from an anonymous memory file (memfd): no file system holds it.
    FilelessExecutable,
    /// Runs from /tmp, /var/tmp or /dev/shm.
    WritableLocation,
    /// A user process named like a kernel thread.
    KernelThreadName,
    /// Named like a well-known daemon it is not.
    Impersonation,
    /// comm differs from the executable's name (symlinks, self-chosen names: weak alone).
    CommMismatch,
    /// A host-side process running a binary from a container's filesystem.
    ContainerBinaryOnHost,
}

/// How much a finding says alone.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Strong alone.
    Alert,
    /// Worth a look.
    #[default]
    Warning,
    /// Weak alone (printed with -v).
    Note,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Alert => "alert",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Evidence {
    /// The kernel, at signal time.
    #[default]
    Kernel,
    /// /proc, afterwards, for the same process still running what it ran then.
    Proc,
    /// The sender's argv as the kernel captured it at signal time named the script.
    Argv,
    /// /proc/PID/cmdline of the same live process named the script.
    Cmdline,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AncestrySource {
    #[default]
    Kernel,
    Proc,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitRecord {
    pub time: String,
    /// The node (host) that saw it: `--node-name`, else $NODE_NAME, else the hostname.
    pub node: Option<String>,
    pub boot_ns: Option<u64>,
    pub backend: BackendName,
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    /// Exit status when the process exited normally.
    pub status: Option<i32>,
    /// Terminating signal when a signal ended it.
    pub signal: Option<SignalId>,
    pub core_dumped: bool,
    /// The container it ran in, when known (from the watch, or from the signals it got).
    #[serde(default)]
    pub container: Option<ContainerRef>,
    /// The systemd unit it ran in, when known (from its cgroup while it lived).
    #[serde(default)]
    pub unit: Option<String>,
    /// The last terminating signal it got within the story window; null when none.
    #[serde(default)]
    pub preceded_by: Option<PrecededBy>,
    /// When this exit ends its story (it exited after a stop request, with no SIGKILL):
    /// the verdict; else null.
    #[serde(default)]
    pub stop: Option<Stop>,
}

impl ExitRecord {
    /// An exit as a backend reports it: `exit_code` in the kernel's wait-status encoding, or
    /// None when the backend could not read it. Time, node and container are filled later.
    pub fn new(backend: BackendName, pid: u32, tid: u32, comm: String, exit_code: Option<i32>) -> Self {
        let (status, signal, core_dumped) = exit_code.map_or((None, None, false), Self::decode);
        Self {
            time: String::new(),
            node: None,
            boot_ns: None,
            backend,
            pid,
            tid,
            comm,
            status,
            signal,
            core_dumped,
            container: None,
            unit: None,
            preceded_by: None,
            stop: None,
        }
    }

    /// The exit code a container runtime reports for it: the status, or 128 + the signal.
    pub fn exit_code(&self) -> Option<i32> {
        self.signal.as_ref().map(|s| 128 + s.number).or(self.status)
    }

    /// Splits a kernel `exit_code` (wait-status encoding) into status / signal / core.
    pub fn decode(exit_code: i32) -> (Option<i32>, Option<SignalId>, bool) {
        let sig = exit_code & 0x7f;
        if sig == 0 {
            (Some((exit_code >> 8) & 0xff), None, false)
        } else {
            (None, Some(SignalId::new(sig)), exit_code & 0x80 != 0)
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LostRecord {
    pub time: String,
    /// The node (host) that saw it: `--node-name`, else $NODE_NAME, else the hostname.
    pub node: Option<String>,
    pub backend: BackendName,
    /// Events dropped in kernel since the previous lost record (ring buffer full).
    pub count: u64,
}

/// Bytes from the kernel (comm, argv) as a string: lossy, so JSON output stays valid
/// whatever a process named itself; stops at the first NUL.
pub fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// argv as the kernel lays it out: NUL-separated, possibly cut short by the capture bound.
pub fn split_argv(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

/// A container `app` of pod `prod/<pod>`, with ID `<pod>0123456789abcdef`, for tests.
#[cfg(test)]
pub fn sample_container(pod: &str) -> ContainerRef {
    ContainerRef {
        id: format!("{pod}0123456789abcdef"),
        name: Some("app".into()),
        runtime: Runtime::Containerd,
        pod: Some(pod.into()),
        namespace: Some("prod".into()),
    }
}

/// A complete signal record for tests: pkill(23549) sends SIGKILL to server(7942).
#[cfg(test)]
pub fn sample_signal() -> SignalRecord {
    let a = |pid, comm: &str, start_ns| Ancestor { pid, comm: comm.into(), start_ns, ..Default::default() };
    SignalRecord {
        time: "2026-11-24T20:17:30.123456789Z".into(),
        boot_ns: Some(1),
        errno: Some(0),
        group: true,
        result: Some(Delivery::Delivered),
        target: Target { pid: 7942, tid: 7942, ns_pid: Some(1), comm: "server".into(), ..Default::default() },
        sender: Some(Sender {
            pid: 23549,
            tid: 23549,
            ns_pid: Some(23549),
            ppid: 23495,
            uid: 0,
            comm: "pkill".into(),
            argv: vec!["pkill".into(), "-9".into(), "server".into()],
            ..Default::default()
        }),
        context: Some(Context::Task),
        ancestry: vec![
            a(0, "swapper/0", 0),
            a(1, "systemd", 80_000_000),
            a(23495, "bash", 2_008_504_817_798_337),
            a(23549, "pkill", 2_008_505_202_486_630),
        ]
        .into(),
        ancestry_complete: true,
        ..SignalRecord::new(BackendName::Ebpf, 9, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_decoding() {
        assert_eq!(ExitRecord::decode(9), (None, Some(SignalId::new(9)), false));
        assert_eq!(ExitRecord::decode(0x8b), (None, Some(SignalId::new(11)), true));
        assert_eq!(ExitRecord::decode(3 << 8), (Some(3), None, false));
        assert_eq!(ExitRecord::decode(0), (Some(0), None, false));
    }

    #[test]
    fn kernel_strings() {
        assert_eq!(cstr(b"sleep\0\0\0garbage"), "sleep");
        assert_eq!(cstr(&[0xff, b'a']), "\u{fffd}a");
        assert_eq!(split_argv(b"pkill\0-9\0server\0"), vec!["pkill", "-9", "server"]);
        assert_eq!(split_argv(b"sh\0-c\0kill -TERM 4"), vec!["sh", "-c", "kill -TERM 4"]);
        assert!(split_argv(b"").is_empty());
    }

    #[test]
    fn json_shape() {
        let r = Record::Lost(LostRecord {
            time: "t".into(),
            node: Some("n1".into()),
            backend: BackendName::Ebpf,
            count: 3,
        });
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"kind":"lost","time":"t","node":"n1","backend":"ebpf","count":3}"#
        );
    }

    #[test]
    fn a_shared_ancestry_renders_the_same_json_each_time() {
        let a = sample_signal();
        let mut b = sample_signal();
        let first = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), first, "from the cache");
        // Another ancestry is rendered afresh, not taken from the cache.
        b.ancestry = b.ancestry[..2].to_vec().into();
        let other: serde_json::Value = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(other["ancestry"].as_array().unwrap().len(), 2);
        let again: serde_json::Value = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(again["ancestry"][3]["comm"], "pkill");
    }

    /// The closed sets are written as the words they were before they were types (the
    /// history holds those words, and README and the tests read them).
    #[test]
    fn closed_sets_serialize_as_their_words() {
        fn word<T: Serialize>(v: T) -> String {
            serde_json::to_string(&v).unwrap().trim_matches('"').to_string()
        }
        for r in [Runtime::Containerd, Runtime::Docker, Runtime::Podman, Runtime::CriO, Runtime::Unknown] {
            assert_eq!(word(r), r.as_str());
        }
        for d in [Disposition::Default, Disposition::Ignore, Disposition::Handler] {
            assert_eq!(word(d), d.as_str());
        }
        for r in 0..6 {
            assert_eq!(word(Delivery::from_kernel(r)), Delivery::from_kernel(r).as_str());
        }
        for sc in [Scope::Process, Scope::Thread, Scope::ProcessGroup, Scope::EveryProcess] {
            assert_eq!(word(sc), sc.as_str());
        }
        for c in [Context::Task, Context::Softirq, Context::Hardirq, Context::Nmi] {
            assert_eq!(word(c), c.as_str());
        }
        for b in [BackendName::Ebpf, BackendName::Stap] {
            assert_eq!(word(b), b.as_str());
        }
        assert_eq!(serde_json::from_str::<Runtime>(r#""lxc""#).unwrap(), Runtime::Unknown);
        // A result word a newer kernel or podsig adds reads as unknown, not as an error.
        assert_eq!(serde_json::from_str::<Delivery>(r#""deferred""#).unwrap(), Delivery::Unknown);
    }

    #[test]
    fn json_round_trip() {
        // `podsig history` reads back what `podsig record` stored: every field survives.
        let mut s = sample_signal();
        s.syscall = Some("kill".into());
        s.target.container = Some(sample_container("web-1"));
        let r = Record::Signal(s);
        let back: Record = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
