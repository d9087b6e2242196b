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

use crate::proc::{cgroup_mount, proc_start_ticks, proc_state, process};

use crate::{
    containers::ContainerIndex,
    event::{Ancestor, AncestrySource, OomInfo, Record, SignalRecord},
    pipeline::findings::Inspector,
};

pub struct Enricher {
    /// CLOCK_REALTIME − CLOCK_BOOTTIME, so kernel boot-clock stamps become wall time.
    wall_minus_boot_ns: i128,
    clk_tck: u64,
    inspector: Inspector,
    /// (pid, start_ns) → executable, so a storm from one sender reads /proc once a second.
    exes: HashMap<(u32, u64), (Instant, Option<String>)>,
    /// Which container a process is in, and its names: fed by the watch's follower and the
    /// namer, read here.
    containers: ContainerIndex,
    /// Put on every record.
    pub node: Option<String>,
}

const EXE_TTL: Duration = Duration::from_secs(1);
const EXE_CACHE_MAX: usize = 4096;

impl Default for Enricher {
    fn default() -> Self {
        Self::new()
    }
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
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
            containers: ContainerIndex::new(),
            node: None,
        }
    }

    /// The container index the follower and the namer feed.
    pub fn containers(&mut self) -> &mut ContainerIndex {
        &mut self.containers
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

    pub fn enrich(&mut self, record: &mut Record) {
        match record {
            Record::Signal(s) => s.node.clone_from(&self.node),
            Record::Exit(e) => e.node.clone_from(&self.node),
            Record::Lost(l) => l.node.clone_from(&self.node),
            Record::Oom(_) => {}
        }
        match record {
            Record::Signal(s) => {
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
                    // /proc only for the same process (pid and start time) still alive.
                    let kernel = me.and_then(|a| a.exe.as_ref()?.path.clone()).filter(|p| p.starts_with('/'));
                    sender.exe = kernel.or_else(|| match me.map(|a| a.start_ns) {
                        Some(start_ns) => self.cached_exe(sender.pid, start_ns),
                        None => self.exe_if_same_process(sender.pid, None),
                    });
                }
                let clk_tck = self.clk_tck;
                s.findings =
                    self.inspector.inspect(&s.ancestry, |pid, start_ns| same_process(clk_tck, pid, Some(start_ns)));
                if let Some(oom) = &mut s.oom {
                    memory_cgroup(oom, s.target.memcg);
                }
                s.target.container = self.containers.container_of(s.target.pid, s.target.pidns);
                if let Some(sender) = s.sender.as_mut() {
                    sender.container = self.containers.container_of(sender.pid, sender.pidns);
                }
            }
            Record::Oom(_) => {}
            Record::Exit(e) => {
                if let Some(ns) = e.boot_ns {
                    e.time = self.wall_time(ns);
                }
                // A watched container's process; otherwise its story may place it.
                if let Some(c) = self.containers.member(e.pid) {
                    e.container = Some(c);
                }
                if e.status.is_none() && e.signal.is_none() {
                    // Fallback mode: a zombie still shows its exit code in /proc.
                    if let Some(code) = process(e.pid).and_then(|p| p.stat().ok()?.exit_code) {
                        let (status, signal, core) = crate::event::ExitRecord::decode(code);
                        (e.status, e.signal, e.core_dumped) = (status, signal, core);
                    }
                }
            }
            Record::Lost(l) => l.time = self.now(),
        }
    }

    fn cached_exe(&mut self, pid: u32, start_ns: u64) -> Option<String> {
        if let Some((t, exe)) = self.exes.get(&(pid, start_ns))
            && t.elapsed() < EXE_TTL
        {
            return exe.clone();
        }
        let exe = self.exe_if_same_process(pid, Some(start_ns));
        if self.exes.len() >= EXE_CACHE_MAX {
            self.exes.clear();
        }
        self.exes.insert((pid, start_ns), (Instant::now(), exe.clone()));
        exe
    }

    /// The sender's executable, but only if `pid` still names the process that sent the
    /// signal: a short-lived sender's pid can already belong to someone else.
    fn exe_if_same_process(&self, pid: u32, start_ns: Option<u64>) -> Option<String> {
        if !same_process(self.clk_tck, pid, start_ns) {
            return None;
        }
        process(pid)?.exe().ok().map(|p| p.to_string_lossy().into_owned())
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
    fn wall_time_is_rfc3339_nanos() {
        let e = Enricher::new();
        let t = e.wall_time(0);
        assert!(t.ends_with('Z') && t.len() == "2026-11-24T20:17:30.123456789Z".len(), "{t}");
    }
}
