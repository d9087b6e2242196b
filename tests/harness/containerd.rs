//! The one way the project runs a containerd of its own: the shared test containerd that
//! `cargo xtask test` and the bench start (CRI on, pods made the way kubelet makes them), and
//! the private ones of the tests that stop, restart or hang theirs (CRI off). Both have a
//! private socket, root and state, so the machine's own containerd is never touched.

use std::{
    io,
    path::PathBuf,
    process::{Child, Command},
    thread,
    time::{Duration, Instant},
};

/// How long containerd may take to answer on its socket once started.
const UP_WITHIN: Duration = Duration::from_secs(30);

pub struct Containerd {
    pub socket: String,
    base: PathBuf,
    root: PathBuf,
    child: Option<Child>,
    /// A private one's root and state go with it; the shared one keeps its root (the
    /// sandbox image imported into it) for the next run.
    transient: bool,
}

impl Containerd {
    /// The shared test containerd named `name` (/run/NAME, /var/lib/NAME), its CRI plugin
    /// running `sandbox_image` for every pod. Containers a killed earlier run left in it
    /// (its state outlives it) are removed, so each run starts clean.
    pub fn shared(name: &str, sandbox_image: &str) -> io::Result<Self> {
        // Without CAP_SYS_RESOURCE (as on the development VM) the sandbox's default
        // oom_score_adj of -998 cannot be set: restrict_oom_score_adj keeps containerd's own.
        let cri = format!(
            "[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"{sandbox_image}\"\n\
             restrict_oom_score_adj = true\n"
        );
        let c = Self::start(name, "", &cri, false)?;
        c.remove_containers();
        Ok(c)
    }

    /// A containerd of one test's own, without CRI, removed with everything in it on drop.
    pub fn private(name: &str) -> io::Result<Self> {
        let _ = std::fs::remove_dir_all(PathBuf::from("/var/lib").join(name));
        Self::start(name, "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n", "", true)
    }

    /// `top`: keys before the first table (`disabled_plugins` is one); `tables`: after.
    fn start(name: &str, top: &str, tables: &str, transient: bool) -> io::Result<Self> {
        let base = PathBuf::from("/run").join(name);
        let root = PathBuf::from("/var/lib").join(name);
        if transient {
            let _ = std::fs::remove_dir_all(&base);
        }
        std::fs::create_dir_all(&base)?;
        stop_left_over(&base.join("config.toml"));
        let socket = base.join("containerd.sock");
        let _ = std::fs::remove_file(&socket);
        std::fs::write(
            base.join("config.toml"),
            format!(
                "version = 2\nroot = \"{}\"\nstate = \"{}\"\n{top}[grpc]\n  address = \"{}\"\n{tables}",
                root.display(),
                base.join("state").display(),
                socket.display()
            ),
        )?;
        let socket = socket.to_str().ok_or_else(|| io::Error::other("socket path is not UTF-8"))?.to_owned();
        let mut c = Self { socket, base, root, child: None, transient };
        c.up()?;
        Ok(c)
    }

    /// Starts containerd (again) and waits until it answers on its socket.
    pub fn up(&mut self) -> io::Result<()> {
        let log_path = self.base.join("containerd.log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.base.join("config.toml"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| io::Error::other(format!("starting containerd: {e}")))?;
        self.child = Some(child);
        let deadline = Instant::now() + UP_WITHIN;
        while !Command::new("ctr")
            .args(["--address", &self.socket, "version"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "containerd did not answer on {} within {UP_WITHIN:?}; see {}",
                    self.socket,
                    log_path.display()
                )));
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Stops containerd the way a restart does (SIGTERM); its containers keep running
    /// under their shims.
    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child; a stopped one must run to see SIGTERM.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGCONT);
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }

    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// Every task killed and deleted, every container deleted (namespace k8s.io).
    pub fn remove_containers(&self) {
        let ctr = |args: &[&str]| {
            Command::new("ctr")
                .args(["--address", &self.socket, "-n", "k8s.io"])
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let tasks = ctr(&["task", "ls", "-q"]);
        for id in tasks.lines() {
            ctr(&["task", "kill", "-s", "SIGKILL", id]);
        }
        if !tasks.trim().is_empty() {
            thread::sleep(Duration::from_millis(300));
        }
        for id in ctr(&["task", "ls", "-q"]).lines() {
            ctr(&["task", "delete", "-f", id]);
        }
        for id in ctr(&["container", "ls", "-q"]).lines() {
            ctr(&["container", "delete", id]);
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.transient {
            // Containers first (a test's Container values are dropped before this one when
            // declared after it), then containerd, and its files.
            if self.child.is_some() {
                self.signal(libc::SIGCONT);
                self.remove_containers();
            }
            self.down();
            let _ = std::fs::remove_dir_all(&self.root);
            let _ = std::fs::remove_dir_all(&self.base);
        } else {
            self.down();
        }
    }
}

/// Stops a containerd still running on `config`: one a killed earlier run (or a person
/// reproducing a test by hand) left holds the root's metadata lock, and a new one would
/// wait on it and never answer.
fn stop_left_over(config: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir("/proc") else { return };
    let config = config.as_os_str().as_encoded_bytes();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else { continue };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else { continue };
        let argv: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let is_ours = argv.first().is_some_and(|a| a.ends_with(b"containerd"))
            && argv.windows(2).any(|w| w[0] == b"--config" && w[1] == config);
        if !is_ours {
            continue;
        }
        eprintln!("stopping containerd {pid}, left running on {}", String::from_utf8_lossy(config));
        // SAFETY: signalling a containerd running on this harness's own configuration.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
            && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
        {
            if Instant::now() > deadline {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}
