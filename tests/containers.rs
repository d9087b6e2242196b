//! Containers for real: containerd (started by `cargo xtask test` on a private socket) runs
//! busybox containers with Kubernetes-style labels; runc, a shell inside, or the host send.

use std::{
    fs, thread,
    time::{Duration, Instant},
};

use podsig_e2e::*;

/// The test containerd's socket, or None (skip) outside `cargo xtask test`.
fn containerd() -> Option<String> {
    if !privileged() {
        return None;
    }
    match std::env::var("PODSIG_TEST_CONTAINERD") {
        Ok(s) => Some(s),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs these through cargo xtask test, which starts containerd"
            );
            eprintln!("skipped: no test containerd (run `sudo cargo xtask test`)");
            None
        }
    }
}

fn uid(tag: &str) -> String {
    format!("podsig-e2e-{}-{tag}", std::process::id())
}

const FOREVER: &str = "while :; do sleep 1; done";

fn watch(sock: &str, what: &[&str]) -> Podsig {
    let mut args = vec!["watch", "--containerd-socket", sock, "-o", "json"];
    args.extend_from_slice(what);
    Podsig::start(&args)
}

#[test]
fn runc_kill_by_full_id_is_a_runtime_stop_with_names() {
    let _suite = suite(module_path!());
    let Some(sock) = containerd() else { return };
    let id = uid("full");
    let c = Container::start(&sock, &id, ("default", "web", "app"), FOREVER);
    let pid = c.pid();
    let mut w = watch(&sock, &["--container", &id]);
    assert!(w.stderr_lines.last().unwrap().contains(&format!("watching container {id}")), "{:?}", w.stderr_lines);
    // A shell-form init has no SIGTERM handler: the kernel drops the TERM, and says why.
    ctr(&sock, &["task", "kill", "-s", "SIGTERM", &id]);
    let term = w.next_signal("SIGTERM");
    assert_eq!((term["result"].as_str(), term["target"]["ns_init"].as_bool()), (Some("ignored"), Some(true)), "{term}");
    assert_eq!(term["target"]["disposition"], "default", "{term}");
    let why = term["cause_detail"].as_str().unwrap();
    assert!(why.contains("pid 1 of its pid namespace") && why.contains("tini"), "{why}");
    ctr(&sock, &["task", "kill", "-s", "SIGKILL", &id]);
    let ev = w.next_signal("SIGKILL");
    // Precision: runc and containerd-shim are not suspicious (the machine running the
    // tests has its own ancestry, which is not judged here).
    let mine = own_ancestry();
    let loud: Vec<&Value> = ev["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "note" && !mine.contains(&f["pid"].as_u64().unwrap()))
        .collect();
    assert!(loud.is_empty(), "no alert or warning about runc or the shim: {loud:?}");
    assert_eq!(ev["target"]["pid"], pid);
    assert_eq!(ev["target"]["ns_pid"], 1, "the container's init");
    assert_eq!(ev["sender"]["comm"], "runc");
    assert_eq!(ev["cause"], "runtime_stop", "{ev}");
    assert_eq!(ev["runtime"]["runtime"], "runc");
    assert!(ev["runtime"]["manager"].as_str().unwrap().starts_with("containerd"), "{ev}");
    let t = &ev["target"]["container"];
    assert_eq!(t["id"], id.as_str());
    assert_eq!(t["runtime"], "containerd");
    assert_eq!(
        (t["pod"].as_str(), t["name"].as_str(), t["namespace"].as_str()),
        (Some("web"), Some("app"), Some("default"))
    );
    assert_eq!(ev["sender"]["container"], Value::Null, "runc runs on the host");
    assert_eq!(w.next_kind("exit")["pid"], pid);
    // A container may restart: podsig keeps watching until interrupted.
    w.signal(libc::SIGINT);
    assert!(w.wait().0.success());
}

#[test]
fn prefix_and_scheme_forms_and_signals_from_inside_and_host() {
    let _suite = suite(module_path!());
    let Some(sock) = containerd() else { return };
    let id = uid("prefix");
    let c = Container::start(
        &sock,
        &id,
        ("default", "web2", "app"),
        "trap 'echo usr1' USR1; trap 'echo usr2' USR2; while :; do sleep 1; done",
    );
    let pid = c.pid();
    let mut w = watch(&sock, &["--container", &format!("containerd://{}", &id[..id.len() - 2])]);
    // From inside: a process exec'd into the container signals its init (pid 1 there).
    ctr(&sock, &["task", "exec", "--exec-id", "k1", &id, "/bin/sh", "-c", "kill -USR1 1"]);
    let ev = w.next_signal("SIGUSR1");
    assert_eq!(ev["target"]["pid"], pid);
    assert_eq!(ev["sender"]["container"]["id"], id.as_str(), "sent from inside: {ev}");
    assert_eq!(ev["sender"]["ns_pid"].as_u64().map(|n| n > 1), Some(true));
    // From the host.
    let sender = send("sh", "kill -USR2 $T", pid);
    let ev = w.next_signal("SIGUSR2");
    assert_eq!(ev["sender"]["pid"], sender);
    assert_eq!(ev["sender"]["container"], Value::Null);
    assert_eq!(ev["target"]["container"]["id"], id.as_str());
    w.signal(libc::SIGINT);
    assert!(w.wait().0.success());
}

#[test]
fn every_process_of_the_container_and_restarts_are_followed() {
    let _suite = suite(module_path!());
    let Some(sock) = containerd() else { return };
    let id = uid("restart");
    let c = Container::start(&sock, &id, ("default", "web3", "app"), "sleep 1000 & while :; do sleep 1; done");
    let pid = c.pid();
    let mut w = watch(&sock, &["--pod", "web3", "--namespace", "default", "--container-name", "app"]);
    // A child of the container's init, signalled from the host.
    let procs = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let child: u32 = procs
        .split_whitespace()
        .map(|p| p.parse::<u32>().unwrap())
        .find(|&p| fs::read_to_string(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.contains("1000")))
        .expect("the container's sleep 1000");
    send("sh", "kill -TERM $T", child);
    let ev = w.next_signal("SIGTERM");
    assert_eq!(ev["target"]["pid"], child, "a child in the container is watched: {ev}");
    assert_eq!(ev["target"]["container"]["pod"], "web3");
    // Restart: the task dies and a new one starts for the same container.
    ctr(&sock, &["task", "kill", "-s", "SIGKILL", &id]);
    assert_eq!(w.next_signal("SIGKILL")["target"]["pid"], pid);
    thread::sleep(Duration::from_millis(300));
    ctr(&sock, &["task", "delete", &id]);
    ctr(&sock, &["task", "start", "-d", &id]);
    let new_pid = c.pid();
    assert_ne!(new_pid, pid);
    let deadline = Instant::now() + TIMEOUT;
    while !w.stderr_lines.iter().any(|l| l.contains(&format!("podsig: following {id} (new pid {new_pid})"))) {
        assert!(Instant::now() < deadline, "restart not followed: {:?}", w.stderr_lines);
        w.poll_stderr(Duration::from_millis(200));
    }
    ctr(&sock, &["task", "kill", "-s", "SIGKILL", &id]);
    // The first task's other processes got the kernel's SIGKILL when their init died: skip
    // to the new task's.
    let ev = w.next_matching("the new task's SIGKILL", |ev| {
        ev["kind"] == "signal" && ev["signal"]["name"] == "SIGKILL" && ev["target"]["pid"] == new_pid
    });
    assert_eq!(ev["cause"], "runtime_stop");
    w.signal(libc::SIGINT);
    assert!(w.wait().0.success());
}

#[test]
fn unknown_container_and_missing_socket_are_clear_errors() {
    let _suite = suite(module_path!());
    let Some(sock) = containerd() else { return };
    let (st, _, err) = podsig_output(&[
        "watch",
        "--containerd-socket",
        &sock,
        "--container",
        "5fb8adf9ee62afc6d3f6f3d9590041818750b392dff015d7091eaaf99cf1c945",
    ]);
    assert!(!st.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    // (A Docker or podman on the host is named in the list too.)
    assert!(err.contains("container 5fb8adf9ee62… not found in containerd namespaces k8s.io, moby, default"), "{err}");
    assert!(err.trim_end().ends_with(", nor in any process cgroup"), "{err}");
    let (st, _, err) = podsig_output(&["watch", "--containerd-socket", "/nonexistent/containerd.sock", "--pod", "web"]);
    assert!(!st.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no containerd socket at /nonexistent/containerd.sock"), "{err}");
}

#[test]
fn without_containerd_the_cgroup_scan_finds_the_container() {
    let _suite = suite(module_path!());
    let Some(sock) = containerd() else { return };
    let id = uid("scan");
    let c = Container::start(&sock, &id, ("default", "web4", "app"), FOREVER);
    let pid = c.pid();
    let mut w = watch("/nonexistent/containerd.sock", &["--container", &id]);
    ctr(&sock, &["task", "kill", "-s", "SIGKILL", &id]);
    let ev = w.next_signal("SIGKILL");
    assert_eq!(ev["target"]["pid"], pid);
    assert_eq!(ev["target"]["container"]["id"], id.as_str());
    assert_eq!(ev["target"]["container"]["runtime"], "containerd");
    w.signal(libc::SIGINT);
    assert!(w.wait().0.success());
}

#[test]
fn node_mode_filters_on_the_target_pod_and_the_recorder_names_it() {
    let _suite = suite(module_path!());
    let Some(sock) = containerd() else { return };
    let (web, other) = (uid("node-web"), uid("node-other"));
    let cw = Container::start(&sock, &web, ("default", "web5", "app"), FOREVER);
    let co = Container::start(&sock, &other, ("default", "other5", "app"), FOREVER);
    let (web_pid, other_pid) = (cw.pid(), co.pid());
    let dir = scratch("node-pod");
    let db = dir.join("history.db");
    let mut w = watch(&sock, &["--all", "--pod", "web5", "--namespace", "default"]);
    let rec = Podsig::start(&["record", "--history", db.to_str().unwrap(), "--containerd-socket", &sock]);
    ctr(&sock, &["task", "kill", "-s", "SIGKILL", &other]);
    ctr(&sock, &["task", "kill", "-s", "SIGKILL", &web]);
    // The other pod's kill came first and is filtered out: the first report is web5's.
    let ev = w.next_kind("signal");
    assert_eq!(ev["target"]["pid"], web_pid, "{ev}");
    assert_eq!(ev["target"]["container"]["pod"], "web5");
    assert_eq!(ev["sender"]["comm"], "runc");
    // The recorder named both on their first event (containerd asked before storing).
    for (pod, pid) in [("web5", web_pid), ("other5", other_pid)] {
        let ev = history_until(&db, &["--pod", pod, "--namespace", "default"], |v| v["signal"]["name"] == "SIGKILL");
        assert_eq!(ev["target"]["pid"], pid);
        assert_eq!(ev["target"]["container"]["name"], "app");
        assert_eq!(ev["sender"]["comm"], "runc");
        assert_eq!(ev["cause"], "runtime_stop");
    }
    let by_id = history(&db, &["--container", &web[..web.len() - 1]]);
    // Signals, and the exits of the processes they killed.
    let id_of = |v: &Value| {
        if v["kind"] == "exit" { v["container"]["id"].clone() } else { v["target"]["container"]["id"].clone() }
    };
    assert!(by_id.iter().all(|v| id_of(v) == web.as_str()) && !by_id.is_empty(), "{by_id:?}");
    w.signal(libc::SIGINT);
    rec.signal(libc::SIGINT);
    assert!(w.wait().0.success());
    assert!(rec.wait().0.success());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_kill_with_no_term_before_it_is_killed_without_term() {
    let _suite = suite(module_path!());
    let Some(sock) = containerd() else { return };
    let id = uid("bare-kill");
    let c = Container::start(&sock, &id, ("default", "web6", "app"), FOREVER);
    let pid = c.pid();
    let dir = scratch("bare-kill");
    let db = dir.join("history.db");
    let rec = Podsig::start(&["record", "--history", db.to_str().unwrap(), "--containerd-socket", &sock]);
    let mut w = watch(&sock, &["--container", &id]);
    ctr(&sock, &["task", "kill", "-s", "SIGKILL", &id]);
    // Live: the SIGKILL carries the verdict; the exit is linked to it.
    let kill = w.next_signal("SIGKILL");
    assert_eq!(kill["target"]["pid"], pid);
    assert_eq!(kill["preceded_by"], Value::Null, "{kill}");
    assert_eq!(kill["stop"]["verdict"], "killed_without_term", "{kill}");
    assert_eq!(kill["stop"]["container_init"], true);
    assert!(kill["stop"]["summary"].as_str().unwrap().contains("ctr task kill -s KILL"), "{kill}");
    // Who asked containerd: this ctr, with its argv and the test's own ancestry above it.
    let by = &kill["requested_by"];
    assert_eq!((by["manager"].as_str(), by["client"]["comm"].as_str()), (Some("containerd"), Some("ctr")), "{kill}");
    assert_eq!((by["request"]["method"].as_str(), by["request"]["object"].as_str()), (Some("Kill"), Some(id.as_str())));
    assert_eq!((&by["request"]["signal"], by["link"].as_str()), (&Value::from(9), Some("request")), "{kill}");
    assert_eq!(by["client"]["ppid"], std::process::id(), "{kill}");
    assert!(kill["stop"]["summary"].as_str().unwrap().contains("requested by ctr("), "{kill}");
    let exit = w.next_kind("exit");
    assert_eq!((exit["pid"].as_u64(), exit["signal"]["name"].as_str()), (Some(pid as u64), Some("SIGKILL")));
    assert_eq!(exit["container"]["id"], id.as_str(), "{exit}");
    assert_eq!(exit["preceded_by"]["signal"]["name"], "SIGKILL", "{exit}");
    assert_eq!(exit["stop"], Value::Null, "one verdict per stop: {exit}");
    w.signal(libc::SIGINT);
    assert!(w.wait().0.success());
    // From the history, by container ID.
    let ans = why_until(&db, &["--container", &id], "killed_without_term");
    assert_eq!(ans["target"]["pid"], pid);
    assert_eq!(ans["target"]["container"]["pod"], "web6");
    assert!(ans["summary"].as_str().unwrap().contains("no SIGTERM"), "{ans}");
    rec.signal(libc::SIGINT);
    assert!(rec.wait().0.success());
    let _ = fs::remove_dir_all(&dir);
}
