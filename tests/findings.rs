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
    if (!strcmp(argv[1], "term")) return kill(target, SIGTERM) ? 1 : 0;
    if (!strcmp(argv[1], "memfd-name") && argc > 3) {
        /* This program, from an anonymous memory file, then `name`. */
        int in = open("/proc/self/exe", O_RDONLY);
        struct stat st; fstat(in, &st);
        int fd = memfd_create("payload", MFD_CLOEXEC);
        off_t off = 0;
        while (off < st.st_size) if (sendfile(fd, in, &off, st.st_size - off) <= 0) return 1;
        char *args[] = {"findings-tools", "name", argv[2], argv[3], NULL};
        char *env[] = {NULL};
        fexecve(fd, args, env);
        return 1;
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
        assert!(matches!(f["evidence"].as_str(), Some("kernel" | "proc" | "argv" | "cmdline")), "{f}");
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

// What actually ran: the script an interpreter ran, the program the loader ran.

/// The findings about `pid` as (kind, severity, evidence, script), each checked to name
/// that process.
fn about(ev: &Value, pid: u32) -> Vec<(String, String, String, Option<String>)> {
    judged(ev);
    ev["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["pid"] == pid)
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (s("kind"), s("severity"), s("evidence"), f["script"].as_str().map(String::from))
        })
        .collect()
}

/// A file with `text`, made executable, removed on drop.
fn script_file(path: PathBuf, text: &str) -> Copy {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, text).unwrap();
    let st = Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    assert!(st.success());
    Copy(path)
}

/// A target that ignores SIGTERM, so one watch sees several senders in turn.
fn watched_steadfast() -> (Target, Podsig, String) {
    let target = Target::script("trap '' TERM; exec sleep 300");
    let t = target.pid().to_string();
    let w = Podsig::start(&["watch", "--pid", &t, "--signal", "TERM", "-o", "json"]);
    (target, w, t)
}

fn command(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    c
}

/// Runs `cmd` to success; its pid.
fn run(cmd: &mut Command) -> u32 {
    let mut c = cmd.spawn().unwrap();
    let pid = c.id();
    assert!(c.wait().unwrap().success(), "{cmd:?} failed");
    pid
}

#[test]
fn recall_a_python_script_in_tmp() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (_target, mut w, t) = watched_steadfast();
    let dir = scratch("python-script");
    let py = script_file(dir.join("kill.py"), "import os, sys\nos.kill(int(sys.argv[1]), 15)\n");
    // With an option before the script: the script is what ran, and argv at signal time
    // says so, also when the sender is gone before podsig reads /proc.
    let pid = run(Command::new("python3").args(["-u"]).arg(&py.0).arg(&t));
    let ev = w.next_signal("SIGTERM");
    assert_eq!(ev["sender"]["pid"], pid, "{ev}");
    let script = py.0.to_str().unwrap().to_string();
    assert_eq!(
        about(&ev, pid),
        vec![("writable_location".into(), "note".into(), "argv".into(), Some(script.clone()))],
        "a script in /tmp is a note, as a binary there is\n{ev}"
    );
    // Relative to its working directory, read while it lives.
    let rel = script_file(dir.join("stay.py"), "import os, sys, time\nos.kill(int(sys.argv[1]), 15)\ntime.sleep(2)\n");
    let pid = run(Command::new("python3").arg("stay.py").arg(&t).current_dir(&dir));
    let ev = w.next_signal("SIGTERM");
    let stay = rel.0.to_str().unwrap().to_string();
    assert_eq!(about(&ev, pid), vec![("writable_location".into(), "note".into(), "argv".into(), Some(stay))], "{ev}");
    // A script that deletes itself before it kills: an alert, like a deleted binary.
    let gone = dir.join("gone.py");
    fs::write(&gone, "import os, sys\nos.remove(sys.argv[0])\nos.kill(int(sys.argv[1]), 15)\n").unwrap();
    let pid = run(Command::new("python3").arg(&gone).arg(&t));
    let ev = w.next_signal("SIGTERM");
    let found = about(&ev, pid);
    let gone = Some(gone.to_str().unwrap().to_string());
    assert!(found.contains(&("deleted_executable".into(), "alert".into(), "argv".into(), gone)), "{found:?}\n{ev}");
}

#[test]
fn recall_a_shell_script_in_dev_shm() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (_target, mut w, t) = watched_steadfast();
    let path = PathBuf::from(format!("/dev/shm/podsig-e2e-{}.sh", std::process::id()));
    let sh = script_file(path.clone(), "#!/bin/sh\nkill -TERM $1\n");
    let shm = Some(path.to_str().unwrap().to_string());
    let warning = |evidence: &str| ("writable_location".to_string(), "warning".into(), evidence.into(), shm.clone());
    // `bash FILE`, `sh -e FILE`, and the script run directly (its shebang).
    let file = sh.0.to_str().unwrap();
    for mut cmd in [command("bash", &[file, &t]), command("sh", &["-e", file, &t]), command(file, &[&t])] {
        let pid = run(&mut cmd);
        let ev = w.next_signal("SIGTERM");
        assert_eq!(about(&ev, pid), vec![warning("argv")], "{cmd:?}\n{ev}");
    }
    // An ancestor running the script, alive while podsig reads its cmdline (keyed by pid
    // and start time): for ancestors the kernel captures no argv.
    let child = script_file(path.with_extension("parent.sh"), "#!/bin/sh\n/bin/kill -TERM $1\nsleep 1\nexit 0\n");
    let pid = run(Command::new("bash").arg(&child.0).arg(&t));
    let ev = w.next_signal("SIGTERM");
    assert_eq!(ev["sender"]["ppid"], pid, "/bin/kill is the sender, the shell its parent\n{ev}");
    let parent = Some(child.0.to_str().unwrap().to_string());
    assert_eq!(about(&ev, pid), vec![("writable_location".into(), "warning".into(), "cmdline".into(), parent)], "{ev}");
    // A script that deletes itself while the shell holds it open: the kernel marks the open
    // file deleted, and nothing is at its path.
    let gone = script_file(path.with_extension("gone.sh"), "rm -f \"$0\"; kill -TERM $1; sleep 1\n");
    let pid = run(Command::new("bash").arg(&gone.0).arg(&t));
    let ev = w.next_signal("SIGTERM");
    let gone = Some(gone.0.to_str().unwrap().to_string());
    assert_eq!(
        about(&ev, pid),
        vec![
            ("deleted_executable".into(), "alert".into(), "argv".into(), gone.clone()),
            ("writable_location".into(), "warning".into(), "argv".into(), gone)
        ],
        "{ev}"
    );
    // Inline code that mentions the file is not the file.
    let pid = run(Command::new("bash").args(["-c", &format!("kill -TERM {t} # {}", sh.0.display())]));
    let ev = w.next_signal("SIGTERM");
    assert_eq!(about(&ev, pid), vec![], "{ev}");
}

/// The dynamic loader of this machine's programs.
fn loader() -> Option<&'static str> {
    [
        "/lib64/ld-linux-x86-64.so.2",
        "/lib/ld-linux-aarch64.so.1",
        "/lib/ld-musl-x86_64.so.1",
        "/lib/ld-musl-aarch64.so.1",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
}

#[test]
fn recall_a_program_run_through_the_dynamic_loader() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let Some(ld) = loader() else {
        eprintln!("skipped: no known dynamic loader on this machine");
        return;
    };
    let (_target, mut w, t) = watched_steadfast();
    let shm = Copy::of(&tools(), PathBuf::from(format!("/dev/shm/podsig-e2e-ld-{}", std::process::id())));
    let pid = run(Command::new(ld).arg(&shm.0).args(["term", &t]));
    let ev = w.next_signal("SIGTERM");
    let path = Some(shm.0.to_str().unwrap().to_string());
    assert_eq!(about(&ev, pid), vec![("writable_location".into(), "warning".into(), "argv".into(), path)], "{ev}");
    let tmp = Copy::of(&tools(), scratch("ld").join("prog"));
    let pid = run(Command::new(ld).args(["--argv0", "sshd"]).arg(&tmp.0).args(["term", &t]));
    let ev = w.next_signal("SIGTERM");
    let path = Some(tmp.0.to_str().unwrap().to_string());
    assert_eq!(about(&ev, pid), vec![("writable_location".into(), "note".into(), "argv".into(), path)], "{ev}");
}

#[test]
fn recall_a_kernel_threads_name_from_memory_is_one_alert() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (_target, mut w, t) = watched_steadfast();
    let one = |ev: &Value, pid: u32| {
        let found = about(ev, pid);
        assert_eq!(found.len(), 1, "one finding: {found:?}\n{ev}");
        assert_eq!((found[0].0.as_str(), found[0].1.as_str()), ("kernel_thread_name", "alert"), "{ev}");
    };
    let shm = Copy::of(&tools(), PathBuf::from(format!("/dev/shm/podsig-e2e-kt-{}", std::process::id())));
    let pid = run(Command::new(&shm.0).args(["name", &t, "kworker/0:2"]));
    one(&w.next_signal("SIGTERM"), pid);
    let tmp = Copy::of(&tools(), scratch("kt").join("kworker"));
    let pid = run(Command::new(&tmp.0).args(["name", &t, "kworker/1:0"]));
    one(&w.next_signal("SIGTERM"), pid);
    let pid = run(Command::new(tools()).args(["memfd-name", &t, "kworker/u8:1"]));
    one(&w.next_signal("SIGTERM"), pid);
    // perl names its process after $0 (argv too, so argv no longer names the script).
    let pl = script_file(
        PathBuf::from(format!("/dev/shm/podsig-e2e-kt-{}.pl", std::process::id())),
        "$0 = 'kworker/2:1'; kill 'TERM', $ARGV[0] or exit 1;\n",
    );
    let pid = run(Command::new("perl").arg(&pl.0).arg(&t));
    let ev = w.next_signal("SIGTERM");
    assert_eq!(ev["sender"]["comm"], "kworker/2:1", "{ev}");
    one(&ev, pid);
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
fn precision_installed_scripts_inline_code_and_modules() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let (_target, mut w, t) = watched_steadfast();
    let dir = PathBuf::from(format!("/usr/local/lib/podsig-e2e-scripts-{}", std::process::id()));
    let py = script_file(dir.join("kill.py"), "import os, sys\nos.kill(int(sys.argv[1]), 15)\n");
    let sh = script_file(dir.join("kill.sh"), "#!/bin/sh\nkill -TERM $1\n");
    let tmp = scratch("module");
    fs::write(tmp.join("podsig_e2e_kill.py"), "import os, sys\nos.kill(int(sys.argv[1]), 15)\n").unwrap();
    let inline = format!("import os; os.kill({t}, 15)");
    let mut module = command("python3", &["-m", "podsig_e2e_kill", &t]);
    module.env("PYTHONPATH", &tmp);
    let cases = [
        command("python3", &[py.0.to_str().unwrap(), &t]),
        command("sh", &["-e", sh.0.to_str().unwrap(), &t]),
        command("perl", &["-e", "kill 'TERM', $ARGV[0] or exit 1", &t]),
        command("python3", &["-c", &inline, "/dev/shm/x.py"]),
        // A module lives on the interpreter's path, not in argv: not judged as a file.
        module,
    ];
    for mut cmd in cases {
        let pid = run(&mut cmd);
        let ev = w.next_signal("SIGTERM");
        assert_eq!(about(&ev, pid), vec![], "nothing about {cmd:?}\n{ev}");
    }
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
