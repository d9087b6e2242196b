//! Docker and podman for real, each on storage of the test's own, with a busybox image
//! imported from a rootfs tarball (no registry is reachable):
//!
//! - Debian's docker.io: a dockerd started here on a private socket, data root and exec root
//!   (it starts a containerd of its own, unless the system's runs), stopped after. Docker 20.10+ puts no container name in
//!   containerd's labels: podsig must name the container through Docker's API.
//! - Debian's podman, rootful, with crun and conmon: no daemon and no API socket; podsig names
//!   the container from its conmon.
//!
//! `docker stop -t 2` / `podman stop -t 2`: the runtime sends SIGTERM, which a shell as pid 1
//! ignores, then SIGKILL two seconds later.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use podsig_e2e::*;

const DOCKER: &str = "/usr/bin/docker";
const DOCKERD: &str = "/usr/sbin/dockerd";
const PODMAN: &str = "/usr/bin/podman";
const FOREVER: &str = "while :; do sleep 1; done";

/// Root, and the runtime installed. Without root the test skips with a reason (a failure
/// under CI); a missing runtime is a failure: `cargo xtask test` installs it.
fn ready(binary: &str, package: &str) -> bool {
    if !privileged() {
        return false;
    }
    assert!(Path::new(binary).exists(), "no {binary}: install Debian's {package} (cargo xtask test does)");
    true
}

fn run(program: &str, args: &[&str]) -> Output {
    let o = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    assert!(o.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The busybox rootfs as a tarball, for `docker import` and `podman import`.
fn rootfs_tar(dir: &Path) -> String {
    let tar = dir.join("rootfs.tar");
    run("tar", &["-C", busybox_rootfs().to_str().unwrap(), "-cf", tar.to_str().unwrap(), "."]);
    tar.to_str().unwrap().to_string()
}

/// comm of a process's parent.
fn parent_comm(pid: u32) -> String {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid = stat.rsplit(") ").next().unwrap().split_whitespace().nth(1).unwrap();
    fs::read_to_string(format!("/proc/{ppid}/comm")).unwrap().trim().to_string()
}

/// A dockerd of this test process's own: private socket, data root and exec root, no
/// iptables, NAT or bridge (the containers run with `--network none`). On drop its
/// containers are removed, it is stopped and its directories are deleted.
struct Dockerd {
    child: Child,
    run: PathBuf,
    data: PathBuf,
    /// The socket's path, as `--docker-socket` takes it.
    socket: String,
}

const DOCKERD_PREFIX: &str = "podsig-test-docker-";

impl Dockerd {
    fn start() -> Self {
        remove_stale_dockerds();
        // A file's tests run side by side: each dockerd has a name (socket, roots) of its own,
        // or one test's cleanup removes another's containers and signals the wrong daemon.
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("{DOCKERD_PREFIX}{}-{n}", std::process::id());
        let (run, data) = (Path::new("/run").join(&tag), Path::new("/var/lib").join(&tag));
        fs::create_dir_all(&run).unwrap();
        let socket = run.join("docker.sock").to_str().unwrap().to_string();
        let log_path = run.join("dockerd.log");
        let log = fs::File::create(&log_path).unwrap();
        let child = Command::new(DOCKERD)
            .arg(format!("--host=unix://{socket}"))
            .arg(format!("--data-root={}", data.display()))
            .arg(format!("--exec-root={}", run.join("exec").display()))
            .arg(format!("--pidfile={}", run.join("dockerd.pid").display()))
            .args(["--iptables=false", "--ip-masq=false", "--bridge=none"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        let mut d = Self { child, run, data, socket };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !Command::new(DOCKER).args(["-H", &d.host(), "version"]).output().is_ok_and(|o| o.status.success()) {
            let log = || fs::read_to_string(&log_path).unwrap_or_default();
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("dockerd exited ({st}):\n{}", log());
            }
            assert!(Instant::now() < deadline, "dockerd did not answer on {} in 60 s:\n{}", d.socket, log());
            thread::sleep(Duration::from_millis(200));
        }
        d
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket)
    }

    fn signal(&self, sig: i32) {
        // SAFETY: signalling the dockerd this test started.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    fn docker(&self, args: &[&str]) -> Output {
        let host = self.host();
        run(DOCKER, &[&["-H", host.as_str()], args].concat())
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // A test that failed while it was stopped leaves it stopped.
        self.signal(libc::SIGCONT);
        // A running container would hold dockerd's shutdown for its stop timeout.
        let host = self.host();
        if let Ok(o) = Command::new(DOCKER).args(["-H", &host, "ps", "-aq"]).output() {
            for id in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = Command::new(DOCKER).args(["-H", &host, "rm", "-f", id]).output();
            }
        }
        stop(self.child.id());
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.data);
        let _ = fs::remove_dir_all(&self.run);
    }
}

/// SIGTERM, then SIGKILL if it is still there after 30 s.
fn stop(pid: u32) {
    // SAFETY: signalling a dockerd this test harness started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Path::new(&format!("/proc/{pid}")).exists()
        && fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
    {
        if Instant::now() > deadline {
            // SAFETY: as above.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// What a test process killed before its drops ran left behind: its dockerd (by its pid
/// file) and its directories.
fn remove_stale_dockerds() {
    let Ok(entries) = fs::read_dir("/run") else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let owner = name.strip_prefix(DOCKERD_PREFIX).and_then(|p| p.split('-').next()?.parse::<u32>().ok());
        let Some(owner) = owner else { continue };
        if Path::new(&format!("/proc/{owner}")).exists() {
            continue; // another test process's, still running
        }
        let pid = fs::read_to_string(e.path().join("dockerd.pid")).ok().and_then(|p| p.trim().parse::<u32>().ok());
        if let Some(pid) = pid.filter(|p| fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c == "dockerd\n"))
        {
            eprintln!("stopping dockerd {pid}, left by test process {owner}");
            stop(pid);
        }
        let _ = fs::remove_dir_all(Path::new("/var/lib").join(&name));
        let _ = fs::remove_dir_all(e.path());
    }
}

fn assert_named(ev: &Value, id: &str, name: &str, runtime: &str) {
    let c = &ev["target"]["container"];
    assert_eq!(c["id"], id, "{ev}");
    assert_eq!(c["name"], name, "{ev}");
    assert_eq!(c["runtime"], runtime, "{ev}");
}

#[test]
// Long: one scenario in the order it happens; its steps share the processes and the watch.
fn docker_stop_names_the_container_through_dockers_api() {
    let _suite = suite(module_path!());
    if !ready(DOCKERD, "docker.io") {
        return;
    }
    let dir = scratch("docker");
    let dockerd = Dockerd::start();
    let image = "podsig-e2e-busybox:latest";
    dockerd.docker(&["import", &rootfs_tar(&dir), image]);
    let name = format!("podsig-e2e-{}-web", std::process::id());
    let run = ["run", "-d", "--network", "none", "--name", &name, image, "/bin/sh", "-c", FOREVER];
    let id = stdout(&dockerd.docker(&run));
    let pid: u32 = stdout(&dockerd.docker(&["inspect", "-f", "{{.State.Pid}}", &id])).parse().unwrap();
    assert!(pid > 0);

    let sock = dockerd.socket.as_str();
    let db = dir.join("history.db");
    let rec = Podsig::start(&["record", "--history", db.to_str().unwrap(), "--docker-socket", sock]);
    // By Docker's name, by `docker://` and an ID prefix, and in node mode by name.
    let mut by_name = Podsig::start(&["watch", "--docker-socket", sock, "--container", &name, "-o", "json"]);
    assert!(
        by_name.stderr_lines.last().unwrap().contains(&format!("watching container {}…", &id[..12])),
        "{:?}",
        by_name.stderr_lines
    );
    let by_id = format!("docker://{}", &id[..16]);
    let mut by_id = Podsig::start(&["watch", "--docker-socket", sock, "--container", &by_id, "-o", "json"]);
    let mut node = Podsig::start(&["watch", "--all", "--container-name", &name, "--docker-socket", sock, "-o", "json"]);

    let t0 = Instant::now();
    dockerd.docker(&["stop", "-t", "2", &name]);
    assert!(t0.elapsed() >= Duration::from_secs(2), "sh as pid 1 ignores SIGTERM: docker stop waited for it");
    for w in [&mut by_name, &mut by_id, &mut node] {
        let term = w.next_signal("SIGTERM");
        assert_eq!(term["target"]["pid"], pid, "{term}");
        assert_eq!(term["sender"]["comm"], "runc");
        assert_eq!(term["cause"], "runtime_stop", "{term}");
        assert_eq!(term["runtime"]["runtime"], "runc");
        assert!(term["runtime"]["manager"].as_str().unwrap().starts_with("containerd"), "{term}");
        assert_named(&term, &id, &name, "docker");
        let kill = w.next_signal("SIGKILL");
        assert_eq!(kill["target"]["pid"], pid, "{kill}");
        assert_eq!(kill["sender"]["comm"], "runc");
        assert_eq!(kill["cause"], "runtime_stop");
        assert_named(&kill, &id, &name, "docker");
    }
    assert_eq!(by_name.next_kind("exit")["pid"], pid);

    // The recorder kept both, named; `history --container` takes the name too.
    for args in [["--container-name", name.as_str()], ["--container", name.as_str()]] {
        let ev = history_until(&db, &args, |v| v["signal"]["name"] == "SIGKILL" && v["target"]["pid"] == pid);
        assert_named(&ev, &id, &name, "docker");
        assert_eq!(ev["cause"], "runtime_stop");
    }
    // `why` takes Docker's name too: sh as pid 1 has no SIGTERM handler, so the stop's TERM
    // was dropped and the KILL came when `-t 2` ran out.
    let ans = why_until(&db, &["--container", &name], "grace_expired_term_ignored");
    assert_eq!(ans["target"]["container"]["name"], name.as_str(), "{ans}");
    assert_eq!(ans["target"]["container"]["runtime"], "docker", "{ans}");

    // Containers killed right after they started, each just after another one stopped:
    // named from Docker's start event, though their inits may be gone from /proc when
    // their events are read, and the kernel gives a new pid namespace the number of one
    // just gone (which must not name the container that had it).
    for i in 0..3 {
        let (before, quick) = (format!("{name}-before{i}"), format!("{name}-quick{i}"));
        dockerd.docker(&["run", "-d", "--network", "none", "--name", &before, image, "/bin/sh", "-c", FOREVER]);
        dockerd.docker(&["stop", "-t", "0", &before]);
        let run = ["run", "-d", "--network", "none", "--name", &quick, image, "/bin/sh", "-c", FOREVER];
        let quick_id = stdout(&dockerd.docker(&run));
        let quick_pid = stdout(&dockerd.docker(&["inspect", "-f", "{{.State.Pid}}", &quick_id]));
        dockerd.docker(&["kill", &quick]);
        let ev = history_until(&db, &["--pid", &quick_pid], |v| v["signal"]["name"] == "SIGKILL");
        assert_named(&ev, &quick_id, &quick, "docker");
        assert_eq!(ev["sender"]["comm"], "runc");
    }

    // Docker hung (stopped: it still accepts connections and answers nothing) holds no event
    // up: they go out at once, named from what was learned before; podsig says once that
    // Docker does not answer, and once that it answers again.
    let hung = format!("{name}-hung");
    let trap = "trap 'echo usr1' USR1; while :; do sleep 1; done";
    let run = ["run", "-d", "--network", "none", "--name", &hung, image, "/bin/sh", "-c", trap];
    let hung_id = stdout(&dockerd.docker(&run));
    let hung_pid: u32 = stdout(&dockerd.docker(&["inspect", "-f", "{{.State.Pid}}", &hung_id])).parse().unwrap();
    let mut usr1 = Podsig::start(&["watch", "--all", "--signal", "USR1", "--docker-socket", sock, "-o", "json"]);
    let to_hung = |v: &Value| v["kind"] == "signal" && v["target"]["pid"] == hung_pid;
    let send_usr1 = || {
        // SAFETY: kill(2) to this test's container init, which traps SIGUSR1.
        assert_eq!(unsafe { libc::kill(hung_pid as i32, libc::SIGUSR1) }, 0);
        Instant::now()
    };
    send_usr1();
    assert_named(&usr1.next_matching("USR1 to the container", to_hung), &hung_id, &hung, "docker");
    dockerd.signal(libc::SIGSTOP);
    for _ in 0..4 {
        let sent = send_usr1();
        let (at, ev) = usr1.next_matching_at("USR1 while Docker hangs", to_hung);
        assert!(at.duration_since(sent) < Duration::from_millis(100), "printed {:?} after", at.duration_since(sent));
        assert_named(&ev, &hung_id, &hung, "docker");
        thread::sleep(Duration::from_millis(700));
    }
    usr1.wait_stderr("podsig: Docker does not answer");
    dockerd.signal(libc::SIGCONT);
    usr1.wait_stderr("podsig: Docker answers again");

    for w in [by_name, by_id, node, rec, usr1] {
        w.signal(libc::SIGINT);
        let (st, _, err) = w.wait();
        assert!(st.success(), "{err:?}");
    }
    drop(dockerd);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_docker_socket_given_is_one_clear_error() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let t = Target::sleep();
    let pid = t.pid().to_string();
    for what in [vec!["--all"], vec!["--pid", &pid], vec!["--container", "web"]] {
        let mut args = vec!["watch", "--docker-socket", "/nonexistent/docker.sock", "--duration", "5s"];
        args.extend(what);
        let (st, out, err) = podsig_output(&args);
        assert!(!st.success(), "{args:?}");
        assert!(out.is_empty(), "{out}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("podsig: no Docker socket at /nonexistent/docker.sock"), "{err}");
    }
}

/// podman on storage of this test process's own (root, runroot, tmpdir), with crun; its
/// containers and storage removed on drop.
struct Podman {
    root: PathBuf,
    run: PathBuf,
    global: Vec<String>,
}

impl Podman {
    fn new() -> Self {
        let tag = format!("podsig-test-podman-{}", std::process::id());
        let (root, run) = (Path::new("/var/lib").join(&tag), Path::new("/run").join(&tag));
        let global = vec![
            format!("--root={}", root.display()),
            format!("--runroot={}", run.join("runroot").display()),
            format!("--tmpdir={}", run.join("tmp").display()),
            "--runtime=crun".to_string(),
        ];
        Self { root, run, global }
    }

    /// podman with these arguments. crun 1.8 refuses every container on a hybrid cgroup
    /// host whose v2 hierarchy holds a controller (a host mounting some v1 controllers
    /// but not hugetlb has it there): then podman runs in a mount namespace of its own
    /// without the v2 mount, where crun sees cgroup v1 alone. podman, conmon, crun and the
    /// container are the real ones; only their view of /sys/fs/cgroup differs.
    fn podman(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = self.global.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        let v2_controllers =
            fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").is_ok_and(|c| !c.trim().is_empty());
        if v2_controllers {
            let script = r#"umount /sys/fs/cgroup/unified && exec "$0" "$@""#;
            let mut wrapped = vec!["-m", "--propagation", "private", "sh", "-c", script, PODMAN];
            wrapped.extend(all);
            run("unshare", &wrapped)
        } else {
            run(PODMAN, &all)
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let mut args: Vec<&str> = self.global.iter().map(String::as_str).collect();
        args.extend(["system", "reset", "--force"]);
        let _ = Command::new(PODMAN).args(&args).output();
        let _ = fs::remove_dir_all(&self.root);
        let _ = fs::remove_dir_all(&self.run);
    }
}

#[test]
fn podman_stop_names_crun_podman_and_the_container() {
    let _suite = suite(module_path!());
    if !ready(PODMAN, "podman") || !ready("/usr/bin/crun", "crun") || !ready("/usr/bin/conmon", "conmon") {
        return;
    }
    let dir = scratch("podman");
    let podman = Podman::new();
    let image = "localhost/podsig-e2e-busybox:latest";
    podman.podman(&["import", &rootfs_tar(&dir), image]);
    let name = format!("podsig-e2e-{}-pweb", std::process::id());
    // Limits podman would otherwise raise, which needs CAP_SYS_RESOURCE.
    let limits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"];
    let mut run = vec!["run", "-d", "--network", "none", "--name", &name];
    run.extend(limits);
    run.extend([image, "/bin/sh", "-c", FOREVER]);
    let id = stdout(&podman.podman(&run));
    let pid: u32 = stdout(&podman.podman(&["inspect", "-f", "{{.State.Pid}}", &id])).parse().unwrap();
    assert_eq!(parent_comm(pid), "conmon", "conmon runs the container");

    let db = dir.join("history.db");
    let rec = Podsig::start(&["record", "--history", db.to_str().unwrap()]);
    let mut by_name = Podsig::start(&["watch", "--container", &name, "-o", "json"]);
    let mut node = Podsig::start(&["watch", "--all", "--container-name", &name, "-o", "json"]);

    podman.podman(&["stop", "-t", "2", &name]);
    for w in [&mut by_name, &mut node] {
        for sig in ["SIGTERM", "SIGKILL"] {
            let ev = w.next_signal(sig);
            assert_eq!(ev["target"]["pid"], pid, "{ev}");
            assert_eq!(ev["sender"]["comm"], "crun", "{ev}");
            assert_eq!(ev["cause"], "runtime_stop", "{ev}");
            // `podman stop` runs `crun kill` itself: podman is the manager above crun.
            // conmon only watches the container, so it is not in the sender's ancestry.
            assert_eq!(ev["runtime"]["runtime"], "crun", "{ev}");
            assert_eq!(ev["runtime"]["manager"], "podman", "{ev}");
            assert_named(&ev, &id, &name, "podman");
        }
    }
    assert_eq!(by_name.next_kind("exit")["pid"], pid);
    let ev = history_until(&db, &["--container", &name], |v| v["signal"]["name"] == "SIGKILL");
    assert_named(&ev, &id, &name, "podman");
    let ans = why_until(&db, &["--container", &name], "grace_expired_term_ignored");
    assert_eq!(ans["target"]["container"]["name"], name.as_str(), "{ans}");
    assert_eq!(ans["target"]["container"]["runtime"], "podman", "{ans}");

    // Killed outright, each just after another stopped (the kernel then gives its pid
    // namespace the stopped one's number): its init is gone from /proc when its event is
    // read, and only the pid namespace podsig learned from its conmon while it ran names it.
    // podman announces no start: the recorder reads conmons on its ticks (every second).
    for i in 0..2 {
        let (before, quick) = (format!("{name}-before{i}"), format!("{name}-quick{i}"));
        for n in [&before, &quick] {
            let mut run = vec!["run", "-d", "--network", "none", "--name", n.as_str()];
            run.extend(limits);
            run.extend([image, "/bin/sh", "-c", FOREVER]);
            podman.podman(&run);
            if *n == before {
                podman.podman(&["stop", "-t", "0", &before]);
            }
        }
        let quick_pid = stdout(&podman.podman(&["inspect", "-f", "{{.State.Pid}}", &quick]));
        thread::sleep(Duration::from_millis(1500));
        podman.podman(&["kill", &quick]);
        let ev = history_until(&db, &["--pid", &quick_pid], |v| v["signal"]["name"] == "SIGKILL");
        assert_eq!(ev["target"]["container"]["name"], quick.as_str(), "{ev}");
        assert_eq!(ev["sender"]["comm"], "crun");
    }

    for w in [by_name, node, rec] {
        w.signal(libc::SIGINT);
        let (st, _, err) = w.wait();
        assert!(st.success(), "{err:?}");
    }
    drop(podman);
    let _ = fs::remove_dir_all(&dir);
}

/// Who asked dockerd: `docker stop`, `docker kill` and `docker rm -f`, each run by a chain
/// of shells, name the docker client that asked (its argv and ancestry), while a busy
/// client asking about the same container all along is never named; dockerd's own stop at
/// its shutdown names nobody and says dockerd acted on its own.
#[test]
// Long: one scenario in the order it happens; its steps share the processes and the watch.
fn docker_requests_name_the_client_that_asked() {
    let _suite = suite(module_path!());
    if !ready(DOCKERD, "docker.io") {
        return;
    }
    let dir = scratch("docker-requests");
    let dockerd = Dockerd::start();
    let image = "podsig-e2e-busybox:latest";
    dockerd.docker(&["import", &rootfs_tar(&dir), image]);
    let name = format!("podsig-e2e-{}-asked", std::process::id());
    let run = ["run", "-d", "--network", "none", "--name", &name, image, "/bin/sh", "-c", FOREVER];
    stdout(&dockerd.docker(&run));
    let host = dockerd.host();
    let sock = dockerd.socket.as_str();
    let busy = Target {
        child: Command::new("sh")
            .args([
                "-c",
                &format!("while :; do {DOCKER} -H {host} inspect {name}; {DOCKER} -H {host} ps; done >/dev/null 2>&1"),
            ])
            .spawn()
            .unwrap(),
    };
    let mut w = Podsig::start(&["watch", "--docker-socket", sock, "--container", &name, "-o", "json"]);
    // `sh -c "sh -c 'docker …'"`: the chain the requester's ancestry must show.
    let ask = |what: &str| {
        let mut c = Command::new("sh")
            .args(["-c", &format!("sh -c '{DOCKER} -H {host} {what} {name}; :'; :")])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let outer = c.id();
        assert!(c.wait().unwrap().success());
        outer
    };
    let asked_by = |ev: &Value, outer: u32, method: &str| {
        let by = &ev["requested_by"];
        assert_eq!((by["manager"].as_str(), by["client"]["comm"].as_str()), (Some("docker"), Some("docker")), "{ev}");
        assert_eq!(
            (by["request"]["method"].as_str(), by["request"]["object"].as_str()),
            (Some(method), Some(name.as_str()))
        );
        let chain: Vec<(u64, &str)> = by["ancestry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["pid"].as_u64().unwrap(), a["comm"].as_str().unwrap()))
            .collect();
        let n = chain.len();
        assert!(n >= 4 && chain[n - 1].1 == "docker" && chain[n - 2].1 == "sh", "{chain:?}");
        assert_eq!(chain[n - 3], (outer as u64, "sh"), "the outer shell asked: {chain:?}");
        assert_eq!(ev["no_request"], Value::Null, "{ev}");
        assert_eq!(by["link"], "request", "read from the API request itself: {ev}");
        by.clone()
    };

    // runc's, not the kernel's SIGKILL to the init's children once it is gone.
    let from_runc = |w: &mut Podsig, sig: &str| {
        w.next_matching(&format!("runc's {sig}"), |v| v["signal"]["name"] == sig && v["sender"]["comm"] == "runc")
    };
    let outer = ask("stop -t 2");
    let term = from_runc(&mut w, "SIGTERM");
    let by = asked_by(&term, outer, "stop");
    assert_eq!(by["request"]["timeout_s"], 2, "{term}");
    let kill = from_runc(&mut w, "SIGKILL");
    assert_eq!(asked_by(&kill, outer, "stop")["client"]["pid"], by["client"]["pid"], "the same stop");
    assert!(kill["stop"]["summary"].as_str().unwrap().contains("requested by docker("), "{kill}");

    // Restarted: asked again once the watch follows the new task.
    let restart = |w: &mut Podsig| {
        dockerd.docker(&["start", &name]);
        let pid = stdout(&dockerd.docker(&["inspect", "-f", "{{.State.Pid}}", &name]));
        w.wait_stderr(&format!("(new pid {pid})"));
    };
    restart(&mut w);
    let outer = ask("kill");
    let kill = from_runc(&mut w, "SIGKILL");
    assert_eq!(asked_by(&kill, outer, "kill")["request"]["signal"], 9, "{kill}");

    restart(&mut w);
    let outer = ask("rm -f");
    asked_by(&from_runc(&mut w, "SIGKILL"), outer, "remove");

    // dockerd stopping what runs at its own shutdown: nobody asked.
    drop(busy);
    let run = ["run", "-d", "--network", "none", "--name", &name, image, "/bin/sh", "-c", FOREVER];
    stdout(&dockerd.docker(&run));
    // "Acted on its own" is said only once podsig has captured requests for a whole stop
    // window before the signal: a short window, waited out.
    let mut w =
        Podsig::start(&["watch", "--docker-socket", sock, "--container", &name, "-o", "json", "--stop-window", "2s"]);
    thread::sleep(Duration::from_millis(2500));
    dockerd.signal(libc::SIGTERM);
    let term = from_runc(&mut w, "SIGTERM");
    assert_eq!(term["requested_by"], Value::Null, "{term}");
    assert!(term["no_request"].as_str().unwrap().contains("acted on its own"), "{term}");
    let _ = fs::remove_dir_all(&dir);
}
