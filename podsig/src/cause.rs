//! From evidence to a verdict: why a signal was sent, claiming only what the record shows.
//!
//! The evidence: the signal and its si_code, the syscall the sender was executing (read in
//! kernel from its saved registers), an OOM-killer mark for the same pid, and the sender's
//! ancestry. si_code alone is not enough: a SIGPIPE raised by write(2) arrives as SI_USER
//! from the writer to itself, exactly like `kill(getpid(), SIGPIPE)`; the syscall settles it.

use crate::event::{Cause, OomInfo, RuntimeInfo, SignalRecord};

const SI_USER: i32 = 0;
const SI_KERNEL: i32 = 0x80;
const SI_QUEUE: i32 = -1;
const SI_TIMER: i32 = -2;
const SI_TKILL: i32 = -6;

/// Syscall numbers podsig names, per architecture.
#[cfg(target_arch = "x86_64")]
const SYSCALLS: &[(i32, &str)] = &[
    (1, "write"),
    (18, "pwrite64"),
    (20, "writev"),
    (40, "sendfile"),
    (44, "sendto"),
    (46, "sendmsg"),
    (60, "exit"),
    (62, "kill"),
    (129, "rt_sigqueueinfo"),
    (200, "tkill"),
    (231, "exit_group"),
    (234, "tgkill"),
    (275, "splice"),
    (296, "pwritev"),
    (297, "rt_tgsigqueueinfo"),
    (307, "sendmmsg"),
    (327, "pwritev2"),
    (424, "pidfd_send_signal"),
];
#[cfg(target_arch = "aarch64")]
const SYSCALLS: &[(i32, &str)] = &[
    (64, "write"),
    (66, "writev"),
    (68, "pwrite64"),
    (69, "pwritev"),
    (71, "sendfile"),
    (76, "splice"),
    (93, "exit"),
    (94, "exit_group"),
    (129, "kill"),
    (130, "tkill"),
    (131, "tgkill"),
    (138, "rt_sigqueueinfo"),
    (206, "sendto"),
    (211, "sendmsg"),
    (240, "rt_tgsigqueueinfo"),
    (269, "sendmmsg"),
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
    let runtime = RUNTIMES.iter().find(|r| s.sender.comm == **r)?;
    let above = s.ancestry.iter().rev().skip(1);
    let manager =
        above.map(|a| a.comm.as_str()).find(|c| MANAGERS.iter().any(|m| c.starts_with(m))).map(str::to_string);
    Some(RuntimeInfo { runtime: runtime.to_string(), manager })
}

pub fn classify(s: &mut SignalRecord) {
    s.syscall = s.syscall_nr.and_then(signal_syscall);
    let (cause, detail) = verdict(s);
    s.cause = cause;
    s.cause_detail = detail;
}

fn verdict(s: &mut SignalRecord) -> (Cause, String) {
    let code = s.code.value;
    if let Some(oom) = &s.oom {
        return (Cause::OomKill, oom_detail(s, oom));
    }
    if let Some(sc) = s.syscall {
        if let Some(rt) = runtime_of(s) {
            let detail = format!(
                "{} sent it with {sc}(2){}: a stop or kill its container manager asked for \
                 (kubelet through the CRI, docker stop, ctr task kill); kubelet never appears \
                 in this ancestry, so which kubelet action it was cannot be told from here",
                rt.runtime,
                rt.manager.as_ref().map_or(String::new(), |m| format!(", run by {m}"))
            );
            s.runtime = Some(rt);
            return (Cause::RuntimeStop, detail);
        }
        return (Cause::Process, format!("{sc}(2) from {}({}), {}", s.sender.comm, s.sender.pid, family(code, sc)));
    }
    if s.sender.kthread {
        return (Cause::Kernel, format!("kernel thread {}: {}", s.sender.comm, mechanism(s)));
    }
    if s.syscall_nr.is_some() {
        // Known registers, and not a signal-sending syscall: the kernel raised it.
        return (Cause::Kernel, mechanism(s));
    }
    // No syscall evidence (kernel without BTF or bpf_task_pt_regs): si_code must do.
    match code {
        // User space cannot send these codes to another process.
        SI_KERNEL | SI_TIMER => (Cause::Kernel, mechanism(s)),
        c if c > 0 => (Cause::Kernel, mechanism(s)),
        SI_TKILL => (Cause::Process, "tkill/tgkill(2) (only those syscalls set SI_TKILL)".into()),
        SI_QUEUE => (Cause::Process, "sigqueue(3) via rt_sigqueueinfo(2)".into()),
        _ => (
            Cause::Unknown,
            format!(
                "{} without syscall evidence on this kernel: kill(2) and a kernel-raised signal \
                 (SIGPIPE on write, SIGXFSZ, a parent-death signal) look the same",
                s.code.name.unwrap_or("si_code")
            ),
        ),
    }
}

fn family(code: i32, syscall: &str) -> String {
    match code {
        SI_USER => "SI_USER: kill(2)-style, to a process".into(),
        SI_TKILL => "SI_TKILL: tkill/tgkill(2), to one thread".into(),
        SI_QUEUE => "SI_QUEUE: sigqueue(3), with a value".into(),
        c if c < 0 => format!("si_code {c} chosen by the sender through {syscall}(2)"),
        _ => format!("si_code {code} chosen by the sender through {syscall}(2)"),
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
    let code_name = s.code.name.unwrap_or("?");
    let during = s.syscall_nr.and_then(syscall_name).map_or(String::new(), |n| format!(" raised by {n}(2)"));
    let self_sent = s.sender.pid == s.target.pid;
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
        libc::SIGCHLD if code > 0 => {
            let what = match code_name {
                "CLD_EXITED" => "exited",
                "CLD_KILLED" => "was killed",
                "CLD_DUMPED" => "dumped core",
                "CLD_TRAPPED" => "trapped",
                "CLD_STOPPED" => "stopped",
                "CLD_CONTINUED" => "continued",
                _ => "changed state",
            };
            format!("a child process {what} ({}({}) was its parent)", s.target.comm, s.target.pid)
        }
        libc::SIGPIPE if self_sent => {
            format!("write to a pipe or socket with no reader{during}")
        }
        libc::SIGXFSZ if self_sent => format!("file size limit (RLIMIT_FSIZE) exceeded{during}"),
        libc::SIGXCPU => "CPU time limit (RLIMIT_CPU) reached".into(),
        // zap_pid_ns_processes(): the exiting init of a pid namespace takes the rest along.
        libc::SIGKILL
            if code == SI_KERNEL
                && s.sender.ns_pid == Some(1)
                && s.sender.pidns.is_some()
                && s.sender.pidns == s.target.pidns =>
        {
            format!(
                "{}({}), pid 1 of this pid namespace (a container's init), exited: the kernel kills \
                 every other process in the namespace",
                s.sender.comm, s.sender.pid
            )
        }
        libc::SIGKILL if code == SI_KERNEL => {
            "SIGKILL from the kernel without an OOM-killer mark (RLIMIT_CPU hard limit, \
             seccomp, or a fatal kernel error)"
                .into()
        }
        libc::SIGALRM | libc::SIGVTALRM | libc::SIGPROF if code == SI_KERNEL => {
            "an interval timer expired (alarm/setitimer)".into()
        }
        _ if code == SI_TIMER => "a POSIX timer expired (timer_create)".into(),
        libc::SIGIO if code > 0 => format!("asynchronous I/O readiness ({code_name}, O_ASYNC/F_SETOWN)"),
        libc::SIGSYS if code > 0 => format!("seccomp trapped a syscall ({code_name})"),
        libc::SIGHUP if code == SI_KERNEL => "terminal hangup, or its session leader exited".into(),
        libc::SIGINT if code == SI_KERNEL => "terminal interrupt key (Ctrl-C)".into(),
        libc::SIGQUIT if code == SI_KERNEL => "terminal quit key (Ctrl-\\)".into(),
        libc::SIGTSTP if code == SI_KERNEL => "terminal suspend key (Ctrl-Z)".into(),
        libc::SIGTTIN | libc::SIGTTOU if code == SI_KERNEL => "a background process touched its terminal".into(),
        libc::SIGWINCH if code == SI_KERNEL => "the terminal window was resized".into(),
        _ if !self_sent && matches!(s.syscall_nr.and_then(syscall_name), Some("exit" | "exit_group")) => {
            format!("its parent {}({}) exited: a parent-death signal (PR_SET_PDEATHSIG)", s.sender.comm, s.sender.pid)
        }
        _ => format!("raised by the kernel ({code_name}){during}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::*;

    fn record(sig: i32, code: i32, syscall_nr: Option<i32>, sender: (&str, u32), target: u32) -> SignalRecord {
        let a = |pid, comm: &str| Ancestor { pid, comm: comm.into(), start_ns: 0 };
        let base = sample_signal();
        SignalRecord {
            signal: SignalId::new(sig),
            code: Code { value: code, name: crate::signals::code_name(sig, code) },
            target: Target {
                pid: target,
                tid: target,
                ns_pid: Some(target),
                comm: "app".into(),
                container: None,
                pidns: None,
                memcg: None,
            },
            sender: Sender { pid: sender.1, tid: sender.1, comm: sender.0.into(), ..base.sender.clone() },
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

    #[test]
    fn a_dying_container_init_takes_its_namespace_along() {
        let mut r = record(9, SI_KERNEL, Some(231), ("sh", 5938), 5952);
        (r.sender.ns_pid, r.sender.pidns, r.target.pidns) = (Some(1), Some(4026532001), Some(4026532001));
        classify(&mut r);
        assert_eq!(r.cause, Cause::Kernel);
        assert!(r.cause_detail.contains("sh(5938), pid 1 of this pid namespace"), "{}", r.cause_detail);
        // The same SIGKILL from outside the namespace is not that.
        r.target.pidns = Some(4026531836);
        classify(&mut r);
        assert!(r.cause_detail.contains("without an OOM-killer mark"), "{}", r.cause_detail);
    }

    #[test]
    fn kill_from_a_process() {
        let mut r = record(15, SI_USER, nr("kill"), ("pkill", 500), 42);
        classify(&mut r);
        assert_eq!((r.cause, r.syscall), (Cause::Process, Some("kill")));
        assert!(r.cause_detail.contains("SI_USER"), "{}", r.cause_detail);
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
        assert_eq!((r.cause, r.syscall), (Cause::Kernel, None));
        assert!(r.cause_detail.contains("no reader raised by write(2)"), "{}", r.cause_detail);
        let mut r = record(13, SI_USER, nr("kill"), ("app", 42), 42);
        classify(&mut r);
        assert_eq!(r.cause, Cause::Process);
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
    fn parent_death_signal() {
        let mut r = record(15, SI_USER, nr("exit_group"), ("parent", 7), 42);
        classify(&mut r);
        assert_eq!(r.cause, Cause::Kernel);
        assert!(r.cause_detail.contains("PR_SET_PDEATHSIG"), "{}", r.cause_detail);
    }
}
