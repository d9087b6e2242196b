//! Every verdict true: signals the kernel raises are never blamed on a task, whatever that
//! task's registers say; signals from interrupt context have no task sender; what the
//! target does with a signal is read when it is generated; group kills and long command
//! lines are reported as they were. Real processes, real signals, the real kernel.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    thread,
    time::{Duration, Instant},
};

use podsig_e2e::*;

/// Small C programs for what a shell cannot do: raise(3) (tgkill) in a child,
/// PR_SET_PDEATHSIG, setitimer and timer_create. Each waits for a gate file first so podsig
/// is attached before anything happens.
const SCENARIO_C: &str = r#"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void gate(const char *path) { while (access(path, F_OK) != 0) usleep(20000); }
static void on_signal(int sig) { (void)sig; }

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *mode = argv[1];
    if (!strcmp(mode, "raise-child")) {
        gate(argv[2]);
        pid_t c = fork();
        if (c == 0) { raise(SIGTERM); _exit(0); }
        int st; waitpid(c, &st, 0);
        usleep(200000);
        return WIFSIGNALED(st) ? 0 : 1;
    }
    if (!strcmp(mode, "attach")) {
        /* A debugger's attach: PTRACE_ATTACH stops the tracee with SIGSTOP. */
        pid_t t = atoi(argv[2]); int st;
        if (ptrace(PTRACE_ATTACH, t, 0, 0)) return 1;
        waitpid(t, &st, 0);
        ptrace(PTRACE_DETACH, t, 0, 0);
        return 0;
    }
    if (!strcmp(mode, "trace-exec")) {
        /* Attached without PTRACE_O_TRACEEXEC: the tracee's exec raises SIGTRAP. The tracee
           waits for argv[3], which this creates once attached. */
        pid_t t = atoi(argv[2]); int st;
        if (ptrace(PTRACE_ATTACH, t, 0, 0)) return 1;
        waitpid(t, &st, 0);
        ptrace(PTRACE_CONT, t, 0, 0);
        fclose(fopen(argv[3], "w"));
        for (;;) {
            if (waitpid(t, &st, 0) < 0 || !WIFSTOPPED(st)) return 1;
            if (WSTOPSIG(st) == SIGTRAP) { ptrace(PTRACE_DETACH, t, 0, 0); return 0; }
            ptrace(PTRACE_CONT, t, 0, WSTOPSIG(st));
        }
    }
    if (!strcmp(mode, "block-term")) {
        /* SIGTERM blocked when it comes: pending until unblocked, then its default action. */
        sigset_t set; sigemptyset(&set); sigaddset(&set, SIGTERM);
        sigprocmask(SIG_BLOCK, &set, NULL);
        gate(argv[2]);
        sleep(1);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        return 0;
    }
    if (!strcmp(mode, "pipe")) {
        /* SIGPIPE raised by write(2) to a pipe nobody reads. */
        int p[2];
        gate(argv[2]);
        if (pipe(p)) return 1;
        close(p[0]);
        return write(p[1], "x", 1) < 0 ? 3 : 4;
    }
    if (!strcmp(mode, "pdeath")) {
        pid_t c = fork();
        if (c == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() == 1) _exit(1);
            for (;;) pause();
        }
        printf("%d\n", c); fflush(stdout);
        gate(argv[2]);
        kill(getpid(), SIGKILL);
        return 1;
    }
    struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = on_signal;
    if (!strcmp(mode, "itimer")) {
        sigaction(SIGALRM, &sa, NULL);
        gate(argv[2]);
        struct itimerval it = { {0, 0}, {0, 300000} };
        setitimer(ITIMER_REAL, &it, NULL);
        pause();
        return 0;
    }
    if (!strcmp(mode, "posix-timer")) {
        sigaction(SIGUSR1, &sa, NULL);
        gate(argv[2]);
        timer_t t; struct sigevent ev; memset(&ev, 0, sizeof ev);
        ev.sigev_notify = SIGEV_SIGNAL; ev.sigev_signo = SIGUSR1;
        if (timer_create(CLOCK_MONOTONIC, &ev, &t)) return 1;
        struct itimerspec its = { {0, 0}, {0, 300000000} };
        timer_settime(t, 0, &its, NULL);
        pause();
        return 0;
    }
    return 2;
}
"#;

/// The scenario program, compiled once per test binary.
fn scenario() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| c_program("scenario", SCENARIO_C)).clone()
}

/// Runs the scenario `mode` behind a gate; killed on drop.
struct Scenario {
    child: Child,
    gate: Gate,
}

impl Scenario {
    fn start(mode: &str, pin: Option<&str>) -> Self {
        let gate = Gate::new();
        let mut c = match pin {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpu]).arg(scenario());
                c
            }
            None => Command::new(scenario()),
        };
        let child = c.arg(mode).arg(gate.path()).stdout(Stdio::piped()).spawn().expect("spawn scenario");
        Self { child, gate }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn first_line(&mut self) -> String {
        use std::io::BufRead;
        let mut l = String::new();
        std::io::BufReader::new(self.child.stdout.as_mut().unwrap()).read_line(&mut l).unwrap();
        l.trim().to_string()
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn str_of<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut v = v;
    for k in path {
        v = &v[*k];
    }
    v.as_str().unwrap_or_default()
}

/// What every record must satisfy, whatever its story: a syscall is named only if it can
/// produce the record's si_code, and a kernel verdict names no syscall.
fn consistent(ev: &Value) {
    let code = ev["code"]["value"].as_i64().unwrap();
    let to_itself = ev["sender"]["pid"] == ev["target"]["pid"];
    match ev["syscall"].as_str() {
        Some("kill") => assert_eq!(code, 0, "{ev}"),
        Some("tkill" | "tgkill") => assert_eq!(code, -6, "{ev}"),
        Some("rt_sigqueueinfo" | "rt_tgsigqueueinfo") => assert!(to_itself || (code < 0 && code != -6), "{ev}"),
        Some("pidfd_send_signal") => assert!(code == 0 || to_itself || (code < 0 && code != -6), "{ev}"),
        // PTRACE_ATTACH's SIGSTOP, SEND_SIG_PRIV from the tracer.
        Some("ptrace") => assert_eq!((ev["signal"]["name"].as_str(), code), (Some("SIGSTOP"), 128), "{ev}"),
        Some(other) => panic!("not a signal syscall: {other}: {ev}"),
        None => assert_ne!(ev["cause"], "process", "a process verdict names its syscall: {ev}"),
    }
    if ev["cause"] == "kernel" {
        assert_eq!(ev["syscall"], Value::Null, "{ev}");
    }
}

#[test]
fn a_child_that_raises_a_signal_on_itself_is_not_a_tgkill_to_its_parent() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let s = Scenario::start("raise-child", None);
    let parent = s.pid();
    let mut w = Podsig::start(&["watch", "--pid", &parent.to_string(), "--signal", "CHLD", "-o", "json"]);
    s.gate.go();
    let ev = w.next_signal("SIGCHLD");
    consistent(&ev);
    assert_eq!(ev["code"]["name"], "CLD_KILLED", "{ev}");
    assert_eq!(ev["sender"]["exiting"], true, "{ev}");
    assert_eq!(ev["syscall"], Value::Null, "{ev}");
    assert_eq!(ev["cause"], "kernel", "{ev}");
    assert!(str_of(&ev, &["cause_detail"]).contains("was killed by a signal"), "{ev}");
    assert!(!str_of(&ev, &["cause_detail"]).contains("tgkill"), "{ev}");
}

#[test]
fn a_parent_death_signal_after_the_parent_killed_itself() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let mut s = Scenario::start("pdeath", None);
    let parent = s.pid();
    let child = s.first_line();
    let mut w = Podsig::start(&["watch", "--pid", &child, "--signal", "TERM", "-o", "json"]);
    s.gate.go();
    let ev = w.next_signal("SIGTERM");
    consistent(&ev);
    assert_eq!(ev["sender"]["pid"], parent, "{ev}");
    assert_eq!(ev["sender"]["exiting"], true, "{ev}");
    assert_eq!((ev["code"]["name"].as_str(), ev["syscall"].as_str()), (Some("SI_USER"), None), "{ev}");
    assert_eq!(ev["cause"], "kernel", "{ev}");
    assert!(str_of(&ev, &["cause_detail"]).contains("PR_SET_PDEATHSIG"), "{ev}");
    let _ = Command::new("kill").args(["-KILL", &child]).status();
}

#[test]
fn a_tmux_session_kill_hangs_up_its_job_as_the_kernel() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let session = format!("podsig-e2e-{}", std::process::id());
    let socket = scratch("tmux").join("sock");
    let tmux = |args: &[&str]| {
        Command::new("tmux").arg("-S").arg(&socket).args(args).output().expect("run tmux (apt install tmux)")
    };
    let o = tmux(&["new-session", "-d", "-s", &session, "sh -c 'sleep 300; :'"]);
    assert!(o.status.success(), "tmux: {}", String::from_utf8_lossy(&o.stderr));
    let pane =
        String::from_utf8_lossy(&tmux(&["list-panes", "-t", &session, "-F", "#{pane_pid}"]).stdout).trim().to_string();
    // The job in the pane: the shell's sleep.
    let deadline = Instant::now() + TIMEOUT;
    let sleep = loop {
        let o = Command::new("pgrep").args(["-P", &pane, "sleep"]).output().unwrap();
        let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if !s.is_empty() {
            break s;
        }
        assert!(Instant::now() < deadline, "no sleep under the pane's shell {pane}");
        thread::sleep(Duration::from_millis(20));
    };
    let mut w = Podsig::start(&["watch", "--pid", &sleep, "--signal", "HUP", "-o", "json"]);
    tmux(&["kill-session", "-t", &session]);
    let ev = w.next_signal("SIGHUP");
    consistent(&ev);
    assert_eq!(ev["code"]["name"], "SI_KERNEL", "{ev}");
    assert_eq!(ev["cause"], "kernel", "{ev}");
    assert!(["hangup", "session leader"].iter().any(|k| str_of(&ev, &["cause_detail"]).contains(k)), "{ev}");
    let _ = tmux(&["kill-server"]);
    let _ = Command::new("kill").args(["-KILL", &sleep]).status();
}

/// A busy loop on `cpu`, so a timer interrupt there lands on it; killed on drop.
struct Busy(Child);

impl Busy {
    fn on(cpu: &str) -> Self {
        Self(Command::new("taskset").args(["-c", cpu, "sh", "-c", "while :; do :; done"]).spawn().expect("taskset"))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn timer_fired_in_interrupt_context(mode: &str, signal: &str, mechanism: &str) {
    let busy = Busy::on("0");
    let s = Scenario::start(mode, Some("0"));
    let t = s.pid();
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "--signal", signal, "-o", "json"]);
    s.gate.go();
    let ev = w.next_signal(&format!("SIG{signal}"));
    consistent(&ev);
    assert_eq!(ev["sender"], Value::Null, "{ev}");
    assert!(matches!(ev["context"].as_str(), Some("hardirq" | "softirq")), "{ev}");
    let interrupted = &ev["interrupted"];
    assert!(interrupted["pid"].is_u64(), "{ev}");
    assert_ne!(interrupted["pid"], t, "the target sleeps in pause(): {ev}");
    eprintln!("{mode}: interrupted {interrupted} (the busy loop is {})", busy.0.id());
    assert_eq!(ev["ancestry"].as_array().map(Vec::len), Some(0), "no ancestry for a task that sent nothing: {ev}");
    assert_eq!(ev["findings"].as_array().map(Vec::len), Some(0), "{ev}");
    assert_eq!(ev["cause"], "kernel", "{ev}");
    assert!(str_of(&ev, &["cause_detail"]).contains(mechanism), "{ev}");
}

#[test]
fn an_interval_timer_is_the_kernels_not_the_interrupted_tasks() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    timer_fired_in_interrupt_context("itimer", "ALRM", "interval timer");
}

#[test]
fn a_posix_timer_is_named_as_such() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    timer_fired_in_interrupt_context("posix-timer", "USR1", "POSIX timer");
}

#[test]
fn a_cpu_time_limit_is_named_as_such() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (target, gate) = Target::gated("ulimit -St 1; while :; do :; done");
    let t = target.pid().to_string();
    let mut w = Podsig::start(&["watch", "--pid", &t, "--signal", "XCPU", "-o", "json"]);
    gate.go();
    let ev = w.next_signal("SIGXCPU");
    consistent(&ev);
    assert_eq!(ev["cause"], "kernel", "{ev}");
    assert!(str_of(&ev, &["cause_detail"]).contains("CPU time limit"), "{ev}");
}

#[test]
fn a_process_group_kill_says_so() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    use std::os::unix::process::CommandExt;
    let mut target = Command::new("sleep").arg("300").process_group(0).spawn().unwrap();
    let pgid = target.id();
    let mut w = Podsig::start(&["watch", "--pid", &pgid.to_string(), "-o", "json"]);
    send("sh", "kill -TERM -$T", pgid);
    let ev = w.next_signal("SIGTERM");
    consistent(&ev);
    assert_eq!((ev["scope"].as_str(), ev["pgid"].as_u64()), (Some("process_group"), Some(pgid as u64)), "{ev}");
    assert_eq!(ev["syscall"], "kill", "{ev}");
    let _ = target.kill();
    let _ = target.wait();
}

#[test]
fn a_long_command_line_keeps_its_end() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::sleep();
    let t = target.pid().to_string();
    let mut w = Podsig::start(&["watch", "--pid", &t, "-o", "json"]);
    // The pid comes last, after ~3 KB of arguments: a runc-style `… kill <id> <signal>`.
    let pad: Vec<String> = (0..300).map(|i| format!("--opt{i:04}=x")).collect();
    let st = Command::new("sh")
        .args(["-c", "for a; do last=$a; done; kill -TERM $last", "sh"])
        .args(&pad)
        .arg(&t)
        .status()
        .unwrap();
    assert!(st.success());
    let ev = w.next_signal("SIGTERM");
    let argv: Vec<&str> = ev["sender"]["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(ev["sender"]["argv_truncated"], true, "{ev}");
    assert_eq!(argv.first(), Some(&"sh"), "{argv:?}");
    assert_eq!(argv.last(), Some(&t.as_str()), "the end of the command line is kept: {argv:?}");
    assert!(argv.contains(&"…"), "{argv:?}");
}

#[test]
fn a_namespace_init_without_a_handler_drops_sigterm_and_says_why() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    // `unshare -fp` forks; its child, `sh`, is pid 1 of a new pid namespace with no handler
    // for SIGTERM: what a shell-form container's init is.
    let mut unshare = Command::new("unshare").args(["-fp", "sh", "-c", "sleep 600; :"]).spawn().unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let init = loop {
        let o = Command::new("pgrep").args(["-P", &unshare.id().to_string()]).output().unwrap();
        let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if !s.is_empty() {
            break s;
        }
        assert!(Instant::now() < deadline, "unshare started no child");
        thread::sleep(Duration::from_millis(20));
    };
    let mut w = Podsig::start(&["watch", "--pid", &init, "-o", "json"]);
    send("sh", "kill -TERM $T", init.parse().unwrap());
    let ev = w.next_signal("SIGTERM");
    consistent(&ev);
    assert_eq!(ev["result"], "ignored", "{ev}");
    assert_eq!(ev["target"]["ns_pid"], 1, "{ev}");
    assert_eq!(ev["target"]["ns_init"], true, "{ev}");
    assert_eq!(ev["target"]["disposition"], "default", "{ev}");
    assert_eq!(ev["target"]["blocked"], false, "{ev}");
    let why = str_of(&ev, &["cause_detail"]);
    assert!(why.contains("pid 1 of its pid namespace") && why.contains("tini"), "{ev}");
    let _ = unshare.kill();
    let _ = Command::new("kill").args(["-KILL", &init]).status();
    let _ = unshare.wait();
}

#[test]
fn a_handled_and_an_ignored_signal_are_told_apart() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    // USR1 ignored, USR2 handled, and no forking: a shell blocks every signal around each
    // fork, and a blocked signal is queued (delivered), not dropped, even when ignored.
    let target = Target::script("exec perl -e '$SIG{USR1} = \"IGNORE\"; $SIG{USR2} = sub {}; sleep 1 while 1'");
    // Until perl has installed both dispositions.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !std::fs::read_to_string(format!("/proc/{}/status", target.pid()))
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("SigCgt:") && u64::from_str_radix(l[7..].trim(), 16).is_ok_and(|m| m & (1 << 11) != 0))
    {
        assert!(std::time::Instant::now() < deadline, "perl never set its handlers");
        thread::sleep(Duration::from_millis(10));
    }
    let t = target.pid();
    let mut w =
        Podsig::start(&["watch", "--pid", &t.to_string(), "--signal", "USR1", "--signal", "USR2", "-o", "json"]);
    send("sh", "kill -USR1 $T; kill -USR2 $T", t);
    let one = w.next_signal("SIGUSR1");
    assert_eq!(
        (one["target"]["disposition"].as_str(), one["result"].as_str()),
        (Some("ignore"), Some("ignored")),
        "{one}"
    );
    assert!(str_of(&one, &["cause_detail"]).contains("SIG_IGN"), "{one}");
    let two = w.next_signal("SIGUSR2");
    assert_eq!(two["target"]["disposition"], "handler", "{two}");
}

/// `kill -s RTMIN+1` sends 35: glibc, bash and procps number real-time signals from 34.
/// The name, and `--signal`, follow what the user typed.
#[test]
fn real_time_signals_are_named_as_kill_numbers_them() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::script("trap '' 35; exec sleep 300");
    let t = target.pid();
    let mut witness = Witness::start(t);
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "--signal", "RTMIN+1", "-o", "json"]);
    send("bash", "kill -s RTMIN+1 $T", t);
    let ev = w.next_kind("signal");
    assert_eq!((ev["signal"]["number"].as_i64(), ev["signal"]["name"].as_str()), (Some(35), Some("SIGRTMIN+1")));
    assert_eq!(witness.agrees(&ev).sig, 35);
}

/// A terminal's Ctrl-C is raised by the tty layer for the whole foreground process group,
/// from a kernel worker: its scope is the group, and it is a stop request like `kill -INT`,
/// so the SIGKILL after it is a grace period that ran out, not a kill without a stop.
#[test]
fn a_terminals_ctrl_c_is_a_stop_request_to_the_process_group() {
    use std::os::{fd::FromRawFd, unix::process::CommandExt};
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    // A terminal of our own: the shell leads a session whose controlling tty is its slave,
    // and a 0x03 written to the master is the Ctrl-C key.
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills in two descriptors; the rest may be null.
    let rc =
        unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: descriptors openpty just made, each owned once.
    let (master, slave) = unsafe { (std::fs::File::from_raw_fd(master), std::fs::File::from_raw_fd(slave)) };
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "trap 'echo got INT' INT; while :; do sleep 0.1; done"])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut shell = cmd.spawn().unwrap();
    drop(slave);
    let pid = shell.id();
    // What the shell prints goes nowhere, and never fills the terminal's buffer.
    let mut out = master.try_clone().unwrap();
    thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let mut witness = Witness::start(pid);
    let mut w =
        Podsig::start(&["watch", "--pid", &pid.to_string(), "--signal", "INT", "--signal", "KILL", "-o", "json"]);
    std::io::Write::write_all(&mut &master, b"\x03").unwrap();
    let int = w.next_signal("SIGINT");
    consistent(&int);
    witness.agrees(&int);
    assert_eq!(int["cause"], "kernel", "raised by the tty layer: {int}");
    assert!(str_of(&int, &["cause_detail"]).contains("Ctrl-C"), "{int}");
    assert_eq!(int["scope"], "process_group", "{int}");
    // The shell leads its own session and group.
    assert_eq!(int["pgid"], pid, "{int}");
    assert_eq!(int["target"]["disposition"], "handler", "{int}");
    thread::sleep(Duration::from_millis(300));
    send("sh", "kill -KILL $T", pid);
    let kill = w.next_signal("SIGKILL");
    assert_eq!(kill["preceded_by"]["signal"]["name"], "SIGINT", "{kill}");
    assert_eq!(kill["stop"]["verdict"], "grace_expired_term_handled", "{kill}");
    assert!(str_of(&kill, &["stop", "summary"]).contains("SIGINT"), "{kill}");
    let _ = shell.wait();
}

/// kill(pid) and kill(0) from one sender to one target are two signals of different
/// scope: never one record counting two.
#[test]
fn signals_of_different_scope_never_fold_together() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let gate = Gate::new();
    // A session of its own, so kill(0) reaches only this shell's group: the shell and its
    // sleep, which inherits the ignored SIGUSR1.
    let script = format!(
        "trap '' USR1; sleep 300 & echo $!; while [ ! -e {} ]; do sleep 0.02; done; kill -USR1 $!; kill -USR1 0; \
         sleep 0.5; kill $!",
        gate.path().display()
    );
    let mut group = Command::new("setsid").args(["sh", "-c", &script]).stdout(Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(group.stdout.as_mut().unwrap()), &mut first).unwrap();
    let t: u32 = first.trim().parse().unwrap();
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "--signal", "USR1", "-o", "json"]);
    gate.go();
    let a = w.next_signal("SIGUSR1");
    let b = w.next_signal("SIGUSR1");
    assert_eq!((a["scope"].as_str(), a["count"].as_u64()), (Some("process"), Some(1)), "{a}");
    assert_eq!((b["scope"].as_str(), b["count"].as_u64()), (Some("process_group"), Some(1)), "{b}");
    assert_eq!(b["pgid"], group.id(), "the shell leads its group: {b}");
    let _ = group.wait();
}

/// A group kill arriving while the process already exits: the second SIGKILL is dropped,
/// says why, and the exit is linked to the one that killed it.
#[test]
fn the_exit_is_linked_to_the_sigkill_that_killed_it() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::sleep();
    let t = target.pid();
    // Watched too, so the watch outlives the target and reports a copy that comes after
    // its exit.
    let bystander = Target::sleep();
    let mut witness = Witness::start(t);
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "--pid", &bystander.pid().to_string(), "-o", "json"]);
    let sender = send("sh", "kill -KILL $T; kill -KILL $T", t);
    // The second copy may come before the exit record or after it (the process can be a
    // zombie by then): take the three in the order they come.
    let (mut kills, mut exit) = (Vec::new(), None);
    while kills.len() < 2 || exit.is_none() {
        let r = w.next_json();
        match r["kind"].as_str() {
            Some("signal") if r["signal"]["name"] == "SIGKILL" => kills.push(r),
            Some("exit") => exit = Some(r),
            _ => {}
        }
    }
    let (first, second) = (&kills[0], &kills[1]);
    witness.agrees(first);
    witness.agrees(second);
    assert_eq!((first["result"].as_str(), second["result"].as_str()), (Some("delivered"), Some("ignored")));
    assert_eq!(second["target"]["exiting"], true, "{second}");
    assert!(str_of(second, &["cause_detail"]).contains("already exiting"), "{second}");
    assert!(!str_of(second, &["cause_detail"]).contains("default action"), "{second}");
    let exit = exit.unwrap();
    assert_eq!(exit["signal"]["name"], "SIGKILL", "{exit}");
    let p = &exit["preceded_by"];
    assert_eq!((p["result"].as_str(), &p["sender"]["pid"]), (Some("delivered"), &Value::from(sender)), "{exit}");
    // When the copy came first, its own link says it was the delivered one it followed.
    if let Some(p) = second["preceded_by"].as_object() {
        assert_eq!(p["result"], "delivered", "{second}");
    }
}

/// A debugger attaching stops its tracee with SIGSTOP from its own task: ptrace names it.
/// Attached that way, the tracee's exec raises SIGTRAP on itself for the tracer.
#[test]
fn ptrace_is_named_with_the_tracer_who_asked() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::sleep();
    let t = target.pid();
    let mut witness = Witness::start(t);
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "--signal", "STOP", "-o", "json"]);
    let mut dbg = Command::new(scenario()).args(["attach", &t.to_string()]).spawn().unwrap();
    let ev = w.next_signal("SIGSTOP");
    assert!(dbg.wait().unwrap().success());
    consistent(&ev);
    witness.agrees(&ev);
    assert_eq!((ev["syscall"].as_str(), ev["cause"].as_str()), (Some("ptrace"), Some("process")), "{ev}");
    assert_eq!(ev["sender"]["pid"], dbg.id(), "{ev}");
    assert!(str_of(&ev, &["cause_detail"]).contains("PTRACE_ATTACH"), "{ev}");
    drop(w);

    let gate = Gate::new();
    let target =
        Target::script(&format!("while [ ! -e {} ]; do sleep 0.02; done; exec sleep 300", gate.path().display()));
    let t = target.pid();
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "--signal", "TRAP", "-o", "json"]);
    let mut tracer =
        Command::new(scenario()).args(["trace-exec", &t.to_string(), gate.path().to_str().unwrap()]).spawn().unwrap();
    let ev = w.next_signal("SIGTRAP");
    assert!(tracer.wait().unwrap().success());
    consistent(&ev);
    assert_eq!(ev["sender"]["pid"], t, "{ev}");
    assert_eq!(ev["target"]["traced_by"], tracer.id(), "{ev}");
    assert_eq!(ev["cause"], "kernel", "{ev}");
    let why = str_of(&ev, &["cause_detail"]);
    assert!(why.contains("ptraced") && why.contains(&format!("pid {}", tracer.id())), "{ev}");
}

/// SIGCONT resumes a stopped process when it is sent; its delivery is then "ignored".
#[test]
fn sigcont_says_it_resumed_the_stopped_process() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::sleep();
    let t = target.pid();
    let mut witness = Witness::start(t);
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "--signal", "CONT", "-o", "json"]);
    send("sh", "kill -STOP $T; sleep 0.2; kill -CONT $T; kill -CONT $T", t);
    let resumed = w.next_signal("SIGCONT");
    witness.agrees(&resumed);
    assert_eq!(resumed["target"]["resumed"], true, "{resumed}");
    assert!(str_of(&resumed, &["cause_detail"]).contains("it resumed sleep("), "{resumed}");
    assert!(!str_of(&resumed, &["cause_detail"]).contains("default action of SIGCONT"), "{resumed}");
    // The second found it running: nothing to resume.
    let again = w.next_signal("SIGCONT");
    assert_eq!(again["target"]["resumed"], false, "{again}");
}

/// A SIGTERM that arrives blocked waits for the mask; the exit by it, when it is
/// unblocked, is linked to it, and its default action (no handler) is no graceful exit.
#[test]
fn a_blocked_signal_is_pending_and_its_exit_is_linked_to_it() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let s = Scenario::start("block-term", None);
    let t = s.pid();
    let mut witness = Witness::start(t);
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "-o", "json"]);
    s.gate.go();
    let sender = send("sh", "kill -TERM $T", t);
    let term = w.next_signal("SIGTERM");
    witness.agrees(&term);
    assert_eq!((term["target"]["blocked"].as_bool(), term["result"].as_str()), (Some(true), Some("delivered")));
    assert!(str_of(&term, &["cause_detail"]).contains("stays pending"), "{term}");
    assert_eq!(term["stop"], Value::Null, "blocked: not yet the end: {term}");
    let exit = w.next_kind("exit");
    assert_eq!(exit["signal"]["name"], "SIGTERM", "{exit}");
    assert_eq!(exit["preceded_by"]["sender"]["pid"], sender, "{exit}");
    assert_eq!(exit["stop"]["verdict"], "ended_by_default_action", "{exit}");
}

/// Graceful means it handled the request: a SIGTERM's default action is not, and a process
/// that ignored the SIGTERM and exited later is neither.
#[test]
fn graceful_means_graceful() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    // No handler: the default action ends it at once.
    let target = Target::sleep();
    let t = target.pid();
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "-o", "json"]);
    send("sh", "kill -TERM $T", t);
    let term = w.next_signal("SIGTERM");
    assert_eq!(term["stop"]["verdict"], "ended_by_default_action", "{term}");
    drop(w);
    // A handler that exits: graceful.
    let target = Target::script("trap 'exit 0' TERM; while :; do sleep 0.05; done");
    let t = target.pid();
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "-o", "json"]);
    send("sh", "kill -TERM $T", t);
    let exit = w.next_kind("exit");
    assert_eq!(exit["stop"]["verdict"], "graceful_exit", "{exit}");
    drop(w);
    // Ignored, then an exit of its own a second later: neither, and no guess at why.
    // The trap is set before the gate, so the SIGTERM cannot come first.
    let gate = Gate::new();
    let target = Target::script(&format!(
        "trap '' TERM; while [ ! -e {} ]; do sleep 0.02; done; sleep 1; exit 3",
        gate.path().display()
    ));
    let t = target.pid();
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "-o", "json"]);
    gate.go();
    send("sh", "kill -TERM $T", t);
    let exit = w.next_kind("exit");
    let stop = &exit["stop"];
    assert_eq!(stop["verdict"], "exited_on_its_own", "{exit}");
    assert!(str_of(stop, &["summary"]).contains("not because of that SIGTERM"), "{exit}");
    assert!(!str_of(stop, &["summary"]).contains("such as"), "no speculation: {exit}");
}

/// A signal the kernel raised to the process itself keeps the recipe's line, and the next
/// line says at once that the kernel raised it, and why.
#[test]
fn a_kernel_raised_signal_says_so_on_the_next_line() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let s = Scenario::start("pipe", None);
    let t = s.pid();
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "--signal", "PIPE", "-o", "text"]);
    s.gate.go();
    let first = w.next_line();
    assert_eq!(first, format!("scenario({t}) send SIGPIPE to scenario({t})"));
    let second = w.next_line();
    assert!(second.starts_with("  raised by the kernel: write to a pipe or socket with no reader"), "{second}");
}
