//! Findings measured for recall and precision on real processes.
//!
//! Recall: each suspicious sender (or ancestor) must be flagged `alert` or `warning`, also
//! when it exits within a millisecond of the kill, before anyone could read /proc.
//! Precision: benign ancestries that look odd — tmux, interpreters, Debian's alternatives,
//! a binary replaced by a package upgrade while it runs, a daemon's self-chosen title —
//! get no `alert` or `warning`.
//!
//! Only the processes a test made are judged: the machine running the tests has its own
//! ancestry (here, a runner executed from a memfd), which is flagged, correctly, on every
//! record.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use podsig_e2e::*;

/// memfd + fexecve, and a kernel thread's name: what droppers do.
const TOOLS_C: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    pid_t target = atoi(argv[2]);
    if (!strcmp(argv[1], "memfd")) {
        /* Copy the shell into an anonymous memory file and run it from there. */
        int in = open("/bin/sh", O_RDONLY);
        struct stat st; fstat(in, &st);
        int fd = memfd_create("payload", MFD_CLOEXEC);
        off_t off = 0;
        while (off < st.st_size) if (sendfile(fd, in, &off, st.st_size - off) <= 0) return 1;
        char cmd[64]; snprintf(cmd, sizeof cmd, "kill -TERM %d", target);
        char *args[] = {"sh", "-c", cmd, NULL};
        char *env[] = {NULL};
        fexecve(fd, args, env);
        return 1;
    }
    if (!strcmp(argv[1], "name")) {
        /* argv[3]: the name to take, as a kernel thread's or a daemon's title. */
        prctl(PR_SET_NAME, argv[3]);
        return kill(target, SIGTERM) ? 1 : 0;
    }
    return 2;
}
"#;

fn tools() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| c_program("findings-tools", TOOLS_C)).clone()
}

/// Findings about the processes this test made, as (pid, kind, severity), after checking
/// that every finding names an ancestor of the record exactly (pid, comm, start time).
fn judged(ev: &Value) -> Vec<(u64, String, String)> {
    let ancestry: Vec<(u64, &str, u64)> = ev["ancestry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["pid"].as_u64().unwrap(), a["comm"].as_str().unwrap(), a["start_ns"].as_u64().unwrap()))
        .collect();
    let mine = own_ancestry();
    let mut out = Vec::new();
    for f in ev["findings"].as_array().unwrap() {
        let key = (f["pid"].as_u64().unwrap(), f["comm"].as_str().unwrap(), f["start_ns"].as_u64().unwrap());
        assert!(ancestry.contains(&key), "finding {f} disagrees with the record's ancestry {ancestry:?}");
        assert!(matches!(f["evidence"].as_str(), Some("kernel" | "proc")), "{f}");
        if !mine.contains(&key.0) {
            out.push((key.0, f["kind"].as_str().unwrap().into(), f["severity"].as_str().unwrap().into()));
        }
    }
    out
}

fn flagged(ev: &Value, pid: u32, kind: &str) {
    let found = judged(ev);
    assert!(
        found.iter().any(|(p, k, s)| *p == pid as u64 && k == kind && (s == "alert" || s == "warning")),
        "pid {pid} must have an alert or warning {kind}: {found:?}\n{ev}"
    );
}

fn clean(ev: &Value) {
    let loud: Vec<_> = judged(ev).into_iter().filter(|(_, _, s)| s != "note").collect();
    assert!(loud.is_empty(), "no alert or warning for a benign ancestry: {loud:?}\n{ev}");
}

/// A watched sleep and a JSON watch on it.
fn watched() -> (Target, Podsig, String) {
    let target = Target::sleep();
    let t = target.pid().to_string();
    let w = Podsig::start(&["watch", "--pid", &t, "--signal", "TERM", "-o", "json"]);
    (target, w, t)
}

/// A copy of the shell at `path` (made executable), removed on drop.
struct Copy(PathBuf);

impl Copy {
    fn of(src: &Path, path: PathBuf) -> Self {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        copy_executable(src, &path);
        Self(path)
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

// Recall.

#[test]
fn recall_a_deleted_trojan_in_tmp_that_exits_at_once() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (_target, mut w, _) = watched();
    let trojan = Copy::of(Path::new("/bin/sh"), std::env::temp_dir().join(format!("vGhyM0-{}", std::process::id())));
    // The seed's story: a binary run from /tmp, deleted once started, runs `sh -c kill`.
    let mut c = Command::new(&trojan.0)
        .args(["-c", &format!("rm -f {}; sh -c 'kill -TERM $T'", trojan.0.display())])
        .env("T", _target.pid().to_string())
        .spawn()
        .unwrap();
    let pid = c.id();
    c.wait().unwrap();
    let ev = w.next_signal("SIGTERM");
    flagged(&ev, pid, "deleted_executable");
}

#[test]
fn recall_a_memfd_sender() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (_target, mut w, t) = watched();
    let mut c = Command::new(tools()).args(["memfd", &t]).spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    let ev = w.next_signal("SIGTERM");
    assert_eq!(ev["sender"]["pid"], pid, "{ev}");
    flagged(&ev, pid, "fileless_executable");
}

#[test]
fn recall_a_user_process_named_like_a_kernel_thread() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (_target, mut w, t) = watched();
    let mut c = Command::new(tools()).args(["name", &t, "kworker/0:2"]).spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    let ev = w.next_signal("SIGTERM");
    flagged(&ev, pid, "kernel_thread_name");
}

#[test]
fn recall_a_binary_run_from_dev_shm() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (_target, mut w, t) = watched();
    let bin = Copy::of(Path::new("/bin/sh"), PathBuf::from(format!("/dev/shm/podsig-e2e-{}", std::process::id())));
    let mut c = Command::new(&bin.0).args(["-c", &format!("kill -TERM {t}")]).spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    let ev = w.next_signal("SIGTERM");
    flagged(&ev, pid, "writable_location");
}

/// A container in all but name: a mount namespace whose root is a directory of ours.
struct Namespace {
    root: PathBuf,
    child: std::process::Child,
}

impl Namespace {
    fn new() -> Self {
        let root = scratch("nsroot");
        fs::create_dir_all(root.join("bin")).unwrap();
        copy_executable("/bin/busybox", root.join("bin/busybox"));
        let child = Command::new("unshare")
            .args(["--mount", "--root", root.to_str().unwrap(), "/bin/busybox", "sleep", "30"])
            .spawn()
            .unwrap();
        // Until the namespace's process runs inside its root.
        let deadline = std::time::Instant::now() + TIMEOUT;
        while fs::read_link(format!("/proc/{}/exe", child.id())).map_or(true, |e| !e.ends_with("busybox")) {
            assert!(std::time::Instant::now() < deadline, "unshare --root did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self { root, child }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.root);
    }
}

#[test]
fn recall_a_containers_binary_run_on_the_host() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let ns = Namespace::new();
    let (_target, mut w, t) = watched();
    // Through the container's own mount, as /proc/PID/root shows it from the host…
    let via_proc = format!("/proc/{}/root/bin/busybox", ns.child.id());
    let mut c = Command::new(&via_proc).args(["sh", "-c", &format!("kill -TERM {t}")]).spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    let ev = w.next_signal("SIGTERM");
    flagged(&ev, pid, "container_binary_on_host");
    // …and through the host's path to the same file system.
    let (_target, mut w, t) = watched();
    let mut c =
        Command::new(ns.root.join("bin/busybox")).args(["sh", "-c", &format!("kill -TERM {t}")]).spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    let ev = w.next_signal("SIGTERM");
    flagged(&ev, pid, "container_binary_on_host");
}

// The sender's executable.

/// A target that ignores SIGTERM, so one watch sees several senders in turn.
fn watched_steadfast() -> (Target, Podsig, String) {
    let target = Target::script("trap '' TERM; exec sleep 300");
    let t = target.pid().to_string();
    let w = Podsig::start(&["watch", "--pid", &t, "--signal", "TERM", "-o", "json"]);
    (target, w, t)
}

#[test]
fn the_senders_exe_is_what_it_ran_at_signal_time() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (_target, mut w, t) = watched_steadfast();
    // A path longer than the kernel keeps: the whole path can only come from /proc.
    let deep = scratch("exec-after-kill").join("a-directory-long-enough-that-the-kernel-keeps-only-the-tail/sh");
    let sh = Copy::of(Path::new("/bin/sh"), deep);
    let watcher = w.child.id();
    // It stops podsig, kills, execs another program, then lets podsig read /proc: the
    // same pid and start time, another executable.
    let script = format!("kill -STOP {watcher}; kill -TERM {t}; exec /bin/sh -c 'kill -CONT {watcher}; exec sleep 2'");
    let mut c = Command::new(&sh.0).args(["-c", &script]).spawn().unwrap();
    let pid = c.id();
    let ev = w.next_signal("SIGTERM");
    assert_eq!(ev["sender"]["pid"], pid, "{ev}");
    let me = ev["ancestry"].as_array().unwrap().last().unwrap().clone();
    assert!(me["exe"]["path"].as_str().unwrap().ends_with("-only-the-tail/sh"), "the kernel kept the tail\n{ev}");
    assert_eq!(ev["sender"]["exe"], Value::Null, "not what it exec'd afterwards\n{ev}");
    c.wait().unwrap();
    // The same file while it lives: /proc's whole path, the very file the kernel saw.
    let mut c = Command::new(&sh.0).args(["-c", &format!("kill -TERM {t}; sleep 2")]).spawn().unwrap();
    let ev = w.next_signal("SIGTERM");
    assert_eq!(ev["sender"]["exe"], sh.0.to_str().unwrap(), "{ev}");
    c.wait().unwrap();
}

// Precision.

#[test]
fn precision_an_ancestry_through_tmux() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (_target, mut w, t) = watched();
    let socket = scratch("tmux-precision").join("sock");
    let o = Command::new("tmux")
        .arg("-S")
        .arg(&socket)
        .args(["new-session", "-d", &format!("sh -c 'kill -TERM {t}; sleep 1'")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ev = w.next_signal("SIGTERM");
    assert!(ev["ancestry"].as_array().unwrap().iter().any(|a| a["comm"] == "tmux: server"), "{ev}");
    clean(&ev);
    let _ = Command::new("tmux").arg("-S").arg(&socket).arg("kill-server").status();
}

#[test]
fn precision_an_ancestry_through_python3_and_cc() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (_target, mut w, t) = watched();
    let st = Command::new("python3").args(["-c", &format!("import os; os.kill({t}, 15)")]).status().unwrap();
    assert!(st.success());
    let ev = w.next_signal("SIGTERM");
    assert_eq!(ev["sender"]["comm"], "python3", "{ev}");
    clean(&ev);

    // Debian's cc is a chain of alternatives to x86_64-linux-gnu-gcc-12; its -wrapper runs
    // the kill as cc's child.
    let (_target, mut w, t) = watched();
    let dir = scratch("cc");
    let _ = Command::new("cc")
        .args(["-wrapper", &format!("sh,-c,kill -TERM {t}"), "-x", "c", "-c", "/dev/null", "-o"])
        .arg(dir.join("out.o"))
        .output()
        .unwrap();
    let ev = w.next_signal("SIGTERM");
    assert!(ev["ancestry"].as_array().unwrap().iter().any(|a| a["comm"] == "cc"), "{ev}");
    clean(&ev);
}

#[test]
fn precision_a_binary_replaced_by_an_upgrade_while_it_runs() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (_target, mut w, t) = watched();
    let dir = PathBuf::from(format!("/usr/local/lib/podsig-e2e-{}", std::process::id()));
    let app = Copy::of(Path::new("/bin/sh"), dir.join("app"));
    let gate = Gate::new();
    let mut c = Command::new(&app.0)
        .args(["-c", &format!("while [ ! -e {} ]; do sleep 0.02; done; sh -c 'kill -TERM {t}'", gate.path().display())])
        .spawn()
        .unwrap();
    // dpkg's way: the new file next to the old, renamed over it while the old one runs.
    let new = dir.join("app.dpkg-new");
    copy_executable("/bin/sh", &new);
    fs::rename(&new, &app.0).unwrap();
    gate.go();
    c.wait().unwrap();
    let ev = w.next_signal("SIGTERM");
    let found = judged(&ev);
    assert!(
        found.iter().any(|(p, k, s)| *p == c.id() as u64 && k == "replaced_executable" && s == "note"),
        "an upgrade is a note: {found:?}"
    );
    clean(&ev);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn precision_a_daemon_that_names_itself() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (_target, mut w, t) = watched();
    // sshd names its session processes `sshd: user@pts/0`: a title, not an impersonation.
    let dir = PathBuf::from(format!("/usr/local/lib/podsig-e2e-sshd-{}", std::process::id()));
    let sshd = Copy::of(&tools(), dir.join("sshd"));
    let st = Command::new(&sshd.0).args(["name", &t, "sshd: root@pts/0"]).status().unwrap();
    assert!(st.success());
    let ev = w.next_signal("SIGTERM");
    assert!(ev["sender"]["comm"].as_str().unwrap().starts_with("sshd: root"), "{ev}");
    clean(&ev);
    let _ = fs::remove_dir_all(&dir);
}
