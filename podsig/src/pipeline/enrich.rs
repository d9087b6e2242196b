//! Adds to raw records what the kernel side does not capture: wall-clock time, and facts
//! only /proc has (the sender's executable) while the process is still there. For events
//! from the no-BTF fallback, /proc is also where the sender's parent, argv and ancestry come
//! from — if the sender still lives.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use procfs::process::Process;

use crate::proc::{self, cgroup_mount, proc_start_ticks, proc_state, process};

use crate::{
    containers::ContainerIndex,
    event::{Ancestor, AncestrySource, OomInfo, Record, Sender, SignalRecord},
    pipeline::findings::Inspector,
};

pub struct Enricher {
    /// CLOCK_REALTIME − CLOCK_BOOTTIME, so kernel boot-clock stamps become wall time.
    wall_minus_boot_ns: i128,
    clk_tck: u64,
    inspector: Inspector,
    /// (pid, start_ns, captured inode, comm) → executable, so a storm from one sender reads
    /// /proc once a second.
    exes: HashMap<ExeKey, (Instant, Option<String>)>,
    /// pid → its systemd unit as last read, for a process gone by the time its record is
    /// enriched (a SIGKILL's target, reaped at once by systemd).
    units: HashMap<u32, (Instant, Option<String>)>,
    /// A unified-hierarchy cgroup (its inode, as the kernel captured it) → its unit.
    cgroup_units: HashMap<u64, Option<String>>,
    /// Put on every record.
    pub node: Option<String>,
}

/// (pid, start_ns, inode of the executable captured, comm).
type ExeKey = (u32, u64, u64, String);

const EXE_TTL: Duration = Duration::from_secs(1);
/// How long a gone process's unit is remembered: the story window's default.
const UNIT_TTL: Duration = Duration::from_secs(600);
const EXE_CACHE_MAX: usize = 4096;

impl Default for Enricher {
    fn default() -> Self {
        Self::new()
    }
}

pub(crate) fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer, valid clock id.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// Pid as seen in the process's own (innermost) pid namespace.
fn ns_pid(p: &Process) -> Option<u32> {
    p.status().ok()?.nspid?.last().map(|&n| n as u32)
}

impl Enricher {
    pub fn new() -> Self {
        let wall_minus_boot_ns = clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_BOOTTIME);
        Self {
            wall_minus_boot_ns,
            clk_tck: procfs::ticks_per_second().max(1),
            inspector: Inspector::default(),
            exes: HashMap::new(),
            units: HashMap::new(),
            cgroup_units: HashMap::new(),
            node: None,
        }
    }

    /// The unit of a cgroup the kernel captured, for a process gone before /proc was read:
    /// from the units' cgroups as last seen (`refresh_units`), or seen now.
    fn unit_of_cgroup(&mut self, ino: u64) -> Option<String> {
        if !self.cgroup_units.contains_key(&ino) {
            self.refresh_units();
        }
        // Not a unit's (a container's, the root): said once, not walked for again.
        self.cgroup_units.entry(ino).or_insert(None).clone()
    }

    /// Learns the units' cgroups as they are now. The watch calls it each follow tick where
    /// units matter, so a unit stopped (its directory gone) before its SIGKILL's record was
    /// read is still known.
    pub fn refresh_units(&mut self) {
        if self.cgroup_units.len() >= EXE_CACHE_MAX {
            self.cgroup_units.clear();
        }
        for (ino, unit) in crate::proc::unit_cgroups() {
            self.cgroup_units.insert(ino, Some(unit));
        }
    }

    /// The systemd unit of `pid`: from its cgroup while it lives, else as last read.
    fn unit_of(&mut self, pid: u32) -> Option<String> {
        match crate::proc::unit_of_pid(pid) {
            Some(u) => {
                self.remember_unit(pid, &u);
                Some(u)
            }
            None => self.units.get(&pid).filter(|(t, _)| t.elapsed() < UNIT_TTL).and_then(|(_, u)| u.clone()),
        }
    }

    fn remember_unit(&mut self, pid: u32, unit: &str) {
        if self.units.len() >= EXE_CACHE_MAX {
            self.units.retain(|_, (t, _)| t.elapsed() < UNIT_TTL);
            if self.units.len() >= EXE_CACHE_MAX {
                self.units.clear();
            }
        }
        self.units.insert(pid, (Instant::now(), Some(unit.to_string())));
    }

    /// RFC 3339 UTC with nanoseconds for a boot-clock timestamp.
    pub fn wall_time(&self, boot_ns: u64) -> String {
        let ns = (boot_ns as i128 + self.wall_minus_boot_ns).max(0) as u64;
        humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
    }

    pub fn now(&self) -> String {
        humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
    }

    fn ticks_to_ns(&self, ticks: u64) -> u64 {
        (ticks as u128 * 1_000_000_000 / self.clk_tck as u128) as u64
    }

    /// `containers`: where a process lives (looked up, and the lookups cached, there).
    pub fn enrich(&mut self, record: &mut Record, containers: &mut ContainerIndex) {
        match record {
            Record::Signal(s) => s.node.clone_from(&self.node),
            Record::Exit(e) => e.node.clone_from(&self.node),
            Record::Lost(l) => l.node.clone_from(&self.node),
            Record::Request(r) => r.node.clone_from(&self.node),
            Record::Oom(_) => {}
        }
        match record {
            Record::Signal(s) => self.enrich_signal(s, containers),
            Record::Oom(_) => {}
            Record::Exit(e) => {
                if let Some(ns) = e.boot_ns {
                    e.time = self.wall_time(ns);
                }
                // A watched container's process; otherwise its story may place it.
                if let Some(c) = containers.member(e.pid) {
                    e.container = Some(c);
                }
                e.unit = self.unit_of(e.pid);
                if e.status.is_none() && e.signal.is_none() {
                    // Fallback mode: a zombie still shows its exit code in /proc.
                    if let Some(code) = process(e.pid).and_then(|p| p.stat().ok()?.exit_code) {
                        let (status, signal, core) = crate::event::ExitRecord::decode(code);
                        (e.status, e.signal, e.core_dumped) = (status, signal, core);
                    }
                }
            }
            Record::Lost(l) => l.time = self.now(),
            Record::Request(r) => {
                r.time = self.wall_time(r.boot_ns);
                let me = r.ancestry.last().filter(|a| a.pid == r.client.pid);
                r.client.exe = me.and_then(|a| a.exe.as_ref()?.path.clone()).filter(|p| p.starts_with('/'));
            }
        }
    }

    fn enrich_signal(&mut self, s: &mut SignalRecord, containers: &mut ContainerIndex) {
        if let Some(ns) = s.boot_ns {
            s.time = self.wall_time(ns);
        }
        if let Some(ns) = s.last_boot_ns.filter(|_| s.count > 1) {
            s.last_time = Some(self.wall_time(ns));
        }
        if s.ancestry_source == AncestrySource::Proc {
            self.complete_from_proc(s);
        }
        if let Some(sender) = s.sender.as_mut() {
            let me = s.ancestry.last().filter(|a| a.pid == sender.pid);
            // The kernel's path, taken at signal time, when it walked all of it;
            // else /proc's, only for the same process still running the same file.
            let kernel = me.and_then(|a| a.exe.as_ref()?.path.clone()).filter(|p| p.starts_with('/'));
            sender.exe = kernel.or_else(|| self.cached_exe(sender, me));
        }
        let clk_tck = self.clk_tck;
        // argv the kernel captured with the signal; from /proc it is only as good as
        // any live process's cmdline, which the inspector reads itself.
        let sender_argv = s
            .sender
            .as_ref()
            .filter(|x| s.ancestry_source == AncestrySource::Kernel && !x.kthread)
            .filter(|x| s.ancestry.last().is_some_and(|a| a.pid == x.pid))
            .map(|x| x.argv.as_slice());
        s.findings = self.inspector.inspect(&s.ancestry, sender_argv, |a| live_image(clk_tck, a));
        if let Some(oom) = &mut s.oom {
            memory_cgroup(oom, s.target.memcg);
        }
        s.target.container = containers.container_of(s.target.pid, s.target.pidns);
        // The cgroup the kernel saw first: a pid read later may be another process's.
        s.target.unit = match s.target.cgroup.and_then(|ino| self.unit_of_cgroup(ino)) {
            // Kept for the pid too: its exit, read when /proc no longer has it, is
            // named for the same unit.
            Some(u) => {
                self.remember_unit(s.target.pid, &u);
                Some(u)
            }
            None => self.unit_of(s.target.pid),
        };
        if let Some(sender) = s.sender.as_mut() {
            sender.container = containers.container_of(sender.pid, sender.pidns);
            sender.unit = self.unit_of(sender.pid);
        }
    }

    /// The sender's executable from /proc: only while it is provably what it ran at signal
    /// time. exec keeps pid and start time, so the same process is not enough: the file
    /// must be the one the kernel captured (inode and device), or, where it captured none,
    /// nothing may say the process exec'd since (a thread still has the comm it signalled
    /// with). Otherwise null.
    fn cached_exe(&mut self, sender: &Sender, me: Option<&Ancestor>) -> Option<String> {
        let fallback;
        let (me, start_ns) = match me {
            Some(a) => (a, Some(a.start_ns)),
            // No ancestry (a weaker build, a sender gone before /proc was read): no start
            // time to hold the pid to, and the sender's comm is all there is to check.
            None => {
                fallback = Ancestor { pid: sender.pid, comm: sender.comm.clone(), ..Default::default() };
                (&fallback, None)
            }
        };
        let key = (me.pid, me.start_ns, me.exe.as_ref().map_or(0, |e| e.ino), me.comm.clone());
        if let Some((t, exe)) = self.exes.get(&key)
            && t.elapsed() < EXE_TTL
        {
            return exe.clone();
        }
        let exe = (same_process(self.clk_tck, me.pid, start_ns) && same_image(me))
            .then(|| process(me.pid)?.exe().ok().map(|p| p.to_string_lossy().into_owned()))
            .flatten();
        if self.exes.len() >= EXE_CACHE_MAX {
            self.exes.clear();
        }
        self.exes.insert(key, (Instant::now(), exe.clone()));
        exe
    }

    /// Fills what the no-BTF fallback could not capture in kernel, while the processes are
    /// still there. A sender gone already stays bare, with `ancestry_complete: false`.
    fn complete_from_proc(&self, s: &mut SignalRecord) {
        if s.target.pid == 0
            && let Some(t) = process(s.target.tid).and_then(|p| p.status().ok())
        {
            s.target.pid = t.tgid as u32;
        }
        if let Some(p) = process(s.target.tid) {
            s.target.ns_pid = process(s.target.pid).as_ref().and_then(ns_pid);
            s.target.tid = p.pid as u32;
        }
        let Some(me) = s.sender.as_mut() else { return };
        let Some(sender) = process(me.pid) else { return };
        me.ns_pid = ns_pid(&sender);
        me.argv = sender.cmdline().unwrap_or_default();
        let mut chain = Vec::new();
        let mut pid = me.pid;
        let mut complete = false;
        for _ in 0..podsig_common::MAX_ANCESTRY {
            let Some(stat) = process(pid).and_then(|p| p.stat().ok()) else { break };
            chain.push(Ancestor {
                pid,
                comm: stat.comm.clone(),
                start_ns: self.ticks_to_ns(stat.starttime),
                ..Default::default()
            });
            if stat.ppid <= 0 {
                // pid 1 and kthreadd are children of the idle task, which /proc does not list.
                chain.push(Ancestor { pid: 0, comm: "swapper/0".into(), start_ns: 0, ..Default::default() });
                complete = true;
                break;
            }
            pid = stat.ppid as u32;
        }
        me.ppid = chain.get(1).map_or(0, |a| a.pid);
        chain.reverse();
        s.ancestry = chain.into();
        s.ancestry_complete = complete;
    }
}

/// Whether /proc's `a.pid` is the process `a` (pid and start time) still running what it
/// ran when captured: see `same_image`.
fn live_image(clk_tck: u64, a: &Ancestor) -> bool {
    same_process(clk_tck, a.pid, Some(a.start_ns)) && same_image(a)
}

/// Whether /proc's `a.pid` runs the executable the kernel captured for `a` (inode and
/// device); where it captured none, whether a thread still has the comm `a` had, which an
/// exec would have replaced.
fn same_image(a: &Ancestor) -> bool {
    match &a.exe {
        Some(exe) => proc::exe_identity(a.pid).is_some_and(|(ino, dev)| ino == exe.ino && dev == exe.dev),
        None => proc::thread_comms(a.pid).contains(&a.comm),
    }
}

/// Whether `pid` still names the process that started at `start_ns` (ns since boot).
fn same_process(clk_tck: u64, pid: u32, start_ns: Option<u64>) -> bool {
    let Some(ticks) = proc_start_ticks(pid) else { return false };
    match start_ns {
        Some(ns) => (ticks as u128).abs_diff(ns as u128 * clk_tck as u128 / 1_000_000_000) <= 1,
        None => true,
    }
}

/// The OOM victim's memory cgroup and its limit, while /proc still shows the victim.
/// The OOM victim's memory cgroup and its limit. The kernel captured the cgroup's inode
/// with the SIGKILL: the victim is usually gone from /proc by now (and a dead process's
/// /proc cgroup reads as the root, which would be wrong). /proc is the fallback for
/// backends without that capture, and only while the victim still lives.
fn memory_cgroup(oom: &mut OomInfo, memcg_ino: Option<u64>) {
    if let Some(ino) = memcg_ino {
        for (mount, limit_file) in [("memory", "memory.limit_in_bytes"), ("", "memory.max")] {
            let Some(root) = cgroup_mount(mount) else { continue };
            if let Some(dir) = find_inode(Path::new(&root), ino, 0) {
                let rel = dir.strip_prefix(&root).map(|r| format!("/{}", r.display())).unwrap_or_default();
                oom.memory_cgroup = Some(if rel == "/" { rel } else { rel.trim_end_matches('/').to_string() });
                oom.memory_limit_bytes =
                    std::fs::read_to_string(dir.join(limit_file)).ok().and_then(|t| t.trim().parse().ok());
                return;
            }
        }
    }
    if !matches!(proc_state(oom.pid), Some(s) if s != 'Z' && s != 'X') {
        return;
    }
    let Ok(text) = std::fs::read_to_string(format!("/proc/{}/cgroup", oom.pid)) else { return };
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let limit_file = if controllers.split(',').any(|c| c == "memory") {
            "memory.limit_in_bytes"
        } else if controllers.is_empty() && oom.memory_cgroup.is_none() {
            "memory.max"
        } else {
            continue;
        };
        let dir = cgroup_mount(controllers);
        oom.memory_cgroup = Some(path.to_string());
        oom.memory_limit_bytes =
            dir.and_then(|d| std::fs::read_to_string(format!("{d}{path}/{limit_file}")).ok()?.trim().parse().ok());
        if limit_file == "memory.limit_in_bytes" {
            return; // v1's memory controller is the one that enforces the limit
        }
    }
}

/// The directory under `dir` whose inode is `ino` (a cgroup's kernfs id). cgroup trees are
/// shallow and OOM kills rare: a walk is cheap enough.
fn find_inode(dir: &Path, ino: u64, depth: u32) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    // kernfs ids carry a generation in their high half on 32-bit kernels: compare the inode.
    let same = |m: &std::fs::Metadata| m.ino() as u32 == ino as u32;
    if same(&std::fs::metadata(dir).ok()?) {
        return Some(dir.to_path_buf());
    }
    if depth > 16 {
        return None;
    }
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && let Some(found) = find_inode(&entry.path(), ino, depth + 1)
        {
            return Some(found);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_image_is_the_captured_file_or_else_the_same_comm() {
        use std::os::unix::fs::MetadataExt;
        let me = std::process::id();
        let m = std::fs::metadata("/proc/self/exe").unwrap();
        let exe = crate::event::Exe {
            ino: m.ino(),
            dev: format!("{}:{}", libc::major(m.dev()), libc::minor(m.dev())),
            ..Default::default()
        };
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap().trim().to_string();
        let a = |exe: Option<crate::event::Exe>, comm: &str| Ancestor {
            pid: me,
            comm: comm.into(),
            exe,
            ..Default::default()
        };
        assert!(same_image(&a(Some(exe.clone()), "other")));
        // Another file at signal time: it exec'd since, whatever /proc says now.
        assert!(!same_image(&a(Some(crate::event::Exe { ino: exe.ino + 1, ..exe.clone() }), &comm)));
        assert!(!same_image(&a(Some(crate::event::Exe { dev: "0:0".into(), ..exe }), &comm)));
        // No file captured: the comm it had must still be a thread's.
        assert!(same_image(&a(None, &comm)));
        assert!(!same_image(&a(None, "podsig-no-such")));
    }

    #[test]
    fn wall_time_is_rfc3339_nanos() {
        let e = Enricher::new();
        let t = e.wall_time(0);
        assert!(t.ends_with('Z') && t.len() == "2026-11-24T20:17:30.123456789Z".len(), "{t}");
    }
}
