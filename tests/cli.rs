//! Bad input gets one clear line on stderr and a non-zero exit, never a panic.

use podsig_e2e::*;

/// A usage error: one `podsig: …` line, the help hint at most once.
fn one_clear_line(args: &[&str], expect: &str) {
    let err = one_line(args, expect);
    assert!(err.starts_with("podsig: "), "{err}");
    assert!(err.matches("--help").count() <= 1, "{err}");
    assert!(!err.contains("For more information"), "{err}");
}

/// A runtime error: the same one-line rules, no help hint.
fn one_runtime_line(args: &[&str], expect: &str) {
    one_line(args, expect);
}

/// Fails with one line on stderr that mentions `expect`, says each cause once, no panic,
/// nothing on stdout; the line.
fn one_line(args: &[&str], expect: &str) -> String {
    let (st, out, err) = podsig_output(args);
    assert!(!st.success(), "{args:?} must fail");
    assert!(out.is_empty(), "{args:?}: stdout carries events only: {out}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line on stderr, got {err:?}");
    assert!(lines[0].contains(expect), "{args:?}: {err:?} should mention {expect:?}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
    let parts: Vec<&str> = lines[0].split([':', ';']).map(str::trim).filter(|p| p.len() > 8).collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(!parts[i + 1..].contains(p), "{args:?}: a cause said twice: {err}");
    }
    lines[0].to_string()
}

#[test]
fn negative_pid_says_what_is_wrong_with_it() {
    let _suite = suite(module_path!());
    one_clear_line(&["watch", "--pid", "-1"], "-1 is not a process id");
    one_clear_line(&["history", "--pid", "-5"], "'-5' is not a process ID");
}

#[test]
fn count_zero_is_refused() {
    let _suite = suite(module_path!());
    one_clear_line(&["watch", "--pid", "1", "--count", "0"], "give 1 or more");
}

#[test]
fn a_duration_says_what_one_looks_like() {
    let _suite = suite(module_path!());
    one_clear_line(&["watch", "--pid", "1", "--duration", "x"], "such as 500ms, 30s, 5m, 1h");
}

#[test]
fn a_refused_connection_is_said_once() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let dir = scratch("refused");
    let sock = dir.join("containerd.sock");
    // A socket nobody listens on: connect(2) gets ECONNREFUSED.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    one_runtime_line(&["watch", "--pod", "web", "--containerd-socket", sock.to_str().unwrap()], "Connection refused");
}

#[test]
fn non_numeric_pid() {
    let _suite = suite(module_path!());
    one_clear_line(&["watch", "--pid", "abc"], "'abc' is not a process id");
}

#[test]
fn pid_zero() {
    let _suite = suite(module_path!());
    one_clear_line(&["watch", "--pid", "0"], "idle task");
}

#[test]
fn unknown_signal() {
    let _suite = suite(module_path!());
    one_clear_line(&["watch", "--pid", "1", "--signal", "SIGFOO"], "unknown signal 'SIGFOO'");
}

#[test]
fn nothing_to_watch() {
    let _suite = suite(module_path!());
    one_clear_line(&["watch"], "--pid");
}

#[test]
fn bad_duration() {
    let _suite = suite(module_path!());
    one_clear_line(&["watch", "--pid", "1", "--duration", "soon"], "'soon' is not a duration");
}

#[test]
fn missing_process() {
    let _suite = suite(module_path!());
    if !privileged() {
        // Without root the privilege check comes first; that is covered below.
        return;
    }
    one_clear_line(&["watch", "--pid", "2147483647"], "no process with pid 2147483647");
}

#[test]
fn help_and_version_succeed() {
    let _suite = suite(module_path!());
    let (st, out, _) = podsig_output(&["--help"]);
    assert!(st.success() && out.contains("watch"));
    let (st, out, _) = podsig_output(&["--version"]);
    assert!(st.success() && out.starts_with("podsig "));
}

#[test]
fn explain_text_and_json() {
    let _suite = suite(module_path!());
    let (st, out, _) = podsig_output(&["explain", "137"]);
    assert!(st.success());
    assert!(out.starts_with("exit code 137 = 128 + 9"), "{out}");
    assert!(out.contains("OOM killer") && out.contains("podsig watch --pid PID --signal KILL"));
    let (st, out, _) = podsig_output(&["explain", "SIGTERM", "-o", "json"]);
    assert!(st.success());
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["signal"]["number"], 15);
    assert_eq!(v["signal"]["catchable"], true);
    assert_eq!(v["exit_code"], Value::Null);
    let (st, out, _) = podsig_output(&["explain", "127", "-o", "json"]);
    assert!(st.success());
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["signal"], Value::Null);
    assert!(v["meaning"].as_str().unwrap().contains("not found"));
}

#[test]
fn explain_bad_input() {
    let _suite = suite(module_path!());
    one_clear_line(&["explain", "300"], "0-255");
    one_clear_line(&["explain", "SIGNOPE"], "unknown signal");
}

#[test]
fn doctor_says_ebpf_works_here_and_why_stap_does_not() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (st, out, err) = podsig_output(&["doctor", "-o", "json"]);
    assert!(st.success(), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ebpf"]["usable"], true, "{v}");
    let check = |name: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no check {name}"))
    };
    assert_eq!(check("kernel BTF")["status"], "ok");
    assert_eq!(check("tracepoint signal:signal_generate")["status"], "ok");
    assert_eq!(check("BPF ring buffer")["status"], "ok");
    assert_eq!(v["kernel"], std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap().trim());
    // This kernel loads no modules: SystemTap cannot work, and doctor says so with the fix.
    assert_eq!(v["stap"]["usable"], false);
    let modules = check("kernel module loading");
    assert_eq!(modules["status"], "missing");
    assert!(modules["detail"].as_str().unwrap().contains("no loadable-module support"), "{modules}");
    assert!(modules["fix"].as_str().unwrap().contains("CONFIG_MODULES"));
    let (st, text, _) = podsig_output(&["doctor"]);
    assert!(st.success());
    assert!(text.contains("backend ebpf: usable"), "{text}");
    assert!(text.contains("backend stap: not usable"), "{text}");
}

#[test]
fn completions_and_man_page() {
    let _suite = suite(module_path!());
    let (st, out, _) = podsig_output(&["completions", "bash"]);
    assert!(st.success() && out.contains("_podsig()") && out.contains("--signal"), "{out}");
    let (st, out, _) = podsig_output(&["completions", "zsh"]);
    assert!(st.success() && out.contains("#compdef podsig"));
    let (st, out, _) = podsig_output(&["man"]);
    assert!(st.success() && out.contains(".TH podsig"), "{}", &out[..200.min(out.len())]);
    let (st, out, _) = podsig_output(&["--version"]);
    assert!(st.success());
    // `podsig 0.1.0 (<commit>)`
    assert!(out.trim_end().ends_with(')') && out.contains(" ("), "{out}");
}

#[test]
fn help_shows_examples() {
    let _suite = suite(module_path!());
    let (st, out, _) = podsig_output(&["watch", "--help"]);
    assert!(st.success());
    assert!(out.contains("Examples:") && out.contains("| jq"), "{out}");
}

#[test]
fn node_mode_and_recorder_input() {
    let _suite = suite(module_path!());
    one_clear_line(&["history", "--history", "/nonexistent/history.db"], "no history at /nonexistent/history.db");
    one_clear_line(&["history", "--history", "/tmp/x.db", "--since", "lately"], "lately");
    one_clear_line(&["history", "--pid", "-3"], "-3");
    one_clear_line(&["record", "--history-max", "lots"], "'lots' is not a size");
    one_clear_line(
        &["watch", "--pid", "1", "--namespace", "prod"],
        "--namespace and --container-name narrow --pod (or --all)",
    );
    one_clear_line(&["watch", "--all", "--metrics-addr", "localhost"], "localhost");
    one_clear_line(&["watch", "--all", "--any-signal", "--signal", "KILL"], "--any-signal");
    one_clear_line(&["watch", "--pid", "1", "--stop-window", "a while"], "'a while' is not a duration");
    if privileged() {
        one_clear_line(&["record", "--history", "/tmp/podsig-e2e-small.db", "--history-max", "1k"], "too small");
        // A taken port fails before anything attaches.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        one_clear_line(&["watch", "--all", "--metrics-addr", &addr], &format!("cannot listen on {addr}"));
    }
}

#[test]
fn why_needs_a_target_and_a_history() {
    let _suite = suite(module_path!());
    one_clear_line(&["why"], "--pod");
    one_clear_line(&["why", "--namespace", "prod"], "--pod");
    one_clear_line(&["why", "--pid", "-3"], "'-3' is not a process ID");
    one_clear_line(&["why", "--pod", "web", "--since", "lately"], "lately");
    // No history: how to start the recorder.
    one_runtime_line(&["why", "--history", "/nonexistent/history.db", "--pod", "web"], "sudo podsig record");
    if privileged() {
        // A history with nothing about the target.
        let dir = scratch("why-empty");
        let db = dir.join("history.db");
        let rec = Podsig::start(&["record", "--history", db.to_str().unwrap()]);
        rec.signal(libc::SIGINT);
        assert!(rec.wait().0.success());
        one_runtime_line(
            &["why", "--history", db.to_str().unwrap(), "--pod", "no-such-pod"],
            "no signal or exit recorded for pod no-such-pod",
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A unit that runs nothing now is waited for, not an error, and said once: a misspelt unit
/// never starts.
#[test]
fn a_unit_not_running_is_said_once_and_waited_for() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (st, out, err) = podsig_output(&["watch", "--unit", "podsig-e2e-no-such", "--duration", "1s"]);
    assert!(st.success(), "{err}");
    assert!(out.is_empty(), "{out}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(
            "podsig: no process runs in podsig-e2e-no-such.service now (stopped, or no such unit: `systemctl status \
             podsig-e2e-no-such.service`); waiting for it to start"
        ),
        "{err}"
    );
    assert!(lines.iter().any(|l| l.starts_with("podsig: attached") && l.contains("unit podsig-e2e-no-such.service")));
    assert!(!err.contains("nothing to watch"), "{err}");
}
