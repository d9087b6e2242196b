//! A pod made the way kubelet makes it — through containerd's CRI RuntimeService — and
//! stopped the way kubelet stops it: StopContainer with a grace period, which is SIGTERM,
//! the wait, then SIGKILL. podsig must name the pod from its CRI labels and report both.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ImageSpec, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata,
    RemoveContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest, StopContainerRequest,
    StopPodSandboxRequest, runtime_service_client::RuntimeServiceClient,
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
    let dir = std::env::temp_dir().join(format!("podsig-e2e-image-{}", std::process::id()));
    let root = dir.join("rootfs");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
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
fn kubelet_style_stop_through_the_cri_is_named_and_fully_reported() {
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
