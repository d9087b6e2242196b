//! `podsig explain CODE`: what an exit code or signal means, who usually sends it, and the
//! watch that would catch the sender next time.

use serde::Serialize;

use crate::{
    signals,
    sink::output::{self, Format},
};

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Explanation {
    pub input: String,
    pub exit_code: Option<u8>,
    pub signal: Option<SignalInfo>,
    pub meaning: String,
    /// Who typically causes this, most likely first.
    pub usual_causes: Vec<&'static str>,
    /// How podsig tells those causes apart.
    pub tell_apart: Option<&'static str>,
    /// The command that catches it next time.
    pub watch: Option<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SignalInfo {
    pub number: i32,
    pub name: String,
    pub catchable: bool,
    /// What happens when the process does not handle it: terminate, core, stop, continue,
    /// ignore.
    pub default_action: &'static str,
    pub description: &'static str,
}

/// (signal, default action, description, usual causes).
// Long: a table, one arm per signal with its prose; nothing to factor out.
fn signal_facts(sig: i32) -> (&'static str, &'static str, Vec<&'static str>) {
    match sig {
        libc::SIGHUP => (
            "terminate",
            "hangup: the terminal closed or a daemon is asked to reload",
            vec![
                "a terminal or SSH session closing",
                "a reload request (kill -HUP) to a daemon that does not handle it",
            ],
        ),
        libc::SIGINT => (
            "terminate",
            "interrupt from the keyboard (Ctrl-C)",
            vec![
                "Ctrl-C in a terminal",
                "a supervisor forwarding an interrupt (docker stop --signal INT, a shell script)",
            ],
        ),
        libc::SIGQUIT => (
            "core",
            "quit from the keyboard (Ctrl-\\), dumps core",
            vec!["Ctrl-\\ in a terminal", "a stop signal configured as STOPSIGNAL SIGQUIT (nginx images do this)"],
        ),
        libc::SIGILL => (
            "core",
            "illegal instruction",
            vec!["a binary built for a newer CPU (AVX-512 and the like)", "memory corruption jumping into data"],
        ),
        libc::SIGTRAP => {
            ("core", "trace or breakpoint trap", vec!["a debugger", "a compiled-in trap (__builtin_trap)"])
        }
        libc::SIGABRT => (
            "core",
            "abort: the program gave up on itself",
            vec![
                "a failed assertion or abort() in the program",
                "a C++ exception nobody caught (std::terminate)",
                "glibc detecting heap corruption (double free)",
            ],
        ),
        libc::SIGBUS => (
            "core",
            "bus error: a bad memory access",
            vec![
                "reading a memory-mapped file that was truncated",
                "a full /dev/shm (tmpfs) behind a shared-memory mapping",
            ],
        ),
        libc::SIGFPE => ("core", "arithmetic error", vec!["integer division by zero", "integer overflow trap"]),
        libc::SIGKILL => (
            "terminate",
            "kill: cannot be caught, blocked or ignored",
            vec![
                "the OOM killer: the container or host ran out of memory (kubectl describe shows OOMKilled)",
                "kubelet, through the container runtime, when the grace period after SIGTERM ran out",
                "the runtime (runc, crun) on docker kill, ctr task kill, crictl stop past its timeout",
                "a person or script: kill -9, pkill -9",
            ],
        ),
        libc::SIGUSR1 | libc::SIGUSR2 => (
            "terminate",
            "user-defined signal",
            vec![
                "the application's own protocol (log rotation, status dumps)",
                "a tool sending it to a process that does not expect it",
            ],
        ),
        libc::SIGSEGV => (
            "core",
            "segmentation fault: invalid memory access",
            vec!["a bug in the program or a native library (null or dangling pointer)", "a stack overflow"],
        ),
        libc::SIGPIPE => (
            "terminate",
            "write to a pipe or socket with no reader",
            vec!["the reading end went away (a closed connection, `| head`)", "kill -PIPE (rare)"],
        ),
        libc::SIGALRM => ("terminate", "timer expired (alarm, setitimer)", vec!["the program's own alarm()"]),
        libc::SIGTERM => (
            "terminate",
            "polite termination request",
            vec![
                "kubelet stopping the container (pod deletion, rollout, eviction, failed liveness probe)",
                "docker stop, ctr task kill, systemctl stop",
                "a person or script: kill, pkill, timeout",
            ],
        ),
        libc::SIGCHLD => ("ignore", "a child process stopped or exited", vec!["the kernel, when a child exits"]),
        libc::SIGCONT => ("continue", "continue a stopped process", vec!["kill -CONT, a shell's fg/bg"]),
        libc::SIGSTOP => {
            ("stop", "stop: cannot be caught, blocked or ignored", vec!["kill -STOP, a debugger, a freezer"])
        }
        libc::SIGTSTP => ("stop", "stop from the keyboard (Ctrl-Z)", vec!["Ctrl-Z in a terminal"]),
        libc::SIGTTIN | libc::SIGTTOU => (
            "stop",
            "background process touched its terminal",
            vec!["a background job reading or writing the terminal"],
        ),
        libc::SIGURG => (
            "ignore",
            "urgent data on a socket; also the Go runtime's preemption signal",
            vec!["the Go runtime preempting goroutines (constant and harmless)"],
        ),
        libc::SIGXCPU => ("core", "CPU time limit exceeded (RLIMIT_CPU)", vec!["ulimit -t, a systemd LimitCPU="]),
        libc::SIGXFSZ => ("core", "file size limit exceeded (RLIMIT_FSIZE)", vec!["ulimit -f, a systemd LimitFSIZE="]),
        libc::SIGVTALRM | libc::SIGPROF => {
            ("terminate", "profiling or virtual timer expired", vec!["a profiler or the program's own setitimer"])
        }
        libc::SIGWINCH => ("ignore", "terminal window size changed", vec!["resizing the terminal"]),
        libc::SIGIO => ("terminate", "I/O possible on a descriptor (O_ASYNC)", vec!["the program's own F_SETOWN"]),
        libc::SIGPWR => ("terminate", "power failure", vec!["a UPS daemon"]),
        libc::SIGSYS => (
            "core",
            "bad system call, usually seccomp",
            vec!["a seccomp profile (the container's) trapping a syscall the program made"],
        ),
        libc::SIGSTKFLT => ("terminate", "coprocessor stack fault (unused on modern Linux)", vec!["kill -STKFLT"]),
        32 => (
            "terminate",
            "reserved by the C library: glibc's thread cancellation (its SIGCANCEL, the kernel's first real-time \
             signal; user space's SIGRTMIN is 34)",
            vec!["pthread_cancel() inside the process", "kill -32 by hand"],
        ),
        33 => (
            "terminate",
            "reserved by the C library: glibc's set*id() across threads (its SIGSETXID; user space's SIGRTMIN is 34)",
            vec!["setuid() and friends in a multi-threaded process", "kill -33 by hand"],
        ),
        _ => (
            "terminate",
            "real-time signal: meaning defined by the application",
            vec!["the application's own protocol"],
        ),
    }
}

fn signal_info(sig: i32) -> SignalInfo {
    let (default_action, description, _) = signal_facts(sig);
    SignalInfo {
        number: sig,
        name: signals::name(sig),
        catchable: sig != libc::SIGKILL && sig != libc::SIGSTOP,
        default_action,
        description,
    }
}

const TELL_APART: &str = "podsig reports the sender with its ancestry and a cause: oom_kill \
    (the OOM killer's mark), runtime_stop (runc/crun run by containerd-shim, conmon or dockerd: \
    kubelet or docker asked), process (a kill(2) from some other process, named), or kernel \
    (faults, SIGPIPE on write, rlimits, timers)";

fn watch_for(sig: i32) -> String {
    format!("sudo podsig watch --pid PID --signal {}", signals::name(sig).trim_start_matches("SIG"))
}

fn for_signal(input: &str, sig: i32, exit_code: Option<u8>) -> Explanation {
    let info = signal_info(sig);
    let meaning = match exit_code {
        Some(c) => {
            format!("exit code {c} = 128 + {sig}: the process was ended by {} ({})", info.name, info.description)
        }
        None => format!("{} (signal {sig}): {}", info.name, info.description),
    };
    Explanation {
        input: input.to_string(),
        exit_code,
        usual_causes: signal_facts(sig).2,
        tell_apart: Some(TELL_APART),
        watch: Some(watch_for(sig)),
        signal: Some(info),
        meaning,
    }
}

/// `podsig explain CODE`.
pub fn command(args: crate::cli::ExplainArgs) -> anyhow::Result<()> {
    let e = explain(&args.code).map_err(anyhow::Error::msg)?;
    match args.output {
        Format::Text => output::print(text(&e).as_bytes()),
        Format::Json => output::print((serde_json::to_string(&e)? + "\n").as_bytes()),
    }
}

pub fn explain(input: &str) -> Result<Explanation, String> {
    let t = input.trim();
    if let Ok(n) = t.parse::<i64>() {
        let Ok(code) = u8::try_from(n) else {
            return Err(format!(
                "exit code {n} is out of range: exit codes are 0-255 (give a signal by name, e.g. SIGTERM)"
            ));
        };
        if (129..=128 + signals::SIGRTMAX as u16).contains(&(code as u16)) {
            return Ok(for_signal(t, code as i32 - 128, Some(code)));
        }
        let (meaning, causes): (String, Vec<&'static str>) = match code {
            0 => ("success: the process exited normally".into(), vec!["the program finished its work"]),
            1 => (
                "general error: the program reported a failure".into(),
                vec!["the application's own error handling (read its logs)"],
            ),
            2 => (
                "usage error: shells and many tools use 2 for bad arguments".into(),
                vec!["a wrong command line or configuration"],
            ),
            126 => (
                "the command was found but could not be executed".into(),
                vec!["a missing execute permission", "a binary for another architecture (exec format error)"],
            ),
            127 => (
                "command not found".into(),
                vec!["a typo in the command or entrypoint", "a binary missing from the image or from PATH"],
            ),
            128 => (
                "exit 128: usually an invalid argument to exit, or a program's own code".into(),
                vec!["the program's own exit(128)"],
            ),
            c if c > 128 => (
                format!("exit code {c} is above 128 + 64, so not a signal: the program chose it"),
                vec!["the program's own exit status (exit(-1) gives 255)"],
            ),
            c => (format!("exit code {c}: chosen by the program"), vec!["the application's own error handling"]),
        };
        return Ok(Explanation {
            input: t.to_string(),
            exit_code: Some(code),
            signal: None,
            meaning,
            usual_causes: causes,
            tell_apart: None,
            watch: None,
        });
    }
    let sig = signals::parse(t)?;
    Ok(for_signal(t, sig, None))
}

pub fn text(e: &Explanation) -> String {
    let mut t = format!("{}\n", e.meaning);
    if let Some(s) = &e.signal {
        t += &format!(
            "{}: default action {}, {}\n",
            s.name,
            s.default_action,
            if s.catchable { "can be caught or ignored" } else { "cannot be caught, blocked or ignored" }
        );
    }
    t += "usual causes:\n";
    for c in &e.usual_causes {
        t += &format!("  - {c}\n");
    }
    if let Some(how) = e.tell_apart {
        t += &format!("telling them apart: {how}\n");
    }
    if let Some(w) = &e.watch {
        t += &format!("catch it next time: {w}\n");
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exit_code_is_explained() {
        for c in 0..=255u16 {
            let e = explain(&c.to_string()).unwrap();
            assert_eq!(e.exit_code, Some(c as u8));
            assert!(!e.meaning.is_empty() && !e.usual_causes.is_empty());
            assert_eq!(e.signal.is_some(), (129..=192).contains(&c), "{c}");
        }
    }

    #[test]
    fn table() {
        let cases: &[(&str, Option<i32>, &str)] = &[
            ("137", Some(9), "128 + 9"),
            ("143", Some(15), "SIGTERM"),
            ("139", Some(11), "SIGSEGV"),
            ("134", Some(6), "SIGABRT"),
            ("127", None, "not found"),
            ("126", None, "could not be executed"),
            ("1", None, "general error"),
            ("0", None, "success"),
            ("255", None, "not a signal"),
            ("SIGTERM", Some(15), "SIGTERM"),
            ("kill", Some(9), "cannot be caught"),
        ];
        for (input, sig, needle) in cases {
            let e = explain(input).unwrap();
            assert_eq!(e.signal.as_ref().map(|s| s.number), *sig, "{input}");
            assert!(text(&e).contains(needle), "{input}: {}", text(&e));
        }
        let k = explain("137").unwrap();
        assert!(!k.signal.unwrap().catchable);
        assert!(k.usual_causes[0].contains("OOM killer"));
        assert_eq!(k.watch.as_deref(), Some("sudo podsig watch --pid PID --signal KILL"));
    }

    #[test]
    fn bad_input() {
        assert!(explain("256").unwrap_err().contains("0-255"));
        assert!(explain("-1").unwrap_err().contains("0-255"));
        assert!(explain("SIGNOPE").unwrap_err().contains("unknown signal"));
    }
}
