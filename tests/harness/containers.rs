//! containerd for the container tests: `ctr` on the test containerd's socket (namespace
//! k8s.io), a busybox rootfs, containers removed on drop, and a private containerd for the
//! tests that stop, restart or hang one.

use std::{
    path::PathBuf,
    process::{Child, Command},
    thread,
    time::{Duration, Instant},
};

use crate::process::{TIMEOUT, copy_executable, privileged};

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

/// A containerd of the test's own, on a private socket, root and state (CRI off), for tests
/// that stop, restart or hang it: the shared test containerd must not be disturbed.
/// Needs `containerd` and `runc` (installed by `cargo xtask test`); None, with a printed
/// reason, outside CI when they are missing or the test is not root.
pub struct PrivateContainerd {
    pub socket: String,
    base: PathBuf,
    root: PathBuf,
    child: Option<Child>,
}

impl PrivateContainerd {
    pub fn start(tag: &str) -> Option<Self> {
        if !privileged() {
            return None;
        }
        for tool in ["containerd", "runc", "ctr"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            if !found {
                assert!(std::env::var_os("CI").is_none(), "{tool} is missing; cargo xtask test installs it");
                eprintln!("skipped: {tool} is missing (run `sudo cargo xtask test`, which installs it)");
                return None;
            }
        }
        let name = format!("podsig-e2e-{}-{tag}", std::process::id());
        let base = PathBuf::from("/run").join(&name);
        let root = PathBuf::from("/var/lib").join(&name);
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let socket = base.join("containerd.sock");
        std::fs::write(
            base.join("config.toml"),
            format!(
                "version = 2\nroot = \"{}\"\nstate = \"{}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{}\"\n",
                root.display(),
                base.join("state").display(),
                socket.display()
            ),
        )
        .unwrap();
        let mut c = Self { socket: socket.to_str().unwrap().into(), base, root, child: None };
        c.up();
        Some(c)
    }

    /// Starts containerd (again) and waits until it answers.
    pub fn up(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.base.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.base.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        self.child = Some(child);
        let deadline = Instant::now() + TIMEOUT;
        while !Command::new("ctr")
            .args(["--address", &self.socket, "version"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(
                Instant::now() < deadline,
                "containerd did not come up; see {}",
                self.base.join("containerd.log").display()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops containerd the way a restart does (SIGTERM); its containers keep running
    /// under their shims.
    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            self.signal(libc::SIGCONT);
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        // Containers first (the test's Container values are dropped before this one when
        // declared after it), then containerd, its shims' leftovers, and its files.
        let a = ["--address", self.socket.as_str(), "-n", "k8s.io"];
        if self.child.is_some() {
            self.signal(libc::SIGCONT);
            let ids = Command::new("ctr").args(a).args(["task", "ls", "-q"]).output();
            for id in ids.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default().lines() {
                let _ = Command::new("ctr").args(a).args(["task", "kill", "-s", "SIGKILL", id]).output();
                thread::sleep(Duration::from_millis(200));
                let _ = Command::new("ctr").args(a).args(["task", "delete", "-f", id]).output();
                let _ = Command::new("ctr").args(a).args(["container", "delete", id]).output();
            }
        }
        self.down();
        let _ = std::fs::remove_dir_all(&self.root);
        let _ = std::fs::remove_dir_all(&self.base);
    }
}
