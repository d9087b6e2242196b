//! Node mode and the flight recorder on the host: `watch --all` filters and node name,
//! `podsig record` answering `podsig history` while it runs and after a `kill -9`, its
//! metrics, and a storm it must survive within its bounds.

use std::{
    process::Command,
    thread,
    time::{Duration, Instant},
};

use podsig_e2e::*;

#[test]
fn node_mode_reports_terminating_signals_minus_noise_with_the_node_name() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (a, b) = (Target::sleep(), Target::sleep());
    let mut w = Podsig::start(&["watch", "--all", "--exclude-comm", "bash", "--node-name", "node-7", "-o", "json"]);
    // Request capture taxes every syscall on the node: node mode says it is on, at once.
    let attached = w.stderr_lines.last().unwrap();
    assert!(attached.contains("watching every process, capturing requests to managers, "), "{attached}");
    send("sh", "kill -USR1 $T", a.pid()); // not a terminating signal: not reported by default
    send("bash", "kill -TERM $T", a.pid()); // excluded sender
    let sender = send("sh", "kill -TERM $T", b.pid());
    let ev = w.next_matching("a signal to either target", |v| {
        v["kind"] == "signal" && (v["target"]["pid"] == a.pid() || v["target"]["pid"] == b.pid())
    });
    assert_eq!(ev["target"]["pid"], b.pid(), "USR1 and bash's TERM to {} were filtered: {ev}", a.pid());
    assert_eq!(ev["signal"]["name"], "SIGTERM");
    assert_eq!(ev["sender"]["pid"], sender);
    assert_eq!(ev["node"], "node-7");
    w.signal(libc::SIGINT);
    assert!(w.wait().0.success());

    // --any-signal lifts the default; the node name falls back to $NODE_NAME.
    let mut w = Podsig::start_env(
        &["watch", "--all", "--any-signal", "--no-requests", "-o", "json"],
        &[("NODE_NAME", "from-env")],
    );
    let attached = w.stderr_lines.last().unwrap();
    assert!(!attached.contains("requests"), "--no-requests: {attached}");
    send("sh", "kill -USR1 $T", a.pid());
    let ev = w.next_matching("USR1 to the target", |v| v["kind"] == "signal" && v["target"]["pid"] == a.pid());
    assert_eq!(ev["signal"]["name"], "SIGUSR1");
    assert_eq!(ev["node"], "from-env");
    drop(w);

    // Any watch names its node; by default the hostname.
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let c = Target::sleep();
    let mut w = Podsig::start_env(&["watch", "--pid", &c.pid().to_string(), "-o", "json"], &[("NODE_NAME", "")]);
    send("sh", "kill -USR2 $T", c.pid());
    assert_eq!(w.next_signal("SIGUSR2")["node"], hostname.as_str());
}

#[test]
fn the_recorder_answers_while_running_and_after_kill_9() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let dir = scratch("recorder");
    let db = dir.join("history.db");
    let dbs = db.to_str().unwrap();
    let (a, b) = (Target::sleep(), Target::sleep());
    let rec = Podsig::start(&["record", "--history", dbs, "--metrics-addr", "127.0.0.1:0", "--node-name", "node-r"]);
    let addr = metrics_addr(&rec);

    let sender = send("sh", "kill -TERM $T", a.pid());
    let pid = a.pid().to_string();
    let ev = history_until(&db, &["--pid", &pid], |v| v["kind"] == "signal");
    assert_eq!(ev["signal"]["name"], "SIGTERM");
    assert_eq!(ev["sender"]["pid"], sender);
    assert_eq!(ev["sender"]["comm"], "sh");
    assert_eq!(ev["node"], "node-r");
    assert_eq!(ev["ancestry"][0]["pid"], 0, "the full ancestry is stored: {ev}");
    // The text form is watch's text form.
    let (st, text, err) = podsig_output(&["history", "--history", dbs, "--pid", &pid, "-o", "text"]);
    assert!(st.success(), "{err}");
    assert!(text.starts_with(&format!("sh({sender}) send SIGTERM to sleep({pid})")), "{text}");

    let (status, body) = http_get(&addr, "/metrics");
    assert!(status.contains("200"), "{status}");
    let term = sample(&body, r#"podsig_signals_total{signal="SIGTERM",cause="process""#).unwrap_or(0.0);
    assert!(term >= 1.0, "the counter moved: {body}");
    assert!(sample(&body, "podsig_history_bytes").unwrap_or(0.0) > 0.0, "{body}");
    assert!(http_get(&addr, "/healthz").0.contains("200"));

    // Killed without warning: what was committed (everything older than a commit
    // interval) survives, and the store still opens.
    let sender_b = send("sh", "kill -INT $T", b.pid());
    thread::sleep(Duration::from_millis(1500));
    rec.signal(libc::SIGKILL);
    let (st, _, _) = rec.wait();
    assert!(!st.success());
    let ev = history(&db, &["--pid", &b.pid().to_string(), "--signal", "INT"]);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["sender"]["pid"], sender_b);
    // The TERM, and the exit it caused (node mode records the exits of processes it saw
    // get a terminating signal).
    let kinds: Vec<Value> = history(&db, &["--pid", &pid]).into_iter().map(|v| v["kind"].clone()).collect();
    assert_eq!(kinds, ["signal", "exit"]);
    assert!(history(&db, &["--pid", "1", "--signal", "INT"]).is_empty());

    // The history holds command lines: root only (0600), unless a group is named.
    let bin = dir.join("podsig");
    copy_executable(podsig_bin(), &bin);
    let as_nobody = || {
        let o = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(["history", "--history", dbs, "--pid", &pid, "-o", "json"])
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).lines().count(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, _, err) = as_nobody();
    assert!(!ok && err.lines().count() == 1 && err.contains("no read access"), "{err}");
    // With --history-group, its members read it (the kill and the target's exit): after the kill -9 (its log still there),
    // and after a clean stop (no log, and no right to create one beside the file).
    let again = Podsig::start(&["record", "--history", dbs, "--history-group", "65534"]);
    again.signal(libc::SIGKILL);
    assert!(!again.wait().0.success());
    assert_eq!(as_nobody().1, 2);
    let again = Podsig::start(&["record", "--history", dbs, "--history-group", "65534"]);
    again.signal(libc::SIGINT);
    assert!(again.wait().0.success());
    assert!(!dir.join("history.db-wal").exists(), "a clean stop leaves no log");
    assert_eq!(as_nobody().1, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_storm_keeps_the_recorder_within_its_memory_and_size_bounds() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let dir = scratch("storm");
    let db = dir.join("history.db");
    let max = 8u64 << 20;
    let target = Target::script("trap '' USR1; exec sleep 300");
    let rec = Podsig::start(&[
        "record",
        "--history",
        db.to_str().unwrap(),
        "--history-max",
        "8MiB",
        "--signal",
        "USR1",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let addr = metrics_addr(&rec);
    let sent = 1_000_000;
    let started = Instant::now();
    for _ in 0..sent {
        // SAFETY: kill(2) to our own child, whose SIGUSR1 is ignored.
        assert_eq!(unsafe { libc::kill(target.pid() as i32, libc::SIGUSR1) }, 0);
    }
    eprintln!("storm: {sent} signals in {:?}", started.elapsed());
    // Let the recorder drain and commit.
    let deadline = Instant::now() + TIMEOUT;
    let mut last = -1.0;
    loop {
        let body = http_get(&addr, "/metrics").1;
        let seen = sample(&body, r#"podsig_signals_total{signal="SIGUSR1""#).unwrap_or(0.0)
            + sample(&body, "podsig_events_lost_total").unwrap_or(0.0);
        if seen == last || Instant::now() > deadline {
            eprintln!("storm: recorder saw or reported lost {seen} of {sent}");
            assert!(seen >= sent as f64, "no silent loss: {body}");
            break;
        }
        last = seen;
        thread::sleep(Duration::from_secs(1));
    }
    let rss = peak_rss_kib(rec.child.id());
    eprintln!("storm: recorder peak RSS {rss} KiB");
    assert!(rss < 96 * 1024, "recorder peak RSS {rss} KiB");
    let size =
        std::fs::metadata(&db).unwrap().len() + std::fs::metadata(dir.join("history.db-wal")).map_or(0, |m| m.len());
    assert!(size <= max, "history {size} bytes > --history-max {max}");
    // Other tests on this node send SIGUSR1 too (the recorder sees the whole node): ask for
    // this target's.
    let pid = target.pid().to_string();
    let kept = history(&db, &["--signal", "USR1", "--pid", &pid, "--last", "1"]);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["target"]["pid"], target.pid());
    rec.signal(libc::SIGINT);
    assert!(rec.wait().0.success());
    let _ = Command::new("rm").arg("-rf").arg(&dir).status();
}
