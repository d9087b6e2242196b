//! `cargo xtask bench`: podsig beside bpftrace and sigsnoop on one machine, as ratios.
//!
//! Every number is a median over interleaved runs, so drift on a shared machine hits every
//! tool alike. Nothing here asserts: it prints PASS/FAIL against the project's targets.

use std::{
    fs,
    io::{BufRead, BufReader, Read},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

const STORM: u64 = 2_000_000;
const ROUNDS: usize = 7;
/// Hit-path runs per tool: the slowdown is their median; loss and memory the worst run's.
const HIT_RUNS: usize = 3;
const READY_RUNS: usize = 9;
const ANCESTRY_KILLS: usize = 1000;
/// The recorder's memory: a storm at one process, then this many senders, each a new process.
const RECORD_STORM: u64 = 1_000_000;
const SENDERS: u64 = 10_000;
/// Rows in the history the query figure is measured on, and the pods their keys spread over.
const HISTORY_ROWS: i64 = 1_000_000;
const HISTORY_PODS: i64 = 1000;
const QUERY_RUNS: usize = 9;
/// Forks per round of the fork storm (busybox ash: ~0.15-0.5 ms each, so a round lasts
/// seconds against /proc/uptime's 10 ms steps), and its rounds.
const FORKS: u32 = 20_000;
const FORK_ROUNDS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

/// `storm PID N`: N × kill(PID, SIGUSR1) as fast as possible; prints ns per signal.
pub fn storm(args: &[String]) -> Result<()> {
    let pid: i32 = args.first().context("storm PID N")?.parse()?;
    let n: u64 = args.get(1).context("storm PID N")?.parse()?;
    let t = Instant::now();
    for _ in 0..n {
        // SAFETY: plain kill(2).
        if unsafe { libc::kill(pid, libc::SIGUSR1) } != 0 {
            bail!("kill({pid}): {}", std::io::Error::last_os_error());
        }
    }
    println!("{:.1}", t.elapsed().as_nanos() as f64 / n as f64);
    Ok(())
}

/// `senders PID N`: N short-lived processes, each sending one SIGUSR1 to PID and exiting
/// (distinct senders: each a new pid, with its own argv and ancestry to capture).
pub fn senders(args: &[String]) -> Result<()> {
    let pid: i32 = args.first().context("senders PID N")?.parse()?;
    let n: u64 = args.get(1).context("senders PID N")?.parse()?;
    let t = Instant::now();
    for _ in 0..n {
        // SAFETY: the child only calls async-signal-safe kill and _exit.
        match unsafe { libc::fork() } {
            0 => unsafe {
                libc::kill(pid, libc::SIGUSR1);
                libc::_exit(0);
            },
            -1 => bail!("fork: {}", std::io::Error::last_os_error()),
            child => {
                let mut status = 0;
                // SAFETY: waiting for our own child.
                unsafe { libc::waitpid(child, &mut status, 0) };
            }
        }
    }
    println!("{:.1}", t.elapsed().as_nanos() as f64 / n as f64);
    Ok(())
}

/// A process that ignores SIGUSR1 (SIG_IGN survives exec), killed on drop.
struct Ignorer(Child);

impl Ignorer {
    fn new() -> Result<Self> {
        let c = Command::new("sh").args(["-c", "trap '' USR1; exec sleep 3600"]).spawn()?;
        thread::sleep(Duration::from_millis(50));
        Ok(Self(c))
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Ignorer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_storm(target: u32, n: u64) -> Result<f64> {
    let exe = std::env::current_exe()?;
    let o = Command::new(exe).args(["storm", &target.to_string(), &n.to_string()]).output()?;
    if !o.status.success() {
        bail!("storm failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(String::from_utf8_lossy(&o.stdout).trim().parse()?)
}

/// A tracing tool under test, started and waited for until its probes are live.
struct Tool {
    child: Child,
    ready_after: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Peer {
    Podsig,
    /// `podsig record` in node mode (every process, the terminating signals only), its
    /// history in the scratch directory.
    Node,
    /// The same with `--no-requests`: the signal hook without request capture, whose
    /// syscall tracepoints tax every syscall on the node.
    NodeNoRequests,
    Floor,
    Bpftrace,
    Sigsnoop,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Podsig => "podsig",
            Peer::Node => "podsig record (node mode)",
            Peer::NodeNoRequests => "podsig record --no-requests",
            Peer::Floor => "empty program (floor)",
            Peer::Bpftrace => "bpftrace",
            Peer::Sigsnoop => "sigsnoop",
        }
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
}

impl Tool {
    /// Starts `peer` watching `pid`, its events to `out`. Returns once attached.
    fn start(peer: Peer, podsig: &Path, pid: u32, out: &Path) -> Result<Self> {
        let out_file = fs::File::create(out)?;
        let cmd = match peer {
            Peer::Podsig => {
                let mut c = Command::new(podsig);
                c.args(["watch", "--pid", &pid.to_string(), "-o", "json"]);
                c
            }
            Peer::Node | Peer::NodeNoRequests => {
                let mut c = Command::new(podsig);
                c.arg("record").arg("--history").arg(out.with_extension("db"));
                if peer == Peer::NodeNoRequests {
                    c.arg("--no-requests");
                }
                c
            }
            Peer::Floor => {
                let mut c = Command::new(podsig);
                c.arg("floor");
                c
            }
            Peer::Bpftrace => {
                let mut c = Command::new("bpftrace");
                c.arg("-e").arg(format!(
                    "tracepoint:signal:signal_generate /args->pid == {pid}/ {{ printf(\"%d %s %d %s %d\\n\", pid, comm, args->sig, args->comm, args->result); }} BEGIN {{ printf(\"READY\\n\"); }}"
                ));
                c
            }
            Peer::Sigsnoop => {
                let mut c = Command::new("stdbuf");
                c.args(["-oL", "sigsnoop"]);
                c
            }
        };
        // podsig and the floor say `attached` on stderr; the peers print a marker on stdout,
        // so theirs is read here and copied to the output file.
        Self::launch(cmd, matches!(peer, Peer::Bpftrace | Peer::Sigsnoop), out_file, peer.name())
    }

    /// podsig started with `args`, its events to `out`. Returns once attached.
    fn podsig(podsig: &Path, args: &[&str], out: &Path) -> Result<Self> {
        let mut cmd = Command::new(podsig);
        cmd.args(args);
        Self::launch(cmd, false, fs::File::create(out)?, "podsig")
    }

    fn launch(mut cmd: Command, marker_on_stdout: bool, out_file: fs::File, name: &str) -> Result<Self> {
        let t0 = Instant::now();
        let mut child = if marker_on_stdout {
            cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?
        } else {
            cmd.stdout(out_file.try_clone()?).stderr(Stdio::piped()).spawn()?
        };
        let (tx, rx) = mpsc::channel();
        let stream: Box<dyn Read + Send> = if marker_on_stdout {
            Box::new(child.stdout.take().expect("piped"))
        } else {
            Box::new(child.stderr.take().expect("piped"))
        };
        let mut copy = marker_on_stdout.then_some(out_file);
        thread::spawn(move || {
            let mut ready = false;
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if !ready && (line.starts_with("podsig: attached") || line == "READY" || line.starts_with("TIME ")) {
                    ready = true;
                    let _ = tx.send(Instant::now());
                    continue;
                }
                if let Some(f) = copy.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
            }
        });
        let at = rx.recv_timeout(Duration::from_secs(30)).with_context(|| format!("{name} never attached"))?;
        Ok(Self { child, ready_after: at - t0 })
    }

    fn peak_rss_kib(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
    }

    /// SIGINT (every tool flushes and exits on it) and wait.
    fn stop(mut self) -> Result<()> {
        signal(&self.child, libc::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(())
    }
}

fn ready_times(peer: Peer, podsig: &Path, scratch: &Path) -> Result<(f64, Option<f64>)> {
    let target = Ignorer::new()?;
    let mut ready = Vec::new();
    let mut whole = Vec::new();
    for _ in 0..READY_RUNS {
        let t = Tool::start(peer, podsig, target.pid(), &scratch.join("ready.out"))?;
        ready.push(t.ready_after.as_secs_f64() * 1e3);
        t.stop()?;
        // Whole process: launch, attach, exit.
        let t0 = Instant::now();
        let ok = match peer {
            Peer::Podsig => Command::new(podsig)
                .args(["watch", "--pid", &target.pid().to_string(), "--duration", "0s", "-o", "json"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?
                .success(),
            Peer::Bpftrace => Command::new("bpftrace")
                .args(["-e", "tracepoint:signal:signal_generate { } BEGIN { exit(); }"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?
                .success(),
            _ => false,
        };
        if ok {
            whole.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok((median(ready), (!whole.is_empty()).then(|| median(whole))))
}

/// Mean in-kernel run time (ns) of the busiest BPF program `pid` holds, from the run_time_ns
/// and run_cnt the kernel keeps per program while kernel.bpf_stats_enabled is 1.
fn prog_ns_per_run(pid: u32) -> Option<f64> {
    let mut busiest: Option<(u64, u64)> = None;
    for entry in fs::read_dir(format!("/proc/{pid}/fdinfo")).ok()? {
        let Ok(text) = entry.and_then(|e| fs::read_to_string(e.path())) else { continue };
        let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).and_then(|v| v.trim().parse::<u64>().ok());
        if let (Some(ns), Some(runs)) = (field("run_time_ns:"), field("run_cnt:"))
            && busiest.is_none_or(|(_, most)| runs > most)
        {
            busiest = Some((ns, runs));
        }
    }
    busiest.filter(|&(_, runs)| runs > 0).map(|(ns, runs)| ns as f64 / runs as f64)
}

/// The miss path measured inside the kernel, where a shared machine's noise does not reach:
/// each tool's program run time per unwatched signal, beside the empty program's.
fn in_kernel_miss_cost(podsig: &Path, scratch: &Path, target: u32, other: u32) -> Result<Value> {
    const STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";
    let was = fs::read_to_string(STATS).unwrap_or_default();
    if fs::write(STATS, "1").is_err() {
        println!("xtask: bench: cannot enable {STATS}; no in-kernel run times");
        return Ok(Value::Null);
    }
    println!("xtask: bench: in-kernel run time per unwatched signal ({STATS})");
    let measure = || -> Result<Value> {
        let mut out = serde_json::Map::new();
        for peer in [Peer::Floor, Peer::Podsig, Peer::Node, Peer::Bpftrace] {
            let mut runs = Vec::new();
            for _ in 0..3 {
                let tool = Tool::start(peer, podsig, other, &scratch.join("miss.out"))?;
                run_storm(target, STORM / 4)?;
                runs.extend(prog_ns_per_run(tool.child.id()));
                tool.stop()?;
            }
            out.insert(peer.name().into(), json!(median(runs)));
        }
        Ok(Value::Object(out))
    };
    let result = measure();
    // The statistics cost every BPF program two clock reads per run: off again, even on error.
    let _ = fs::write(STATS, if was.trim() == "1" { "1" } else { "0" });
    result
}

/// Counts (signals received, lost reported) in a tool's output file.
fn count_events(peer: Peer, out: &Path, target: u32) -> (u64, u64) {
    let Ok(text) = fs::read_to_string(out) else { return (0, 0) };
    let (mut got, mut lost) = (0, 0);
    for l in text.lines() {
        match peer {
            Peer::Podsig => {
                if l.starts_with(r#"{"kind":"signal""#) {
                    // A run of identical signals is one line with their count.
                    got += serde_json::from_str::<Value>(l).ok().and_then(|v| v["count"].as_u64()).unwrap_or(0);
                } else if l.starts_with(r#"{"kind":"lost""#) {
                    lost += serde_json::from_str::<Value>(l).ok().and_then(|v| v["count"].as_u64()).unwrap_or(0);
                }
            }
            Peer::Bpftrace => {
                if l.split_whitespace().next().is_some_and(|w| w.parse::<u32>().is_ok()) {
                    got += 1;
                } else if let Some(n) = l.strip_prefix("Lost ") {
                    lost += n.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
                }
            }
            // sigsnoop sees every signal on the host: count those to our target.
            Peer::Sigsnoop => {
                if l.split_whitespace().nth(4) == Some(&target.to_string()) {
                    got += 1;
                }
            }
            Peer::Node | Peer::NodeNoRequests | Peer::Floor => {}
        }
    }
    (got, lost)
}

/// `podsig record --any-signal` (default history limits) through a storm at one process and
/// then many short-lived senders: its peak memory. The history it wrote is then grown to
/// HISTORY_ROWS by replaying its own rows with varied keys (pod, namespace, container, pid,
/// time), and `podsig history --pod X --last 10` timed on it.
fn recorder(podsig: &Path, scratch: &Path) -> Result<Value> {
    println!(
        "xtask: bench: recorder memory (`record --any-signal`: {RECORD_STORM} signals, then {SENDERS} distinct senders)"
    );
    let target = Ignorer::new()?;
    let out = scratch.join("record.out");
    let db = scratch.join("record.db");
    let db_arg = db.to_string_lossy().into_owned();
    let tool = Tool::podsig(podsig, &["record", "--any-signal", "--history", &db_arg, "-o", "json"], &out)?;
    run_storm(target.pid(), RECORD_STORM)?;
    let exe = std::env::current_exe()?;
    let o = Command::new(exe).args(["senders", &target.pid().to_string(), &SENDERS.to_string()]).output()?;
    if !o.status.success() {
        bail!("senders failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    // The history commits every 0.5 s: let it take in the last of them.
    thread::sleep(Duration::from_secs(2));
    let rss = tool.peak_rss_kib().unwrap_or(0);
    tool.stop()?;
    let (got, lost) = count_events(Peer::Podsig, &out, target.pid());
    let _ = fs::remove_file(&out);

    println!("xtask: bench: history query ({HISTORY_ROWS} rows, `history --pod X --last 10`)");
    let conn = rusqlite::Connection::open(&db).context("opening the recorder's history")?;
    let captured: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
    if captured == 0 {
        bail!("the recorder stored nothing in {}", db.display());
    }
    // Doubling what is there, each copy under new keys, until HISTORY_ROWS.
    conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")?;
    loop {
        let n: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
        if n >= HISTORY_ROWS {
            break;
        }
        conn.execute(
            "INSERT INTO events (time_ns, kind, node, signal, target_pid, container_id, container_name, pod,
                                 namespace, sender_comm, record)
             SELECT time_ns + ?1, kind, node, signal, abs(random()) % 4000000,
                    lower(hex(randomblob(32))), 'app', 'pod-' || (abs(random()) % ?2),
                    'ns-' || (abs(random()) % 10), sender_comm, record
             FROM events ORDER BY id LIMIT ?3",
            rusqlite::params![n, HISTORY_PODS, HISTORY_ROWS - n],
        )?;
    }
    drop(conn);
    let size_mib = fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / (1 << 20) as f64;
    let mut ms = Vec::new();
    for i in 0..QUERY_RUNS {
        let pod = format!("pod-{}", 17 + i);
        let t0 = Instant::now();
        let o = Command::new(podsig)
            .args(["history", "--history", &db_arg, "--pod", &pod, "--last", "10", "-o", "json"])
            .output()?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
        if !o.status.success() || o.stdout.iter().filter(|&&b| b == b'\n').count() != 10 {
            bail!("history --pod {pod} --last 10 did not print 10 records: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
    let _ = fs::remove_file(&db);
    Ok(json!({
        "storm": RECORD_STORM, "senders": SENDERS, "received": got, "lost_reported": lost,
        "peak_rss_kib": rss, "history_rows": HISTORY_ROWS, "captured_rows": captured,
        "history_mib": size_mib, "query_ms": median(ms),
    }))
}

/// A fork+exit storm inside a container, with and without a `--container` watch following
/// its forks (interleaved rounds). The container runs in a containerd of the bench's own.
fn fork_storm(podsig: &Path, scratch: &Path) -> Result<Value> {
    println!("xtask: bench: fork storm in a watched container ({FORKS} forks, {FORK_ROUNDS} interleaved rounds)");
    let ctrd = crate::containerd::named("podsig-bench-containerd")?;
    let rootfs = scratch.join("forks-rootfs");
    let _ = fs::remove_dir_all(&rootfs);
    for d in ["bin", "proc", "dev", "sys", "tmp"] {
        fs::create_dir_all(rootfs.join(d))?;
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).context("busybox-static is needed (/bin/busybox)")?;
    for applet in ["sh", "sleep", "rm", "mv"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))?;
    }
    // Each round starts when /go appears and leaves its start and end (/proc/uptime, 10 ms
    // steps: a round lasts seconds) in /done.
    let script = format!(
        "while :; do while [ ! -e /go ]; do sleep 0.02; done; rm -f /go; read a x < /proc/uptime; i=0; \
         while [ $i -lt {FORKS} ]; do ( : ); i=$((i+1)); done; read b x < /proc/uptime; \
         echo \"$a $b\" > /done.tmp; mv /done.tmp /done; done"
    );
    let id = format!("podsig-bench-forks-{}", std::process::id());
    let sock = ctrd.socket.clone();
    let ctr = |args: &[&str]| Command::new("ctr").args(["--address", &sock, "-n", "k8s.io"]).args(args).output();
    let rootfs_arg = rootfs.to_string_lossy().into_owned();
    let o = ctr(&["run", "-d", "--rootfs", &rootfs_arg, &id, "/bin/sh", "-c", &script])?;
    if !o.status.success() {
        bail!("ctr run failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    let round = || -> Result<f64> {
        let done = rootfs.join("done");
        let _ = fs::remove_file(&done);
        fs::write(rootfs.join("go"), "")?;
        let t0 = Instant::now();
        while !done.exists() {
            if t0.elapsed() > Duration::from_secs(120) {
                bail!("the fork storm in the container never finished");
            }
            thread::sleep(Duration::from_millis(20));
        }
        let text = fs::read_to_string(&done)?;
        let v: Vec<f64> = text.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        let [a, b] = v[..] else { bail!("the fork storm left {text:?}") };
        Ok((b - a) * 1e9 / FORKS as f64)
    };
    let result = (|| -> Result<Value> {
        // Each child's exit sends its parent, the watched init, a SIGCHLD: a watch of every
        // signal reports each (a new sender every time, so with its ancestry); one for the
        // stop signals only has the kernel drop them, which leaves the fork hook's own cost.
        let all = ["watch", "--containerd-socket", &sock, "--container", &id, "-o", "json"];
        let stops = [&all[..], &["-s", "TERM", "-s", "KILL"]].concat();
        let (mut bare, mut watched, mut watched_all) = (Vec::new(), Vec::new(), Vec::new());
        round()?; // warm-up: page cache, the shell's first forks
        for _ in 0..FORK_ROUNDS {
            bare.push(round()?);
            for (args, into) in [(&stops[..], &mut watched), (&all[..], &mut watched_all)] {
                let tool = Tool::podsig(podsig, args, &scratch.join("forks.out"))?;
                into.push(round()?);
                tool.stop()?;
            }
        }
        let (bare, watched, watched_all) = (median(bare), median(watched), median(watched_all));
        Ok(json!({"forks": FORKS, "rounds": FORK_ROUNDS, "bare_ns_per_fork": bare,
            "watched_ns_per_fork": watched, "slowdown": watched / bare,
            "watched_all_ns_per_fork": watched_all, "slowdown_all_signals": watched_all / bare}))
    })();
    let _ = ctr(&["task", "kill", "-s", "SIGKILL", &id]);
    thread::sleep(Duration::from_millis(300));
    let _ = ctr(&["task", "delete", "-f", &id]);
    let _ = ctr(&["container", "delete", &id]);
    result
}

// Long: the benchmark's sections in the order the report gives them, each a loop over the peers.
pub fn run(podsig: &Path) -> Result<()> {
    let podsig = (podsig.to_path_buf(),);
    let scratch = std::env::temp_dir().join(format!("podsig-bench-{}", std::process::id()));
    fs::create_dir_all(&scratch)?;
    let peers = [Peer::Podsig, Peer::Bpftrace, Peer::Sigsnoop];
    let mut report = json!({"storm_signals": STORM, "rounds": ROUNDS});
    // One row alone, when its code is what changed: PODSIG_BENCH_ONLY=requests.
    if std::env::var("PODSIG_BENCH_ONLY").as_deref() == Ok("requests") {
        let r = request_capture(&podsig.0, &scratch)?;
        println!("{}", serde_json::to_string_pretty(&r)?);
        let _ = fs::remove_dir_all(&scratch);
        return Ok(());
    }

    println!("xtask: bench: ready time ({READY_RUNS} runs each)");
    let mut ready = serde_json::Map::new();
    for peer in peers {
        let (r, whole) = ready_times(peer, &podsig.0, &scratch)?;
        ready.insert(peer.name().into(), json!({"ready_ms": r, "attach_exit_ms": whole}));
    }
    report["ready"] = Value::Object(ready);

    println!("xtask: bench: miss path ({STORM} signals to an unwatched process, {ROUNDS} interleaved rounds)");
    let target = Ignorer::new()?;
    let other = Ignorer::new()?;
    // Node mode's storm is of a signal outside its set (SIGUSR1): the set is tested first.
    let configs = [
        None,
        Some(Peer::Floor),
        Some(Peer::Podsig),
        Some(Peer::Node),
        Some(Peer::NodeNoRequests),
        Some(Peer::Bpftrace),
        Some(Peer::Sigsnoop),
    ];
    let mut miss: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    for _ in 0..ROUNDS {
        for (i, cfg) in configs.iter().enumerate() {
            let tool = match cfg {
                Some(p) => Some(Tool::start(*p, &podsig.0, other.pid(), &scratch.join("miss.out"))?),
                None => None,
            };
            miss[i].push(run_storm(target.pid(), STORM)?);
            if let Some(t) = tool {
                t.stop()?;
            }
        }
    }
    let miss: Vec<f64> = miss.into_iter().map(median).collect();
    report["miss_prog_ns"] = in_kernel_miss_cost(&podsig.0, &scratch, target.pid(), other.pid())?;
    let base = miss[0];
    let floor_added = miss[1] - base;
    let mut miss_json = serde_json::Map::new();
    for (cfg, ns) in configs.iter().zip(&miss) {
        let name = cfg.map_or("no tool", |p| p.name());
        miss_json.insert(
            name.into(),
            json!({"ns_per_signal": ns, "added_ns": ns - base, "x_floor": (ns - base) / floor_added}),
        );
    }
    report["miss"] = Value::Object(miss_json);

    println!("xtask: bench: hit path ({STORM} signals to the watched process, output to a file, {HIT_RUNS} runs each)");
    let mut hit = serde_json::Map::new();
    for peer in peers {
        let (mut ns, mut worst): (Vec<f64>, Option<(u64, u64)>) = (Vec::new(), None);
        let (mut rss, mut silent) = (0, 0);
        for _ in 0..HIT_RUNS {
            let target = Ignorer::new()?;
            let out = scratch.join(format!("hit-{}.out", peer.name()));
            let tool = Tool::start(peer, &podsig.0, target.pid(), &out)?;
            ns.push(run_storm(target.pid(), STORM)?);
            // Let the reader catch up before stopping it (every tool flushes on SIGINT too).
            thread::sleep(Duration::from_millis(500));
            rss = rss.max(tool.peak_rss_kib().unwrap_or(0));
            tool.stop()?;
            let (got, lost) = count_events(peer, &out, target.pid());
            silent = silent.max(STORM.saturating_sub(got + lost));
            // The run that received least is the one reported.
            if worst.is_none_or(|(g, _)| got < g) {
                worst = Some((got, lost));
            }
            let _ = fs::remove_file(&out);
        }
        let (got, lost) = worst.unwrap_or_default();
        let ns = median(ns);
        hit.insert(
            peer.name().into(),
            json!({
                "sent": STORM, "received": got, "lost_reported": lost, "silent_loss": silent,
                "storm_ns_per_signal": ns, "slowdown": ns / base, "peak_rss_kib": rss,
            }),
        );
    }
    report["hit"] = Value::Object(hit);

    println!("xtask: bench: ancestry completeness ({ANCESTRY_KILLS} kills from `sh -c 'kill …'`)");
    let target = Ignorer::new()?;
    let out = scratch.join("ancestry.out");
    let tool = Tool::start(Peer::Podsig, &podsig.0, target.pid(), &out)?;
    for _ in 0..ANCESTRY_KILLS {
        Command::new("sh").args(["-c", &format!("kill -USR1 {}", target.pid())]).status()?;
    }
    thread::sleep(Duration::from_millis(300));
    tool.stop()?;
    let text = fs::read_to_string(&out).unwrap_or_default();
    let events: Vec<Value> =
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).filter(|v: &Value| v["kind"] == "signal").collect();
    let complete = events
        .iter()
        .filter(|v| {
            let a = v["ancestry"].as_array().cloned().unwrap_or_default();
            v["ancestry_complete"] == true
                && a.iter().any(|x| x["pid"] == 1)
                && a.iter().all(|x| x["comm"].as_str().is_some_and(|c| !c.is_empty()))
        })
        .count();
    report["ancestry"] = json!({"kills": ANCESTRY_KILLS, "events": events.len(), "complete": complete,
        "share": complete as f64 / ANCESTRY_KILLS as f64});
    report["record"] = recorder(&podsig.0, &scratch)?;
    report["forks"] = fork_storm(&podsig.0, &scratch)?;
    report["requests"] = request_capture(&podsig.0, &scratch)?;
    let _ = fs::remove_dir_all(&scratch);

    let table = markdown(&report);
    println!("\n{table}");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("target");
    fs::create_dir_all(&dir)?;
    fs::write(dir.join("bench.json"), serde_json::to_string_pretty(&report)?)?;
    fs::write(dir.join("bench.md"), &table)?;
    println!("xtask: bench: wrote target/bench.json and target/bench.md");
    Ok(())
}

/// Writes of one byte to /dev/null per run of the request capture's cost.
const WRITES: u64 = 2_000_000;

/// ns per write(2) of one byte to /dev/null, `n` of them from this process.
fn write_storm(n: u64) -> Result<f64> {
    let null = fs::OpenOptions::new().write(true).open("/dev/null")?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&null);
    let t0 = Instant::now();
    for _ in 0..n {
        // SAFETY: one byte from a local to an open descriptor.
        unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
    }
    Ok(t0.elapsed().as_nanos() as f64 / n as f64)
}

/// ns per getppid(2), `n` of them from this process: a syscall no hook of podsig's attaches to.
fn getppid_storm(n: u64) -> Result<f64> {
    let t0 = Instant::now();
    for _ in 0..n {
        // SAFETY: a syscall without arguments or effects.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
    Ok(t0.elapsed().as_nanos() as f64 / n as f64)
}

/// What request capture adds to a write(2) that is not to a manager's socket, which is
/// nearly every write on a node: no tool, an empty program on sys_enter_write (the floor),
/// and `podsig record` (its write hook's one hash lookup), interleaved; then the in-kernel
/// run time per write of the floor and of podsig's hook (bpf_stats). And what it adds to
/// every other syscall: while any `syscalls:` tracepoint is attached the kernel takes its
/// traced syscall path for every task, so a getppid(2) storm is timed bare, under `podsig
/// record --no-requests` and under `podsig record`.
fn request_capture(podsig: &Path, scratch: &Path) -> Result<Value> {
    println!("xtask: bench: request capture ({WRITES} writes to /dev/null, {ROUNDS} interleaved rounds)");
    let floor = |out: &Path| Tool::podsig(podsig, &["floor", "--write"], out);
    let node = |out: &Path| Tool::start(Peer::Node, podsig, 0, out);
    let out = scratch.join("writes.out");
    let mut ns: [Vec<f64>; 3] = Default::default();
    for _ in 0..ROUNDS {
        ns[0].push(write_storm(WRITES)?);
        for (i, start) in [&floor as &dyn Fn(&Path) -> Result<Tool>, &node].into_iter().enumerate() {
            let tool = start(&out)?;
            ns[i + 1].push(write_storm(WRITES)?);
            tool.stop()?;
        }
    }
    let [none, floor_ns, podsig_ns] = ns.map(median);
    let mut tax: [Vec<f64>; 3] = Default::default();
    for _ in 0..ROUNDS {
        tax[0].push(getppid_storm(WRITES)?);
        for (i, peer) in [Peer::NodeNoRequests, Peer::Node].into_iter().enumerate() {
            let tool = Tool::start(peer, podsig, 0, &out)?;
            tax[i + 1].push(getppid_storm(WRITES)?);
            tool.stop()?;
        }
    }
    let [bare, without, with] = tax.map(median);
    const STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";
    let was = fs::read_to_string(STATS).unwrap_or_default();
    let mut prog = json!(null);
    if fs::write(STATS, "1").is_ok() {
        let per_run = |start: &dyn Fn(&Path) -> Result<Tool>| -> Result<Option<f64>> {
            let tool = start(&out)?;
            write_storm(WRITES / 4)?;
            let ns = prog_ns_per_run(tool.child.id());
            tool.stop()?;
            Ok(ns)
        };
        prog = json!({"floor": per_run(&floor)?, "podsig": per_run(&node)?});
        let _ = fs::write(STATS, if was.trim() == "1" { "1" } else { "0" });
    }
    Ok(json!({
        "writes": WRITES,
        "no_tool_ns": none,
        "floor_added_ns": floor_ns - none,
        "podsig_added_ns": podsig_ns - none,
        "x_floor": (podsig_ns - none) / (floor_ns - none),
        "prog_ns": prog,
        "getppid_ns": {"no_tool": bare, "record_no_requests": without, "record": with},
        "syscall_tax_ns": with - without,
    }))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

// Long: the report, table by table, in the order it reads.
fn markdown(r: &Value) -> String {
    let mut t = String::new();
    let pr = f(&r["ready"]["podsig"]["ready_ms"]);
    t += "| tool | ready (ms) | × podsig | attach+exit (ms) | miss-path added (ns) | × floor | hit: received | lost (reported) | silent loss | storm slowdown | peak RSS (MiB) |\n";
    t += "|---|---|---|---|---|---|---|---|---|---|---|\n";
    for name in ["podsig", "bpftrace", "sigsnoop"] {
        let ready = &r["ready"][name];
        let miss = &r["miss"][name];
        let hit = &r["hit"][name];
        t += &format!(
            "| {name} | {:.1} | {:.2} | {} | {:.0} | {:.2} | {} | {} | {} | {:.2}× | {:.1} |\n",
            f(&ready["ready_ms"]),
            f(&ready["ready_ms"]) / pr,
            ready["attach_exit_ms"].as_f64().map_or("-".into(), |v| format!("{v:.1}")),
            f(&miss["added_ns"]),
            f(&miss["x_floor"]),
            hit["received"],
            hit["lost_reported"],
            hit["silent_loss"],
            f(&hit["slowdown"]),
            f(&hit["peak_rss_kib"]) / 1024.0,
        );
    }
    t += &format!(
        "\nNo tool: {:.0} ns per kill(); empty program on the hook (floor): +{:.0} ns. sigsnoop cannot filter on the target, so its miss path traces every signal.\n",
        f(&r["miss"]["no tool"]["ns_per_signal"]),
        f(&r["miss"]["empty program (floor)"]["added_ns"])
    );
    let k = &r["miss_prog_ns"];
    if k.is_object() {
        t += &format!(
            "In-kernel run time per unwatched signal (kernel.bpf_stats_enabled, whose own clock reads are in every figure; programs only: a classic tracepoint assembles its record, bpftrace's cost, before its program runs): empty program {:.0} ns, podsig {:.0} ns (+{:.0}), podsig record (node mode, a signal outside its set) {:.0} ns (+{:.0}), bpftrace {:.0} ns (+{:.0}).\n",
            f(&k["empty program (floor)"]),
            f(&k["podsig"]),
            f(&k["podsig"]) - f(&k["empty program (floor)"]),
            f(&k["podsig record (node mode)"]),
            f(&k["podsig record (node mode)"]) - f(&k["empty program (floor)"]),
            f(&k["bpftrace"]),
            f(&k["bpftrace"]) - f(&k["empty program (floor)"]),
        );
    }
    let a = &r["ancestry"];
    t += &format!(
        "Ancestry completeness (podsig, {} short-lived senders): {}/{} complete.\n\n",
        a["kills"], a["complete"], a["kills"]
    );
    let node = &r["miss"]["podsig record (node mode)"];
    let node_hook = &r["miss"]["podsig record --no-requests"];
    t += &format!(
        "Node mode (`podsig record`, every process, a storm of SIGUSR1, outside its signal set): +{:.0} ns per signal, {:.2}× the floor's added cost; with `--no-requests` (the signal hook alone, no syscall tracepoints) +{:.0} ns, {:.2}×.\n",
        f(&node["added_ns"]),
        f(&node["x_floor"]),
        f(&node_hook["added_ns"]),
        f(&node_hook["x_floor"]),
    );
    let rec = &r["record"];
    t += &format!(
        "Recorder (`record --any-signal`, default history limits): {} signals at one process then {} distinct short-lived senders: {} received, {} lost (reported), peak RSS {:.1} MiB.\n",
        rec["storm"],
        rec["senders"],
        rec["received"],
        rec["lost_reported"],
        f(&rec["peak_rss_kib"]) / 1024.0,
    );
    t += &format!(
        "History query: `podsig history --pod X --last 10` over {} rows ({:.0} MiB; the recorder's own {} rows replayed under varied pod, namespace, container, pid and time keys, spread over {HISTORY_PODS} pods): {:.1} ms, the whole process, median of {QUERY_RUNS}.\n",
        rec["history_rows"],
        f(&rec["history_mib"]),
        rec["captured_rows"],
        f(&rec["query_ms"]),
    );
    let fk = &r["forks"];
    t += &format!(
        "Fork storm in a container (busybox `( : )`, {} forks per round, {} interleaved rounds): {:.0} ns per fork+exit bare; with a `--container -s TERM -s KILL` watch following its forks {:.0} ns ({:.3}×); with a `--container` watch of every signal, which also reports each child's SIGCHLD to the watched init with that child's ancestry, {:.0} ns ({:.3}×).\n\n",
        fk["forks"],
        fk["rounds"],
        f(&fk["bare_ns_per_fork"]),
        f(&fk["watched_ns_per_fork"]),
        f(&fk["slowdown"]),
        f(&fk["watched_all_ns_per_fork"]),
        f(&fk["slowdown_all_signals"]),
    );
    let q = &r["requests"];
    let over_floor = f(&q["prog_ns"]["podsig"]) - f(&q["prog_ns"]["floor"]);
    t += &format!(
        "Request capture (`podsig record`, a write(2) storm of {} one-byte writes to /dev/null, no manager's socket): \
         {:.0} ns per write bare; the empty program on sys_enter_write adds {:.0} ns, podsig's write hook {:.0} ns \
         ({:.2}× the floor); in the kernel {:.0} ns per run against the empty program's {:.0} (+{:.0} ns: the hash \
         lookup).\n",
        q["writes"],
        f(&q["no_tool_ns"]),
        f(&q["floor_added_ns"]),
        f(&q["podsig_added_ns"]),
        f(&q["x_floor"]),
        f(&q["prog_ns"]["podsig"]),
        f(&q["prog_ns"]["floor"]),
        over_floor,
    );
    let g = &q["getppid_ns"];
    t += &format!(
        "Request capture's tax on every syscall of every process (a getppid(2) storm, which no hook of podsig's \
         attaches to): {:.0} ns bare, {:.0} ns under `podsig record --no-requests`, {:.0} ns under `podsig record` \
         (+{:.0} ns: with any `syscalls:` tracepoint attached, the kernel takes its traced syscall path for every \
         task).\n\n",
        f(&g["no_tool"]),
        f(&g["record_no_requests"]),
        f(&g["record"]),
        f(&q["syscall_tax_ns"]),
    );
    let p = &r["hit"]["podsig"];
    let br = f(&r["ready"]["bpftrace"]["ready_ms"]);
    let sr = f(&r["ready"]["sigsnoop"]["ready_ms"]);
    let targets = [
        ("ready ≤ 0.15× bpftrace's", pr <= 0.15 * br),
        ("ready ≤ 1.0× sigsnoop's", pr <= sr),
        ("attach+exit (`--duration 0s`) ≤ 40 ms", f(&r["ready"]["podsig"]["attach_exit_ms"]) <= 40.0),
        ("miss-path added cost ≤ 1.5× the floor", f(&r["miss"]["podsig"]["x_floor"]) <= 1.5),
        ("node mode's signal hook (`--no-requests`): added cost ≤ 1.5× the floor", f(&node_hook["x_floor"]) <= 1.5),
        ("hit path: zero silent loss", p["silent_loss"] == 0),
        ("hit path: ≥ 99% received", f(&p["received"]) >= 0.99 * f(&p["sent"])),
        ("hit path: storm slowdown ≤ 1.3×", f(&p["slowdown"]) <= 1.3),
        ("watch peak RSS ≤ 16 MiB", f(&p["peak_rss_kib"]) <= 16.0 * 1024.0),
        ("recorder: every signal received or reported lost", {
            let sent = f(&rec["storm"]) + f(&rec["senders"]);
            f(&rec["received"]) + f(&rec["lost_reported"]) >= sent
        }),
        ("recorder peak RSS ≤ 20 MiB", f(&rec["peak_rss_kib"]) <= 20.0 * 1024.0),
        ("history query ≤ 50 ms over 1 M rows", f(&rec["query_ms"]) <= 50.0),
        ("fork storm in a container watched for its stop signals ≤ 1.05×", f(&fk["slowdown"]) <= 1.05),
        ("ancestry completeness 100%", a["complete"] == a["kills"]),
        (
            "request capture: a write not to a manager costs ≤ 100 ns in the kernel over the empty program",
            over_floor <= 100.0,
        ),
    ];
    for (what, ok) in targets {
        t += &format!("- {}: {what}\n", pass(ok));
    }
    t
}
