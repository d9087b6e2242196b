//! The deployment as shipped: every manifest in deploy/kubernetes validates (strict, offline
//! schemas), and the image `cargo xtask image` builds runs in a real containerd the way the
//! DaemonSet runs it — its capabilities, host pid namespace, mounts and arguments, read from
//! the manifest itself — and answers `podsig history --pod` for a pod killed by runc, while
//! running and after a SIGKILL of its own.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use podsig_e2e::*;

fn manifests() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "namespace, service account, daemonset: {files:?}");
    files
}

/// From `cargo xtask test`; None (skip) outside it, a failure under CI.
fn env_or_skip(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) => Some(v),
        Err(_) => {
            assert!(std::env::var_os("CI").is_none(), "CI runs this through cargo xtask test, which sets {var}");
            eprintln!("skipped: {var} is unset (run `cargo xtask test`)");
            None
        }
    }
}

#[test]
fn every_manifest_validates_strictly() {
    let _suite = suite(module_path!());
    let Some(validator) = env_or_skip("PODSIG_KUBERNETES_VALIDATE") else { return };
    let files = manifests();
    let o = Command::new(&validator).arg("--strict").args(&files).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}");
    assert_eq!(out.matches("passed").count(), files.len(), "{out}");
    // Strict mode does reject what the API server would: the check is not vacuous.
    let dir = scratch("manifests");
    let bad = dir.join("bad.yaml");
    let daemonset = fs::read_to_string(files.iter().find(|f| f.ends_with("daemonset.yaml")).unwrap()).unwrap();
    fs::write(&bad, daemonset.replace("hostPID: true", "hostPID: true\n      hostPIDs: true")).unwrap();
    let o = Command::new(&validator).arg("--strict").arg(&bad).output().unwrap();
    assert!(!o.status.success(), "an unknown field passed strict validation");
    let _ = fs::remove_dir_all(&dir);
}

/// The DaemonSet as JSON, read with the PyYAML that kubernetes-validate brings.
fn daemonset(validator: &str) -> Value {
    let python = Path::new(validator).with_file_name("python");
    let file = manifests().into_iter().find(|f| f.ends_with("daemonset.yaml")).unwrap();
    let o = Command::new(python)
        .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
// Long: one scenario in the order it happens; its steps share the processes and the watch.
fn the_image_records_a_pod_kill_the_way_the_daemonset_runs_it() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (Some(sock), Some(image), Some(reference), Some(validator)) = (
        env_or_skip("PODSIG_TEST_CONTAINERD"),
        env_or_skip("PODSIG_TEST_IMAGE"),
        env_or_skip("PODSIG_TEST_IMAGE_REF"),
        env_or_skip("PODSIG_KUBERNETES_VALIDATE"),
    ) else {
        return;
    };
    ctr(&sock, &["image", "import", &image]);
    let ds = daemonset(&validator);
    let spec = &ds["spec"]["template"]["spec"];
    let c = &spec["containers"][0];
    assert_eq!(c["image"], reference.as_str(), "the manifest runs the image xtask builds");
    assert_eq!(spec["hostPID"], true);

    let tag = format!("{}", std::process::id());
    let history_dir = scratch("daemonset-history");
    let port = free_port();
    // The host paths the DaemonSet mounts, but the test's containerd and history directory.
    let host_path = |volume: &str| -> String {
        let v = spec["volumes"].as_array().unwrap().iter().find(|v| v["name"] == volume).unwrap();
        let path = v["hostPath"]["path"].as_str().unwrap();
        match path {
            "/run/containerd/containerd.sock" => sock.clone(),
            "/var/lib/podsig" => history_dir.to_str().unwrap().to_string(),
            other => other.to_string(),
        }
    };
    // tracefs is on the node in production (systemd mounts it); here only if podsig did.
    if !fs::read_to_string("/proc/mounts").unwrap().lines().any(|l| l.split(' ').nth(1) == Some("/sys/kernel/tracing"))
    {
        assert!(
            Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]).status().unwrap().success()
        );
    }
    // hostPID: the host's pid namespace, named through runc's own /proc/self (on this
    // machine pid 1 lives in a mount namespace runc may not open).
    let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--with-ns".into(), "pid:/proc/self/ns/pid".into()];
    // Host networking only so the test can scrape it; the DaemonSet uses the pod network.
    args.push("--net-host".into());
    // What the pod's log would hold, for the failure messages.
    let log = history_dir.with_extension("log");
    args.extend(["--log-uri".into(), format!("file://{}", log.display())]);
    let log_tail = || {
        let text = fs::read_to_string(&log).unwrap_or_default();
        text.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    };
    let sc = &c["securityContext"];
    if sc["readOnlyRootFilesystem"] == true {
        args.push("--read-only".into());
    }
    for cap in sc["capabilities"]["drop"].as_array().unwrap() {
        args.extend(["--cap-drop".into(), format!("CAP_{}", cap.as_str().unwrap())]);
    }
    for cap in sc["capabilities"]["add"].as_array().unwrap() {
        args.extend(["--cap-add".into(), format!("CAP_{}", cap.as_str().unwrap())]);
    }
    for m in c["volumeMounts"].as_array().unwrap() {
        let ro = if m["readOnly"] == true { "rbind:ro" } else { "rbind:rw" };
        args.extend([
            "--mount".into(),
            format!(
                "type=bind,src={},dst={},options={ro}",
                host_path(m["name"].as_str().unwrap()),
                m["mountPath"].as_str().unwrap()
            ),
        ]);
    }
    args.extend(["--env".into(), "NODE_NAME=node-under-test".into()]);
    args.extend([reference.clone(), format!("podsig-e2e-{tag}-recorder")]);
    args.push("/podsig".into());
    for a in c["args"].as_array().unwrap() {
        let a = a.as_str().unwrap();
        args.push(if a.starts_with("--metrics-addr=") {
            format!("--metrics-addr=127.0.0.1:{port}")
        } else {
            a.to_string()
        });
    }
    let recorder = Container::adopt(&sock, &format!("podsig-e2e-{tag}-recorder"));
    ctr(&sock, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + TIMEOUT;
    // /healthz says ok once the probes are attached.
    while std::net::TcpStream::connect(&addr).is_err() || !http_get(&addr, "/healthz").0.contains("200") {
        assert!(Instant::now() < deadline, "the recorder never became healthy; its log:\n{}", log_tail());
        thread::sleep(Duration::from_millis(200));
    }

    // A labelled workload, killed by runc.
    let pod = format!("shop-{tag}");
    let workload = Container::start(
        &sock,
        &format!("podsig-e2e-{tag}-workload"),
        ("prod", &pod, "cart"),
        "while :; do sleep 1; done",
    );
    let pid = workload.pid();
    ctr(&sock, &["task", "kill", "-s", "SIGKILL", &workload.id]);

    // While it runs: asked inside its container, as `kubectl exec ds/podsig -- /podsig history` does.
    let deadline = Instant::now() + TIMEOUT;
    let ev = loop {
        let o = Command::new("ctr")
            .args([
                "--address",
                &sock,
                "-n",
                "k8s.io",
                "task",
                "exec",
                "--exec-id",
                &format!("h{}", deadline.elapsed().as_millis()),
            ])
            .args([&recorder.id, "/podsig", "history", "--pod", &pod, "-o", "json"])
            .output()
            .unwrap();
        let found = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["kind"] == "signal" && v["signal"]["name"] == "SIGKILL" && v["sender"]["comm"] == "runc");
        if let Some(ev) = found {
            break ev;
        }
        assert!(
            Instant::now() < deadline,
            "history inside the recorder never showed the kill: {}; its log:\n{}",
            String::from_utf8_lossy(&o.stderr),
            log_tail()
        );
        thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(ev["target"]["pid"], pid);
    let t = &ev["target"]["container"];
    assert_eq!(
        (t["pod"].as_str(), t["namespace"].as_str(), t["name"].as_str()),
        (Some(pod.as_str()), Some("prod"), Some("cart")),
        "{ev}"
    );
    assert_eq!(ev["node"], "node-under-test");
    assert_eq!(ev["sender"]["comm"], "runc");
    assert_eq!(ev["cause"], "runtime_stop");

    let body = http_get(&addr, "/metrics").1;
    let kills = sample(
        &body,
        &format!(
            r#"podsig_signals_total{{signal="SIGKILL",cause="runtime_stop",namespace="prod",pod="{pod}",container="cart"}}"#
        ),
    );
    assert_eq!(kills, Some(1.0), "{body}");

    // After the recorder itself is SIGKILLed: the node's copy of the history still answers.
    ctr(&sock, &["task", "kill", "-s", "SIGKILL", &recorder.id]);
    thread::sleep(Duration::from_millis(500));
    let db = history_dir.join("history.db");
    // runc's kill of the init, then the kernel's of the init's children as the pid
    // namespace dies.
    let after = history(&db, &["--pod", &pod, "--namespace", "prod", "--signal", "KILL"]);
    let by_runc: Vec<&Value> = after.iter().filter(|v| v["sender"]["comm"] == "runc").collect();
    assert_eq!(by_runc.len(), 1, "{after:?}");
    assert_eq!(by_runc[0]["target"]["pid"], pid);
    assert_eq!(by_runc[0]["node"], "node-under-test");
    assert!(after.iter().all(|v| v["target"]["container"]["name"] == "cart"), "{after:?}");
    for v in after.iter().filter(|v| v["sender"]["comm"] != "runc") {
        assert!(v["cause_detail"].as_str().unwrap().contains("pid 1 of this pid namespace"), "{v}");
    }
    drop(workload);
    drop(recorder);
    let _ = fs::remove_dir_all(&history_dir);
    let _ = fs::remove_file(&log);
}
