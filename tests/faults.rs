//! Faults a node agent meets over months, each on the real system: a full disk (a small
//! tmpfs), a file system that is read-only at start or that the kernel remounts read-only
//! (ext4 with errors=remount-ro, on a loop device), a damaged or foreign history file,
//! containerd restarted or hung (a containerd of the test's own), and podsig itself stopped
//! during a storm.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use podsig_e2e::*;

/// A real-time signal nothing else on a shared machine sends: node-wide recorders in these
/// tests see only the tests' own.
const SIG: i32 = 45;
const SIG_NAME: &str = "SIGRTMIN+11";
/// Another, for the one test that counts every record its recorder sees (the others run
/// alongside it and send SIG).
const SIG_FULL: i32 = 46;
const SIG_FULL_NAME: &str = "SIGRTMIN+12";

/// A process that ignores `sig` (its signals are still generated, and reported).
fn ignoring_sig(sig: i32) -> Target {
    Target::script(&format!("trap '' {sig}; exec sleep 300"))
}

fn ignoring() -> Target {
    ignoring_sig(SIG)
}

fn kill(pid: u32, sig: i32) {
    // SAFETY: kill(2) to a test process or container init that ignores or traps `sig`.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0, "kill {pid}");
}

fn sh(cmd: &str) -> std::process::Output {
    let o = Command::new("sh").args(["-c", cmd]).output().expect("sh");
    assert!(o.status.success(), "`{cmd}`: {}", String::from_utf8_lossy(&o.stderr));
    o
}

/// A file system mounted for one test, unmounted on drop.
struct Mount {
    path: PathBuf,
}

impl Mount {
    fn new(path: PathBuf, args: &[&str]) -> Self {
        std::fs::create_dir_all(&path).unwrap();
        let o = Command::new("mount").args(args).arg(&path).output().unwrap();
        assert!(o.status.success(), "mount {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        Self { path }
    }

    fn tmpfs(path: PathBuf, size: &str) -> Self {
        Self::new(path, &["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
    }

    fn remount(&self, how: &str) {
        sh(&format!("mount -o remount,{how} {}", self.path.display()));
    }

    /// Unmounts, retrying while something still holds a file (false if it never let go).
    fn unmount(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if Command::new("umount").arg(&self.path).output().is_ok_and(|o| o.status.success()) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if std::fs::read_to_string("/proc/mounts").unwrap_or_default().contains(&format!(" {} ", self.path.display()))
            && !self.unmount()
        {
            let _ = Command::new("umount").arg("-l").arg(&self.path).output();
        }
    }
}

/// Fills the file system at `dir` to the last byte.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).unwrap();
    let block = vec![0xa5u8; 64 << 10];
    for size in [block.len(), 4096, 1] {
        while f.write_all(&block[..size]).and_then(|()| f.flush()).is_ok() {}
    }
    let _ = f.sync_all();
    p
}

fn signal_records(lines: &[String], sig: &str) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|v| v["kind"] == "signal" && v["signal"]["name"] == sig)
        .collect()
}

fn count(records: &[Value]) -> u64 {
    records.iter().map(|v| v["count"].as_u64().unwrap()).sum()
}

fn lines_with(p: &Podsig, text: &str) -> usize {
    p.stderr_lines.iter().filter(|l| l.contains(text)).count()
}

#[test]
// Long: one scenario in the order it happens; its steps share the processes and the watch.
fn a_full_disk_stops_storing_not_watching_and_storing_resumes_by_itself() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let dir = scratch("full");
    let mnt = Mount::tmpfs(dir.join("mnt"), "8m");
    let db = mnt.path.join("history.db");
    let dbs = db.to_str().unwrap();
    let (a, b) = (ignoring_sig(SIG_FULL), ignoring_sig(SIG_FULL));
    let mut rec = Podsig::start(&[
        "record",
        "--history",
        dbs,
        "--history-max",
        "4MiB",
        "--signal",
        "RTMIN+12",
        "--metrics-addr",
        "127.0.0.1:0",
        "-o",
        "json",
    ]);
    let addr = metrics_addr(&rec);
    let mut printed = Vec::new();
    kill(a.pid(), SIG_FULL);
    printed.push(rec.next_line());
    history_until(&db, &["--pid", &a.pid().to_string()], |v| v["signal"]["name"] == SIG_FULL_NAME);

    let filler = fill(&mnt.path);
    // Records far beyond what one held batch takes (a quarter MiB at this bound), each its
    // own record: alternating targets are never folded into one.
    let storm = 800;
    for i in 0..storm {
        kill(if i % 2 == 0 { a.pid() } else { b.pid() }, SIG_FULL);
    }
    let stopped = rec.wait_stderr("podsig: storing stopped");
    assert!(stopped.contains("full"), "{stopped}");
    // Watching and printing went on: every signal was reported.
    let deadline = Instant::now() + TIMEOUT;
    let mut reported = count(&signal_records(&printed, SIG_FULL_NAME));
    while reported < storm + 1 {
        assert!(
            Instant::now() < deadline,
            "{reported} of {} signals printed; stderr {:?}",
            storm + 1,
            rec.stderr_lines
        );
        let l = rec.next_line();
        reported += count(&signal_records(std::slice::from_ref(&l), SIG_FULL_NAME));
        printed.push(l);
    }
    // What could not be held for later is counted.
    let dropped = || sample(&http_get(&addr, "/metrics").1, "podsig_history_dropped_total").unwrap_or(-1.0);
    let deadline = Instant::now() + TIMEOUT;
    while dropped() <= 0.0 {
        assert!(Instant::now() < deadline, "nothing counted as not stored");
        thread::sleep(Duration::from_millis(200));
    }

    // Space is back: storing resumes by itself.
    std::fs::remove_file(&filler).unwrap();
    let resumed = rec.wait_stderr("podsig: storing resumed");
    assert!(resumed.contains("events were not stored"), "{resumed}");
    for _ in 0..5 {
        kill(a.pid(), SIG_FULL);
        printed.push(rec.next_line());
        thread::sleep(Duration::from_millis(20));
    }
    // Every record printed is stored or counted as not stored: none silently missing.
    let printed_records = signal_records(&printed, SIG_FULL_NAME).len() as f64;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let stored = history(&db, &["--signal", "RTMIN+12"]).len() as f64;
        let dropped = dropped();
        if stored + dropped == printed_records {
            eprintln!("full disk: {printed_records} records printed, {stored} stored, {dropped} counted not stored");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "printed {printed_records} != stored {stored} + not stored {dropped}; stderr {:?}",
            rec.stderr_lines
        );
        thread::sleep(Duration::from_millis(300));
    }
    rec.collect_stderr();
    assert_eq!(lines_with(&rec, "podsig: storing stopped"), 1, "{:?}", rec.stderr_lines);
    assert_eq!(lines_with(&rec, "podsig: storing resumed"), 1, "{:?}", rec.stderr_lines);
    rec.signal(libc::SIGINT);
    assert!(rec.wait().0.success());
    drop(mnt);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_read_only_file_system_at_start_is_waited_for() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let dir = scratch("ro-start");
    let mnt = Mount::tmpfs(dir.join("mnt"), "8m");
    mnt.remount("ro");
    let db = mnt.path.join("history.db");
    let target = ignoring();
    // A DaemonSet restarted while its volume is read-only: not a crash loop.
    let mut rec = Podsig::start(&["record", "--history", db.to_str().unwrap(), "--signal", "RTMIN+11", "-o", "json"]);
    let stopped = rec.wait_stderr("podsig: storing stopped");
    assert!(stopped.contains("Read-only file system"), "{stopped}");
    kill(target.pid(), SIG);
    let ev = rec.next_matching("the signal", |v| v["kind"] == "signal" && v["target"]["pid"] == target.pid());
    assert_eq!(ev["signal"]["name"], SIG_NAME);
    mnt.remount("rw");
    let resumed = rec.wait_stderr("podsig: storing resumed");
    assert!(resumed.contains("0 events were not stored"), "held while read-only, stored after: {resumed}");
    let stored = history_until(&db, &["--pid", &target.pid().to_string()], |v| v["kind"] == "signal");
    assert_eq!(stored["time"], ev["time"]);
    rec.signal(libc::SIGINT);
    assert!(rec.wait().0.success());
    drop(mnt);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_system_the_kernel_remounts_read_only_is_let_go_of_and_storing_resumes() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    // ext4 with errors=remount-ro on a loop device: a disk error makes the kernel remount it
    // read-only under the running recorder (a tmpfs cannot be remounted read-only while a
    // file on it is open for writing). Repaired the way an operator would: unmount (podsig
    // must have let go of its files), fsck, mount again.
    let dir = scratch("ext4");
    let image = dir.join("disk.img");
    sh(&format!("truncate -s 32M {0} && mkfs.ext4 -q -F {0}", image.display()));
    let mount_args = ["-o", "loop,errors=remount-ro", image.to_str().unwrap()];
    let mnt = Mount::new(dir.join("mnt"), &mount_args);
    let dev = String::from_utf8(sh(&format!("findmnt -n -o SOURCE {}", mnt.path.display())).stdout).unwrap();
    let dev = dev.trim().rsplit('/').next().unwrap().to_string();
    let trigger = PathBuf::from(format!("/sys/fs/ext4/{dev}/trigger_fs_error"));
    assert!(trigger.exists(), "{} missing: this kernel cannot be made to remount ext4 read-only", trigger.display());
    let db = mnt.path.join("history.db");
    let target = ignoring();
    let pid = target.pid().to_string();
    let mut rec = Podsig::start(&["record", "--history", db.to_str().unwrap(), "--signal", "RTMIN+11", "-o", "json"]);
    kill(target.pid(), SIG);
    let first = history_until(&db, &["--pid", &pid], |v| v["kind"] == "signal");

    std::fs::write(&trigger, "podsig e2e: a disk error").unwrap();
    assert!(std::fs::write(mnt.path.join("probe"), "x").is_err(), "the kernel made it read-only");
    for _ in 0..3 {
        kill(target.pid(), SIG);
        rec.next_matching("a signal while read-only", |v| v["kind"] == "signal" && v["target"]["pid"] == target.pid());
        thread::sleep(Duration::from_millis(200));
    }
    rec.wait_stderr("podsig: storing stopped");
    assert!(mnt.unmount(), "podsig still holds the history's files: the file system cannot be repaired");
    let st = Command::new("e2fsck").args(["-f", "-y"]).arg(&image).output().unwrap().status;
    assert!(st.code().is_some_and(|c| c <= 1), "e2fsck: {st}");
    let mnt = Mount::new(mnt.path.clone(), &mount_args);
    rec.wait_stderr("podsig: storing resumed");
    kill(target.pid(), SIG);
    let after = rec.next_matching("a signal after", |v| v["kind"] == "signal" && v["target"]["pid"] == target.pid());
    let stored = history_until(&db, &["--pid", &pid], |v| v["time"] == after["time"]);
    assert_eq!(stored["signal"]["name"], SIG_NAME);
    assert!(history(&db, &["--pid", &pid]).iter().any(|v| v["time"] == first["time"]), "what was stored before stays");
    rec.collect_stderr();
    assert_eq!(lines_with(&rec, "podsig: storing stopped"), 1, "{:?}", rec.stderr_lines);
    rec.signal(libc::SIGINT);
    assert!(rec.wait().0.success());
    drop(mnt);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_damaged_or_foreign_history_is_moved_aside_and_a_new_one_started() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    use std::os::unix::fs::PermissionsExt as _;
    let dir = scratch("damaged");
    let db = dir.join("history.db");
    let dbs = db.to_str().unwrap();
    let asides = || -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_str().unwrap().contains("history.db.broken-") && !p.to_str().unwrap().ends_with("-wal"))
            .collect();
        v.sort();
        v
    };
    let target = ignoring();
    let pid = target.pid().to_string();
    let garbage = b"\x13\x37 torn by a crash, or never a database \x00\xff".repeat(200);
    std::fs::write(&db, &garbage).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    for round in 1..=2 {
        let mut rec = Podsig::start(&["record", "--history", dbs, "--signal", "RTMIN+11", "-o", "json"]);
        rec.collect_stderr();
        let moved: Vec<&String> = rec.stderr_lines.iter().filter(|l| l.contains("moved it to")).collect();
        assert_eq!(moved.len(), 1, "one clear line: {:?}", rec.stderr_lines);
        assert!(moved[0].contains("is not a podsig history or is damaged"), "{}", moved[0]);
        let aside = asides();
        assert_eq!(aside.len(), round, "{aside:?}");
        assert!(moved[0].contains(aside[round - 1].to_str().unwrap()), "{} names {aside:?}", moved[0]);
        if round == 1 {
            assert_eq!(std::fs::read(&aside[0]).unwrap(), garbage, "moved, not changed");
        }
        kill(target.pid(), SIG);
        rec.next_matching("the signal", |v| v["kind"] == "signal" && v["target"]["pid"] == target.pid());
        history_until(&db, &["--pid", &pid], |v| v["kind"] == "signal");
        rec.signal(libc::SIGINT);
        assert!(rec.wait().0.success());
        // Next: a valid SQLite file of another program (its application id in the header).
        let mut bytes = std::fs::read(&db).unwrap();
        assert!(bytes.starts_with(b"SQLite format 3\0"));
        bytes[68..72].copy_from_slice(&0x0f0f_0f0fu32.to_be_bytes());
        std::fs::write(&db, &bytes).unwrap();
    }
    // A file podsig could not have made (world-readable, not SQLite) is someone else's: a
    // mistyped --history is refused in one line, the file untouched.
    let passwd = dir.join("passwd");
    std::fs::write(&passwd, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (st, _, err) = podsig_output(&["record", "--history", passwd.to_str().unwrap()]);
    assert!(!st.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is not a SQLite file, nor one podsig made"), "{err}");
    assert_eq!(std::fs::read_to_string(&passwd).unwrap(), "root:x:0:0:root:/root:/bin/bash\n");
    assert_eq!(std::fs::metadata(&passwd).unwrap().permissions().mode() & 0o777, 0o644);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The storm test saturates a core for seconds; the latency test is not run beside it (the
/// machine has two), so its bound measures podsig, not this binary's own storm.
static CPU_HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn uid(tag: &str) -> String {
    format!("podsig-e2e-{}-{tag}", std::process::id())
}

const TRAPS_USR1: &str = "trap 'echo usr1' USR1; while :; do sleep 1; done";

#[test]
fn containerd_restarted_during_a_container_watch_and_a_recorder() {
    let _suite = suite(module_path!());
    let Some(mut ctrd) = private_containerd("restart") else { return };
    let sock = ctrd.socket.clone();
    let id1 = uid("restart-1");
    let c1 = Container::start(&sock, &id1, ("default", "restart-web", "app"), TRAPS_USR1);
    let pid1 = c1.pid();
    let mut w = Podsig::start(&["watch", "--containerd-socket", &sock, "--container", &id1, "-o", "json"]);
    let dir = scratch("restart");
    let db = dir.join("history.db");
    let mut rec = Podsig::start(&[
        "record",
        "--history",
        db.to_str().unwrap(),
        "--containerd-socket",
        &sock,
        "--signal",
        "USR1",
        "-o",
        "json",
    ]);
    let usr1_to = |pid: u32| {
        move |v: &Value| v["kind"] == "signal" && v["signal"]["name"] == "SIGUSR1" && v["target"]["pid"] == pid
    };
    kill(pid1, libc::SIGUSR1);
    for p in [&mut w, &mut rec] {
        let ev = p.next_matching("USR1 to the container", usr1_to(pid1));
        assert_eq!(ev["target"]["container"]["pod"], "restart-web", "{ev}");
    }

    // containerd goes away (its containers run on under their shims): watching goes on.
    ctrd.down();
    for _ in 0..3 {
        kill(pid1, libc::SIGUSR1);
        for p in [&mut w, &mut rec] {
            let ev = p.next_matching("USR1 while containerd is down", usr1_to(pid1));
            assert_eq!(ev["target"]["container"]["id"], id1.as_str());
        }
        thread::sleep(Duration::from_millis(700));
    }
    for p in [&mut w, &mut rec] {
        p.wait_stderr("podsig: containerd does not answer");
    }
    ctrd.up().expect("containerd restarts");
    for p in [&mut w, &mut rec] {
        p.wait_stderr("podsig: containerd answers again");
    }
    // Names come back: a container podsig never saw is named, on screen and in the history.
    let id2 = uid("restart-2");
    let c2 = Container::start(&sock, &id2, ("default", "restart-new", "app2"), TRAPS_USR1);
    kill(c2.pid(), libc::SIGUSR1);
    let ev = rec.next_matching("USR1 to the new container", usr1_to(c2.pid()));
    assert_eq!(ev["target"]["container"]["pod"], "restart-new", "{ev}");
    let stored = history_until(&db, &["--pod", "restart-new"], |v| v["kind"] == "signal");
    assert_eq!(stored["target"]["container"]["name"], "app2");
    // The container watch follows its container's next task through the new containerd.
    ctr(&sock, &["task", "kill", "-s", "SIGKILL", &id1]);
    w.next_kind("exit");
    thread::sleep(Duration::from_millis(300));
    ctr(&sock, &["task", "delete", &id1]);
    ctr(&sock, &["task", "start", "-d", &id1]);
    let new_pid = c1.pid();
    w.wait_stderr(&format!("podsig: following {id1} (new pid {new_pid})"));
    kill(new_pid, libc::SIGUSR1);
    let ev = w.next_matching("USR1 to the new task", usr1_to(new_pid));
    assert_eq!(ev["target"]["container"]["pod"], "restart-web");
    for p in [w, rec] {
        p.signal(libc::SIGINT);
        assert!(p.wait().0.success());
    }
    drop((c2, c1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn containerd_hung_for_10_s_does_not_hold_back_events() {
    let _suite = suite(module_path!());
    let _alone = CPU_HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let Some(ctrd) = private_containerd("hung") else { return };
    let sock = ctrd.socket.clone();
    let id = uid("hung");
    let c = Container::start(&sock, &id, ("default", "hung-web", "app"), TRAPS_USR1);
    let pid = c.pid();
    let args = ["watch", "--all", "--signal", "USR1", "--containerd-socket", &sock, "-o", "json"];
    let usr1 = |v: &Value| v["kind"] == "signal" && v["signal"]["name"] == "SIGUSR1" && v["target"]["pid"] == pid;
    let mut before = Podsig::start(&args);
    kill(pid, libc::SIGUSR1);
    assert_eq!(before.next_matching("USR1", usr1)["target"]["container"]["pod"], "hung-web");

    // Hung, not gone: a stopped containerd still accepts connections and answers nothing.
    ctrd.signal(libc::SIGSTOP);
    // Should the test fail while it hangs, it is continued before anything asks it to
    // clean up (ctr would wait on it forever).
    struct Continue<'a>(&'a Containerd);
    impl Drop for Continue<'_> {
        fn drop(&mut self) {
            self.0.signal(libc::SIGCONT);
        }
    }
    let _continue = Continue(&ctrd);
    let hung = Instant::now();
    // More watches, started while containerd hangs: they cannot learn the names. A
    // container watch finds its container in the cgroups instead.
    let mut during = Podsig::start(&args);
    let mut during_container =
        Podsig::start(&["watch", "--containerd-socket", &sock, "--container", &id, "-o", "json"]);
    let bound = Duration::from_millis(100);
    let mut worst = Duration::ZERO;
    let mut rounds = 0;
    while hung.elapsed() < Duration::from_secs(10) {
        let sent = Instant::now();
        kill(pid, libc::SIGUSR1);
        for (p, named) in [(&mut before, true), (&mut during, false), (&mut during_container, false)] {
            let (at, ev) = p.next_matching_at("USR1 while containerd hangs", usr1);
            let latency = at.duration_since(sent);
            worst = worst.max(latency);
            assert!(latency < bound, "printed {latency:?} after the signal, while containerd hangs: {ev}");
            assert_eq!(ev["target"]["container"]["id"], id.as_str());
            // What was learned before stays; what was not is left out, not waited for.
            let name = &ev["target"]["container"]["name"];
            assert_eq!(name.is_string(), named, "{ev}");
        }
        rounds += 1;
        thread::sleep(Duration::from_millis(500));
    }
    eprintln!("containerd hung {:?}: {rounds} signals, each printed within {worst:?}", hung.elapsed());
    ctrd.signal(libc::SIGCONT);
    for p in [&mut during, &mut during_container] {
        p.wait_stderr("podsig: containerd answers again");
    }
    kill(pid, libc::SIGUSR1);
    for (p, which) in [(&mut during, "--all"), (&mut during_container, "--container")] {
        let ev = p.next_matching("USR1 once containerd answers", usr1);
        assert_eq!(ev["target"]["container"]["pod"], "hung-web", "{which} names on later records: {ev}");
    }
    for p in [before, during, during_container] {
        p.signal(libc::SIGINT);
        assert!(p.wait().0.success());
    }
    drop(c);
}

#[test]
fn podsig_stopped_5_s_in_a_storm_loses_nothing_silently() {
    let _suite = suite(module_path!());
    if privileged() {
        stopped_in_a_storm(true);
    }
}

/// The same storm of one signal: the kernel counts it while podsig is stopped, so nothing
/// is even lost.
#[test]
fn podsig_stopped_5_s_in_a_storm_of_one_signal_loses_nothing() {
    let _suite = suite(module_path!());
    if privileged() {
        stopped_in_a_storm(false);
    }
}

fn stopped_in_a_storm(alternate: bool) {
    let _alone = CPU_HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let target = Target::script("trap '' USR1 USR2; exec sleep 300");
    let t = target.pid();
    let mut w =
        Podsig::start(&["watch", "--pid", &t.to_string(), "--signal", "USR1", "--signal", "USR2", "-o", "json"]);
    let sent = 1_000_000u64;
    let progress = Arc::new(AtomicU64::new(0));
    let p = progress.clone();
    // Paced to last several seconds, so podsig is stopped in the middle of it.
    let storm = thread::spawn(move || {
        for i in 0..sent {
            // Alternating, so the kernel cannot count them as one run: a record each, and
            // a buffer that overflows while podsig is stopped.
            kill(t, if alternate && i % 2 == 1 { libc::SIGUSR2 } else { libc::SIGUSR1 });
            if i % 10_000 == 0 {
                p.store(i, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(60));
            }
        }
        p.store(sent, Ordering::Relaxed);
    });
    while progress.load(Ordering::Relaxed) < 100_000 {
        thread::sleep(Duration::from_millis(5));
    }
    w.signal(libc::SIGSTOP);
    let stopped_at = progress.load(Ordering::Relaxed);
    thread::sleep(Duration::from_secs(5));
    let resumed_at = progress.load(Ordering::Relaxed);
    w.signal(libc::SIGCONT);
    storm.join().unwrap();
    eprintln!("storm: podsig stopped from signal {stopped_at} to {resumed_at} of {sent}");
    assert!(resumed_at < sent, "the storm went on after podsig was continued");
    let (mut received, mut lost) = (0u64, 0u64);
    let deadline = Instant::now() + TIMEOUT;
    while received + lost < sent {
        assert!(Instant::now() < deadline, "received {received} + lost {lost} of {sent}: some vanished silently");
        let v = w.next_json();
        match v["kind"].as_str() {
            Some("signal") if v["target"]["pid"] == t => received += v["count"].as_u64().unwrap(),
            Some("lost") => lost += v["count"].as_u64().unwrap(),
            _ => {}
        }
    }
    eprintln!("storm: {received} received, {lost} reported lost, of {sent}");
    w.signal(libc::SIGINT);
    let (st, rest, err) = w.wait();
    assert!(st.success());
    for l in rest {
        let v: Value = serde_json::from_str(&l).unwrap();
        match v["kind"].as_str() {
            Some("signal") if v["target"]["pid"] == t => received += v["count"].as_u64().unwrap(),
            Some("lost") => lost += v["count"].as_u64().unwrap(),
            _ => {}
        }
    }
    assert_eq!(received + lost, sent, "every signal received or counted lost");
    if alternate {
        assert!(lost > 0, "podsig stopped for 5 s in a storm: its ring buffer overflowed, and that is said");
        assert!(err.iter().any(|l| l.starts_with("podsig: lost ")), "and said on stderr too: {err:?}");
    } else {
        assert_eq!(lost, 0, "one signal again and again is counted in the kernel: {err:?}");
    }
}
