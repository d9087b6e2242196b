//! Harness for the end-to-end tests: runs the real `podsig` binary (PODSIG_BIN, set by
//! `cargo xtask test`) against the real kernel, with real processes sending real signals.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};

pub use serde_json::Value;

/// Generous: CI machines are small and share their two cores with the build.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Holds a test's place in its suite (see [`suite`]).
pub struct SuiteGuard;

static SUITES: (std::sync::Mutex<(Option<&'static str>, usize)>, std::sync::Condvar) =
    (std::sync::Mutex::new((None, 0)), std::sync::Condvar::new());

/// Every test's first line, with its file's `module_path!()`: the tests of one file run beside
/// each other, never beside another file's. Each file was a test binary of its own, and cargo
/// runs those one after another: the tests were written for that (node mode sees every
/// signal on the machine, storms load both cores, the container tests share one containerd).
pub fn suite(name: &'static str) -> SuiteGuard {
    let (lock, turn) = &SUITES;
    let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
    while s.0.is_some_and(|running| running != name) {
        s = turn.wait(s).unwrap_or_else(|e| e.into_inner());
    }
    *s = (Some(name), s.1 + 1);
    SuiteGuard
}

impl Drop for SuiteGuard {
    fn drop(&mut self) {
        let (lock, turn) = &SUITES;
        let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
        s.1 -= 1;
        if s.1 == 0 {
            s.0 = None;
            turn.notify_all();
        }
    }
}

/// True when the test may run. Without root it skips with a reason — unless CI is set,
/// where a missing privilege is a failure, never a silent pass.
pub fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("end-to-end tests need root (eBPF); CI must run them as root");
    }
    eprintln!("skipped: end-to-end tests need root to load eBPF (run `sudo cargo xtask test`)");
    false
}

pub fn podsig_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PODSIG_BIN") {
        return p.into();
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/podsig");
    assert!(p.exists(), "no podsig binary at {}; run `cargo xtask test`", p.display());
    p
}

/// A process to send signals to. Killed and reaped on drop.
pub struct Target {
    pub child: Child,
}

impl Target {
    /// `sleep 300`, or a shell script ending in `exec sleep` (to set up dispositions).
    pub fn sleep() -> Self {
        Self::script("exec sleep 300")
    }

    pub fn script(script: &str) -> Self {
        let child = Command::new("sh").args(["-c", script]).stdin(Stdio::null()).spawn().expect("spawn target");
        let t = Self { child };
        // Let the shell reach its exec, so the comm and dispositions are final.
        let deadline = Instant::now() + TIMEOUT;
        while t.comm() != "sleep" && Instant::now() < deadline && script.contains("exec sleep") {
            thread::sleep(Duration::from_millis(5));
        }
        t
    }

    /// A shell that waits until `go()` is called, then runs `script`: lets a test attach
    /// podsig before the target does what is being watched.
    pub fn gated(script: &str) -> (Self, Gate) {
        let gate = Gate::new();
        let t = Self::script(&format!("while [ ! -e {} ]; do sleep 0.02; done; {script}", gate.0.display()));
        (t, gate)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn comm(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/comm", self.pid())).unwrap_or_default().trim().to_string()
    }

    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().expect("wait target")
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A file whose appearance releases a gated target.
pub struct Gate(pub PathBuf);

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    pub fn new() -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("podsig-e2e-gate-{}-{n}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        Self(p)
    }

    pub fn go(&self) {
        std::fs::write(&self.0, "").expect("open the gate");
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs a shell command to completion (the sender) and returns its pid.
pub fn send(shell: &str, script: &str, target: u32) -> u32 {
    let mut c = Command::new(shell)
        .args(["-c", script])
        .env("T", target.to_string())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sender");
    let pid = c.id();
    let st = c.wait().expect("wait sender");
    assert!(st.success(), "sender `{script}` failed: {st}");
    pid
}

/// A running `podsig`, its stdout lines and its stderr lines collected by threads.
pub struct Podsig {
    pub child: Child,
    /// Lines with the moment the reader thread got them (latency bounds are measured to it).
    stdout: Receiver<(Instant, String)>,
    stderr: Receiver<(Instant, String)>,
    pub stderr_lines: Vec<String>,
}

impl Podsig {
    /// Starts podsig and returns once it printed `podsig: attached`.
    pub fn start(args: &[&str]) -> Self {
        Self::start_env(args, &[])
    }

    /// Like `start`, with extra environment variables.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(podsig_bin())
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn podsig");
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        let mut p = Self { child, stdout, stderr, stderr_lines: Vec::new() };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match p.stderr.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok((_, l)) => {
                    let attached = l.starts_with("podsig: attached");
                    p.stderr_lines.push(l);
                    if attached {
                        return p;
                    }
                }
                Err(_) => {
                    let _ = p.child.kill();
                    panic!("podsig {args:?} never attached; stderr: {:?}", p.stderr_lines);
                }
            }
        }
    }

    pub fn next_line(&mut self) -> String {
        self.next_line_at().1
    }

    /// The next stdout line and when it arrived.
    pub fn next_line_at(&mut self) -> (Instant, String) {
        match self.stdout.recv_timeout(TIMEOUT) {
            Ok(l) => l,
            Err(RecvTimeoutError::Timeout) => {
                self.collect_stderr();
                panic!("no output from podsig within {TIMEOUT:?}; stderr: {:?}", self.stderr_lines)
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.collect_stderr();
                panic!("podsig closed stdout; stderr: {:?}", self.stderr_lines)
            }
        }
    }

    pub fn next_json(&mut self) -> Value {
        let l = self.next_line();
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
    }

    /// The next record of the given kind, skipping others.
    /// The next record of the given kind, skipping others, within TIMEOUT overall: a watch
    /// that keeps reporting other records (a shell loop's SIGCHLDs) must not hang a test.
    pub fn next_kind(&mut self, kind: &str) -> Value {
        self.next_matching(&format!("a {kind} record"), |v| v["kind"] == kind)
    }

    pub fn next_matching(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        self.next_matching_at(what, want).1
    }

    /// Like `next_matching`, with when the line arrived.
    pub fn next_matching_at(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> (Instant, Value) {
        let deadline = Instant::now() + TIMEOUT;
        let mut skipped = Vec::new();
        loop {
            let (at, l) = match self.stdout.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => line,
                Err(e) => {
                    self.collect_stderr();
                    panic!("no {what} ({e:?}); skipped {skipped:?}; stderr {:?}", self.stderr_lines)
                }
            };
            let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            if want(&v) {
                return (at, v);
            }
            skipped.push(v);
            if Instant::now() > deadline {
                self.collect_stderr();
                panic!("no {what} within {TIMEOUT:?}; skipped {skipped:?}; stderr {:?}", self.stderr_lines);
            }
        }
    }

    /// The next signal record for this signal name (SIGCHLD and others are skipped).
    pub fn next_signal(&mut self, name: &str) -> Value {
        self.next_matching(&format!("{name} record"), |v| v["kind"] == "signal" && v["signal"]["name"] == name)
    }

    /// Waits up to `d` for stderr lines (status lines such as `podsig: following …`).
    pub fn poll_stderr(&mut self, d: Duration) {
        if let Ok((_, l)) = self.stderr.recv_timeout(d) {
            self.stderr_lines.push(l);
        }
        self.collect_stderr();
    }

    /// Waits up to TIMEOUT for a stderr line containing `text`; returns it.
    pub fn wait_stderr(&mut self, text: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(l) = self.stderr_lines.iter().find(|l| l.contains(text)) {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no stderr line with {text:?} within {TIMEOUT:?}: {:?}",
                self.stderr_lines
            );
            self.poll_stderr(Duration::from_millis(100));
        }
    }

    /// Every stdout line available now, without waiting.
    pub fn drain_stdout(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.stdout.try_recv().ok().map(|(_, l)| l)).collect()
    }

    pub fn collect_stderr(&mut self) {
        while let Ok((_, l)) = self.stderr.try_recv() {
            self.stderr_lines.push(l);
        }
    }

    /// Waits for podsig to exit on its own; returns its status and remaining stdout.
    pub fn wait(mut self) -> (ExitStatus, Vec<String>, Vec<String>) {
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                self.collect_stderr();
                panic!("podsig did not exit within {TIMEOUT:?}; stderr: {:?}", self.stderr_lines);
            }
            thread::sleep(Duration::from_millis(10));
        };
        let rest: Vec<String> = self.stdout.iter().map(|(_, l)| l).collect();
        let mut err = std::mem::take(&mut self.stderr_lines);
        err.extend(self.stderr.iter().map(|(_, l)| l));
        (status, rest, err)
    }

    /// Stops reading stdout, like `podsig … | head -1` after its line: once the reader
    /// thread sees the next line it ends and closes the pipe; later writes get EPIPE.
    pub fn close_stdout(&mut self) {
        self.stdout = mpsc::channel().1;
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

impl Drop for Podsig {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines<R: std::io::Read + Send + 'static>(r: R) -> Receiver<(Instant, String)> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for l in BufReader::new(r).lines() {
            let Ok(l) = l else { break };
            if tx.send((Instant::now(), l)).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs podsig to completion with no stdin; returns (status, stdout, stderr).
pub fn podsig_output(args: &[&str]) -> (ExitStatus, String, String) {
    let o = Command::new(podsig_bin()).args(args).stdin(Stdio::null()).output().expect("run podsig");
    (o.status, String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into())
}

/// Makes `cmd` run under a seccomp filter that refuses bpf(2) with EPERM, as a container
/// runtime's default profile does: eBPF refused for real, whatever the privilege.
pub fn refuse_bpf(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt as _;
    // The classic BPF program: an x86-64 syscall numbered SYS_bpf gets EPERM, any other
    // passes (another architecture's ABI passes too: this runs only on x86-64 hosts).
    #[repr(C)]
    struct SockFilter(u16, u8, u8, u32);
    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const SockFilter,
    }
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const ALLOW: u32 = 0x7fff_0000;
    const ERRNO: u32 = 0x0005_0000;
    let program = [
        SockFilter(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        SockFilter(JEQ_K, 0, 1, libc::SYS_bpf as u32),
        SockFilter(RET_K, 0, 0, ERRNO | libc::EPERM as u32),
        SockFilter(RET_K, 0, 0, ALLOW),
    ];
    // SAFETY: between fork and exec only async-signal-safe syscalls run; `program` lives in
    // the parent's memory, copied into the child by fork, and outlives the call.
    unsafe {
        cmd.pre_exec(move || {
            let prog = SockFprog { len: program.len() as u16, filter: program.as_ptr() };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::syscall(libc::SYS_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, 0, &prog) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// comm of this test process as the kernel names it (the ancestry must contain it).
pub fn own_comm() -> String {
    std::fs::read_to_string("/proc/self/comm").unwrap().trim().to_string()
}

/// Ancestry as (pid, comm) pairs.
pub fn chain(event: &Value) -> Vec<(u64, String)> {
    event["ancestry"]
        .as_array()
        .expect("ancestry array")
        .iter()
        .map(|a| (a["pid"].as_u64().unwrap(), a["comm"].as_str().unwrap().to_string()))
        .collect()
}

/// `podsig history --history DB ARGS -o json`, parsed; panics on failure.
pub fn history(db: &std::path::Path, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["history", "--history", db.to_str().unwrap(), "-o", "json"];
    a.extend_from_slice(args);
    let (st, out, err) = podsig_output(&a);
    assert!(st.success(), "podsig {a:?}: {err}");
    out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

/// Polls the history until an event matches: the recorder commits in batches.
pub fn history_until(db: &std::path::Path, args: &[&str], want: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let events = if db.exists() { history(db, args) } else { Vec::new() };
        if let Some(ev) = events.into_iter().find(&want) {
            return ev;
        }
        assert!(Instant::now() < deadline, "no matching event in the history {} for {args:?}", db.display());
        thread::sleep(Duration::from_millis(200));
    }
}

/// `podsig why --history DB ARGS -o json`, polled until its verdict is `verdict`: the
/// recorder commits in batches.
pub fn why_until(db: &std::path::Path, args: &[&str], verdict: &str) -> Value {
    let mut a = vec!["why", "--history", db.to_str().unwrap(), "-o", "json"];
    a.extend_from_slice(args);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (st, out, err) = if db.exists() { podsig_output(&a) } else { Default::default() };
        let answer: Option<Value> = st.success().then(|| serde_json::from_str(&out).expect("why -o json"));
        if let Some(v) = answer.filter(|v| v["verdict"] == verdict) {
            return v;
        }
        assert!(Instant::now() < deadline, "no {verdict} from podsig {a:?}: {out} {err}");
        thread::sleep(Duration::from_millis(250));
    }
}

/// The address podsig printed for --metrics-addr (`podsig: metrics at http://ADDR/metrics`).
pub fn metrics_addr(p: &Podsig) -> String {
    p.stderr_lines
        .iter()
        .find_map(|l| l.strip_prefix("podsig: metrics at http://")?.strip_suffix("/metrics").map(str::to_string))
        .unwrap_or_else(|| panic!("no metrics line in {:?}", p.stderr_lines))
}

/// A plain HTTP/1.0 GET; returns (status line, body).
pub fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

/// The value of the first sample line that starts with `prefix` in a Prometheus exposition.
pub fn sample(exposition: &str, prefix: &str) -> Option<f64> {
    exposition.lines().find(|l| l.starts_with(prefix))?.rsplit(' ').next()?.parse().ok()
}

/// Peak resident set of a live process, in KiB (VmHWM).
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM")
}

/// A small C program for what a shell cannot do (raise(3), prctl, memfd, timers), compiled
/// with the machine's C compiler into a private directory; its path.
pub fn c_program(name: &str, source: &str) -> PathBuf {
    let dir = scratch(&format!("c-{name}"));
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    let bin = dir.join(name);
    let o = Command::new("cc").arg("-O1").arg("-o").arg(&bin).arg(&src).output().expect("run cc");
    assert!(o.status.success(), "cc {name}.c: {}", String::from_utf8_lossy(&o.stderr));
    bin
}

/// The pids of this test process and its ancestors: findings about them are about the
/// machine running the tests, not about what a test made.
pub fn own_ancestry() -> Vec<u64> {
    let mut pids = Vec::new();
    let mut pid = std::process::id();
    while pid > 0 {
        pids.push(pid as u64);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        pid =
            stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)).and_then(|p| p.parse().ok()).unwrap_or(0);
    }
    pids
}

/// A private scratch directory for one test, emptied first.
pub fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("podsig-e2e-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

// containerd, for the container tests: the `ctr` client on the test containerd's socket
// (namespace k8s.io), a busybox rootfs, and containers removed on drop.

/// `ctr` on the k8s.io namespace; panics with its stderr when it fails.
pub fn ctr(sock: &str, args: &[&str]) -> std::process::Output {
    let o = Command::new("ctr").args(["--address", sock, "-n", "k8s.io"]).args(args).output().expect("ctr");
    assert!(o.status.success(), "ctr {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

/// A busybox rootfs shared by the tests' containers, made once per test binary.
pub fn busybox_rootfs() -> PathBuf {
    static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("podsig-e2e-rootfs-{}", std::process::id()));
        let bin = root.join("bin");
        if !bin.join("busybox").exists() {
            std::fs::create_dir_all(&bin).unwrap();
            let tmp = bin.join(format!("busybox.{}", std::process::id()));
            copy_executable("/bin/busybox", &tmp);
            std::fs::rename(&tmp, bin.join("busybox")).unwrap();
        }
        for applet in ["sh", "sleep", "kill"] {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
        for d in ["proc", "sys", "dev", "tmp"] {
            let _ = std::fs::create_dir_all(root.join(d));
        }
        root
    })
    .clone()
}

/// A container, killed and deleted on drop.
pub struct Container {
    pub sock: String,
    pub id: String,
}

impl Container {
    /// Runs `script` under busybox sh in a container with CRI labels (namespace, pod,
    /// container name), and waits until its task runs.
    pub fn start(sock: &str, id: &str, (namespace, pod, name): (&str, &str, &str), script: &str) -> Self {
        let rootfs = busybox_rootfs();
        let c = Self::adopt(sock, id);
        ctr(
            sock,
            &[
                "run",
                "-d",
                "--label",
                &format!("io.kubernetes.pod.name={pod}"),
                "--label",
                &format!("io.kubernetes.pod.namespace={namespace}"),
                "--label",
                &format!("io.kubernetes.container.name={name}"),
                "--rootfs",
                rootfs.to_str().unwrap(),
                id,
                "/bin/sh",
                "-c",
                script,
            ],
        );
        assert!(c.pid() > 0);
        c
    }

    /// A container the test starts itself, cleaned up the same way.
    pub fn adopt(sock: &str, id: &str) -> Self {
        Self { sock: sock.into(), id: id.into() }
    }

    /// The host pid of the container's init, from `ctr task ls`, once it runs.
    pub fn pid(&self) -> u32 {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let o = ctr(&self.sock, &["task", "ls"]);
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let pid = text
                .lines()
                .find(|l| l.split_whitespace().next() == Some(self.id.as_str()) && l.contains("RUNNING"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|p| p.parse().ok());
            if let Some(p) = pid {
                return p;
            }
            assert!(Instant::now() < deadline, "container {} never ran: {text}", self.id);
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let a = ["--address", self.sock.as_str(), "-n", "k8s.io"];
        let _ = Command::new("ctr").args(a).args(["task", "kill", "-s", "SIGKILL", &self.id]).output();
        thread::sleep(Duration::from_millis(200));
        let _ = Command::new("ctr").args(a).args(["task", "delete", "-f", &self.id]).output();
        let _ = Command::new("ctr").args(a).args(["container", "delete", &self.id]).output();
    }
}

/// A containerd of the test's own, on a private socket, root and state (CRI off), for tests
/// that stop, restart or hang it: the shared test containerd must not be disturbed.
/// Needs `containerd` and `runc` (installed by `cargo xtask test`); None, with a printed
/// reason, outside CI when they are missing or the test is not root.
pub struct PrivateContainerd {
    pub socket: String,
    base: PathBuf,
    root: PathBuf,
    child: Option<Child>,
}

impl PrivateContainerd {
    pub fn start(tag: &str) -> Option<Self> {
        if !privileged() {
            return None;
        }
        for tool in ["containerd", "runc", "ctr"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            if !found {
                assert!(std::env::var_os("CI").is_none(), "{tool} is missing; cargo xtask test installs it");
                eprintln!("skipped: {tool} is missing (run `sudo cargo xtask test`, which installs it)");
                return None;
            }
        }
        let name = format!("podsig-e2e-{}-{tag}", std::process::id());
        let base = PathBuf::from("/run").join(&name);
        let root = PathBuf::from("/var/lib").join(&name);
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let socket = base.join("containerd.sock");
        std::fs::write(
            base.join("config.toml"),
            format!(
                "version = 2\nroot = \"{}\"\nstate = \"{}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{}\"\n",
                root.display(),
                base.join("state").display(),
                socket.display()
            ),
        )
        .unwrap();
        let mut c = Self { socket: socket.to_str().unwrap().into(), base, root, child: None };
        c.up();
        Some(c)
    }

    /// Starts containerd (again) and waits until it answers.
    pub fn up(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.base.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.base.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        self.child = Some(child);
        let deadline = Instant::now() + TIMEOUT;
        while !Command::new("ctr")
            .args(["--address", &self.socket, "version"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(
                Instant::now() < deadline,
                "containerd did not come up; see {}",
                self.base.join("containerd.log").display()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops containerd the way a restart does (SIGTERM); its containers keep running
    /// under their shims.
    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            self.signal(libc::SIGCONT);
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        // Containers first (the test's Container values are dropped before this one when
        // declared after it), then containerd, its shims' leftovers, and its files.
        let a = ["--address", self.socket.as_str(), "-n", "k8s.io"];
        if self.child.is_some() {
            self.signal(libc::SIGCONT);
            let ids = Command::new("ctr").args(a).args(["task", "ls", "-q"]).output();
            for id in ids.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default().lines() {
                let _ = Command::new("ctr").args(a).args(["task", "kill", "-s", "SIGKILL", id]).output();
                thread::sleep(Duration::from_millis(200));
                let _ = Command::new("ctr").args(a).args(["task", "delete", "-f", id]).output();
                let _ = Command::new("ctr").args(a).args(["container", "delete", id]).output();
            }
        }
        self.down();
        let _ = std::fs::remove_dir_all(&self.root);
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Copies an executable with cp(1), not from this process: a file this process holds open
/// for writing leaks into any child another test forks meanwhile, and exec'ing the copy
/// then fails with ETXTBSY until that child execs.
pub fn copy_executable(src: impl AsRef<std::path::Path>, dst: impl AsRef<std::path::Path>) {
    let (src, dst) = (src.as_ref(), dst.as_ref());
    let ok =
        std::process::Command::new("cp").arg(std::fs::canonicalize(src).unwrap()).arg(dst).status().unwrap().success();
    assert!(ok, "cp {} {}", src.display(), dst.display());
}

/// What the kernel's own tracepoint said of one signal, as an independent tool saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witnessed {
    pub sig: i32,
    pub code: i32,
    pub group: i32,
    pub result: i32,
    /// `current`'s thread when the signal was generated: the sender, outside interrupt
    /// context.
    pub tid: u32,
    pub comm: String,
}

/// bpftrace on `signal:signal_generate` for signals to one process: the witness podsig's
/// records are checked against (the same tracepoint, read by another tool).
pub struct Witness {
    child: Child,
    lines: Receiver<String>,
}

impl Witness {
    /// Attached and printing once this returns.
    pub fn start(target: u32) -> Self {
        let program = format!(
            "tracepoint:signal:signal_generate /args->pid == {target}/ {{ printf(\"W %d %d %d %d %d %s\\n\", \
             args->sig, args->code, args->group, args->result, tid, comm); }}"
        );
        let mut child = Command::new("bpftrace")
            .args(["-e", &program])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("bpftrace is needed as the witness (cargo xtask test installs it)");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        // bpftrace says "Attaching" before it has attached: only a signal it reports proves
        // it sees them. SIGURG does nothing to a process without a handler for it.
        let deadline = Instant::now() + TIMEOUT;
        loop {
            // SAFETY: kill(2) of a test's own target with a signal it ignores.
            unsafe { libc::kill(target as i32, libc::SIGURG) };
            match lines.recv_timeout(Duration::from_millis(200)) {
                Ok(l) if l.starts_with("W 23 ") => break,
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => panic!("bpftrace exited before attaching"),
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("bpftrace did not attach within {TIMEOUT:?}");
            }
        }
        // Its other reports of that SIGURG.
        while lines.recv_timeout(Duration::from_millis(50)).is_ok() {}
        Self { child, lines }
    }

    /// The next signal of number `sig` the witness saw.
    pub fn next(&mut self, sig: i32) -> Witnessed {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = self.lines.recv_timeout(left).unwrap_or_else(|e| panic!("the witness saw no signal {sig}: {e}"));
            let f: Vec<&str> = l.splitn(7, ' ').collect();
            if f.len() < 7 || f[0] != "W" {
                continue;
            }
            let n = |i: usize| f[i].parse::<i64>().unwrap();
            let w = Witnessed {
                sig: n(1) as i32,
                code: n(2) as i32,
                group: n(3) as i32,
                result: n(4) as i32,
                tid: n(5) as u32,
                comm: f[6].to_string(),
            };
            if w.sig == sig {
                return w;
            }
        }
    }

    /// Checks a podsig record against what the witness saw of the same signal.
    pub fn agrees(&mut self, ev: &Value) -> Witnessed {
        let sig = ev["signal"]["number"].as_i64().unwrap() as i32;
        let w = self.next(sig);
        let result = ["delivered", "ignored", "already_pending", "overflow_fail", "lose_info"][w.result as usize];
        assert_eq!(ev["code"]["value"], w.code, "si_code: witness {w:?}, podsig {ev}");
        assert_eq!(ev["group"], w.group != 0, "group: witness {w:?}, podsig {ev}");
        assert_eq!(ev["result"], result, "result: witness {w:?}, podsig {ev}");
        if !ev["sender"].is_null() {
            assert_eq!(ev["sender"]["tid"], w.tid, "sender: witness {w:?}, podsig {ev}");
        }
        w
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        // SIGINT: bpftrace detaches and exits; one that does not within a second is killed.
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(1);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
