//! Reads the sender's ancestry for what a person would flag by eye: an executable deleted
//! or never on disk, one running from a place no installed program lives, a user process
//! named like a kernel thread or a daemon it is not, a host process running a container's
//! binary.
//!
//! The evidence is what the kernel captured about each ancestor's executable at signal
//! time (inode, link count, file system, mount, path), so a dropper that kills and exits a
//! moment later is still judged, and a pid reused since is never judged in its place.
//! /proc is only a cross-check, and only for the same process (pid and start time) still
//! running the file the kernel captured (exec keeps both): where the kernel had no
//! executable to report (the SystemTap backend, kernels without BTF), and for what only the
//! present can say (is there still a file at that path?).
//!
//! What ran is also the script an interpreter was given, or the program the dynamic loader
//! was given (`script`): the same location, deletion and name rules apply to that file,
//! found in the sender's argv captured at signal time, or a live ancestor's cmdline.
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

use crate::{
    event::{Ancestor, Evidence, Exe, Finding, FindingKind, Severity},
    pipeline::script::{self, Ran, Runner},
    proc,
};

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
/// File systems in memory: where /dev/shm, memfds and scratch space live, never an
/// installed program.
const MEMORY_FS: &[&str] = &["tmpfs", "ramfs", "hugetlbfs"];
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
    /// The script or program an interpreter or the loader ran, when the finding is about it.
    script: Option<String>,
}

impl Found {
    fn new(kind: FindingKind, severity: Severity, evidence: Evidence, detail: String) -> Self {
        Self { kind, severity, evidence, detail, script: None }
    }

    fn about(mut self, script: &str) -> Self {
        self.script = Some(script.to_string());
        self
    }
}

/// (pid, start_ns, executable inode, judged with the sender's argv).
type JudgedKey = (u32, u64, u64, bool);

/// (dev, ino) of a root directory → a pid whose root it is.
type Roots = HashMap<(u64, u64), u32>;

#[derive(Default)]
pub struct Inspector {
    /// (pid, start_ns, executable inode, judged with the sender's argv) → when judged, and
    /// what was found. The inode is in the key because an exec changes what a process runs
    /// without changing its start.
    cache: HashMap<JudgedKey, (Instant, Vec<Found>)>,
    /// (dev, ino) of the root directories of processes in other mount namespaces.
    container_roots: Option<(Instant, Roots)>,
}

/// One process of the ancestry, with what else is known of it.
struct Subject<'a> {
    a: &'a Ancestor,
    /// /proc's `a.pid` is this process, still running what it ran at signal time.
    alive: bool,
    /// Its argv, and where it was read.
    argv: Option<(Vec<String>, Evidence)>,
    /// A live process whose /proc/PID/root shows this one's files (see `view_of`).
    root: &'a dyn Fn() -> Option<u32>,
}

/// A process's executable as judged: from the kernel, or from /proc for the same process.
struct Image {
    /// The whole path, when known.
    path: Option<String>,
    /// The path, its last components, or the inode.
    shown: String,
    /// Its file name, when known.
    name: String,
    /// Where its identity (deleted, memory file) came from.
    evidence: Evidence,
    /// Where its whole path came from: the kernel, or /proc for the very same file.
    path_evidence: Evidence,
    fileless: bool,
    /// On a file system in memory (tmpfs, ramfs, a memfd): nothing installed lives there.
    memory_backed: bool,
    fs: String,
}

/// The script (or program) an interpreter (or the loader) ran, as judged.
struct Script {
    ran: Ran,
    evidence: Evidence,
    /// The file's whole path, when it can be told.
    path: Option<String>,
    /// As argv names it.
    given: Option<String>,
    /// From an anonymous memory file.
    fileless: bool,
    /// What it is and how it was found, for details: `script /tmp/x.py (named in its argv
    /// at signal time)`.
    words: String,
}

impl Inspector {
    /// Findings about `ancestry` (root first, the sender last). `sender_argv`: the sender's
    /// argv as the kernel captured it at signal time, when it did. `live(a)`: /proc's
    /// `a.pid` is still that process (pid and start time) running what the kernel captured
    /// (the same inode and device; with none captured, a thread still of the same comm).
    /// Every /proc cross-check is made on that condition only, since exec keeps the pid
    /// and the start time.
    pub fn inspect(
        &mut self,
        ancestry: &[Ancestor],
        sender_argv: Option<&[String]>,
        live: impl Fn(&Ancestor) -> bool,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        let now = Instant::now();
        let sender_argv = sender_argv.filter(|v| !v.is_empty());
        for (i, a) in ancestry.iter().enumerate().filter(|(_, a)| a.pid > 0 && !a.kthread) {
            let own_argv = sender_argv.filter(|_| i + 1 == ancestry.len());
            let key = (a.pid, a.start_ns, a.exe.as_ref().map_or(0, |e| e.ino), own_argv.is_some());
            if self.cache.get(&key).is_none_or(|(t, _)| now.duration_since(*t) > CACHE_TTL) {
                let alive = live(a);
                if a.exe.is_none() && !alive && own_argv.is_none() {
                    // Nothing captured, and /proc no longer shows this process.
                    continue;
                }
                let argv = match own_argv {
                    Some(v) => Some((v.to_vec(), Evidence::Argv)),
                    None if alive => proc::cmdline(a.pid).filter(|v| !v.is_empty()).map(|v| (v, Evidence::Cmdline)),
                    None => None,
                };
                let root = || if alive { Some(a.pid) } else { view_of(&ancestry[..i], a, &live) };
                let found = self.judge(&Subject { a, alive, argv, root: &root });
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
                    script: f.script.clone(),
                });
            }
        }
        out
    }

    /// Every rule, over one process: its executable, the script or program it was told to
    /// run, and its name against both.
    fn judge(&mut self, s: &Subject) -> Vec<Found> {
        let mut found = Vec::new();
        let image = match &s.a.exe {
            Some(exe) => Some(self.kernel_image(s, exe, &mut found)),
            None if s.alive => self.proc_image(s.a, &mut found),
            None => None,
        };
        if let Some(img) = &image
            && let Some(p) = &img.path
        {
            found.extend(place(&format!("from {p}"), p, img.path_evidence));
        }
        let script = script(s, image.as_ref(), &mut found);
        // A finding about the script already says what it is and how it was found.
        let said = found.iter().any(|f| f.script.is_some());
        found.extend(names(s.a, image.as_ref(), script.as_ref().filter(|_| !said), script.as_ref()));
        one_alert_for_a_kernel_thread_name(found, image.as_ref())
    }

    /// The executable as the kernel captured it, and the rules about the file itself.
    // Long: the rules about the file itself (memory-backed, deleted or replaced, another mount
    // namespace's), each a finding with its own words, on the one path worked out first.
    fn kernel_image(&mut self, s: &Subject, exe: &Exe, found: &mut Vec<Found>) -> Image {
        use {Evidence::Kernel, FindingKind as K, Severity as S};
        let a = s.a;
        // A path the kernel walked to the root; when it kept only the last parts, /proc's
        // path, but only for the same file (`alive` compares inode and device).
        let (full, path_evidence) = match exe.path.as_deref().filter(|p| p.starts_with('/')) {
            Some(p) => (Some(p.to_string()), Kernel),
            None if s.alive && !exe.internal_mount => (proc_exe(a.pid).map(|(p, _)| p), Evidence::Proc),
            None => (None, Kernel),
        };
        let shown = full
            .clone()
            .or_else(|| exe.path.clone())
            .unwrap_or_else(|| format!("inode {} on {} ({})", exe.ino, exe.dev, exe.fs));
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
            // Something is at that path again: a package upgrade writes the new file and
            // renames it over the old one, which running processes keep. Asked of the
            // process's own file system view where there is one, else of podsig's.
            let present = full
                .as_deref()
                .map(|p| (s.root)().and_then(|r| proc::exists_for(r, p)).unwrap_or_else(|| fs::metadata(p).is_ok()));
            found.push(match (full.as_deref(), present) {
                (Some(p), Some(true)) => Found::new(
                    K::ReplacedExecutable,
                    S::Note,
                    Kernel,
                    format!("its executable {p} was replaced by a newer file since it started (as an upgrade does)"),
                ),
                (Some(p), _) => Found::new(
                    K::DeletedExecutable,
                    S::Alert,
                    Kernel,
                    format!("its executable {p} was deleted after it started, and nothing is at that path now"),
                ),
                (None, _) => Found::new(
                    K::DeletedExecutable,
                    S::Warning,
                    Kernel,
                    format!("its executable {shown} was deleted after it started"),
                ),
            });
        }
        if exe.other_mount_ns {
            found.push(Found::new(
                K::ContainerBinaryOnHost,
                S::Alert,
                Kernel,
                format!("runs {shown} from another mount namespace than its own (a container's file system)"),
            ));
        } else if let Some(p) = &full
            && let Some(owner) = self.container_binary_on_host(a.pid, p)
        {
            found.push(Found::new(
                K::ContainerBinaryOnHost,
                S::Alert,
                Evidence::Proc,
                format!("a host process running {p}, from the root file system of the container holding pid {owner}"),
            ));
        }
        let memory_backed = exe.internal_mount || MEMORY_FS.contains(&exe.fs.as_str());
        Image {
            name: file_name(full.as_deref().or(exe.path.as_deref()).unwrap_or_default()),
            path: full,
            shown,
            evidence: Kernel,
            path_evidence,
            fileless: exe.internal_mount,
            memory_backed,
            fs: exe.fs.clone(),
        }
    }

    /// The executable from /proc, for a process the kernel gave none for (the same
    /// process, still running what it ran: see `inspect`), and the rules about the file.
    fn proc_image(&mut self, a: &Ancestor, found: &mut Vec<Found>) -> Option<Image> {
        use {Evidence::Proc, FindingKind as K, Severity as S};
        let (path, deleted) = proc_exe(a.pid)?;
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
            let (kind, severity, detail) =
                if proc::exists_for(a.pid, &path).unwrap_or_else(|| Path::new(&path).exists()) {
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
        let fs = proc::exe_fs_magic(a.pid).map(proc::fs_name).unwrap_or_default();
        Some(Image {
            name: file_name(&path),
            shown: path.clone(),
            memory_backed: memfd || MEMORY_FS.contains(&fs.as_str()),
            path: (!memfd).then_some(path),
            evidence: Proc,
            path_evidence: Proc,
            fileless: memfd,
            fs,
        })
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

/// Where a file that runs lives: shared memory, where no installed program does (warning);
/// a world-writable directory, where builds and tests run all day (note). `what` is what
/// runs, in words: `from /tmp/x`, `script /tmp/x.py (named in …)`.
fn place(what: &str, path: &str, evidence: Evidence) -> Option<Found> {
    if path.starts_with(SHARED_MEMORY) {
        return Some(Found::new(
            FindingKind::WritableLocation,
            Severity::Warning,
            evidence,
            format!("runs {what}, on the shared-memory file system, where no installed program lives"),
        ));
    }
    let dir = WORLD_WRITABLE.iter().find(|w| path.starts_with(**w))?;
    Some(Found::new(
        FindingKind::WritableLocation,
        Severity::Note,
        evidence,
        format!("runs {what}, in world-writable {}", dir.trim_end_matches('/')),
    ))
}

fn writable(path: &str) -> bool {
    path.starts_with(SHARED_MEMORY) || WORLD_WRITABLE.iter().any(|w| path.starts_with(*w))
}

/// The script or program an interpreter or the dynamic loader ran, found in its argv, and
/// the location and deletion rules applied to it as to an executable.
// Long: which interpreter, which argument is its file, then the executable's location and
// deletion rules on that file, each with its own words; they share the path worked out first.
fn script(s: &Subject, image: Option<&Image>, found: &mut Vec<Found>) -> Option<Script> {
    use {FindingKind as K, Severity as S};
    let (argv, evidence) = s.argv.as_ref()?;
    // Which interpreter: the executable's name; with no executable known (a backend that
    // captures none, for a sender gone already), what argv[0] says it is.
    let exe_name = image.map(|i| i.name.clone()).filter(|n| !n.is_empty());
    let runner = Runner::of(&exe_name.unwrap_or_else(|| file_name(&argv[0])), argv)?;
    let how = match evidence {
        Evidence::Argv => "named in its argv at signal time".to_string(),
        _ => format!("named in /proc/{}/cmdline", s.a.pid),
    };
    let ran = script::what_ran(runner, argv);
    // A command line longer than the kernel keeps has `…` where its middle was.
    let ran = match ran {
        Ran::File(f) if f == "…" => Ran::CutShort,
        r => r,
    };
    let Ran::File(given) = &ran else {
        let words = format!("{} ({how})", ran.words(runner));
        return Some(Script { ran, evidence: *evidence, path: None, given: None, fileless: false, words });
    };
    let what = runner.runs();
    let mut out = Script {
        ran: ran.clone(),
        evidence: *evidence,
        path: None,
        given: Some(given.clone()),
        fileless: false,
        words: format!("{what} {given} ({how})"),
    };
    match locate(s, given) {
        Located::Memfd(name) => {
            out.fileless = true;
            found.push(
                Found::new(
                    K::FilelessExecutable,
                    S::Alert,
                    *evidence,
                    format!("runs its {what} {given} ({how}) from an anonymous memory file ({name}): no file system holds it"),
                )
                .about(given),
            );
        }
        Located::Path { path, deleted, present, from_cwd } => {
            if from_cwd {
                out.words = format!("{what} {path} ({how} as {given}, relative to its working directory)");
            } else if path != *given {
                out.words = format!("{what} {path} ({how} as {given})");
            }
            let words = &out.words;
            match (deleted, present) {
                (Some(true), Some(true)) => found.push(
                    Found::new(
                        K::ReplacedExecutable,
                        S::Note,
                        *evidence,
                        format!("its {words} was replaced by a newer file since it started (as an upgrade does)"),
                    )
                    .about(&path),
                ),
                (Some(true), Some(false)) => found.push(
                    Found::new(
                        K::DeletedExecutable,
                        S::Alert,
                        *evidence,
                        format!("its {words} was deleted after it started, and nothing is at that path now"),
                    )
                    .about(&path),
                ),
                // Deleted, says the kernel's mark on the open file; whether a newer file took
                // its path (an upgrade) cannot be read.
                (Some(true), None) => found.push(
                    Found::new(
                        K::DeletedExecutable,
                        S::Warning,
                        *evidence,
                        format!("its {words} was deleted after it started"),
                    )
                    .about(&path),
                ),
                // Not at its path, named absolutely: gone since the interpreter opened it. A
                // relative path is left alone: the working directory may have changed.
                (_, Some(false)) if !from_cwd => found.push(
                    Found::new(
                        K::DeletedExecutable,
                        S::Alert,
                        *evidence,
                        format!("its {words} is not at that path now: deleted after it started"),
                    )
                    .about(&path),
                ),
                _ => {}
            }
            found.extend(place(words, &path, *evidence).map(|f| f.about(&path)));
            out.path = Some(path);
        }
        Located::Stream(what) => out.words = format!("{} read from {what} ({how})", out.words),
        Located::Unknown(why) => out.words = format!("{}: {why}", out.words),
    }
    Some(out)
}

/// Where the file argv names is, as far as can be told.
enum Located {
    /// A path, with what the process's descriptors and mappings say (`deleted`: open and
    /// unlinked since, or open and not), and whether something is at the path now, as the
    /// process sees its file system.
    Path { path: String, deleted: Option<bool>, present: Option<bool>, from_cwd: bool },
    /// An anonymous memory file behind a descriptor (`/dev/fd/3`).
    Memfd(String),
    /// A pipe or socket behind a descriptor (`bash <(curl …)`): no file.
    Stream(String),
    /// It cannot be told, and why.
    Unknown(&'static str),
}

fn locate(s: &Subject, given: &str) -> Located {
    let pid = s.a.pid;
    if let Some(fd) = descriptor(given, pid) {
        if !s.alive {
            return Located::Unknown("a descriptor of a process that has exited");
        }
        let Some(target) = proc::fd_target(pid, fd) else {
            return Located::Unknown("a descriptor it has closed since");
        };
        let (path, deleted) = strip_deleted(&target);
        if path.starts_with("/memfd:") {
            return Located::Memfd(path.trim_start_matches('/').to_string());
        }
        if !path.starts_with('/') {
            return Located::Stream(path);
        }
        let present = proc::exists_for(pid, &path);
        return Located::Path { path, deleted: Some(deleted), present, from_cwd: false };
    }
    let relative = !given.starts_with('/');
    if s.alive {
        // A shell holds its script open, the loader maps its program: the kernel's own
        // name for the file, whatever the working directory is now.
        let open = proc::open_and_mapped(pid);
        if let Some((path, deleted)) = open.iter().map(|o| strip_deleted(o)).find(|(p, _)| same_name(p, given)) {
            let present = proc::exists_for(pid, &path);
            return Located::Path { path, deleted: Some(deleted), present, from_cwd: relative };
        }
        let path = if relative {
            let Some(cwd) = proc::cwd(pid).filter(|c| c.starts_with('/') && !c.ends_with(" (deleted)")) else {
                return Located::Unknown("relative to a working directory that cannot be read");
            };
            normalize(&format!("{cwd}/{given}"))
        } else {
            normalize(given)
        };
        let present = proc::exists_for(pid, &path);
        return Located::Path { path, deleted: None, present, from_cwd: relative };
    }
    if relative {
        return Located::Unknown("relative to the working directory of a process that has exited");
    }
    let path = normalize(given);
    let present = (s.root)().and_then(|r| proc::exists_for(r, &path));
    Located::Path { path, deleted: None, present, from_cwd: false }
}

/// The descriptor a `/dev/fd/N` or `/proc/self/fd/N` path names (what the kernel passes to
/// the interpreter of a script run by `fexecve`).
fn descriptor(path: &str, pid: u32) -> Option<u32> {
    let own = format!("/proc/{pid}/fd/");
    ["/dev/fd/", "/proc/self/fd/", own.as_str()].iter().find_map(|p| path.strip_prefix(p)?.parse().ok())
}

/// A /proc link's target without the kernel's ` (deleted)` mark, and whether it had it.
fn strip_deleted(target: &str) -> (String, bool) {
    match target.strip_suffix(" (deleted)") {
        Some(p) => (p.to_string(), true),
        None => (target.to_string(), false),
    }
}

/// Whether the whole path `open` is the file argv names as `given` (absolute, or relative
/// to some directory: then its last components).
fn same_name(open: &str, given: &str) -> bool {
    let given = normalize(given);
    if given.starts_with('/') {
        return open == given;
    }
    !given.is_empty() && !given.starts_with("..") && open.strip_suffix(given.as_str()).is_some_and(|d| d.ends_with('/'))
}

/// `a/./b//c` as `a/b/c`, and `a/x/../b` as `a/b`, without touching the file system.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            ".." if path.starts_with('/') => {}
            _ => parts.push(c),
        }
    }
    let joined = parts.join("/");
    if path.starts_with('/') { format!("/{joined}") } else { joined }
}

fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// /proc/PID/exe's path, and whether the kernel marks it deleted.
fn proc_exe(pid: u32) -> Option<(String, bool)> {
    let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    Some(strip_deleted(&exe.to_string_lossy()))
}

/// For a process gone already, a live process whose /proc/PID/root shows the files it saw:
/// its nearest live ancestor, if its executable is at the same path there, the very file
/// the kernel captured (inode and device). A parent in the host's file system does not see
/// a container's, nor one with a private /tmp: without that proof, nothing is asked.
fn view_of(ancestors: &[Ancestor], a: &Ancestor, live: &dyn Fn(&Ancestor) -> bool) -> Option<u32> {
    let exe = a.exe.as_ref()?;
    let path = exe.path.as_deref().filter(|p| p.starts_with('/'))?;
    let parent = ancestors.iter().rev().find(|p| p.pid > 0 && !p.kthread && live(p))?;
    (proc::identity_for(parent.pid, path)? == (exe.ino, exe.dev.clone())).then_some(parent.pid)
}

/// What a process's name says against what it runs: a kernel thread's name on a user
/// process (alert), a daemon's name on a file that is not that daemon's (warning; alert
/// from a world-writable place or memory), any other difference (note: symlinked
/// alternatives such as cc → x86_64-linux-gnu-gcc-12, interpreters and programs that name
/// themselves, such as tmux and runc's init, all do it). What it runs is its executable
/// and, for an interpreter or the loader, the script or program argv names: comm may be
/// either's name (a shebang script's process is named after the script).
///
/// `untold`: the script, when no other finding names it yet (its words then go in this one).
fn names(a: &Ancestor, image: Option<&Image>, untold: Option<&Script>, script: Option<&Script>) -> Vec<Found> {
    use {FindingKind as K, Severity as S};
    let comm = a.comm.as_str();
    let exe_name = image.map_or("", |i| i.name.as_str());
    let script_name = script.and_then(|s| s.given.as_deref()).map(file_name).unwrap_or_default();
    let own_names = [exe_name, script_name.as_str()];
    let named = |prefix: &str| own_names.iter().any(|n| !n.is_empty() && n.starts_with(prefix));
    let from_writable = image.is_some_and(|i| i.fileless || i.path.as_deref().is_some_and(writable))
        || script.is_some_and(|s| s.fileless || s.path.as_deref().is_some_and(writable));
    let memory_backed = image.is_some_and(|i| i.memory_backed) || script.is_some_and(|s| s.fileless);
    let mut shown = image.map_or_else(|| "an executable podsig could not see".to_string(), |i| i.shown.clone());
    if let Some(s) = untold {
        shown += &format!(", which runs {}", s.words);
    }
    let evidence = image.map(|i| i.evidence).or(script.map(|s| s.evidence)).unwrap_or_default();
    // A program that is named like a kernel thread because that is its own name (the
    // watchdog daemon) is one, unless it runs from where no installed program lives.
    let kernel_like = comm.starts_with('[') && comm.ends_with(']')
        || KERNEL_THREAD_NAMES.iter().any(|k| comm.starts_with(k) && (from_writable || memory_backed || !named(k)));
    if kernel_like {
        return vec![Found::new(
            K::KernelThreadName,
            S::Alert,
            evidence,
            format!("calls itself '{comm}', a kernel thread's name, but is a user process running {shown}"),
        )];
    }
    // The file whose place says whether it is installed: the script, when argv named one.
    let ran = match script {
        Some(s) if matches!(s.ran, Ran::File(_)) => s.path.as_deref(),
        _ => image.and_then(|i| i.path.as_deref()),
    };
    let daemon = DAEMONS.iter().find(|d| comm == **d || comm.starts_with(&format!("{d}:")));
    if let Some(d) = daemon
        && !named(d)
        && (from_writable || !ran.is_some_and(|p| SYSTEM_DIRS.iter().any(|s| p.starts_with(s))))
    {
        let evidence = script.filter(|s| s.path.is_some()).map_or(evidence, |s| s.evidence);
        return vec![Found::new(
            K::Impersonation,
            if from_writable { S::Alert } else { S::Warning },
            evidence,
            format!("calls itself '{comm}' like the {d} daemon, but runs {shown}"),
        )];
    }
    let interpreter = INTERPRETERS.iter().any(|i| exe_name.starts_with(i));
    if let Some(i) = image.filter(|i| i.path.is_some() && !i.fileless)
        && !interpreter
        && !comm_matches(comm, exe_name)
        && (script_name.is_empty() || !comm_matches(comm, &script_name))
    {
        return vec![Found::new(
            K::CommMismatch,
            S::Note,
            i.evidence,
            format!("calls itself '{comm}' but runs {shown} (a symlink or a self-chosen name does this)"),
        )];
    }
    Vec::new()
}

/// A process named like a kernel thread is one alert, whatever else its files show: the
/// other rules' facts (where it runs from, a memory file, a deleted file) go into that
/// alert's words instead of standing beside it at another severity.
fn one_alert_for_a_kernel_thread_name(found: Vec<Found>, image: Option<&Image>) -> Vec<Found> {
    let Some(k) = found.iter().position(|f| f.kind == FindingKind::KernelThreadName) else { return found };
    let mut one = found[k].clone();
    let others: Vec<&Found> = found.iter().enumerate().filter(|(i, _)| *i != k).map(|(_, f)| f).collect();
    if let Some(i) = image.filter(|i| i.memory_backed && !i.fileless && others.is_empty()) {
        one.detail += &format!(", on a file system in memory ({})", i.fs);
    }
    if !others.is_empty() {
        let words: Vec<&str> = others.iter().map(|f| f.detail.as_str()).collect();
        one.detail += &format!("; besides: {}", words.join("; "));
    }
    one.script = others.iter().find_map(|f| f.script.clone());
    vec![one]
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
        Inspector::default().inspect(&[a], None, |_| false).into_iter().map(|f| (f.kind, f.severity)).collect()
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

    /// What a sender gone already is judged to run: `path` its executable, `argv` as the
    /// kernel captured it.
    fn sender(comm: &str, path: &str, argv: &str, f: impl FnOnce(&mut Exe)) -> Vec<Finding> {
        let argv: Vec<String> = argv.split(' ').map(String::from).collect();
        Inspector::default().inspect(&[ancestor(comm, path, f)], Some(&argv), |_| false)
    }

    fn kinds(found: &[Finding]) -> Vec<(FindingKind, Severity)> {
        found.iter().map(|f| (f.kind, f.severity)).collect()
    }

    #[test]
    fn what_an_interpreter_or_the_loader_ran_is_judged_like_an_executable() {
        let py = "/usr/bin/python3.11";
        let found = sender("python3", py, "python3 -u /dev/shm/x.py", |_| ());
        assert_eq!(kinds(&found), vec![(FindingKind::WritableLocation, Severity::Warning)]);
        assert_eq!(found[0].evidence, Evidence::Argv);
        assert_eq!(found[0].script.as_deref(), Some("/dev/shm/x.py"));
        assert!(found[0].detail.contains("script /dev/shm/x.py (named in its argv at signal time)"), "{found:?}");
        let found = sender("x", "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/lib64/ld.so /tmp/x", |_| ());
        assert_eq!(kinds(&found), vec![(FindingKind::WritableLocation, Severity::Note)]);
        assert!(found[0].detail.starts_with("runs program /tmp/x"), "{found:?}");
        // A shebang script run directly: named after the script, run by the shell.
        let found = sender("x.sh", "/usr/bin/dash", "/bin/sh /dev/shm/x.sh", |_| ());
        assert_eq!(kinds(&found), vec![(FindingKind::WritableLocation, Severity::Warning)]);
        // Installed scripts, inline code, modules: nothing to flag.
        assert!(sender("python3", py, "python3 /usr/lib/python3/dist-packages/x.py", |_| ()).is_empty());
        assert!(sender("python3", py, "python3 -c import-os", |_| ()).is_empty());
        assert!(sender("python3", py, "python3 -m http.server", |_| ()).is_empty());
        assert!(sender("bash", "/usr/bin/bash", "bash -c /dev/shm/x", |_| ()).is_empty());
        // Relative to a working directory that died with the process: not guessed.
        assert!(sender("python3", py, "python3 x.py", |_| ()).is_empty());
    }

    #[test]
    fn a_daemons_name_on_a_script_is_judged_by_the_scripts_place() {
        let py = "/usr/bin/python3.11";
        let found = sender("sshd", py, "python3 /tmp/x.py", |_| ());
        assert!(kinds(&found).contains(&(FindingKind::Impersonation, Severity::Alert)), "{found:?}");
        assert!(sender("sshd", py, "python3 /usr/lib/sshd-helper/x.py", |_| ()).is_empty());
    }

    #[test]
    fn a_kernel_threads_name_is_one_alert_wherever_it_runs_from() {
        let one = |found: Vec<Finding>| {
            assert_eq!(kinds(&found), vec![(FindingKind::KernelThreadName, Severity::Alert)], "{found:?}");
            found[0].detail.clone()
        };
        let shm = one(judge_all(ancestor("kworker/0:2", "/dev/shm/x", |e| e.fs = "tmpfs".into())));
        assert!(shm.contains("shared-memory"), "{shm}");
        one(judge_all(ancestor("kworker/0:2", "/tmp/x", |_| ())));
        one(judge_all(ancestor("kworker/0:2", "/memfd:x", |e| e.internal_mount = true)));
        one(judge_all(ancestor("kworker/0:2", "/tmp/podsig-no-such-file", |e| e.unlinked = true)));
        one(judge_all(ancestor("kworker/0:2", "/usr/local/bin/x", |_| ())));
        // Named like a kernel thread because the file is: from memory all the same.
        one(judge_all(ancestor("kworker/0:2", "/dev/shm/kworker", |e| e.fs = "tmpfs".into())));
        let tail = one(judge_all(ancestor("kworker/0:2", "…/deep/kworker", |e| e.fs = "tmpfs".into())));
        assert!(tail.contains("in memory (tmpfs)"), "{tail}");
        // …and run by an interpreter from /dev/shm.
        one(sender("kworker/0:2", "/usr/bin/python3.11", "python3 /dev/shm/x.py", |_| ()));
        // The watchdog daemon is named after itself.
        assert!(judge(ancestor("watchdog", "/usr/sbin/watchdog", |_| ())).is_empty());
    }

    fn judge_all(a: Ancestor) -> Vec<Finding> {
        Inspector::default().inspect(&[a], None, |_| false)
    }

    #[test]
    fn paths_are_normalized_and_matched_by_their_last_components() {
        assert_eq!(normalize("/tmp/./a//b/../x.py"), "/tmp/a/x.py");
        assert_eq!(normalize("./x.sh"), "x.sh");
        assert!(same_name("/tmp/d/x.sh", "./x.sh"));
        assert!(same_name("/tmp/d/x.sh", "d/x.sh"));
        assert!(!same_name("/tmp/d/xx.sh", "x.sh"));
        assert!(same_name("/tmp/x", "/tmp//x"));
        assert_eq!(descriptor("/dev/fd/3", 7), Some(3));
        assert_eq!(descriptor("/proc/7/fd/4", 7), Some(4));
        assert_eq!(descriptor("/proc/8/fd/4", 7), None);
    }

    #[test]
    fn a_reused_pid_is_never_judged_from_proc() {
        let me = std::process::id();
        let a = Ancestor { pid: me, comm: "other".into(), start_ns: 1, ..Default::default() };
        assert!(Inspector::default().inspect(&[a], None, |_| false).is_empty());
    }
}
