//! `podsig watch --pid` end to end: real targets, real senders, the real kernel.

use std::{thread, time::Duration};

use podsig_e2e::*;

#[test]
fn short_lived_sender_is_reported_with_argv_ancestry_and_exit() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let mut target = Target::sleep();
    let t = target.pid();
    let tp = t.to_string();
    let mut w = Podsig::start(&["watch", "--pid", &tp, "-o", "json"]);
    let sender = send("sh", "kill -KILL $T", t);

    let ev = w.next_kind("signal");
    assert_eq!(ev["backend"], "ebpf");
    assert_eq!(ev["signal"]["number"], 9);
    assert_eq!(ev["signal"]["name"], "SIGKILL");
    assert_eq!(ev["code"]["name"], "SI_USER");
    assert_eq!(ev["result"], "delivered");
    assert_eq!(ev["errno"], 0);
    assert_eq!(ev["target"]["pid"], t);
    assert_eq!(ev["target"]["tid"], t);
    assert_eq!(ev["target"]["comm"], "sleep");
    assert_eq!(ev["sender"]["pid"], sender);
    assert_eq!(ev["sender"]["comm"], "sh");
    assert_eq!(ev["sender"]["ppid"], std::process::id());
    // SAFETY: getuid has no preconditions.
    assert_eq!(ev["sender"]["uid"], unsafe { libc::getuid() });
    assert_eq!(ev["sender"]["argv"], serde_json::json!(["sh", "-c", "kill -KILL $T"]));
    // Not in a container: the namespaced pid is the host pid.
    assert_eq!(ev["sender"]["ns_pid"], sender);

    assert_eq!(ev["ancestry_complete"], true);
    let c = chain(&ev);
    assert_eq!(c[0], (0, "swapper/0".to_string()), "{c:?}");
    assert_eq!(c[1].0, 1, "{c:?}");
    assert_eq!(c[c.len() - 1], (sender as u64, "sh".to_string()));
    assert_eq!(c[c.len() - 2], (std::process::id() as u64, own_comm()));
    let starts: Vec<u64> = ev["ancestry"].as_array().unwrap().iter().map(|a| a["start_ns"].as_u64().unwrap()).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "ancestors start before children: {starts:?}");
    assert!(ev["time"].as_str().unwrap().ends_with('Z'));

    let exit = w.next_kind("exit");
    assert_eq!(exit["pid"], t);
    assert_eq!(exit["signal"]["name"], "SIGKILL");
    assert_eq!(exit["status"], Value::Null);
    // Every watched process has exited: podsig stops by itself.
    let (st, rest, err) = w.wait();
    assert!(st.success(), "podsig: {st}, stderr {err:?}");
    assert!(rest.is_empty(), "nothing after the exit record: {rest:?}");
    target.wait();
}

#[test]
fn chain_of_shells_is_walked_in_order() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::sleep();
    let t = target.pid();
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "-o", "json"]);
    // bash forks sh (the trailing `; exit` stops bash from exec'ing it); sh's builtin kill.
    let bash = send("bash", r#"sh -c "kill -TERM $T"; exit $?"#, t);
    let ev = w.next_kind("signal");
    assert_eq!(ev["signal"]["name"], "SIGTERM");
    let c = chain(&ev);
    let n = c.len();
    assert!(n >= 5, "{c:?}");
    assert_eq!(c[n - 1].1, "sh");
    assert_eq!(c[n - 2], (bash as u64, "bash".to_string()));
    assert_eq!(c[n - 3], (std::process::id() as u64, own_comm()));
    assert_eq!(ev["sender"]["ppid"], bash);
    assert_eq!(ev["sender"]["argv"], serde_json::json!(["sh", "-c", format!("kill -TERM {t}")]));
    let exit = w.next_kind("exit");
    assert_eq!(exit["signal"]["name"], "SIGTERM");
    assert!(w.wait().0.success());
}

#[test]
fn ignored_signal_says_ignored_and_signal_filter_applies() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    // SIG_IGN survives exec: the sleep ignores USR1.
    let target = Target::script(r#"trap "" USR1; exec sleep 300"#);
    let t = target.pid();
    let tp = t.to_string();
    let mut all = Podsig::start(&["watch", "--pid", &tp, "-o", "json"]);
    let mut only_term = Podsig::start(&["watch", "--pid", &tp, "--signal", "TERM", "-o", "json"]);
    send("sh", "kill -USR1 $T", t);
    let ev = all.next_kind("signal");
    assert_eq!(ev["signal"]["name"], "SIGUSR1");
    assert_eq!(ev["result"], "ignored");
    send("sh", "kill -TERM $T", t);
    let ev = all.next_kind("signal");
    assert_eq!(ev["signal"]["name"], "SIGTERM");
    assert_eq!(ev["result"], "delivered");
    // The filtered watcher saw only TERM, then the exit.
    let ev = only_term.next_json();
    assert_eq!(ev["kind"], "signal");
    assert_eq!(ev["signal"]["name"], "SIGTERM", "USR1 must be filtered in kernel: {ev}");
    assert_eq!(only_term.next_json()["kind"], "exit");
    assert!(all.wait().0.success());
    assert!(only_term.wait().0.success());
}

#[test]
fn text_output_reads_like_the_systemtap_recipe() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::sleep();
    let t = target.pid();
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "-o", "text"]);
    let sender = send("sh", "kill -KILL $T", t);
    let me = std::process::id();
    assert_eq!(w.next_line(), format!("sh({sender}) send SIGKILL to sleep({t})"));
    assert_eq!(w.next_line(), format!("parent of sender: {}({me})", own_comm()));
    let anc = w.next_line();
    assert!(anc.starts_with("task_ancestry:swapper/0(0m0.000000000s)=>"), "{anc}");
    assert!(anc.ends_with(&format!("=>{}(", "sh")) || anc.contains("=>sh("), "{anc}");
    let detail = w.next_line();
    assert!(detail.starts_with("  20"), "{detail}");
    assert!(detail.contains(" result=delivered code=SI_USER syscall=kill cause: process argv: "), "{detail}");
    assert!(detail.ends_with("argv: sh -c kill -KILL $T"), "{detail}");
    assert!(w.next_line().starts_with("  why: kill(2) from sh("));
    // The stop's verdict and its fix, any findings about this machine's own ancestry, then
    // the exit.
    assert!(
        w.next_line().starts_with(&format!("  stop: killed_without_term: sh({sender}) sent SIGKILL to sleep({t})"))
    );
    assert!(w.next_line().starts_with("  fix: "));
    let mut l = w.next_line();
    while l.starts_with("  warning: ") || l.starts_with("  alert: ") {
        l = w.next_line();
    }
    assert_eq!(l, format!("sleep({t}) killed by SIGKILL"));
    assert!(w.next_line().starts_with("  20"));
    let after = w.next_line();
    assert!(
        after.starts_with(&format!("  after: SIGKILL from sh({sender}) ")) && after.ends_with(" ms earlier, delivered"),
        "{after}"
    );
    assert!(w.wait().0.success());
}

#[test]
fn normal_exit_is_reported_with_status() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    // Exits with status 3 once the watch is attached and the go file appears.
    let go = std::env::temp_dir().join(format!("podsig-e2e-go-{}", std::process::id()));
    let _ = std::fs::remove_file(&go);
    let target = Target::script(&format!("while [ ! -e {} ]; do sleep 0.02; done; exit 3", go.display()));
    let t = target.pid();
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "-o", "json"]);
    std::fs::write(&go, "").unwrap();
    let exit = w.next_kind("exit");
    assert_eq!(exit["pid"], t);
    assert_eq!(exit["status"], 3);
    assert_eq!(exit["signal"], Value::Null);
    assert!(w.wait().0.success());
    let _ = std::fs::remove_file(&go);
}

#[test]
fn count_stops_after_n_signals() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::script(r#"trap "" USR1; exec sleep 300"#);
    let t = target.pid();
    let w = Podsig::start(&["watch", "--pid", &t.to_string(), "-o", "json", "--count", "2"]);
    for _ in 0..3 {
        send("sh", "kill -USR1 $T", t);
    }
    let (st, out, err) = w.wait();
    assert!(st.success(), "{st} {err:?}");
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out.iter().all(|l| l.contains(r#""name":"SIGUSR1""#)));
    // The target was not killed; podsig stopped because of --count.
    assert_eq!(target.comm(), "sleep");
}

#[test]
fn sigint_flushes_captured_events_and_exits_zero() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::script(r#"trap "" USR1; exec sleep 300"#);
    let t = target.pid();
    let w = Podsig::start(&["watch", "--pid", &t.to_string(), "-o", "json"]);
    for _ in 0..5 {
        send("sh", "kill -USR1 $T", t);
    }
    // Interrupt at once: the events are in the ring buffer, maybe not yet read.
    w.signal(libc::SIGINT);
    let (st, out, err) = w.wait();
    assert!(st.success(), "{st} {err:?}");
    let signals = out.iter().filter(|l| l.contains(r#""kind":"signal""#)).count();
    assert_eq!(signals, 5, "every captured event is printed before exit: {out:?}");
}

#[test]
fn sigterm_also_exits_zero() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::sleep();
    let w = Podsig::start(&["watch", "--pid", &target.pid().to_string()]);
    w.signal(libc::SIGTERM);
    let (st, _, err) = w.wait();
    assert!(st.success(), "{st} {err:?}");
}

#[test]
fn all_watches_every_process() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::script(r#"trap "" USR2; exec sleep 300"#);
    let t = target.pid();
    let mut w = Podsig::start(&["watch", "--all", "--signal", "USR2", "-o", "json"]);
    send("sh", "kill -USR2 $T", t);
    let ev = loop {
        let ev = w.next_kind("signal");
        if ev["target"]["pid"] == t {
            break ev;
        }
    };
    assert_eq!(ev["signal"]["name"], "SIGUSR2");
    w.signal(libc::SIGINT);
    assert!(w.wait().0.success());
}

#[test]
fn several_pids_and_threads_of_a_watched_process() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let a = Target::sleep();
    let b = Target::sleep();
    let mut w = Podsig::start(&["watch", "--pid", &a.pid().to_string(), "--pid", &b.pid().to_string(), "-o", "json"]);
    send("sh", "kill -TERM $T", a.pid());
    assert_eq!(w.next_kind("signal")["target"]["pid"], a.pid());
    assert_eq!(w.next_kind("exit")["pid"], a.pid());
    send("sh", "kill -TERM $T", b.pid());
    assert_eq!(w.next_kind("signal")["target"]["pid"], b.pid());
    assert_eq!(w.next_kind("exit")["pid"], b.pid());
    // Only when both have exited does podsig stop.
    assert!(w.wait().0.success());
}

#[test]
fn closed_stdout_ends_quietly() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::script(r#"trap "" USR1; exec sleep 300"#);
    let t = target.pid();
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "-o", "json"]);
    send("sh", "kill -USR1 $T", t);
    w.next_kind("signal");
    // Like `| head -1`: the reader goes away, later writes hit a closed pipe.
    w.close_stdout();
    send("sh", "kill -USR1 $T", t);
    thread::sleep(Duration::from_millis(200));
    send("sh", "kill -USR1 $T", t);
    let (st, rest, err) = w.wait();
    assert!(st.success(), "{st}");
    assert!(rest.is_empty());
    assert!(!err.iter().any(|l| l.contains("panicked") || l.contains("error")), "{err:?}");
}

#[test]
fn demo_shows_the_whole_path() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (st, out, err) = podsig_output(&["demo", "-o", "json"]);
    assert!(st.success(), "{st}: {err}");
    let records: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let sig = records.iter().find(|r| r["kind"] == "signal").expect("a signal record");
    assert_eq!(sig["signal"]["name"], "SIGTERM");
    assert_eq!(sig["target"]["comm"], "sleep");
    assert_eq!(sig["sender"]["comm"], "sh");
    let c = chain(sig);
    assert_eq!(c[c.len() - 2].1, "bash", "{c:?}");
    assert_eq!(c[c.len() - 3].1, "podsig", "{c:?}");
    assert!(records.iter().any(|r| r["kind"] == "exit"));
    assert!(err.contains("podsig: attached"), "{err}");
    assert!(err.contains("podsig watch --pid"), "ends with the line to use: {err}");
}

#[test]
fn signal_to_a_thread_of_a_watched_process_matches() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    // A two-thread process; the second thread's id is printed on stdout.
    let mut target = std::process::Command::new("python3")
        .args([
            "-c",
            "import threading,time\n\
             t=threading.Thread(target=time.sleep,args=(300,),daemon=True); t.start()\n\
             print(t.native_id, flush=True); time.sleep(300)",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let tgid = target.id();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(target.stdout.take().unwrap()), &mut line).unwrap();
    let tid: i32 = line.trim().parse().unwrap();
    let mut w = Podsig::start(&["watch", "--pid", &tgid.to_string(), "-o", "json"]);
    // tgkill(2) from this test process: a thread-directed signal, not a process one.
    // SAFETY: plain syscall with integer arguments.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, tgid as i32, tid, libc::SIGUSR2) };
    assert_eq!(rc, 0);
    let ev = w.next_kind("signal");
    assert_eq!(ev["target"]["pid"], tgid);
    assert_eq!(ev["target"]["tid"], tid);
    assert_eq!(ev["group"], false);
    assert_eq!(ev["code"]["name"], "SI_TKILL");
    assert_eq!(ev["sender"]["pid"], std::process::id());
    assert_eq!(w.next_kind("exit")["signal"]["name"], "SIGUSR2");
    assert!(w.wait().0.success());
    target.wait().unwrap();
}

#[test]
fn drops_are_counted_exactly_never_silent() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::script(r#"trap "" USR1; exec sleep 300"#);
    let t = target.pid();
    // One page of ring buffer holds a few dozen events; stop the reader so the rest must drop.
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "-o", "json", "--ring-size", "4096"]);
    w.signal(libc::SIGSTOP);
    let sent = 300;
    send("sh", &format!("i=0; while [ $i -lt {sent} ]; do kill -USR1 $T; i=$((i+1)); done"), t);
    w.signal(libc::SIGCONT);
    let (mut received, mut lost) = (0u64, 0u64);
    while received + lost < sent {
        let r = w.next_json();
        match r["kind"].as_str().unwrap() {
            "signal" => received += r["count"].as_u64().unwrap(),
            "lost" => lost += r["count"].as_u64().unwrap(),
            other => panic!("unexpected record {other}"),
        }
    }
    assert_eq!(received + lost, sent, "received {received} + lost {lost}");
    assert!(lost > 0, "a stopped reader and a one-page buffer must drop");
    w.signal(libc::SIGINT);
    let (st, rest, err) = w.wait();
    assert!(st.success());
    assert!(rest.is_empty(), "no more records than signals sent: {rest:?}");
    assert!(err.iter().any(|l| l.contains(&format!("lost {lost} events"))), "{err:?}");
}

#[test]
fn a_storm_from_one_sender_is_counted_not_repeated() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::script(r#"trap "" USR1; exec sleep 300"#);
    let t = target.pid();
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "-o", "json"]);
    let sent = 20_000u64;
    send("sh", &format!("i=0; while [ $i -lt {sent} ]; do kill -USR1 $T; i=$((i+1)); done"), t);
    let (mut received, mut lines) = (0, 0);
    while received < sent {
        let r = w.next_json();
        assert_eq!(r["kind"], "signal", "{r}");
        lines += 1;
        received += r["count"].as_u64().unwrap();
        // Every line names its sender in full, however few records carried the detail.
        assert_eq!(r["sender"]["comm"], "sh");
        assert_eq!(r["sender"]["argv"][0], "sh", "{r}");
        assert_eq!(r["ancestry_complete"], true, "{r}");
        assert_eq!(r["ancestry"].as_array().unwrap().last().unwrap()["pid"], r["sender"]["pid"]);
        if r["count"].as_u64().unwrap() > 1 {
            assert!(r["last_time"].as_str().unwrap() >= r["time"].as_str().unwrap(), "{r}");
        }
    }
    assert_eq!(received, sent);
    assert!(lines < sent / 10, "{lines} lines for {sent} identical signals");
    w.signal(libc::SIGINT);
    let (st, rest, _) = w.wait();
    assert!(st.success());
    assert!(rest.is_empty(), "no more signals than sent: {rest:?}");
}

#[test]
fn hostile_names_stay_valid_json_and_one_text_block() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::sleep();
    let t = target.pid();
    let mut json = Podsig::start(&["watch", "--pid", &t.to_string(), "-o", "json"]);
    let mut text = Podsig::start(&["watch", "--pid", &t.to_string(), "-o", "text"]);
    // The sender renames itself with bytes that are neither printable nor UTF-8.
    let script = "import ctypes,os,sys\n\
                  ctypes.CDLL(None).prctl(15, b'ev\"il\\n\\xff', 0, 0, 0)\n\
                  os.kill(int(sys.argv[1]), 15)";
    let st = std::process::Command::new("python3").args(["-c", script, &t.to_string()]).status().unwrap();
    assert!(st.success());
    let ev = json.next_kind("signal");
    assert_eq!(ev["sender"]["comm"], "ev\"il\n\u{fffd}");
    let first = text.next_line();
    assert!(first.starts_with("ev\"il\\n\u{fffd}("), "{first}");
    assert!(first.ends_with(&format!("send SIGTERM to sleep({t})")), "{first}");
}
