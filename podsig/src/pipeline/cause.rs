//! From evidence to a verdict: why a signal was sent, claiming only what the record shows.
//!
//! The evidence: the signal and its si_code, the syscall the sender was executing (read in
//! kernel from its saved registers), an OOM-killer mark for the same pid, and the sender's
//! ancestry. si_code alone is not enough: a SIGPIPE raised by write(2) arrives as SI_USER
//! from the writer to itself, exactly like `kill(getpid(), SIGPIPE)`; the syscall settles it.

use std::borrow::Cow;

use crate::event::{Cause, Context, Delivery, Disposition, OomInfo, RuntimeInfo, Scope, SignalRecord};

const SI_USER: i32 = 0;
const SI_KERNEL: i32 = 0x80;
const SI_QUEUE: i32 = -1;
const SI_TIMER: i32 = -2;
const SI_TKILL: i32 = -6;

/// Syscall numbers podsig names, per architecture.
#[cfg(target_arch = "x86_64")]
const SYSCALLS: &[(i32, &str)] = &[
    (0, "read"),
    (1, "write"),
    (16, "ioctl"),
    (18, "pwrite64"),
    (20, "writev"),
    (40, "sendfile"),
    (44, "sendto"),
    (46, "sendmsg"),
    (59, "execve"),
    (60, "exit"),
    (62, "kill"),
    (101, "ptrace"),
    (129, "rt_sigqueueinfo"),
    (200, "tkill"),
    (231, "exit_group"),
    (234, "tgkill"),
    (275, "splice"),
    (296, "pwritev"),
    (297, "rt_tgsigqueueinfo"),
    (307, "sendmmsg"),
    (322, "execveat"),
    (327, "pwritev2"),
    (424, "pidfd_send_signal"),
];
#[cfg(target_arch = "aarch64")]
const SYSCALLS: &[(i32, &str)] = &[
    (29, "ioctl"),
    (63, "read"),
    (64, "write"),
    (66, "writev"),
    (68, "pwrite64"),
    (69, "pwritev"),
    (71, "sendfile"),
    (76, "splice"),
    (93, "exit"),
    (94, "exit_group"),
    (117, "ptrace"),
    (129, "kill"),
    (130, "tkill"),
    (131, "tgkill"),
    (138, "rt_sigqueueinfo"),
    (206, "sendto"),
    (211, "sendmsg"),
    (221, "execve"),
    (240, "rt_tgsigqueueinfo"),
    (269, "sendmmsg"),
    (281, "execveat"),
    (287, "pwritev2"),
    (424, "pidfd_send_signal"),
];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const SYSCALLS: &[(i32, &str)] = &[];

const SIGNAL_SYSCALLS: &[&str] =
    &["kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_send_signal"];

pub fn syscall_name(nr: i32) -> Option<&'static str> {
    SYSCALLS.iter().find(|(n, _)| *n == nr).map(|(_, name)| *name)
}

/// The syscall's name if it is one that sends signals.
pub fn signal_syscall(nr: i32) -> Option<&'static str> {
    syscall_name(nr).filter(|n| SIGNAL_SYSCALLS.contains(n))
}

const RUNTIMES: &[&str] = &["runc", "crun", "youki", "runsc", "kata-runtime", "runj"];
/// comm prefixes (comm is cut to 15 bytes: containerd-shim-runc-v2 shows as containerd-shim).
const MANAGERS: &[&str] = &["containerd-shim", "conmon", "dockerd", "containerd", "crio", "podman"];

/// An OCI runtime sender and the container manager above it in the ancestry.
pub fn runtime_of(s: &SignalRecord) -> Option<RuntimeInfo> {
    let sender = s.sender.as_ref()?;
    let runtime = RUNTIMES.iter().find(|r| sender.comm == **r)?;
    let above = s.ancestry.iter().rev().skip(1);
    let manager =
        above.map(|a| a.comm.as_str()).find(|c| MANAGERS.iter().any(|m| c.starts_with(m))).map(str::to_string);
    Some(RuntimeInfo { runtime: runtime.to_string(), manager })
}

/// Whether `syscall` can have produced a signal with si_code `code` (the kernel fills it in
/// for kill and tgkill, and refuses user-chosen codes ≥ 0 or SI_TKILL for another process):
/// a syscall that cannot is not how this signal came about, whatever the registers say.
pub fn syscall_can_send(syscall: &str, code: i32, to_itself: bool) -> bool {
    let user_chosen = (code < 0 && code != SI_TKILL) || to_itself;
    match syscall {
        "kill" => code == SI_USER,
        "tkill" | "tgkill" => code == SI_TKILL,
        "pidfd_send_signal" => code == SI_USER || user_chosen,
        "rt_sigqueueinfo" | "rt_tgsigqueueinfo" => user_chosen,
        _ => false,
    }
}

pub fn classify(s: &mut SignalRecord) {
    let (syscall, cause, detail) = verdict(s);
    s.syscall = syscall.map(Cow::Borrowed);
    s.cause = cause;
    s.cause_detail = detail + &outcome(s);
    (s.scope, s.pgid) = scope(s);
}

fn to_itself(s: &SignalRecord) -> bool {
    s.sender.as_ref().is_some_and(|x| x.pid == s.target.pid)
}

/// The syscall that sent it, only if the sender was inside a signal-sending syscall that
/// can produce this si_code.
fn sending_syscall(s: &SignalRecord) -> Option<&'static str> {
    let sc = s.syscall_nr.and_then(signal_syscall)?;
    syscall_can_send(sc, s.code.value, to_itself(s)).then_some(sc)
}

fn verdict(s: &mut SignalRecord) -> (Option<&'static str>, Cause, String) {
    let code = s.code.value;
    if let Some(oom) = &s.oom {
        return (None, Cause::OomKill, oom_detail(s, oom));
    }
    let Some(sender) = s.sender.clone() else {
        let context = s.context.map_or("interrupt", Context::as_str);
        let on = s.interrupted.as_ref().map_or(String::new(), |i| {
            format!("; {}({}) was only the task the CPU was running, not the sender", i.comm, i.pid)
        });
        return (None, Cause::Kernel, format!("raised by the kernel in {context} context: {}{on}", mechanism(s)));
    };
    if sender.kthread {
        return (None, Cause::Kernel, format!("kernel thread {}: {}", sender.comm, mechanism(s)));
    }
    if sender.exiting {
        // Its registers still show the syscall it died in (often the kill or tgkill that
        // killed it): what it "sends" now is the exit path's doing.
        return (None, Cause::Kernel, exit_mechanism(s, &sender));
    }
    if let Some(v) = ptrace(s, &sender) {
        return v;
    }
    if let Some(sc) = sending_syscall(s) {
        if let Some(rt) = runtime_of(s) {
            let detail = format!(
                "{} sent it with {sc}(2){}: a stop or kill its container manager asked for \
                 (kubelet through the CRI, docker stop, ctr task kill); kubelet never appears \
                 in this ancestry, so which kubelet action it was cannot be told from here",
                rt.runtime,
                rt.manager.as_ref().map_or(String::new(), |m| format!(", run by {m}"))
            );
            s.runtime = Some(rt);
            return (Some(sc), Cause::RuntimeStop, detail);
        }
        return (Some(sc), Cause::Process, format!("{sc}(2) from {}({}), {}", sender.comm, sender.pid, family(code)));
    }
    if s.syscall_nr.is_some() {
        // Known registers, and not a syscall that sends this kind of signal: the kernel
        // raised it while the sender did something else.
        return (None, Cause::Kernel, mechanism(s));
    }
    // No syscall evidence (kernel without BTF or bpf_task_pt_regs): si_code must do.
    match code {
        // User space cannot send these codes to another process.
        SI_KERNEL | SI_TIMER => (None, Cause::Kernel, mechanism(s)),
        c if c > 0 => (None, Cause::Kernel, mechanism(s)),
        SI_TKILL => (None, Cause::Process, "tkill/tgkill(2) (only those syscalls set SI_TKILL)".into()),
        SI_QUEUE => (None, Cause::Process, "sigqueue(3) via rt_sigqueueinfo(2)".into()),
        _ => (
            None,
            Cause::Unknown,
            format!(
                "{} without syscall evidence on this kernel: kill(2) and a kernel-raised signal \
                 (SIGPIPE on write, SIGXFSZ, a parent-death signal) look the same",
                s.code.name.as_deref().unwrap_or("si_code")
            ),
        ),
    }
}

/// Signals ptrace raises: PTRACE_ATTACH stops its tracee with a SIGSTOP from the tracer's
/// own task (SI_KERNEL, inside ptrace(2)); a tracee attached that way without
/// PTRACE_O_TRACEEXEC gets a SIGTRAP from itself when it execs, the kernel's report of the
/// exec to its tracer. Named for the syscall, and for the tracer who asked.
fn ptrace(s: &SignalRecord, sender: &crate::event::Sender) -> Option<(Option<&'static str>, Cause, String)> {
    let syscall = s.syscall_nr.and_then(syscall_name)?;
    let target = format!("{}({})", s.target.comm, s.target.pid);
    match (s.signal.number, syscall) {
        (libc::SIGSTOP, "ptrace") if s.code.value == SI_KERNEL && !to_itself(s) => Some((
            Some("ptrace"),
            Cause::Process,
            format!(
                "ptrace(2) PTRACE_ATTACH from {}({}): attaching a debugger or tracer stops {target} with SIGSTOP",
                sender.comm, sender.pid
            ),
        )),
        (libc::SIGTRAP, "execve" | "execveat") if s.code.value == SI_USER && to_itself(s) => {
            let by = s.target.traced_by.map_or("its tracer".to_string(), |t| format!("its tracer, pid {t}"));
            // The kernel raised it inside execve: no sending syscall, as for any kernel signal.
            Some((
                None,
                Cause::Kernel,
                format!(
                    "{target} exec'd while ptraced: the kernel reports an exec to the tracer with SIGTRAP when it \
                     attached with PTRACE_ATTACH and no PTRACE_O_TRACEEXEC; {by} asked for it"
                ),
            ))
        }
        _ => None,
    }
}

fn family(code: i32) -> String {
    match code {
        SI_USER => "SI_USER: kill(2)-style".into(),
        SI_TKILL => "SI_TKILL: tkill/tgkill(2), to one thread".into(),
        SI_QUEUE => "SI_QUEUE: sigqueue(3), with a value".into(),
        c => format!("si_code {c}, chosen by the sender"),
    }
}

/// Who the signal went to, from the syscall's pid argument: `kill -TERM -- -PGID` and
/// `kill(-1, …)` reach many processes, each with its own record.
fn scope(s: &SignalRecord) -> (Scope, Option<u32>) {
    match s.syscall.as_deref() {
        Some("kill") => match s.syscall_arg0.map(|a| a as i32) {
            // The sender's own group, which holds the target.
            Some(0) => (Scope::ProcessGroup, s.target.pgid),
            Some(-1) => (Scope::EveryProcess, None),
            Some(p) if p < -1 => (Scope::ProcessGroup, Some(p.unsigned_abs())),
            _ => (Scope::Process, None),
        },
        Some("tkill" | "tgkill" | "rt_tgsigqueueinfo") => (Scope::Thread, None),
        Some(_) => (Scope::Process, None),
        None if tty_group_signal(s) => (Scope::ProcessGroup, s.target.pgid),
        None if s.group => (Scope::Process, None),
        None => (Scope::Thread, None),
    }
}

/// A signal the terminal raised for a whole process group: the keys (Ctrl-C, Ctrl-\,
/// Ctrl-Z), a background job touching the terminal (SIGTTIN, SIGTTOU), a resize
/// (SIGWINCH). The tty layer sends these only through kill_pgrp(), with SEND_SIG_PRIV
/// (SI_KERNEL, no siginfo). The one other kernel SIGINT, ctrl-alt-del's, goes to the
/// system's init alone.
fn tty_group_signal(s: &SignalRecord) -> bool {
    s.code.value == SI_KERNEL
        && s.group
        && matches!(
            s.signal.number,
            libc::SIGINT | libc::SIGQUIT | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU | libc::SIGWINCH
        )
        && !(s.signal.number == libc::SIGINT && s.target.pid == 1)
}

/// Why the kernel did not deliver it, when it did not: what the target does with the
/// signal, read in the kernel as it was generated.
fn outcome(s: &SignalRecord) -> String {
    let t = &s.target;
    let sig = &s.signal.name;
    let who = format!("{}({})", t.comm, t.pid);
    if t.resumed == Some(true) {
        // prepare_signal() resumes a stopped process when SIGCONT is generated; what its
        // delivery then does (nothing, without a handler) is beside the point.
        return format!(
            "; it resumed {who}, which was stopped: SIGCONT acts when it is sent{}",
            match t.disposition {
                Some(Disposition::Handler) => ", and its handler runs too",
                _ => ", and its delivery then does nothing more",
            }
        );
    }
    if s.result == Some(Delivery::Delivered) && t.blocked == Some(true) {
        return format!(
            "; {who} blocks {sig}, so it stays pending until {who} unblocks it (sigwait or signalfd may take it \
             then); only then does its {} apply",
            match t.disposition {
                Some(Disposition::Handler) => "handler",
                Some(Disposition::Ignore) => "SIG_IGN",
                _ => "default action",
            }
        );
    }
    if s.result != Some(Delivery::Ignored) {
        return String::new();
    }
    if t.exiting == Some(true) {
        return format!(
            "; dropped: {who} was already exiting (a fatal signal had begun its exit), and the kernel drops every \
             further signal to a process in that state"
        );
    }
    if s.signal.number == libc::SIGCONT && t.resumed == Some(false) {
        return format!("; {who} was not stopped, and has no SIGCONT handler: nothing to do");
    }
    match t.disposition {
        Some(Disposition::Ignore) => format!("; the target ignores {sig} (SIG_IGN), so the kernel dropped it"),
        Some(Disposition::Default) if default_ignored(s.signal.number) => {
            format!("; the default action of {sig} is to ignore it, and the target has no handler")
        }
        Some(Disposition::Default) if t.ns_init == Some(true) && t.blocked != Some(true) => {
            let who = if t.pid == 1 {
                format!("{}(1) is the system's init", t.comm)
            } else {
                format!("{}({}) is pid 1 of its pid namespace (a container's init)", t.comm, t.pid)
            };
            format!(
                "; the kernel dropped it: {who} with no handler for {sig}, and such an init never gets a signal \
                 whose action is the default (only SIGKILL or SIGSTOP from outside its namespace get through). A \
                 stop by {sig} waits out its whole grace period. Fix: an init that handles {sig} — exec form \
                 instead of a shell (`CMD [\"app\"]`), tini or `docker run --init`, or a STOPSIGNAL it handles"
            )
        }
        _ => String::new(),
    }
}

/// Signals whose default action is to do nothing.
fn default_ignored(sig: i32) -> bool {
    matches!(sig, libc::SIGCHLD | libc::SIGCONT | libc::SIGURG | libc::SIGWINCH)
}

/// What the kernel sends on a task's behalf as it exits.
fn exit_mechanism(s: &SignalRecord, sender: &crate::event::Sender) -> String {
    let code = s.code.value;
    let who = format!("{}({})", sender.comm, sender.pid);
    let self_sent = sender.pid == s.target.pid;
    match s.signal.number {
        _ if code > 0 && code != SI_KERNEL && s.code.name.as_deref().is_some_and(|n| n.starts_with("CLD_")) => {
            format!(
                "{who} {}: the kernel tells its parent {}({})",
                cld(s.code.name.as_deref()),
                s.target.comm,
                s.target.pid
            )
        }
        libc::SIGKILL
            if code == SI_KERNEL
                && sender.ns_pid == Some(1)
                && sender.pidns.is_some()
                && sender.pidns == s.target.pidns =>
        {
            format!(
                "{who}, pid 1 of this pid namespace (a container's init), exited: the kernel kills every other \
                 process in the namespace"
            )
        }
        libc::SIGHUP | libc::SIGCONT if code == SI_KERNEL => format!(
            "{who} exited: as a session leader its terminal's foreground job gets SIGHUP (and SIGCONT), and a \
             process group it orphaned with stopped members gets SIGHUP and SIGCONT"
        ),
        _ if code == SI_USER && !self_sent => {
            format!("its parent {who} exited: a parent-death signal (PR_SET_PDEATHSIG)")
        }
        _ => format!("raised by the kernel as {who} exited ({})", s.code.name.as_deref().unwrap_or("si_code ?")),
    }
}

fn cld(code: Option<&str>) -> &'static str {
    match code {
        Some("CLD_EXITED") => "exited",
        Some("CLD_KILLED") => "was killed by a signal",
        Some("CLD_DUMPED") => "was killed and dumped core",
        Some("CLD_TRAPPED") => "trapped",
        Some("CLD_STOPPED") => "stopped",
        Some("CLD_CONTINUED") => "continued",
        _ => "changed state",
    }
}

fn kb(v: Option<u64>) -> String {
    v.map_or("?".into(), |v| format!("{v}kB"))
}

fn oom_detail(s: &SignalRecord, oom: &OomInfo) -> String {
    let mut d = format!(
        "the OOM killer chose {}({}): anon-rss {}, file-rss {}, shmem-rss {}, total-vm {}",
        s.target.comm,
        oom.pid,
        kb(oom.anon_rss_kb),
        kb(oom.file_rss_kb),
        kb(oom.shmem_rss_kb),
        kb(oom.total_vm_kb)
    );
    if let Some(adj) = oom.oom_score_adj {
        d += &format!(", oom_score_adj {adj}");
    }
    if let Some(cg) = &oom.memory_cgroup {
        d += &format!(", memory cgroup {cg}");
        if let Some(limit) = oom.memory_limit_bytes {
            d += &format!(" (limit {limit} bytes)");
        }
    }
    d
}

/// How the kernel came to raise this signal, from the signal, si_code and syscall.
pub fn mechanism(s: &SignalRecord) -> String {
    let sig = s.signal.number;
    let code = s.code.value;
    let code_name = s.code.name.as_deref().unwrap_or("?");
    let during = s.syscall_nr.and_then(syscall_name).map_or(String::new(), |n| format!(" raised by {n}(2)"));
    let self_sent = to_itself(s);
    match sig {
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP if code > 0 => {
            let what = match code_name {
                "SEGV_MAPERR" => "access to an unmapped address",
                "SEGV_ACCERR" => "access violating a mapping's permissions",
                "BUS_ADRALN" => "misaligned access",
                "BUS_ADRERR" => "access past the end of a mapped file or to a missing page",
                "BUS_OBJERR" | "BUS_MCEERR_AR" | "BUS_MCEERR_AO" => "hardware memory error",
                "FPE_INTDIV" => "integer division by zero",
                "FPE_INTOVF" => "integer overflow",
                n if n.starts_with("ILL_") => "illegal instruction",
                n if n.starts_with("FPE_") => "floating-point exception",
                n if n.starts_with("TRAP_") => "breakpoint or trace trap",
                _ => "fault",
            };
            format!("CPU fault in {}({}): {code_name}, {what}", s.target.comm, s.target.pid)
        }
        libc::SIGCHLD if code > 0 && code != SI_KERNEL => {
            format!(
                "a child process {} ({}({}) was its parent)",
                cld(s.code.name.as_deref()),
                s.target.comm,
                s.target.pid
            )
        }
        libc::SIGPIPE if self_sent => format!("write to a pipe or socket with no reader{during}"),
        libc::SIGXFSZ if self_sent => format!("file size limit (RLIMIT_FSIZE) exceeded{during}"),
        libc::SIGXCPU => "CPU time limit reached (RLIMIT_CPU soft limit)".into(),
        libc::SIGKILL
            if code == SI_KERNEL
                && s.sender.as_ref().is_some_and(|x| {
                    x.ns_pid == Some(1) && x.pidns.is_some() && x.pidns == s.target.pidns && !self_sent
                }) =>
        {
            "pid 1 of this pid namespace (a container's init) exited: the kernel kills every other process in \
             the namespace"
                .into()
        }
        libc::SIGKILL if code == SI_KERNEL => "SIGKILL from the kernel without an OOM-killer mark (RLIMIT_CPU hard \
                                               limit, seccomp, or a fatal kernel error)"
            .into(),
        libc::SIGALRM if code == SI_KERNEL => {
            "a real-time interval timer expired (alarm(2), setitimer ITIMER_REAL)".into()
        }
        libc::SIGVTALRM if code == SI_KERNEL => {
            "a virtual CPU-time interval timer expired (setitimer ITIMER_VIRTUAL)".into()
        }
        libc::SIGPROF if code == SI_KERNEL => "a profiling interval timer expired (setitimer ITIMER_PROF)".into(),
        _ if code == SI_TIMER => "a POSIX timer expired (timer_create)".into(),
        libc::SIGIO if code > 0 => format!("asynchronous I/O readiness ({code_name}, O_ASYNC/F_SETOWN)"),
        _ if code == -5 => "asynchronous I/O readiness (SI_SIGIO, O_ASYNC/F_SETOWN)".into(),
        libc::SIGSYS if code > 0 => format!("seccomp trapped a syscall ({code_name})"),
        libc::SIGHUP if code == SI_KERNEL => "terminal hangup, or its session leader exited".into(),
        libc::SIGINT if code == SI_KERNEL => "terminal interrupt key (Ctrl-C)".into(),
        libc::SIGQUIT if code == SI_KERNEL => "terminal quit key (Ctrl-\\)".into(),
        libc::SIGTSTP if code == SI_KERNEL => "terminal suspend key (Ctrl-Z)".into(),
        libc::SIGTTIN | libc::SIGTTOU if code == SI_KERNEL => "a background process touched its terminal".into(),
        libc::SIGWINCH if code == SI_KERNEL => "the terminal window was resized".into(),
        _ => format!("raised by the kernel ({code_name}){during}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::*;

    fn record(sig: i32, code: i32, syscall_nr: Option<i32>, sender: (&str, u32), target: u32) -> SignalRecord {
        let a = |pid, comm: &str| Ancestor { pid, comm: comm.into(), start_ns: 0, ..Default::default() };
        let base = sample_signal();
        SignalRecord {
            signal: SignalId::new(sig),
            code: Code { value: code, name: crate::signals::code_name(sig, code).map(Cow::Borrowed) },
            target: Target { pid: target, tid: target, ns_pid: Some(target), comm: "app".into(), ..Default::default() },
            sender: Some(Sender {
                pid: sender.1,
                tid: sender.1,
                comm: sender.0.into(),
                ..base.sender.clone().unwrap()
            }),
            ancestry: vec![
                a(0, "swapper/0"),
                a(1, "systemd"),
                a(900, "containerd"),
                a(950, "containerd-shim"),
                a(sender.1, sender.0),
            ]
            .into(),
            syscall_nr,
            ..base
        }
    }

    fn nr(name: &str) -> Option<i32> {
        SYSCALLS.iter().find(|(_, n)| *n == name).map(|(n, _)| *n)
    }

    fn sender(r: &mut SignalRecord) -> &mut Sender {
        r.sender.as_mut().unwrap()
    }

    #[test]
    fn a_dying_container_init_takes_its_namespace_along() {
        let mut r = record(9, SI_KERNEL, Some(231), ("sh", 5938), 5952);
        (sender(&mut r).ns_pid, sender(&mut r).pidns, r.target.pidns) = (Some(1), Some(4026532001), Some(4026532001));
        sender(&mut r).exiting = true;
        classify(&mut r);
        assert_eq!(r.cause, Cause::Kernel);
        assert!(r.cause_detail.contains("sh(5938), pid 1 of this pid namespace"), "{}", r.cause_detail);
        // The same SIGKILL from outside the namespace is not that.
        r.target.pidns = Some(4026531836);
        classify(&mut r);
        assert!(!r.cause_detail.contains("pid 1 of this pid namespace"), "{}", r.cause_detail);
    }

    #[test]
    fn kill_from_a_process() {
        let mut r = record(15, SI_USER, nr("kill"), ("pkill", 500), 42);
        r.syscall_arg0 = Some(42);
        classify(&mut r);
        assert_eq!((r.cause, r.syscall, r.scope, r.pgid), (Cause::Process, Some("kill".into()), Scope::Process, None));
        assert!(r.cause_detail.contains("SI_USER"), "{}", r.cause_detail);
    }

    #[test]
    fn group_and_broadcast_kills_say_so() {
        let mut r = record(15, SI_USER, nr("kill"), ("kill", 500), 42);
        r.syscall_arg0 = Some(-4242);
        classify(&mut r);
        assert_eq!((r.scope, r.pgid), (Scope::ProcessGroup, Some(4242)));
        r.syscall_arg0 = Some(-1);
        classify(&mut r);
        assert_eq!((r.scope, r.pgid), (Scope::EveryProcess, None));
        r.syscall_arg0 = Some(0);
        classify(&mut r);
        assert_eq!((r.scope, r.pgid), (Scope::ProcessGroup, None));
        let mut r = record(15, SI_TKILL, nr("tgkill"), ("raise", 500), 42);
        classify(&mut r);
        assert_eq!(r.scope, Scope::Thread);
    }

    #[test]
    fn runc_under_a_shim_is_a_runtime_stop() {
        let mut r = record(9, SI_USER, nr("kill"), ("runc", 600), 42);
        classify(&mut r);
        assert_eq!(r.cause, Cause::RuntimeStop);
        let rt = r.runtime.unwrap();
        assert_eq!((rt.runtime.as_str(), rt.manager.as_deref()), ("runc", Some("containerd-shim")));
        assert!(r.cause_detail.contains("kubelet never appears"));
    }

    #[test]
    fn sigpipe_from_write_is_the_kernel_but_self_kill_is_a_process() {
        let mut r = record(13, SI_USER, nr("write"), ("app", 42), 42);
        classify(&mut r);
        assert_eq!((r.cause, r.syscall.as_deref()), (Cause::Kernel, None));
        assert!(r.cause_detail.contains("no reader raised by write(2)"), "{}", r.cause_detail);
        let mut r = record(13, SI_USER, nr("kill"), ("app", 42), 42);
        classify(&mut r);
        assert_eq!(r.cause, Cause::Process);
    }

    #[test]
    fn a_child_dying_of_its_own_tgkill_is_not_a_tgkill_to_its_parent() {
        // The child raised SIGTERM on itself and died inside tgkill(2); its SIGCHLD to the
        // parent comes from the exit path, whatever its registers still say.
        let mut r = record(libc::SIGCHLD, 2, nr("tgkill"), ("python3", 27907), 27900);
        sender(&mut r).exiting = true;
        classify(&mut r);
        assert_eq!((r.cause, r.syscall.as_deref()), (Cause::Kernel, None));
        assert!(r.cause_detail.contains("python3(27907) was killed by a signal"), "{}", r.cause_detail);
        // Even without the exiting flag, tgkill(2) cannot produce CLD_KILLED.
        sender(&mut r).exiting = false;
        classify(&mut r);
        assert_eq!((r.cause, r.syscall.as_deref()), (Cause::Kernel, None));
    }

    #[test]
    fn parent_death_signal_after_the_parent_killed_itself() {
        let mut r = record(15, SI_USER, nr("kill"), ("parent", 7), 42);
        sender(&mut r).exiting = true;
        classify(&mut r);
        assert_eq!((r.cause, r.syscall.as_deref()), (Cause::Kernel, None));
        assert!(r.cause_detail.contains("PR_SET_PDEATHSIG"), "{}", r.cause_detail);
    }

    #[test]
    fn a_session_leaders_exit_hangs_up_its_job() {
        let mut r = record(libc::SIGHUP, SI_KERNEL, nr("kill"), ("bash", 7), 42);
        sender(&mut r).exiting = true;
        classify(&mut r);
        assert_eq!((r.cause, r.syscall.as_deref()), (Cause::Kernel, None));
        assert!(r.cause_detail.contains("session leader"), "{}", r.cause_detail);
    }

    #[test]
    fn interrupt_context_has_no_sender() {
        let mut r = record(libc::SIGALRM, SI_KERNEL, nr("kill"), ("busy", 77), 42);
        r.sender = None;
        r.interrupted = Some(Interrupted { pid: 77, tid: 77, comm: "busy".into() });
        r.context = Some(Context::Hardirq);
        classify(&mut r);
        assert_eq!((r.cause, r.syscall.as_deref()), (Cause::Kernel, None));
        assert!(r.cause_detail.contains("interval timer") && r.cause_detail.contains("hardirq"), "{}", r.cause_detail);
        assert!(r.cause_detail.contains("busy(77) was only the task"), "{}", r.cause_detail);
        let mut r = record(libc::SIGUSR1, SI_TIMER, Some(-1), ("busy", 77), 42);
        r.sender = None;
        classify(&mut r);
        assert!(r.cause_detail.contains("POSIX timer"), "{}", r.cause_detail);
    }

    #[test]
    fn a_namespace_init_without_a_handler_drops_sigterm() {
        let mut r = record(15, SI_USER, nr("kill"), ("runc", 600), 42);
        r.result = Some(Delivery::Ignored);
        (r.target.disposition, r.target.ns_init, r.target.blocked) =
            (Some(Disposition::Default), Some(true), Some(false));
        classify(&mut r);
        assert!(
            r.cause_detail.contains("pid 1 of its pid namespace") && r.cause_detail.contains("tini"),
            "{}",
            r.cause_detail
        );
        r.target.disposition = Some(Disposition::Ignore);
        classify(&mut r);
        assert!(r.cause_detail.contains("ignores SIGTERM (SIG_IGN)"), "{}", r.cause_detail);
    }

    #[test]
    fn faults_name_their_code() {
        let mut r = record(11, 1, Some(-1), ("app", 42), 42);
        classify(&mut r);
        assert_eq!(r.cause, Cause::Kernel);
        assert!(r.cause_detail.contains("SEGV_MAPERR"), "{}", r.cause_detail);
    }

    #[test]
    fn oom_mark_wins() {
        let mut r = record(9, SI_KERNEL, nr("write"), ("app", 42), 42);
        r.oom = Some(OomInfo {
            pid: 42,
            boot_ns: 0,
            total_vm_kb: Some(1),
            anon_rss_kb: Some(51200),
            file_rss_kb: Some(0),
            shmem_rss_kb: Some(0),
            pgtables_kb: None,
            oom_score_adj: Some(0),
            memory_cgroup: Some("/pod".into()),
            memory_limit_bytes: Some(52428800),
        });
        classify(&mut r);
        assert_eq!(r.cause, Cause::OomKill);
        assert!(r.cause_detail.contains("anon-rss 51200kB") && r.cause_detail.contains("/pod"));
    }

    #[test]
    fn without_syscall_evidence_si_user_is_unknown() {
        let mut r = record(13, SI_USER, None, ("app", 42), 42);
        classify(&mut r);
        assert_eq!(r.cause, Cause::Unknown);
        let mut r = record(15, SI_TKILL, None, ("app", 7), 42);
        classify(&mut r);
        assert_eq!(r.cause, Cause::Process);
        let mut r = record(14, SI_KERNEL, None, ("app", 42), 42);
        classify(&mut r);
        assert_eq!(r.cause, Cause::Kernel);
        assert!(r.cause_detail.contains("interval timer"));
    }

    #[test]
    fn which_syscalls_can_send_which_codes() {
        assert!(syscall_can_send("kill", SI_USER, false));
        assert!(!syscall_can_send("kill", SI_TKILL, false));
        assert!(!syscall_can_send("tgkill", SI_USER, false));
        assert!(syscall_can_send("tgkill", SI_TKILL, true));
        assert!(syscall_can_send("rt_sigqueueinfo", SI_QUEUE, false));
        assert!(!syscall_can_send("rt_sigqueueinfo", SI_USER, false));
        assert!(syscall_can_send("rt_sigqueueinfo", 2, true));
        assert!(!syscall_can_send("rt_sigqueueinfo", 2, false));
        assert!(syscall_can_send("pidfd_send_signal", SI_USER, false));
        assert!(!syscall_can_send("pidfd_send_signal", SI_TKILL, false));
        assert!(!syscall_can_send("write", SI_USER, true));
    }
}
