//! A pod made the way kubelet makes it — through containerd's CRI RuntimeService — and
//! stopped the way kubelet stops it: StopContainer with a grace period, which is SIGTERM,
//! the wait, then SIGKILL. podsig must name the pod from its CRI labels and report both,
//! and `podsig why` must tell each kind of stop from the recorder's history.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ImageSpec, LinuxContainerConfig,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata, RemoveContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest,
    StartContainerRequest, StopContainerRequest, StopPodSandboxRequest, runtime_service_client::RuntimeServiceClient,
};
use podsig_e2e::*;

fn sh(cmd: &mut Command) -> String {
    let o = cmd.output().expect("run");
    assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn sha256(p: &Path) -> String {
    sh(Command::new("sha256sum").arg(p)).split_whitespace().next().unwrap().to_string()
}

/// A Docker-archive image of busybox, imported into containerd's k8s.io namespace under
/// `name`: the pause (sandbox) image kubelet's containerd expects, built here because no
/// registry is reachable. Its entrypoint idles; workloads give their own command.
fn import_image(sock: &str, name: &str) {
    // Once per test binary: its tests run side by side and would share the scratch directory.
    static ONCE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut done = ONCE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if *done {
        return;
    }
    *done = true;
    let dir = std::env::temp_dir().join(format!("podsig-e2e-image-{}", std::process::id()));
    let root = dir.join("rootfs");
    fs::create_dir_all(root.join("bin")).unwrap();
    copy_executable("/bin/busybox", root.join("bin/busybox"));
    for a in ["sh", "sleep", "kill"] {
        let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(a));
    }
    for d in ["proc", "sys", "dev", "tmp", "etc"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    let out = dir.join("out");
    fs::create_dir_all(&out).unwrap();
    let layer = out.join("layer.tar");
    sh(Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&layer).arg("."));
    let diff_id = sha256(&layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
    });
    fs::write(out.join("config.json"), config.to_string()).unwrap();
    let manifest = serde_json::json!([{"Config": "config.json", "RepoTags": [name], "Layers": ["layer.tar"]}]);
    fs::write(out.join("manifest.json"), manifest.to_string()).unwrap();
    let archive = dir.join("image.tar");
    sh(Command::new("tar").arg("-C").arg(&out).arg("-cf").arg(&archive).args([
        "manifest.json",
        "config.json",
        "layer.tar",
    ]));
    sh(Command::new("ctr").args(["--address", sock, "-n", "k8s.io", "image", "import"]).arg(&archive));
    let _ = fs::remove_dir_all(&dir);
}

fn labels(pod: &str, uid: &str, container: Option<&str>) -> HashMap<String, String> {
    let mut l = HashMap::from([
        ("io.kubernetes.pod.name".to_string(), pod.to_string()),
        ("io.kubernetes.pod.namespace".to_string(), "default".to_string()),
        ("io.kubernetes.pod.uid".to_string(), uid.to_string()),
    ]);
    if let Some(c) = container {
        l.insert("io.kubernetes.container.name".into(), c.into());
    }
    l
}

#[test]
// Long: one scenario in the order it happens; its steps share the processes and the watch.
fn kubelet_style_stop_through_the_cri_is_named_and_fully_reported() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (Ok(sock), Ok(pause)) = (std::env::var("PODSIG_TEST_CONTAINERD"), std::env::var("PODSIG_TEST_PAUSE_IMAGE"))
    else {
        assert!(std::env::var_os("CI").is_none(), "CI runs this through cargo xtask test, which starts containerd");
        eprintln!("skipped: no test containerd (run `sudo cargo xtask test`)");
        return;
    };
    import_image(&sock, &pause);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let pod = format!("cri-{}", std::process::id());
    let uid = format!("0000-{}", std::process::id());
    let sandbox = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: pod.clone(),
            uid: uid.clone(),
            namespace: "default".into(),
            attempt: 0,
        }),
        // Host network, as kubelet does it: no hostname of the pod's own (no UTS namespace).
        labels: labels(&pod, &uid, None),
        linux: Some(LinuxPodSandboxConfig {
            // kubelet's cgroupfs layout: /kubepods/<qos>/pod<uid>.
            cgroup_parent: format!("/kubepods/besteffort/pod{uid}"),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption { network: NamespaceMode::Node as i32, ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let sock2 = sock.clone();
    let mut cri = rt.block_on(async move {
        RuntimeServiceClient::new(containerd_client::connect(PathBuf::from(sock2)).await.expect("connect to the CRI"))
    });
    let sandbox_id = rt
        .block_on(
            cri.run_pod_sandbox(RunPodSandboxRequest { config: Some(sandbox.clone()), runtime_handler: String::new() }),
        )
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id;
    let container_id = rt
        .block_on(cri.create_container(CreateContainerRequest {
            pod_sandbox_id: sandbox_id.clone(),
            config: Some(ContainerConfig {
                metadata: Some(ContainerMetadata { name: "app".into(), attempt: 0 }),
                image: Some(ImageSpec { image: pause.clone(), ..Default::default() }),
                // A workload that ignores SIGTERM: the grace period runs out.
                command: vec!["/bin/sh".into(), "-c".into(), "trap '' TERM; while :; do sleep 1; done".into()],
                labels: labels(&pod, &uid, Some("app")),
                ..Default::default()
            }),
            sandbox_config: Some(sandbox),
        }))
        .expect("CreateContainer")
        .into_inner()
        .container_id;
    rt.block_on(cri.start_container(StartContainerRequest { container_id: container_id.clone() }))
        .expect("StartContainer");

    let mut w =
        Podsig::start(&["watch", "--containerd-socket", &sock, "--pod", &pod, "--namespace", "default", "-o", "json"]);
    // kubelet's stop: StopContainer with a 2 s grace period.
    rt.block_on(cri.stop_container(StopContainerRequest { container_id: container_id.clone(), timeout: 2 }))
        .expect("StopContainer");
    let term = w.next_signal("SIGTERM");
    let kill = w.next_matching("SIGKILL to the same process", |k| {
        k["kind"] == "signal" && k["signal"]["name"] == "SIGKILL" && k["target"]["pid"] == term["target"]["pid"]
    });
    for ev in [&term, &kill] {
        assert_eq!(ev["sender"]["comm"], "runc", "{ev}");
        assert_eq!(ev["cause"], "runtime_stop", "{ev}");
        assert!(ev["cause_detail"].as_str().unwrap().contains("kubelet never appears"));
        let c = &ev["target"]["container"];
        assert_eq!(c["id"], container_id.as_str(), "{ev}");
        assert_eq!(
            (c["pod"].as_str(), c["namespace"].as_str(), c["name"].as_str()),
            (Some(pod.as_str()), Some("default"), Some("app"))
        );
        assert_eq!(c["runtime"], "containerd");
    }
    assert_eq!(term["result"], "ignored", "{term}");
    assert_eq!(kill["result"], "delivered");
    let gap = kill["boot_ns"].as_u64().unwrap() - term["boot_ns"].as_u64().unwrap();
    assert!(gap >= 1_500_000_000, "SIGKILL came after the grace period: {gap} ns");
    w.signal(libc::SIGINT);
    assert!(w.wait().0.success());

    let _ = rt.block_on(cri.remove_container(RemoveContainerRequest { container_id }));
    let _ = rt.block_on(cri.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: sandbox_id.clone() }));
    let _ = rt.block_on(cri.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: sandbox_id }));
}

/// The test containerd's socket and pause image, or None (skip) outside `cargo xtask test`.
fn test_containerd() -> Option<(String, String)> {
    if !privileged() {
        return None;
    }
    match (std::env::var("PODSIG_TEST_CONTAINERD"), std::env::var("PODSIG_TEST_PAUSE_IMAGE")) {
        (Ok(sock), Ok(pause)) => Some((sock, pause)),
        _ => {
            assert!(std::env::var_os("CI").is_none(), "CI runs this through cargo xtask test, which starts containerd");
            eprintln!("skipped: no test containerd (run `sudo cargo xtask test`)");
            None
        }
    }
}

/// A pod with one container `app` running `script` under busybox sh, made as kubelet makes
/// it; removed on drop.
struct Pod {
    rt: tokio::runtime::Runtime,
    cri: RuntimeServiceClient<containerd_client::tonic::transport::Channel>,
    sock: String,
    name: String,
    sandbox_id: String,
    container_id: String,
}

impl Pod {
    fn start(sock: &str, pause: &str, name: &str, script: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let uid = format!("0000-{name}");
        // kubelet's namespaces for a pod without shareProcessNamespace: each container has a
        // pid namespace of its own, whose pid 1 is its command (host network, as above).
        let namespaces = NamespaceOption {
            network: NamespaceMode::Node as i32,
            pid: NamespaceMode::Container as i32,
            ..Default::default()
        };
        let sandbox = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: uid.clone(),
                namespace: "default".into(),
                attempt: 0,
            }),
            labels: labels(name, &uid, None),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: format!("/kubepods/besteffort/pod{uid}"),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let path = PathBuf::from(sock);
        let mut cri = rt.block_on(async move {
            RuntimeServiceClient::new(containerd_client::connect(path).await.expect("connect to the CRI"))
        });
        let sandbox_id = rt
            .block_on(cri.run_pod_sandbox(RunPodSandboxRequest {
                config: Some(sandbox.clone()),
                runtime_handler: String::new(),
            }))
            .expect("RunPodSandbox")
            .into_inner()
            .pod_sandbox_id;
        let container_id = rt
            .block_on(cri.create_container(CreateContainerRequest {
                pod_sandbox_id: sandbox_id.clone(),
                config: Some(ContainerConfig {
                    metadata: Some(ContainerMetadata { name: "app".into(), attempt: 0 }),
                    image: Some(ImageSpec { image: pause.into(), ..Default::default() }),
                    command: vec!["/bin/sh".into(), "-c".into(), script.into()],
                    labels: labels(name, &uid, Some("app")),
                    linux: Some(LinuxContainerConfig {
                        security_context: Some(LinuxContainerSecurityContext {
                            namespace_options: Some(namespaces),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                sandbox_config: Some(sandbox),
            }))
            .expect("CreateContainer")
            .into_inner()
            .container_id;
        rt.block_on(cri.start_container(StartContainerRequest { container_id: container_id.clone() }))
            .expect("StartContainer");
        Self { rt, cri, sock: sock.into(), name: name.into(), sandbox_id, container_id }
    }

    /// The host pid of the container's init, from containerd.
    fn init_pid(&self) -> u32 {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let o = Command::new("ctr")
                .args(["--address", &self.sock, "-n", "k8s.io", "task", "ls"])
                .output()
                .expect("ctr task ls");
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            if let Some(pid) = text
                .lines()
                .find(|l| l.split_whitespace().next() == Some(self.container_id.as_str()) && l.contains("RUNNING"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            {
                return pid;
            }
            assert!(Instant::now() < deadline, "container {} never ran: {text}", self.container_id);
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the init has a handler for SIGTERM (its shell ran `trap`).
    fn await_term_handler(&self) {
        let pid = self.init_pid();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let caught = status
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
                .unwrap_or(0);
            if caught & (1 << (libc::SIGTERM - 1)) != 0 {
                return;
            }
            assert!(Instant::now() < deadline, "the init of {} never trapped SIGTERM: {status}", self.name);
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// kubelet's stop: StopContainer with a grace period of `timeout` seconds.
    fn stop(&mut self, timeout: i64) {
        let id = self.container_id.clone();
        self.rt
            .block_on(self.cri.stop_container(StopContainerRequest { container_id: id, timeout }))
            .expect("StopContainer");
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let (c, s) = (self.container_id.clone(), self.sandbox_id.clone());
        let _ = self.rt.block_on(self.cri.stop_container(StopContainerRequest { container_id: c.clone(), timeout: 0 }));
        let _ = self.rt.block_on(self.cri.remove_container(RemoveContainerRequest { container_id: c }));
        let _ = self.rt.block_on(self.cri.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: s.clone() }));
        let _ = self.rt.block_on(self.cri.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: s }));
    }
}

#[test]
// Long: one scenario in the order it happens; its steps share the processes and the watch.
fn each_kind_of_kubelet_stop_gets_its_verdict_from_why() {
    let _suite = suite(module_path!());
    let why_until =
        |db: &Path, pod: &str, verdict: &str| why_until(db, &["--pod", pod, "--namespace", "default"], verdict);
    let Some((sock, pause)) = test_containerd() else { return };
    import_image(&sock, &pause);
    let dir = scratch("cri-why");
    let db = dir.join("history.db");
    let rec = Podsig::start(&[
        "record",
        "--history",
        db.to_str().unwrap(),
        "--containerd-socket",
        &sock,
        "--node-name",
        "cri-node",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let addr = metrics_addr(&rec);
    let me = std::process::id();
    // (a) A shell init with no SIGTERM handler: the kernel drops the TERM.
    let ignored = format!("why-ignored-{me}");
    let mut a = Pod::start(&sock, &pause, &ignored, "sleep 600");
    a.init_pid();
    thread::sleep(Duration::from_millis(200));
    // (b) A trap that exits; `wait` returns as soon as the TERM arrives.
    let graceful = format!("why-graceful-{me}");
    let mut b = Pod::start(&sock, &pause, &graceful, "trap 'exit 0' TERM; while :; do sleep 600 & wait $!; done");
    b.await_term_handler();
    // (c) A trap that does not exit.
    let handled = format!("why-handled-{me}");
    let mut c = Pod::start(&sock, &pause, &handled, "trap 'echo no' TERM; while :; do sleep 600 & wait $!; done");
    c.await_term_handler();

    let t0 = Instant::now();
    a.stop(2);
    let waited_a = t0.elapsed();
    b.stop(2);
    let t1 = Instant::now();
    c.stop(2);
    let waited_c = t1.elapsed();
    assert!(
        waited_a >= Duration::from_millis(1500) && waited_c >= Duration::from_millis(1500),
        "grace periods ran out: {waited_a:?}, {waited_c:?}"
    );

    let ans = why_until(&db, &ignored, "grace_expired_term_ignored");
    let ans_ignored = ans.clone();
    eprintln!("why --pod {ignored}: {}", ans["summary"]);
    let summary = ans["summary"].as_str().unwrap();
    assert!(summary.starts_with(&format!("Container app of pod default/{ignored} (")), "{summary}");
    assert!(summary.contains("pid 1 of its pid namespace") && summary.contains("exec form"), "{summary}");
    assert!(summary.contains("Verdict: grace_expired_term_ignored. Fix: "), "{summary}");
    assert_eq!(ans["target"]["container"]["id"], a.container_id.as_str());
    assert_eq!(ans["target"]["node"], "cri-node");
    let records = ans["records"].as_array().unwrap();
    let term = records.iter().find(|r| r["signal"]["name"] == "SIGTERM").expect("the TERM is evidence");
    let kill = records.iter().find(|r| r["signal"]["name"] == "SIGKILL" && r["stop"].is_object()).expect("the KILL");
    assert_eq!((term["result"].as_str(), term["target"]["ns_init"].as_bool()), (Some("ignored"), Some(true)), "{term}");
    let p = &kill["preceded_by"];
    assert_eq!(p["signal"]["name"], "SIGTERM", "{kill}");
    assert_eq!((p["result"].as_str(), p["disposition"].as_str()), (Some("ignored"), Some("default")), "{kill}");
    assert_eq!(p["sender"]["comm"], "runc");
    assert!(p["elapsed_ms"].as_u64().unwrap() >= 1500, "{p}");
    assert_eq!(kill["stop"]["verdict"], "grace_expired_term_ignored");
    assert_eq!(kill["stop"]["container_init"], true);
    // Who asked containerd: this test's CRI client, in kubelet's place, with its grace.
    for ev in [term, kill] {
        let by = &ev["requested_by"];
        assert_eq!(
            (by["manager"].as_str(), by["client"]["pid"].as_u64()),
            (Some("containerd"), Some(me as u64)),
            "{ev}"
        );
        assert_eq!(by["request"]["method"], "StopContainer", "{ev}");
        assert_eq!(by["request"]["object"], a.container_id.as_str(), "{ev}");
        assert_eq!(by["request"]["timeout_s"], 2, "{ev}");
    }
    let exit = records.iter().find(|r| r["kind"] == "exit").expect("the init's exit, recorded in node mode");
    assert_eq!(exit["signal"]["name"], "SIGKILL", "{exit}");
    assert_eq!(exit["container"]["id"], a.container_id.as_str(), "{exit}");

    let ans = why_until(&db, &graceful, "graceful_exit");
    eprintln!("why --pod {graceful}: {}", ans["summary"]);
    let records = ans["records"].as_array().unwrap();
    let exit = records.iter().find(|r| r["kind"] == "exit" && r["stop"].is_object()).expect("the graceful exit");
    assert_eq!(exit["status"], 0, "{exit}");
    assert_eq!(exit["preceded_by"]["disposition"], "handler", "{exit}");
    assert!(exit["stop"]["elapsed_ms"].as_u64().unwrap() < 1500, "it exited at once: {exit}");
    assert!(!records.iter().any(|r| r["signal"]["name"] == "SIGKILL" && r["target"]["pid"] == exit["pid"]));

    let ans = why_until(&db, &handled, "grace_expired_term_handled");
    eprintln!("why --pod {handled}: {}", ans["summary"]);
    let summary = ans["summary"].as_str().unwrap();
    assert!(summary.contains("has a handler for it") && summary.contains("terminationGracePeriodSeconds"), "{summary}");

    // One stop per container, counted by verdict (its other processes' go with it).
    let body = http_get(&addr, "/metrics").1;
    for (pod, verdict) in [
        (&ignored, "grace_expired_term_ignored"),
        (&graceful, "graceful_exit"),
        (&handled, "grace_expired_term_handled"),
    ] {
        let series =
            format!(r#"podsig_stops_total{{verdict="{verdict}",namespace="default",pod="{pod}",container="app"}}"#);
        assert_eq!(sample(&body, &series), Some(1.0), "{series} in {body}");
    }
    assert!(
        !body
            .lines()
            .any(|l| l.starts_with("podsig_stops_total") && l.contains(&graceful) && !l.contains("graceful_exit")),
        "the graceful pod's sleep, killed by the kernel as its init exited, is not a stop of its own: {body}"
    );

    // The text form: the paragraph, then the evidence as `history` prints it.
    let (st, text, err) = podsig_output(&["why", "--history", db.to_str().unwrap(), "--pod", &ignored, "-o", "text"]);
    assert!(st.success(), "{err}");
    eprintln!("{text}");
    let (paragraph, _) = text.split_once("\n\n").expect("a paragraph, then the evidence");
    assert_eq!(paragraph.replace('\n', " "), ans_ignored["summary"].as_str().unwrap(), "the same words as -o json");
    assert!(text.contains("\nevidence ("), "{text}");
    assert!(text.contains("  after: SIGTERM from runc("), "{text}");
    assert!(text.contains("ignored (pid 1 of its namespace, no handler)"), "{text}");
    rec.signal(libc::SIGINT);
    assert!(rec.wait().0.success());
    let _ = fs::remove_dir_all(&dir);
}
