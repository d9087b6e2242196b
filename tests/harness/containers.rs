//! containerd for the container tests: `ctr` on the test containerd's socket (namespace
//! k8s.io), a busybox rootfs, containers removed on drop, and a private containerd for the
//! tests that stop, restart or hang one.

use std::{
    path::PathBuf,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use crate::{
    containerd::Containerd,
    process::{TIMEOUT, copy_executable, privileged},
};

/// `ctr` on the k8s.io namespace; panics with its stderr when it fails.
pub fn ctr(sock: &str, args: &[&str]) -> std::process::Output {
    let o = Command::new("ctr").args(["--address", sock, "-n", "k8s.io"]).args(args).output().expect("ctr");
    assert!(o.status.success(), "ctr {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

/// A busybox rootfs shared by the tests' containers, made once per test binary.
pub fn busybox_rootfs() -> PathBuf {
    static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("podsig-e2e-rootfs-{}", std::process::id()));
        let bin = root.join("bin");
        if !bin.join("busybox").exists() {
            std::fs::create_dir_all(&bin).unwrap();
            let tmp = bin.join(format!("busybox.{}", std::process::id()));
            copy_executable("/bin/busybox", &tmp);
            std::fs::rename(&tmp, bin.join("busybox")).unwrap();
        }
        for applet in ["sh", "sleep", "kill"] {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
        for d in ["proc", "sys", "dev", "tmp"] {
            let _ = std::fs::create_dir_all(root.join(d));
        }
        root
    })
    .clone()
}

/// A container, killed and deleted on drop.
pub struct Container {
    pub sock: String,
    pub id: String,
}

impl Container {
    /// Runs `script` under busybox sh in a container with CRI labels (namespace, pod,
    /// container name), and waits until its task runs.
    pub fn start(sock: &str, id: &str, (namespace, pod, name): (&str, &str, &str), script: &str) -> Self {
        let rootfs = busybox_rootfs();
        let c = Self::adopt(sock, id);
        ctr(
            sock,
            &[
                "run",
                "-d",
                "--label",
                &format!("io.kubernetes.pod.name={pod}"),
                "--label",
                &format!("io.kubernetes.pod.namespace={namespace}"),
                "--label",
                &format!("io.kubernetes.container.name={name}"),
                "--rootfs",
                rootfs.to_str().unwrap(),
                id,
                "/bin/sh",
                "-c",
                script,
            ],
        );
        assert!(c.pid() > 0);
        c
    }

    /// A container the test starts itself, cleaned up the same way.
    pub fn adopt(sock: &str, id: &str) -> Self {
        Self { sock: sock.into(), id: id.into() }
    }

    /// The host pid of the container's init, from `ctr task ls`, once it runs.
    pub fn pid(&self) -> u32 {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let o = ctr(&self.sock, &["task", "ls"]);
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let pid = text
                .lines()
                .find(|l| l.split_whitespace().next() == Some(self.id.as_str()) && l.contains("RUNNING"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|p| p.parse().ok());
            if let Some(p) = pid {
                return p;
            }
            assert!(Instant::now() < deadline, "container {} never ran: {text}", self.id);
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let a = ["--address", self.sock.as_str(), "-n", "k8s.io"];
        let _ = Command::new("ctr").args(a).args(["task", "kill", "-s", "SIGKILL", &self.id]).output();
        thread::sleep(Duration::from_millis(200));
        let _ = Command::new("ctr").args(a).args(["task", "delete", "-f", &self.id]).output();
        let _ = Command::new("ctr").args(a).args(["container", "delete", &self.id]).output();
    }
}

/// A containerd of the test's own (see [`Containerd::private`]), for tests that stop,
/// restart or hang it: the shared test containerd must not be disturbed. Needs `containerd`
/// and `runc` (installed by `cargo xtask test`); None, with a printed reason, outside CI when
/// they are missing or the test is not root.
pub fn private_containerd(tag: &str) -> Option<Containerd> {
    if !privileged() {
        return None;
    }
    for tool in ["containerd", "runc", "ctr"] {
        let found =
            Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success());
        if !found {
            assert!(std::env::var_os("CI").is_none(), "{tool} is missing; cargo xtask test installs it");
            eprintln!("skipped: {tool} is missing (run `sudo cargo xtask test`, which installs it)");
            return None;
        }
    }
    let name = format!("podsig-e2e-{}-{tag}", std::process::id());
    Some(Containerd::private(&name).unwrap_or_else(|e| panic!("private containerd {name}: {e}")))
}
