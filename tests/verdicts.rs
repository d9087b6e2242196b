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
