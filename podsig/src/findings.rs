//! Reads the sender's ancestry for what a person would flag by eye: a deleted executable,
//! one running from a world-writable or memory-backed place, a comm that is not its
//! executable's name, a host process running a container's binary.
//!
//! Only processes still alive (same pid and start time as captured) can be examined; the
//! answers are cached per process so a signal storm does not re-read /proc.

use std::{
    collections::{HashMap, HashSet},
    fs,
    os::unix::fs::MetadataExt,
    path::Path,
    time::{Duration, Instant},
};

use crate::event::{Ancestor, Finding, FindingKind};

const WRITABLE_PLACES: &[&str] = &["/tmp/", "/var/tmp/", "/dev/shm/"];
/// Executables whose processes are named after the script or applet they run, so comm and
/// executable differ by design.
const INTERPRETERS: &[&str] = &[
    "python", "perl", "ruby", "node", "bash", "sh", "dash", "zsh", "busybox", "java", "php", "env", "lua", "tclsh",
    "wish", "pwsh",
];
const CACHE_MAX: usize = 4096;
const ROOTS_TTL: Duration = Duration::from_secs(2);
const CACHE_TTL: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Inspector {
    /// (pid, start_ns) → when examined, findings for that process (kind, detail). Entries
    /// age out: an exec changes what a process runs without changing its start time.
    cache: HashMap<(u32, u64), (Instant, Vec<(FindingKind, String)>)>,
    /// (dev, ino) of the root directories of processes in other mount namespaces.
    container_roots: Option<(Instant, HashMap<(u64, u64), u32>)>,
}

impl Inspector {
    pub fn inspect(&mut self, ancestry: &[Ancestor], same_process: impl Fn(u32, u64) -> bool) -> Vec<Finding> {
        let mut out = Vec::new();
        let now = Instant::now();
        for a in ancestry.iter().filter(|a| a.pid > 0) {
            let key = (a.pid, a.start_ns);
            if self.cache.get(&key).is_none_or(|(t, _)| now.duration_since(*t) > CACHE_TTL) {
                if !same_process(a.pid, a.start_ns) {
                    continue; // gone, or the pid now names someone else
                }
                let found = self.examine(a.pid);
                if self.cache.len() >= CACHE_MAX {
                    self.cache.clear();
                }
                self.cache.insert(key, (now, found));
            }
            for (kind, detail) in &self.cache[&key].1 {
                out.push(Finding { pid: a.pid, comm: a.comm.clone(), kind: *kind, detail: detail.clone() });
            }
        }
        out
    }

    fn examine(&mut self, pid: u32) -> Vec<(FindingKind, String)> {
        let mut found = Vec::new();
        // Kernel threads have no executable.
        let Ok(exe) = fs::read_link(format!("/proc/{pid}/exe")) else { return found };
        // Today's comm, read with today's exe: the captured one may predate an exec.
        let Ok(comm) = fs::read_to_string(format!("/proc/{pid}/comm")) else { return found };
        let comm = comm.trim_end_matches('\n');
        let exe = exe.to_string_lossy().into_owned();
        let (path, deleted) = match exe.strip_suffix(" (deleted)") {
            Some(p) => (p.to_string(), true),
            None => (exe.clone(), false),
        };
        // memfds always read as deleted; the memfd finding below says what matters.
        if deleted && !path.starts_with("/memfd:") {
            found.push((FindingKind::DeletedExecutable, format!("its executable {path} was deleted after it started")));
        }
        if path.starts_with("/memfd:") {
            found.push((FindingKind::WritableLocation, format!("runs from an anonymous memory file ({path})")));
        } else if let Some(place) = WRITABLE_PLACES.iter().find(|p| path.starts_with(**p)) {
            found.push((
                FindingKind::WritableLocation,
                format!("runs from {path}, in world-writable {}", place.trim_end_matches('/')),
            ));
        }
        let name = Path::new(&path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let interpreter = INTERPRETERS.iter().any(|i| name.starts_with(i));
        if !path.starts_with("/memfd:") && !interpreter && !comm_matches(comm, &name) {
            found.push((FindingKind::CommMismatch, format!("calls itself '{comm}' but runs {path}")));
        }
        if let Some(owner) = self.container_binary_on_host(pid, &path) {
            found.push((
                FindingKind::ContainerBinaryOnHost,
                format!("a host process running {path}, from the root filesystem of the container holding pid {owner}"),
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
        if mnt_ns(pid)? != host_mnt {
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

/// comm is the executable's name cut to 15 bytes (TASK_COMM_LEN - 1).
fn comm_matches(comm: &str, exe_name: &str) -> bool {
    let cut: String = exe_name.bytes().take(15).map(char::from).collect();
    comm == exe_name || comm == cut || exe_name.starts_with(comm) && comm.len() >= 15
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
        if ns == host_mnt || !seen_ns.insert(ns) {
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

    #[test]
    fn comm_is_the_executable_name_cut_to_15() {
        assert!(comm_matches("sleep", "sleep"));
        assert!(comm_matches("containerd-shim", "containerd-shim-runc-v2"));
        assert!(!comm_matches("vGhyM0", "dash"));
        assert!(!comm_matches("sshd", "sleep"));
    }

    #[test]
    fn this_test_process_is_clean() {
        let me = std::process::id();
        let comm = fs::read_to_string("/proc/self/comm").unwrap();
        let a = Ancestor { pid: me, comm: comm.trim().into(), start_ns: 0, ..Default::default() };
        let mut i = Inspector::default();
        let f = i.inspect(&[a], |_, _| true);
        assert!(f.iter().all(|f| f.kind != FindingKind::DeletedExecutable), "{f:?}");
    }
}
