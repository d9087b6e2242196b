//! Verdicts from real evidence: an OOM kill in a memory cgroup, a fault, a SIGPIPE from
//! write, coreutils' timeout, and suspicious processes in a sender's ancestry.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use podsig_e2e::*;

/// A memory cgroup with a small limit (v1 where mounted, else v2), removed on drop.
struct MemCgroup {
    dir: PathBuf,
    /// Path as /proc/PID/cgroup shows it.
    path: String,
}

impl MemCgroup {
    fn new(limit: u64) -> Self {
        let name = format!("podsig-e2e-oom-{}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let (root, limit_file) = if v1.join("memory.limit_in_bytes").exists() {
            (v1.to_path_buf(), "memory.limit_in_bytes")
        } else {
            let root = PathBuf::from("/sys/fs/cgroup");
            let _ = fs::write(root.join("cgroup.subtree_control"), "+memory");
            (root, "memory.max")
        };
        let dir = root.join(&name);
        let _ = fs::create_dir(&dir);
        fs::write(dir.join(limit_file), limit.to_string()).expect("set memory limit");
        // Keep the kernel from swapping instead of killing (v1 knob; absent on v2).
        let _ = fs::write(dir.join("memory.swappiness"), "0");
        let _ = fs::write(dir.join("memory.swap.max"), "0");
        Self { dir, path: format!("/{name}") }
    }

    fn add(&self, pid: u32) {
        fs::write(self.dir.join("cgroup.procs"), pid.to_string()).expect("move into cgroup");
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        for _ in 0..100 {
            if fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn oom_kill_in_a_memory_cgroup() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let cg = MemCgroup::new(48 << 20);
    // tail keeps a line that never ends: it grows until the cgroup's OOM killer stops it.
    let (mut target, gate) = Target::gated("exec tail /dev/zero");
    let t = target.pid();
    cg.add(t);
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "-o", "json"]);
    gate.go();
    let ev = w.next_signal("SIGKILL");
    assert_eq!(ev["code"]["name"], "SI_KERNEL");
    assert_eq!(ev["cause"], "oom_kill", "{ev}");
    assert_eq!(ev["syscall"], Value::Null);
    let oom = &ev["oom"];
    assert_eq!(oom["pid"], t);
    assert!(oom["anon_rss_kb"].as_u64().unwrap() > 20_000, "{oom}");
    assert!(oom["oom_score_adj"].is_i64(), "{oom}");
    assert_eq!(oom["memory_cgroup"], cg.path.as_str(), "{oom}");
    assert_eq!(oom["memory_limit_bytes"], 48u64 << 20);
    assert!(ev["cause_detail"].as_str().unwrap().contains("OOM killer"));
    assert_eq!(w.next_kind("exit")["signal"]["name"], "SIGKILL");
    assert!(w.wait().0.success());
    target.wait();
}

#[test]
fn segfault_is_the_kernel_with_its_code() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (mut target, gate) = Target::gated("exec python3 -c 'import ctypes; ctypes.string_at(0)'");
    let t = target.pid();
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "-o", "json"]);
    gate.go();
    let ev = w.next_signal("SIGSEGV");
    assert_eq!(ev["code"]["name"], "SEGV_MAPERR");
    assert_eq!(ev["cause"], "kernel");
    assert_eq!(ev["syscall"], Value::Null);
    assert_eq!(ev["sender"]["pid"], t);
    assert!(ev["cause_detail"].as_str().unwrap().contains("SEGV_MAPERR"), "{ev}");
    target.wait();
}

#[test]
fn sigpipe_from_write_is_told_from_kill() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let gate_file = std::env::temp_dir().join(format!("podsig-e2e-pipe-{}", std::process::id()));
    let _ = fs::remove_file(&gate_file);
    // `yes` writes into a pipe whose reader is gone: the kernel raises SIGPIPE in write(2).
    let mut target = Command::new("sh")
        .args(["-c", &format!("while [ ! -e {} ]; do sleep 0.02; done; exec yes", gate_file.display())])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    drop(target.stdout.take());
    let t = target.id();
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "-o", "json"]);
    fs::write(&gate_file, "").unwrap();
    let ev = w.next_signal("SIGPIPE");
    assert_eq!(ev["code"]["name"], "SI_USER", "the same si_code as kill(2)");
    assert_eq!(ev["sender"]["pid"], t);
    assert_eq!(ev["cause"], "kernel", "{ev}");
    assert_eq!(ev["syscall"], Value::Null);
    assert!(ev["cause_detail"].as_str().unwrap().contains("write(2)"), "{ev}");
    target.wait().unwrap();
    let _ = fs::remove_file(&gate_file);
}

#[test]
fn timeout_is_a_process_sending_with_kill() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let mut w = Podsig::start(&["watch", "--all", "--signal", "TERM", "-o", "json"]);
    let mut timeout = Command::new("timeout").args(["0.2", "sleep", "5"]).spawn().unwrap();
    let tpid = timeout.id();
    let ev = loop {
        let ev = w.next_kind("signal");
        if ev["sender"]["pid"] == tpid {
            break ev;
        }
    };
    assert_eq!(ev["sender"]["comm"], "timeout");
    assert_eq!(ev["target"]["comm"], "sleep");
    assert_eq!(ev["cause"], "process");
    assert_eq!(ev["syscall"], "kill");
    timeout.wait().unwrap();
    w.signal(libc::SIGINT);
    assert!(w.wait().0.success());
}

fn findings_of(ev: &Value, pid: u32) -> Vec<String> {
    ev["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["pid"] == pid)
        .map(|f| f["kind"].as_str().unwrap().to_string())
        .collect()
}

fn realpath(p: &str) -> PathBuf {
    fs::canonicalize(p).unwrap()
}

#[test]
fn deleted_binary_in_tmp_is_flagged() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::sleep();
    let t = target.pid();
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "-o", "json"]);
    let evil = std::env::temp_dir().join(format!("evil-{}", std::process::id()));
    copy_executable(realpath("/bin/sh"), &evil);
    // The shell deletes its own executable, then sends, and lingers so /proc can be read.
    let mut sender = Command::new(&evil)
        .args(["-c", &format!("rm -f {}; kill -TERM $T; sleep 2", evil.display())])
        .env("T", t.to_string())
        .spawn()
        .unwrap();
    let ev = w.next_kind("signal");
    let f = findings_of(&ev, sender.id());
    assert!(f.contains(&"deleted_executable".to_string()), "{ev}");
    assert!(f.contains(&"writable_location".to_string()), "{ev}");
    sender.wait().unwrap();
}

#[test]
fn renamed_ancestor_is_a_note_shown_with_v() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::sleep();
    let t = target.pid();
    // A process whose name is not its executable's: a link named vGhyM0 to coreutils'
    // timeout, which runs the sender. Debian's alternatives (cc → gcc-12) look the same, so
    // alone it is a note, printed with -v.
    let mut w = Podsig::start(&["-v", "watch", "--pid", &t.to_string(), "-o", "text"]);
    let dir = std::env::temp_dir().join(format!("podsig-e2e-link-{}", std::process::id()));
    let _ = fs::create_dir(&dir);
    let link = dir.join("vGhyM0");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(realpath("/usr/bin/timeout"), &link).unwrap();
    let mut parent =
        Command::new(&link).args(["10", "sh", "-c", "kill -TERM $T; sleep 2"]).env("T", t.to_string()).spawn().unwrap();
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.starts_with("  note: vGhyM0(")) {
        let l = w.next_line();
        assert!(!l.contains("killed by"), "no note before the exit record: {lines:?}");
        lines.push(l);
    }
    let note = lines.iter().find(|l| l.starts_with("  note: vGhyM0(")).unwrap();
    assert!(note.contains(&format!("vGhyM0({})", parent.id())), "{note}");
    assert!(note.contains("calls itself 'vGhyM0' but runs /usr/bin/timeout"), "{note}");
    assert!(!lines.iter().any(|l| l.starts_with("  alert: vGhyM0") || l.starts_with("  warning: vGhyM0")), "{lines:?}");
    parent.wait().unwrap();
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn host_process_running_a_container_binary_is_flagged() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let busybox = Path::new("/bin/busybox");
    assert!(busybox.exists(), "busybox-static is installed by `cargo xtask test`");
    // A container in all but name: a mount namespace whose root is a directory of ours.
    let root = std::env::temp_dir().join(format!("podsig-e2e-root-{}", std::process::id()));
    fs::create_dir_all(root.join("bin")).unwrap();
    let inner = root.join("bin/busybox");
    copy_executable(busybox, &inner);
    let mut container = Command::new("unshare")
        .args(["--mount", "--root", root.to_str().unwrap(), "/bin/busybox", "sleep", "30"])
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(200));
    let target = Target::sleep();
    let t = target.pid();
    let mut w = Podsig::start(&["watch", "--pid", &t.to_string(), "-o", "json"]);
    // From the host, run the binary that lives in that container's filesystem.
    let mut sender =
        Command::new(&inner).args(["sh", "-c", "kill -TERM $T; sleep 2"]).env("T", t.to_string()).spawn().unwrap();
    let ev = w.next_kind("signal");
    let f = findings_of(&ev, sender.id());
    assert!(f.contains(&"container_binary_on_host".to_string()), "{ev}");
    sender.wait().unwrap();
    let _ = container.kill();
    let _ = container.wait();
    let _ = fs::remove_dir_all(&root);
}
