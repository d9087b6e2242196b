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
    Floor,
    Bpftrace,
    Sigsnoop,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Podsig => "podsig",
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
        let mut cmd = match peer {
            Peer::Podsig => {
                let mut c = Command::new(podsig);
                c.args(["watch", "--pid", &pid.to_string(), "-o", "json"]);
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
        let marker_on_stdout = matches!(peer, Peer::Bpftrace | Peer::Sigsnoop);
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
        let at = rx.recv_timeout(Duration::from_secs(30)).with_context(|| format!("{} never attached", peer.name()))?;
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
        for peer in [Peer::Floor, Peer::Podsig, Peer::Bpftrace] {
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
            Peer::Floor => {}
        }
    }
    (got, lost)
}

pub fn run(podsig: &Path) -> Result<()> {
    let podsig = (podsig.to_path_buf(),);
    let scratch = std::env::temp_dir().join(format!("podsig-bench-{}", std::process::id()));
    fs::create_dir_all(&scratch)?;
    let peers = [Peer::Podsig, Peer::Bpftrace, Peer::Sigsnoop];
    let mut report = json!({"storm_signals": STORM, "rounds": ROUNDS});

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
    let configs = [None, Some(Peer::Floor), Some(Peer::Podsig), Some(Peer::Bpftrace), Some(Peer::Sigsnoop)];
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

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

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
            "In-kernel run time per unwatched signal (kernel.bpf_stats_enabled, whose own clock reads are in every figure; programs only: a classic tracepoint assembles its record, bpftrace's cost, before its program runs): empty program {:.0} ns, podsig {:.0} ns (+{:.0}), bpftrace {:.0} ns (+{:.0}).\n",
            f(&k["empty program (floor)"]),
            f(&k["podsig"]),
            f(&k["podsig"]) - f(&k["empty program (floor)"]),
            f(&k["bpftrace"]),
            f(&k["bpftrace"]) - f(&k["empty program (floor)"]),
        );
    }
    let a = &r["ancestry"];
    t += &format!(
        "Ancestry completeness (podsig, {} short-lived senders): {}/{} complete.\n\n",
        a["kills"], a["complete"], a["kills"]
    );
    let p = &r["hit"]["podsig"];
    let br = f(&r["ready"]["bpftrace"]["ready_ms"]);
    let targets = [
        ("ready ≤ 0.15× bpftrace's", pr <= 0.15 * br),
        ("miss-path added cost ≤ 1.5× the floor", f(&r["miss"]["podsig"]["x_floor"]) <= 1.5),
        ("hit path: zero silent loss", p["silent_loss"] == 0),
        ("hit path: ≥ 99% received", f(&p["received"]) >= 0.99 * f(&p["sent"])),
        ("hit path: storm slowdown ≤ 2×", f(&p["slowdown"]) <= 2.0),
        ("peak RSS ≤ 16 MiB", f(&p["peak_rss_kib"]) <= 16.0 * 1024.0),
        ("ancestry completeness 100%", a["complete"] == a["kills"]),
    ];
    for (what, ok) in targets {
        t += &format!("- {}: {what}\n", pass(ok));
    }
    t
}
