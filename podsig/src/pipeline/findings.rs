//! Reads the sender's ancestry for what a person would flag by eye: an executable deleted
//! or never on disk, one running from a place no installed program lives, a user process
//! named like a kernel thread or a daemon it is not, a host process running a container's
//! binary.
//!
//! The evidence is what the kernel captured about each ancestor's executable at signal
//! time (inode, link count, file system, mount, path), so a dropper that kills and exits a
//! moment later is still judged, and a pid reused since is never judged in its place.
//! /proc is only a cross-check, and only for the same process (pid and start time): where
//! the kernel had no executable to report (the SystemTap backend, kernels without BTF),
//! and for what only the present can say (is there still a file at that path?).
//!
//! Each rule's severity is chosen from what benign systems do (checked on this project's
//! own test suite and a Debian host): `alert` is strong alone, `warning` is worth a look,
//! `note` is weak alone and printed only with `-v`.

use std::{
    collections::{HashMap, HashSet},
    fs,
    os::unix::fs::MetadataExt,
    path::Path,
    time::{Duration, Instant},
};

use crate::event::{Ancestor, Evidence, Exe, Finding, FindingKind, Severity};

/// Executables whose processes are named after the script or applet they run, so comm and
/// executable differ by design.
const INTERPRETERS: &[&str] = &[
    "python", "perl", "ruby", "node", "bash", "sh", "dash", "zsh", "busybox", "java", "php", "env", "lua", "tclsh",
    "wish", "pwsh",
];
/// Names of kernel threads (and their prefixes): a process with its own memory and
/// executable that calls itself one of these is hiding in `ps`, which no packaged program
/// does.
const KERNEL_THREAD_NAMES: &[&str] = &[
    "kworker",
    "kthreadd",
    "ksoftirqd",
    "migration/",
    "rcu_",
    "rcuc/",
    "rcuog/",
    "rcuop/",
    "watchdog",
    "kswapd",
    "khugepaged",
    "kcompactd",
    "jbd2/",
    "kdevtmpfs",
    "irq/",
    "cpuhp/",
    "idle_inject",
    "oom_reaper",
    "kauditd",
    "writeback",
    "kblockd",
    "kintegrityd",
    "khungtaskd",
    "kthrotld",
    "ksmd",
    "scsi_eh",
    "xfsaild",
    "kmpathd",
];
/// Daemons malware names itself after. Their real binaries live in system directories
/// under (about) their own names; the titles they set (`sshd: user@pts/0`) start with it.
const DAEMONS: &[&str] = &[
    "sshd",
    "systemd",
    "init",
    "containerd",
    "dockerd",
    "kubelet",
    "crond",
    "cron",
    "rsyslogd",
    "nginx",
    "httpd",
    "apache2",
    "mysqld",
    "postgres",
    "dbus-daemon",
    "udevd",
    "systemd-journal",
    "snapd",
];
const SYSTEM_DIRS: &[&str] = &["/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/", "/opt/", "/snap/", "/nix/store/"];
/// World-writable places: anyone can drop a binary there, and builds and tests run from
/// them all day, so alone they say little.
const WORLD_WRITABLE: &[&str] = &["/tmp/", "/var/tmp/"];
/// POSIX shared memory: no packaged program runs from it.
const SHARED_MEMORY: &str = "/dev/shm/";
/// Kernel-internal memfd names of runc's self-copy (runc re-executes itself from a sealed
/// memfd so a container cannot overwrite the host's runc, CVE-2019-5736).
const RUNC_CLONE: &str = "memfd:runc_cloned";

const CACHE_MAX: usize = 4096;
const ROOTS_TTL: Duration = Duration::from_secs(2);
/// How long a judgement is reused: "is the file still there" changes with time.
const CACHE_TTL: Duration = Duration::from_secs(1);

/// What one rule found about one process.
#[derive(Clone, Debug)]
struct Found {
    kind: FindingKind,
    severity: Severity,
    evidence: Evidence,
    detail: String,
}

impl Found {
    fn new(kind: FindingKind, severity: Severity, evidence: Evidence, detail: String) -> Self {
        Self { kind, severity, evidence, detail }
    }
}

/// (dev, ino) of a root directory → a pid whose root it is.
type Roots = HashMap<(u64, u64), u32>;

#[derive(Default)]
pub struct Inspector {
    /// (pid, start_ns, executable inode) → when judged, and what was found. The inode is
    /// in the key because an exec changes what a process runs without changing its start.
    cache: HashMap<(u32, u64, u64), (Instant, Vec<Found>)>,
    /// (dev, ino) of the root directories of processes in other mount namespaces.
    container_roots: Option<(Instant, Roots)>,
}

impl Inspector {
    /// Findings about `ancestry`. `same_process(pid, start_ns)` says whether /proc's `pid`
    /// is still the process captured (for the /proc cross-checks).
    pub fn inspect(&mut self, ancestry: &[Ancestor], same_process: impl Fn(u32, u64) -> bool) -> Vec<Finding> {
        let mut out = Vec::new();
        let now = Instant::now();
        for a in ancestry.iter().filter(|a| a.pid > 0 && !a.kthread) {
            let key = (a.pid, a.start_ns, a.exe.as_ref().map_or(0, |e| e.ino));
            if self.cache.get(&key).is_none_or(|(t, _)| now.duration_since(*t) > CACHE_TTL) {
                let found = match &a.exe {
                    Some(exe) => self.judge(a, exe),
                    // No kernel evidence: /proc, for the very same process only.
                    None if same_process(a.pid, a.start_ns) => self.judge_from_proc(a),
                    None => continue,
                };
                if self.cache.len() >= CACHE_MAX {
                    self.cache.clear();
                }
                self.cache.insert(key, (now, found));
            }
            for f in &self.cache[&key].1 {
                out.push(Finding {
                    pid: a.pid,
                    comm: a.comm.clone(),
                    start_ns: a.start_ns,
                    kind: f.kind,
                    severity: f.severity,
                    evidence: f.evidence,
                    detail: f.detail.clone(),
                });
            }
        }
        out
    }

    /// The rules, over what the kernel captured.
    fn judge(&mut self, a: &Ancestor, exe: &Exe) -> Vec<Found> {
        use {Evidence::Kernel, FindingKind as K, Severity as S};
        let mut found = Vec::new();
        // A path the kernel walked to the root; "…/x" when it kept only the last parts.
        let full = exe.path.as_deref().filter(|p| p.starts_with('/'));
        let shown = exe.path.clone().unwrap_or_else(|| format!("inode {} on {} ({})", exe.ino, exe.dev, exe.fs));
        if exe.internal_mount {
            let name = shown.trim_start_matches('/');
            // runc's own sealed copy, run by runc: its CVE-2019-5736 defence, not a dropper.
            if name.starts_with(RUNC_CLONE) && a.comm.starts_with("runc") {
                found.push(Found::new(
                    K::FilelessExecutable,
                    S::Note,
                    Kernel,
                    format!("runs from runc's sealed copy of itself ({name}), its defence against CVE-2019-5736"),
                ));
            } else {
                found.push(Found::new(
                    K::FilelessExecutable,
                    S::Alert,
                    Kernel,
                    format!("runs from an anonymous memory file ({name}): no file system holds its executable"),
                ));
            }
        } else if exe.unlinked {
            found.push(match full.map(|p| (p, fs::metadata(p))) {
                // Something is at that path again: a package upgrade writes the new file and
                // renames it over the old one, which running processes keep.
                Some((p, Ok(_))) => Found::new(
                    K::ReplacedExecutable,
                    S::Note,
                    Kernel,
                    format!("its executable {p} was replaced by a newer file since it started (as an upgrade does)"),
                ),
                Some((p, Err(_))) => Found::new(
                    K::DeletedExecutable,
                    S::Alert,
                    Kernel,
                    format!("its executable {p} was deleted after it started, and nothing is at that path now"),
                ),
                None => Found::new(
                    K::DeletedExecutable,
                    S::Warning,
                    Kernel,
                    format!("its executable {shown} was deleted after it started"),
                ),
            });
        }
        found.extend(full.and_then(|p| place(p, Kernel)));
        found.extend(names(a, exe.path.as_deref(), exe.internal_mount, Kernel));
        if exe.other_mount_ns {
            found.push(Found::new(
                K::ContainerBinaryOnHost,
                S::Alert,
                Kernel,
                format!("runs {shown} from another mount namespace than its own (a container's file system)"),
            ));
        } else if let Some(p) = full
            && let Some(owner) = self.container_binary_on_host(a.pid, p)
        {
            found.push(Found::new(
                K::ContainerBinaryOnHost,
                S::Alert,
                Evidence::Proc,
                format!("a host process running {p}, from the root file system of the container holding pid {owner}"),
            ));
        }
        found
    }

    /// The same rules, from /proc, for a process the kernel gave no executable for.
    fn judge_from_proc(&mut self, a: &Ancestor) -> Vec<Found> {
        use {Evidence::Proc, FindingKind as K, Severity as S};
        let mut found = Vec::new();
        let Ok(exe) = fs::read_link(format!("/proc/{}/exe", a.pid)) else { return found };
        let exe = exe.to_string_lossy().into_owned();
        let (path, deleted) = match exe.strip_suffix(" (deleted)") {
            Some(p) => (p.to_string(), true),
            None => (exe.clone(), false),
        };
        let memfd = path.starts_with("/memfd:");
        if memfd {
            found.push(Found::new(
                K::FilelessExecutable,
                if path.starts_with(&format!("/{RUNC_CLONE}")) && a.comm.starts_with("runc") {
                    S::Note
                } else {
                    S::Alert
                },
                Proc,
                format!("runs from an anonymous memory file ({path})"),
            ));
        } else if deleted {
            let (kind, severity, detail) = if Path::new(&path).exists() {
                (
                    K::ReplacedExecutable,
                    S::Note,
                    format!("its executable {path} was replaced by a newer file since it started"),
                )
            } else {
                (K::DeletedExecutable, S::Alert, format!("its executable {path} was deleted after it started"))
            };
            found.push(Found::new(kind, severity, Proc, detail));
        }
        found.extend(place(&path, Proc));
        found.extend(names(a, Some(&path), memfd, Proc));
        if let Some(owner) = self.container_binary_on_host(a.pid, &path) {
            found.push(Found::new(
                K::ContainerBinaryOnHost,
                S::Alert,
                Proc,
                format!(
                    "a host process running {path}, from the root file system of the container holding pid {owner}"
                ),
            ));
        }
        found
    }

    /// Some(pid) of a containerised process whose root directory contains `exe`, when the
    /// process `pid` itself lives in the host's mount namespace.
    fn container_binary_on_host(&mut self, pid: u32, exe: &str) -> Option<u32> {
        // pid 1's namespace is the host's; where pid 1 is hidden from us (some sandboxes),
        // podsig's own is the best stand-in.
        let host_mnt = mnt_ns(1).or_else(|| mnt_ns(std::process::id()))?;
        // A process gone already: judged by where the file is, which the kernel captured.
        if mnt_ns(pid).is_some_and(|ns| ns != host_mnt) {
            return None;
        }
        let fresh = self.container_roots.as_ref().is_some_and(|(t, _)| t.elapsed() < ROOTS_TTL);
        if !fresh {
            self.container_roots = Some((Instant::now(), container_roots(host_mnt)));
        }
        let roots = &self.container_roots.as_ref()?.1;
        if roots.is_empty() {
            return None;
        }
        let mut dir = Path::new(exe).parent();
        while let Some(d) = dir {
            if d == Path::new("/") {
                break;
            }
            if let Ok(m) = fs::metadata(d)
                && let Some(owner) = roots.get(&(m.dev(), m.ino()))
            {
                return Some(*owner);
            }
            dir = d.parent();
        }
        None
    }
}

/// Where the executable lives: shared memory, where no installed program does (warning);
/// a world-writable directory, where builds and tests run all day (note).
fn place(path: &str, evidence: Evidence) -> Option<Found> {
    if path.starts_with(SHARED_MEMORY) {
        return Some(Found::new(
            FindingKind::WritableLocation,
            Severity::Warning,
            evidence,
            format!("runs from {path}, on the shared-memory file system, where no installed program lives"),
        ));
    }
    let dir = WORLD_WRITABLE.iter().find(|w| path.starts_with(**w))?;
    Some(Found::new(
        FindingKind::WritableLocation,
        Severity::Note,
        evidence,
        format!("runs from {path}, in world-writable {}", dir.trim_end_matches('/')),
    ))
}

/// What a process's name says against its executable: a kernel thread's name on a user
/// process (alert), a daemon's name on a binary that is not that daemon's (warning; alert
/// from a world-writable place or memory), any other difference (note: symlinked
/// alternatives such as cc → x86_64-linux-gnu-gcc-12, interpreters and programs that name
/// themselves, such as tmux and runc's init, all do it).
fn names(a: &Ancestor, path: Option<&str>, fileless: bool, evidence: Evidence) -> Vec<Found> {
    use {FindingKind as K, Severity as S};
    let comm = a.comm.as_str();
    let shown = path.unwrap_or("an executable with no path");
    let name =
        path.and_then(|p| Path::new(p).file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let from_writable = fileless
        || path.is_some_and(|p| p.starts_with(SHARED_MEMORY) || WORLD_WRITABLE.iter().any(|w| p.starts_with(*w)));
    let kernel_like = comm.starts_with('[') && comm.ends_with(']')
        || KERNEL_THREAD_NAMES.iter().any(|k| comm.starts_with(k) && !name.starts_with(k));
    if kernel_like {
        return vec![Found::new(
            K::KernelThreadName,
            S::Alert,
            evidence,
            format!("calls itself '{comm}', a kernel thread's name, but is a user process running {shown}"),
        )];
    }
    let daemon = DAEMONS.iter().find(|d| comm == **d || comm.starts_with(&format!("{d}:")));
    if let Some(d) = daemon
        && !name.starts_with(d)
        && (from_writable || !path.is_some_and(|p| SYSTEM_DIRS.iter().any(|s| p.starts_with(s))))
    {
        return vec![Found::new(
            K::Impersonation,
            if from_writable { S::Alert } else { S::Warning },
            evidence,
            format!("calls itself '{comm}' like the {d} daemon, but runs {shown}"),
        )];
    }
    let interpreter = INTERPRETERS.iter().any(|i| name.starts_with(i));
    if path.is_some() && !fileless && !interpreter && !comm_matches(comm, &name) {
        return vec![Found::new(
            K::CommMismatch,
            S::Note,
            evidence,
            format!("calls itself '{comm}' but runs {shown} (a symlink or a self-chosen name does this)"),
        )];
    }
    Vec::new()
}

/// comm is the executable's name cut to 15 bytes (TASK_COMM_LEN - 1), or a title that
/// starts with it (`tmux: server`, `sshd: root@pts/0`).
fn comm_matches(comm: &str, exe_name: &str) -> bool {
    let cut: String = exe_name.bytes().take(15).map(char::from).collect();
    comm == exe_name
        || comm == cut
        || exe_name.starts_with(comm) && comm.len() >= 15
        || comm.strip_prefix(exe_name).is_some_and(|rest| rest.starts_with(':'))
}

fn mnt_ns(pid: u32) -> Option<u64> {
    fs::metadata(format!("/proc/{pid}/ns/mnt")).ok().map(|m| m.ino())
}

/// Root directories, as (dev, ino), of processes in mount namespaces other than the host's.
fn container_roots(host_mnt: u64) -> HashMap<(u64, u64), u32> {
    let mut roots = HashMap::new();
    let mut seen_ns = HashSet::new();
    let Ok(dir) = fs::read_dir("/proc") else { return roots };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Some(ns) = mnt_ns(pid) else { continue };
        // Kernel threads have no executable; kdevtmpfs has a mount namespace of its own
        // rooted in devtmpfs, which is not a container.
        if ns == host_mnt || fs::read_link(format!("/proc/{pid}/exe")).is_err() || !seen_ns.insert(ns) {
            continue;
        }
        if let Ok(m) = fs::metadata(format!("/proc/{pid}/root/")) {
            let key = (m.dev(), m.ino());
            // A namespace whose root is the host's own root is not a container filesystem.
            if fs::metadata("/").is_ok_and(|r| (r.dev(), r.ino()) == key) {
                continue;
            }
            roots.entry(key).or_insert(pid);
        }
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ancestor(comm: &str, path: &str, f: impl FnOnce(&mut Exe)) -> Ancestor {
        let mut exe =
            Exe { path: Some(path.into()), ino: 7, dev: "254:0".into(), fs: "ext4".into(), ..Default::default() };
        f(&mut exe);
        Ancestor { pid: 4242, comm: comm.into(), start_ns: 9, exe: Some(exe), kthread: false }
    }

    fn judge(a: Ancestor) -> Vec<(FindingKind, Severity)> {
        Inspector::default().inspect(&[a], |_, _| false).into_iter().map(|f| (f.kind, f.severity)).collect()
    }

    #[test]
    fn comm_is_the_executable_name_cut_to_15_or_a_title() {
        assert!(comm_matches("sleep", "sleep"));
        assert!(comm_matches("containerd-shim", "containerd-shim-runc-v2"));
        assert!(comm_matches("tmux: server", "tmux"));
        assert!(!comm_matches("vGhyM0", "dash"));
        assert!(!comm_matches("sshd", "sleep"));
    }

    #[test]
    fn a_deleted_dropper_is_an_alert_an_upgrade_a_note() {
        let gone = ancestor("vGhyM0", "/tmp/podsig-no-such-file", |e| e.unlinked = true);
        assert!(judge(gone).contains(&(FindingKind::DeletedExecutable, Severity::Alert)));
        // Something is at the path again: what dpkg's rename over a running binary leaves.
        let upgraded = ancestor("bash", "/usr/bin/env", |e| e.unlinked = true);
        assert_eq!(judge(upgraded), vec![(FindingKind::ReplacedExecutable, Severity::Note)]);
    }

    #[test]
    fn memory_files_are_alerts_except_runcs_own_copy() {
        let memfd = ancestor("x", "/memfd:x", |e| e.internal_mount = true);
        assert_eq!(judge(memfd), vec![(FindingKind::FilelessExecutable, Severity::Alert)]);
        let runc = ancestor("runc:[2:INIT]", "/memfd:runc_cloned:/proc/self/exe", |e| e.internal_mount = true);
        assert_eq!(judge(runc), vec![(FindingKind::FilelessExecutable, Severity::Note)]);
    }

    #[test]
    fn names_that_impersonate_and_names_that_do_not() {
        assert_eq!(
            judge(ancestor("kworker/0:1", "/usr/local/bin/x", |_| ())),
            vec![(FindingKind::KernelThreadName, Severity::Alert)]
        );
        assert_eq!(
            judge(ancestor("[kthreadd]", "/opt/x", |_| ())),
            vec![(FindingKind::KernelThreadName, Severity::Alert)]
        );
        assert!(judge(ancestor("sshd", "/tmp/x", |_| ())).contains(&(FindingKind::Impersonation, Severity::Alert)));
        assert_eq!(judge(ancestor("sshd", "/home/u/x", |_| ())), vec![(FindingKind::Impersonation, Severity::Warning)]);
        // Benign: alternatives, titles, interpreters, the real daemon.
        assert!(
            judge(ancestor("cc", "/usr/bin/x86_64-linux-gnu-gcc-12", |_| ())).iter().all(|f| f.1 == Severity::Note)
        );
        assert!(judge(ancestor("tmux: server", "/usr/bin/tmux", |_| ())).is_empty());
        assert!(judge(ancestor("sshd: root@pts", "/usr/sbin/sshd", |_| ())).is_empty());
        assert!(judge(ancestor("python3", "/usr/bin/python3.11", |_| ())).is_empty());
        assert!(judge(ancestor("runc:[2:INIT]", "/usr/sbin/runc", |_| ())).iter().all(|f| f.1 == Severity::Note));
    }

    #[test]
    fn places() {
        assert_eq!(
            judge(ancestor("x", "/dev/shm/x", |e| e.fs = "tmpfs".into())),
            vec![(FindingKind::WritableLocation, Severity::Warning)]
        );
        assert_eq!(judge(ancestor("x", "/tmp/x", |_| ())), vec![(FindingKind::WritableLocation, Severity::Note)]);
        assert!(judge(ancestor("x", "/usr/bin/x", |_| ())).is_empty());
    }

    #[test]
    fn a_reused_pid_is_never_judged_from_proc() {
        let me = std::process::id();
        let a = Ancestor { pid: me, comm: "other".into(), start_ns: 1, ..Default::default() };
        assert!(Inspector::default().inspect(&[a], |_, _| false).is_empty());
    }
}
