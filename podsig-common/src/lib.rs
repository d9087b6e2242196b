//! Wire types shared by the eBPF program and userspace.
//!
//! Everything here is `#[repr(C)]` with explicit padding so both sides agree on the layout
//! byte for byte: `bytemuck`'s `Pod` derive refuses to compile a struct with hidden padding,
//! and gives userspace its byte views without `unsafe`. The `user` feature marks the types
//! `aya::Pod` so userspace can pass them to the kernel (globals, map values) and read them
//! back from the ring buffer.
#![no_std]

use bytemuck::{Pod, Zeroable};

/// Length of `task_struct::comm` (TASK_COMM_LEN), NUL included.
pub const COMM_LEN: usize = 16;
/// Bytes of the sender's command line captured in kernel, from its own memory. A longer one
/// is kept as its first `ARGV_HEAD` and last `ARGV_LEN - ARGV_HEAD` bytes: the end of a long
/// command line (`runc … kill <id> <signal>`) is often what says what it did.
pub const ARGV_LEN: usize = 1024;
pub const ARGV_HEAD: usize = 640;
/// Bytes of an executable's path kept per ancestor: its last components (`tmp/vGhyM0`,
/// `usr/bin/bash`), walked up through the dentries and mounts in the kernel.
pub const EXE_PATH_LEN: usize = 64;
/// Ancestors walked through `real_parent`, sender included. Deep enough for container
/// runtimes (systemd → containerd → shim → runc → init → …) with room to spare.
pub const MAX_ANCESTRY: usize = 40;

/// Event record tags: the first `u32` of every ring-buffer record.
pub const EVENT_SIGNAL: u32 = 1;
pub const EVENT_EXIT: u32 = 2;
pub const EVENT_OOM: u32 = 3;
pub const EVENT_FOLD: u32 = 4;
/// A client wrote to a manager's control socket (`RequestFull`).
pub const EVENT_REQUEST: u32 = 5;

/// Bytes of a client's write to a manager's socket that are kept: a D-Bus StopUnit, an HTTP
/// request line, a gRPC Kill fit with room to spare.
pub const REQUEST_LEN: usize = 1024;
/// A Unix socket path as `sockaddr_un` holds it, NUL-padded to a multiple of 8.
pub const SOCKET_PATH_LEN: usize = 112;
/// The terminal's name kept (`tty_struct::name`: `pts3`, `tty1`).
pub const TTY_LEN: usize = 16;
/// `RequestHead::syscall`: how the client wrote.
pub const REQUEST_WRITE: u32 = 1;
pub const REQUEST_WRITEV: u32 = 2;
pub const REQUEST_SENDTO: u32 = 3;
pub const REQUEST_SENDMSG: u32 = 4;

/// `SignalEvent::flags` bits.
/// The walk reached pid 0 (the idle task) within `MAX_ANCESTRY` levels.
pub const FLAG_ANCESTRY_COMPLETE: u32 = 1 << 0;
/// `info` was SEND_SIG_NOINFO / SEND_SIG_PRIV rather than a real siginfo.
pub const FLAG_NO_SIGINFO: u32 = 1 << 1;
/// Captured by the classic-tracepoint fallback (no kernel BTF): only the tracepoint's fields
/// and the `current` helpers are known; userspace fills the rest from /proc.
pub const FLAG_NO_BTF: u32 = 1 << 2;
/// The sender is a kernel thread (no user memory, no user-space syscall).
pub const FLAG_KTHREAD: u32 = 1 << 3;
/// The record carries no `SenderDetail`: its sender's argv and ancestry are those of the last
/// full record for the same sender thread (`sender_tid`, `sender_start_ns`), sent within
/// `FilterConfig::repeat_window_ms` on the same CPU, so earlier in the ring buffer.
pub const FLAG_SENDER_REPEAT: u32 = 1 << 4;
/// The sender was exiting (PF_EXITING): whatever it signals now — SIGCHLD to its parent, a
/// child's parent-death signal, SIGHUP to its session — is the kernel's doing, whatever
/// syscall its registers still show.
pub const FLAG_SENDER_EXITING: u32 = 1 << 5;
/// The target is its pid namespace's init (SIGNAL_UNKILLABLE): the kernel drops signals it
/// has no handler for, unless forced from an ancestor namespace (SIGKILL, SIGSTOP).
pub const FLAG_TARGET_UNKILLABLE: u32 = 1 << 6;
/// The signal is in the target thread's blocked mask.
pub const FLAG_TARGET_BLOCKED: u32 = 1 << 7;
/// The sender's command line was longer than `ARGV_LEN`: head and tail were kept.
pub const FLAG_ARGV_TRUNCATED: u32 = 1 << 8;
/// The target's process was exiting as a group (SIGNAL_GROUP_EXIT) when the signal came:
/// set by the fatal signal that began it (its own record), and, from 5.17 on, the reason the
/// kernel drops every later one but a core dump's SIGKILL (earlier kernels still queue them).
pub const FLAG_TARGET_GROUP_EXIT: u32 = 1 << 9;
/// A SIGCONT that ended the target's stop (or the stop it was entering): the kernel resumes
/// a stopped process when SIGCONT is generated, whatever happens to its delivery.
pub const FLAG_TARGET_RESUMED: u32 = 1 << 10;

/// `SignalEvent::context`: what the CPU was doing when the signal was generated, from the
/// preempt count's hardirq/softirq/NMI bits. In interrupt context `current` is whichever
/// task the interrupt landed on, not a sender.
pub const CONTEXT_UNKNOWN: u32 = 0;
pub const CONTEXT_TASK: u32 = 1;
pub const CONTEXT_SOFTIRQ: u32 = 2;
pub const CONTEXT_HARDIRQ: u32 = 3;
pub const CONTEXT_NMI: u32 = 4;

/// `SignalEvent::target_disposition`: the target's action for the signal at signal time.
pub const DISPOSITION_UNKNOWN: u32 = 0;
pub const DISPOSITION_DEFAULT: u32 = 1;
pub const DISPOSITION_IGNORE: u32 = 2;
pub const DISPOSITION_HANDLER: u32 = 3;

/// `Ancestor::exe_flags` bits: the process's executable as the kernel saw it at signal time.
/// It has one (a user process with memory; a kernel thread or an exited process has none).
pub const EXE_PRESENT: u32 = 1 << 0;
/// Its inode has no links left: deleted (or never linked: memfd, O_TMPFILE).
pub const EXE_UNLINKED: u32 = 1 << 1;
/// It lives on a kernel-internal mount (memfd, shm): there is no path to it in any file system.
pub const EXE_INTERNAL_MOUNT: u32 = 1 << 2;
/// Its mount belongs to another mount namespace than the process's own (a host process
/// running a file through a container's root).
pub const EXE_OTHER_MNT_NS: u32 = 1 << 3;
/// `exe_path` is the whole path from the root (else its last components only).
pub const EXE_PATH_COMPLETE: u32 = 1 << 4;
/// A kernel thread (PF_KTHREAD).
pub const ANCESTOR_KTHREAD: u32 = 1 << 5;
/// `SignalEvent::syscall_nr` when it could not be read (no `bpf_task_pt_regs`, fallback mode).
pub const SYSCALL_UNKNOWN: i32 = i32::MIN;
/// `ExitEvent::exit_code` is unknown (fallback mode).
pub const EXIT_CODE_UNKNOWN: i32 = i32::MIN;

/// Field offsets inside kernel structures, read by userspace from the running kernel's BTF
/// (/sys/kernel/btf/vmlinux) and handed to the program as a read-only global at load time,
/// so one compiled program runs on every kernel without guessing layouts.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_comm: u32,
    pub task_real_parent: u32,
    pub task_group_leader: u32,
    /// `start_boottime` (≥ 5.5) or `real_start_time` (older), both ns since boot.
    pub task_start_time: u32,
    pub task_mm: u32,
    pub task_thread_pid: u32,
    pub task_signal: u32,
    pub task_exit_code: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub pid_level: u32,
    pub pid_numbers: u32,
    pub upid_size: u32,
    pub upid_nr: u32,
    pub signal_live: u32,
    pub siginfo_errno: u32,
    pub siginfo_code: u32,
    /// `pt_regs` field holding the syscall number of a task inside a syscall (`orig_ax` on
    /// x86-64, `syscallno` on arm64), and its size in bytes (8 or 4); 0: not available.
    pub regs_syscall: u32,
    pub regs_syscall_size: u32,
    /// `task_struct::flags` (PF_KTHREAD tells a kernel thread from an exiting process whose
    /// mm is already gone).
    pub task_flags: u32,
    /// `upid::ns` and `pid_namespace::ns.inum`: which pid namespace a task is in (a
    /// container's, when it is not the host's), even after the task is gone.
    pub upid_ns: u32,
    pub pidns_inum: u32,
    /// The target's memory cgroup, for OOM kills (its /proc entry reads as the root cgroup
    /// once it is gone): `task_struct::cgroups`, then the memory controller's slot in
    /// `css_set::subsys` (0: no memory controller on this kernel), `cgroup_subsys_state::
    /// cgroup`, `cgroup::kn`, and `kernfs_node::id` (the cgroup directory's inode number).
    pub task_cgroups: u32,
    pub css_set_memcg: u32,
    pub css_cgroup: u32,
    pub cgroup_kn: u32,
    pub kn_id: u32,
    /// Interrupt context. Where the preempt count is a task field (arm64 and most
    /// architectures): `task_preempt_count`. Where it is per-CPU (x86-64: `__preempt_count`,
    /// or `pcpu_hot.preempt_count` on 6.2–6.14): this CPU's copy is found from this CPU's
    /// runqueue, `current->se.cfs_rq->rq`, plus the distance between the two variables in
    /// the kernel's per-CPU section (`percpu_preempt_delta`, from BTF's `.data..percpu`).
    /// 0 in `preempt_source`: not readable on this kernel.
    pub preempt_source: u32,
    pub task_preempt_count: u32,
    pub task_se_cfs_rq: u32,
    pub cfs_rq_rq: u32,
    pub rq_cpu: u32,
    pub percpu_preempt_delta: i32,
    /// The target's disposition and blocked mask: `task->sighand->action[sig - 1].sa.sa_handler`,
    /// `task->blocked`, `task->signal->flags`.
    pub task_sighand: u32,
    pub sighand_action: u32,
    pub k_sigaction_size: u32,
    pub k_sigaction_handler: u32,
    pub task_blocked: u32,
    pub signal_flags: u32,
    /// `pt_regs` field holding the syscall's first argument (`di` on x86-64, `orig_x0` on
    /// arm64): kill(2)'s pid, which says a process group or every process.
    pub regs_arg0: u32,
    /// An ancestor's executable: `mm->exe_file`, the file's inode, path and mount, the
    /// inode's number, link count and super block, the super block's device and magic.
    pub mm_exe_file: u32,
    pub file_inode: u32,
    pub file_dentry: u32,
    pub file_vfsmount: u32,
    pub inode_ino: u32,
    pub inode_nlink: u32,
    pub inode_sb: u32,
    pub sb_dev: u32,
    pub sb_magic: u32,
    /// Walking an executable's path: `dentry::d_name.name`, `.len`, `d_parent`; `struct
    /// mount` around its `vfsmount` (`mnt`), `mnt_parent`, `mnt_mountpoint`, `mnt_ns`;
    /// `vfsmount::mnt_root`; and the task's own mount namespace, `nsproxy->mnt_ns`.
    pub dentry_name: u32,
    pub dentry_name_len: u32,
    pub dentry_parent: u32,
    pub mount_mnt: u32,
    pub mount_parent: u32,
    pub mount_mountpoint: u32,
    pub mount_ns: u32,
    pub vfsmount_root: u32,
    pub task_nsproxy: u32,
    pub nsproxy_mnt_ns: u32,
    /// Non-zero: the kernel has `bpf_get_current_task_btf` (5.11+), so the typed builds of
    /// the hook load the sender's fields directly instead of through a helper call.
    pub task_btf: u32,
    /// The OOM killer's victim mark, read through the raw `mark_victim` tracepoint (the
    /// classic one costs ~60 ms to detach). `oom_task_arg`: its first argument is the victim's
    /// `task_struct` (6.x, with the figures below read from it as the classic event computes
    /// them), else its pid. 0 in an offset: that figure is not there on this kernel.
    pub oom_task_arg: u32,
    /// `mm_struct::total_vm` (pages), `::pgtables_bytes` (an atomic long), `::rss_stat`: an
    /// array of per-counter records `rss_stride` bytes apart whose count (a long) is at
    /// `rss_count` (`percpu_counter::count` since 6.2, `atomic_long_t` before).
    pub mm_total_vm: u32,
    pub mm_pgtables_bytes: u32,
    pub mm_rss_stat: u32,
    pub rss_stride: u32,
    pub rss_count: u32,
    /// `signal_struct::oom_score_adj` (a short).
    pub signal_oom_score_adj: u32,
    /// Pages to kB: log2(page size) - 10.
    pub page_kb_shift: u32,
    /// `signal_struct::pids` (the process's pid, pgid and session `struct pid`s, indexed by
    /// `enum pid_type`; 4.19+), for the target's process group; 0: not on this kernel.
    pub signal_pids: u32,
    /// `task_struct::parent`: the tracer while ptraced, else `real_parent`.
    pub task_parent: u32,
    /// `task_struct::se.sum_exec_runtime`: whether the target ran since a SIGCONT resumed it.
    pub task_runtime: u32,
    /// Who is behind a process: `task_struct::loginuid` and `::sessionid` (CONFIG_AUDIT),
    /// its terminal `signal_struct::tty` and that `tty_struct::name`. 0: not on this kernel.
    pub task_loginuid: u32,
    pub task_sessionid: u32,
    pub signal_tty: u32,
    pub tty_name: u32,
    /// `css_set::dfl_cgrp`: the task's cgroup in the unified hierarchy (systemd's units).
    pub css_set_dfl_cgrp: u32,
}

/// `KernelOffsets::preempt_source`.
pub const PREEMPT_NONE: u32 = 0;
pub const PREEMPT_TASK_FIELD: u32 = 1;
pub const PREEMPT_PERCPU_VIA_RQ: u32 = 2;

/// Field offsets inside the classic tracepoint records, read from tracefs `format` files at
/// load time (fallback mode, for kernels without BTF). `u32::MAX`: field absent.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default, PartialEq, Eq)]
pub struct TracepointFormat {
    pub sg_sig: u32,
    pub sg_errno: u32,
    pub sg_code: u32,
    pub sg_comm: u32,
    pub sg_pid: u32,
    pub sg_group: u32,
    pub sg_result: u32,
    pub exit_comm: u32,
    pub exit_pid: u32,
    pub exit_group_dead: u32,
    pub _pad: u32,
}

/// Field offsets of the `oom:mark_victim` record (classic tracepoint in both modes: it fires
/// once per OOM kill, so its cost does not matter). `u32::MAX`: field absent on this kernel.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default, PartialEq, Eq)]
pub struct OomFormat {
    pub pid: u32,
    pub total_vm: u32,
    pub anon_rss: u32,
    pub file_rss: u32,
    pub shmem_rss: u32,
    pub pgtables: u32,
    pub oom_score_adj: u32,
    pub _pad: u32,
}

/// The OOM killer chose `pid` as its victim (sizes in kB, as the tracepoint reports them;
/// `u64::MAX` when the kernel does not report a figure).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct OomEvent {
    pub kind: u32,
    pub pid: u32,
    pub boot_ns: u64,
    pub total_vm_kb: u64,
    pub anon_rss_kb: u64,
    pub file_rss_kb: u64,
    pub shmem_rss_kb: u64,
    pub pgtables_kb: u64,
    pub oom_score_adj: i32,
    pub _pad: u32,
}

/// Run-time switches set at load time.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default, PartialEq, Eq)]
pub struct FilterConfig {
    /// Non-zero: report signals to every process, not just the targets map.
    pub watch_all: u32,
    /// Ring-buffer fill level (bytes) past which a submit wakes the reader at once; below it
    /// the reader is left to its periodic poll, because a wakeup per event costs ~18× a kill().
    pub wakeup_bytes: u32,
    /// Bit `n` set: report signal `n` (1..=64). All ones: every signal.
    pub signal_mask: u64,
    /// Non-zero: a process forked by a watched one is watched too (containers: every
    /// process of the container, from its first instruction).
    pub follow_forks: u32,
    /// A sender seen on this CPU within this many ms gets a record without argv and
    /// ancestry (`FLAG_SENDER_REPEAT`): a storm from one process repeats them, and walking
    /// and copying them is most of a hit's cost. 0: always send them (perf buffers, which
    /// cannot tell the program whether the earlier record got through).
    pub repeat_window_ms: u32,
    /// Non-zero: fold runs of identical signals in the kernel (`FoldState`): the first
    /// goes out at once, the rest are counted. Ring buffers only.
    pub fold: u32,
    /// podsig's own process: its connections to the managers (naming containers) are not
    /// requests anyone made.
    pub self_tgid: u32,
    /// With `watch_all`: bit `n` set, a process sent signal `n` is watched for its exit,
    /// which is reported once (`TARGET_SIGNALLED`): how a stop ended, when no SIGKILL came.
    pub exit_mask: u64,
}

/// Per CPU, the run of identical signals being folded: same sender thread and program
/// (`mm`), same target thread, signal, si_code, errno, group, result, context and the
/// syscall's first argument (which says the scope). Its first
/// signal went out as a record carrying `seq`; `count` more have come since, the last at
/// `last_ns`. Userspace reads it on its drain tick; it is consistent when `v_start ==
/// v_end` (the program bumps `v_end` before changing anything and both after).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default, PartialEq, Eq)]
pub struct FoldState {
    pub v_start: u64,
    pub active: u32,
    pub sig: i32,
    pub code: i32,
    pub errno: i32,
    pub group: i32,
    pub result: i32,
    pub context: u32,
    pub _pad: u32,
    pub pid_tgid: u64,
    pub mm: u64,
    pub target: u64,
    /// The sender's syscall's first argument: kill(pid) and kill(0) are not one run.
    pub arg0: i64,
    pub seq: u64,
    pub count: u64,
    pub last_ns: u64,
    /// The CPU's next run number (kept here so it survives runs).
    pub next: u64,
    pub v_end: u64,
}

/// A folded run ended (the CPU saw a different signal): `count` signals came after the
/// record that carried `seq`, the last at `last_ns`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct FoldEvent {
    pub kind: u32,
    pub cpu: u32,
    pub seq: u64,
    pub count: u64,
    pub last_ns: u64,
}

/// Words of the pid bitmap ahead of the target hash: one bit per pid up to PID_MAX_LIMIT
/// (4194304 on 64-bit kernels).
pub const TARGET_BITMAP_WORDS: u32 = 65536;

/// `TARGETS` value bit: watched because its parent was (followed fork), not named by the
/// user: its exit only clears it from the filter.
pub const TARGET_CHILD: u32 = 1 << 31;

/// `TARGETS` value bit (node mode): put there by the program when the process got a signal
/// in `exit_mask`; its exit is reported, and clears it.
pub const TARGET_SIGNALLED: u32 = 1 << 30;

/// Both flag bits: what is left of a `TARGETS` value is a tgid.
pub const TARGET_FLAGS: u32 = TARGET_CHILD | TARGET_SIGNALLED;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Ancestor {
    /// Start time, ns since boot.
    pub start_ns: u64,
    pub pid: u32,
    /// `EXE_*` and `ANCESTOR_*` bits.
    pub exe_flags: u32,
    /// The executable's inode number, device (`s_dev`, the kernel's encoding) and file
    /// system magic (`TMPFS_MAGIC` for tmpfs, shm and memfd, …); 0 without one.
    pub exe_ino: u64,
    pub exe_dev: u32,
    pub exe_fs_magic: u32,
    pub comm: [u8; COMM_LEN],
    /// The executable path's last components, `/`-separated, NUL-terminated.
    pub exe_path: [u8; EXE_PATH_LEN],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct SignalEvent {
    pub kind: u32,
    pub sig: i32,
    /// `bpf_ktime_get_boot_ns()` at signal time.
    pub boot_ns: u64,
    pub errno: i32,
    pub code: i32,
    pub group: i32,
    /// TRACE_SIGNAL_* delivery outcome.
    pub result: i32,
    pub target_pid: u32,
    pub target_tid: u32,
    pub target_ns_pid: u32,
    pub target_ns_tid: u32,
    pub target_comm: [u8; COMM_LEN],
    pub sender_pid: u32,
    pub sender_tid: u32,
    pub sender_ns_pid: u32,
    pub sender_ns_tid: u32,
    pub sender_ppid: u32,
    pub sender_uid: u32,
    pub sender_comm: [u8; COMM_LEN],
    /// Inode numbers of the target's and the sender's pid namespaces.
    pub target_pidns: u32,
    pub sender_pidns: u32,
    pub flags: u32,
    pub argv_len: u32,
    /// Valid entries of `ancestry`, sender first, walking towards pid 0.
    pub depth: u32,
    /// Syscall the sender was in (its number on this architecture), or `SYSCALL_UNKNOWN`.
    /// Tells `kill(getpid(), SIGPIPE)` from a SIGPIPE raised by `write`.
    pub syscall_nr: i32,
    /// Inode of the target's memory cgroup directory, captured for SIGKILL only; 0: none.
    pub target_memcg: u64,
    /// Start time of the sender's process (ns since boot): with `sender_pid`, the key of
    /// its `SenderDetail` across repeat records.
    pub sender_start_ns: u64,
    /// `DISPOSITION_*` of the target for this signal.
    pub target_disposition: u32,
    /// `CONTEXT_*`.
    pub context: u32,
    /// The target's cgroup in the unified hierarchy (its directory's inode): which systemd
    /// unit it runs in, for a process gone before userspace could read /proc; 0: not read.
    pub target_cgroup: u64,
    /// The target's process group (its pgid in the root namespace); 0: not read.
    pub target_pgid: u32,
    /// The process tracing the target (ptrace), when one does; 0: none or not read.
    pub target_tracer: u32,
    /// The sender's audit login uid and session (who logged in, behind `sudo`); `u32::MAX`:
    /// unset or not on this kernel.
    pub sender_loginuid: u32,
    pub sender_sessionid: u32,
    /// The first argument of the syscall the sender was in (kill(2)'s pid).
    pub syscall_arg0: i64,
    /// The fold run this record starts (`FoldState::seq`); 0: not folded.
    pub seq: u64,
}

/// What a sender's record carries once per process and window: its command line and its
/// ancestry (valid lengths in the `SignalEvent`: `argv_len`, `depth`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct SenderDetail {
    /// The command line's whole length in bytes (more than `ARGV_LEN` when it was cut).
    pub argv_total: u32,
    pub _pad: u32,
    pub argv: [u8; ARGV_LEN],
    pub ancestry: [Ancestor; MAX_ANCESTRY],
}

/// A Unix socket path, NUL-padded: the key of the manager sockets userspace names.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct SocketPath {
    pub path: [u8; SOCKET_PATH_LEN],
}

/// A client's write to a manager's socket: who wrote (the client's identity, as a signal's
/// sender's) and how much; what it wrote follows in `RequestFull::body`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct RequestHead {
    pub kind: u32,
    /// The value userspace gave the socket's path (which manager).
    pub socket: u32,
    pub boot_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub ns_pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub loginuid: u32,
    pub sessionid: u32,
    pub fd: u32,
    pub start_ns: u64,
    /// Bytes the syscall was asked to write (more than `len` when cut); for writev and
    /// sendmsg, in the first iovecs the hook reads (4) only.
    pub total: u64,
    pub comm: [u8; COMM_LEN],
    pub tty: [u8; TTY_LEN],
    /// `REQUEST_*`.
    pub syscall: u32,
    /// Bytes of `body` filled.
    pub len: u32,
    /// The detail's flags (`FLAG_ANCESTRY_COMPLETE`, `FLAG_ARGV_TRUNCATED`, `FLAG_KTHREAD`).
    pub flags: u32,
    pub argv_len: u32,
    pub depth: u32,
    pub _pad: u32,
}

/// A request record: the head, what the client wrote (the second half of `body` is room the
/// verifier needs for the copy of a last iovec), and the client's argv and ancestry.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct RequestFull {
    pub head: RequestHead,
    pub body: [u8; 2 * REQUEST_LEN],
    pub detail: SenderDetail,
}

/// A signal record with its sender's detail (no `FLAG_SENDER_REPEAT`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct SignalFull {
    pub head: SignalEvent,
    pub detail: SenderDetail,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct ExitEvent {
    pub kind: u32,
    pub pid: u32,
    pub boot_ns: u64,
    pub tid: u32,
    /// Wait-status encoding: low 7 bits the terminating signal, bit 7 core dump, bits 8..16
    /// the exit status. `EXIT_CODE_UNKNOWN` in fallback mode.
    pub exit_code: i32,
    pub comm: [u8; COMM_LEN],
    pub flags: u32,
    pub _pad: u32,
}

#[cfg(feature = "user")]
mod user {
    use super::*;
    // SAFETY: plain-old-data, `repr(C)`, every bit pattern valid; bytemuck::Pod (derived above)
    // proves there is no padding.
    unsafe impl aya::Pod for KernelOffsets {}
    unsafe impl aya::Pod for FilterConfig {}
    unsafe impl aya::Pod for TracepointFormat {}
    unsafe impl aya::Pod for OomFormat {}
    unsafe impl aya::Pod for OomEvent {}
    unsafe impl aya::Pod for SignalEvent {}
    unsafe impl aya::Pod for SignalFull {}
    unsafe impl aya::Pod for ExitEvent {}
    unsafe impl aya::Pod for FoldState {}
    unsafe impl aya::Pod for FoldEvent {}
    unsafe impl aya::Pod for SocketPath {}
}
