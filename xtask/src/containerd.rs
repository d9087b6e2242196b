//! The test containerd: run by `cargo xtask test` for the container tests, and by the bench.

use std::{env, path::PathBuf, process::Command};

use anyhow::{Context as _, Result, bail};

/// The sandbox image containerd's CRI plugin runs for every pod. No registry is reachable:
/// the CRI test builds one from busybox and imports it under this name.
pub(crate) const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.6";

/// A containerd of the tests' own: private socket, root and state, its CRI plugin on (pods
/// are made the way kubelet makes them), stopped on drop. Without CAP_SYS_RESOURCE (as
/// here) the sandbox's default oom_score_adj of -998 cannot be set: restrict_oom_score_adj
/// keeps it at containerd's own.
pub(crate) struct TestContainerd {
    child: std::process::Child,
    pub(crate) socket: PathBuf,
}

impl TestContainerd {
    pub(crate) fn start() -> Result<Self> {
        // PODSIG_TEST_CONTAINERD_NAME lets two checkouts test side by side on one machine.
        Self::named(&env::var("PODSIG_TEST_CONTAINERD_NAME").unwrap_or_else(|_| "podsig-test-containerd".into()))
    }

    /// One whose socket, root and state are named `name` (/run/NAME, /var/lib/NAME).
    pub(crate) fn named(name: &str) -> Result<Self> {
        let base = PathBuf::from("/run").join(name);
        let _ = std::fs::create_dir_all(&base);
        let socket = base.join("containerd.sock");
        let _ = std::fs::remove_file(&socket);
        let config = base.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"/var/lib/{name}\"\nstate = \"{}\"\n\
                 [grpc]\n  address = \"{}\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"{PAUSE_IMAGE}\"\n\
                 restrict_oom_score_adj = true\n",
                base.join("state").display(),
                socket.display()
            ),
        )?;
        let log = std::fs::File::create(base.join("containerd.log"))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting containerd")?;
        let t0 = std::time::Instant::now();
        while !socket.exists() {
            if t0.elapsed() > std::time::Duration::from_secs(30) {
                bail!("containerd did not create {} (see {}/containerd.log)", socket.display(), base.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        println!("xtask: test containerd on {}", socket.display());
        let me = Self { child, socket };
        me.remove_leftovers();
        Ok(me)
    }

    /// Containers an interrupted earlier run left behind (its state outlives it): killed
    /// and removed, so each run starts clean.
    fn remove_leftovers(&self) {
        let ctr = |args: &[&str]| {
            Command::new("ctr")
                .arg("--address")
                .arg(&self.socket)
                .args(["-n", "k8s.io"])
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        for id in ctr(&["task", "ls", "-q"]).lines() {
            ctr(&["task", "kill", "-s", "SIGKILL", id]);
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        for id in ctr(&["task", "ls", "-q"]).lines() {
            ctr(&["task", "delete", "-f", id]);
        }
        for id in ctr(&["container", "ls", "-q"]).lines() {
            ctr(&["container", "delete", id]);
        }
    }
}

impl Drop for TestContainerd {
    fn drop(&mut self) {
        // SAFETY: signalling our own child; SIGTERM lets containerd shut down cleanly.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
