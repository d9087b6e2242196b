//! The processes a test drives: podsig itself (its stdout's records and stderr's lines),
//! targets to signal, senders, gates, small C programs, and the privilege they need.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// Generous: CI machines are small and share their two cores with the build.
pub const TIMEOUT: Duration = Duration::from_secs(20);

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

/// Copies an executable with cp(1), not from this process: a file this process holds open
/// for writing leaks into any child another test forks meanwhile, and exec'ing the copy
/// then fails with ETXTBSY until that child execs.
pub fn copy_executable(src: impl AsRef<std::path::Path>, dst: impl AsRef<std::path::Path>) {
    let (src, dst) = (src.as_ref(), dst.as_ref());
    let ok =
        std::process::Command::new("cp").arg(std::fs::canonicalize(src).unwrap()).arg(dst).status().unwrap().success();
    assert!(ok, "cp {} {}", src.display(), dst.display());
}
