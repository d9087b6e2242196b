//! /proc and the cgroup tree, read for one process at a time: its start, its state, its pid
//! namespace, and the container its cgroup path names. The lowest layer: it imports nothing
//! from the crate, and `containers`, `pipeline` and `source` all read through it.

use std::{collections::BTreeSet, fs};

use procfs::process::Process;

use crate::event::Runtime;

pub fn process(pid: u32) -> Option<Process> {
    Process::new(i32::try_from(pid).ok()?).ok()
}

/// Field 22 of /proc/PID/stat: start time in clock ticks since boot.
pub fn proc_start_ticks(pid: u32) -> Option<u64> {
    Some(process(pid)?.stat().ok()?.starttime)
}

/// Field 3 of /proc/PID/stat: the state letter ('Z' zombie, 'X' dead, …).
pub fn proc_state(pid: u32) -> Option<char> {
    Some(process(pid)?.stat().ok()?.state)
}

/// The inode and device (`major:minor`) of the file /proc/PID/exe leads to: the executable
/// the process runs now, to compare with what the kernel captured at signal time.
pub fn exe_identity(pid: u32) -> Option<(u64, String)> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    Some((m.ino(), format!("{}:{}", libc::major(m.dev()), libc::minor(m.dev()))))
}

/// The file system magic of the executable /proc/PID/exe leads to (as `statfs` says).
pub fn exe_fs_magic(pid: u32) -> Option<u32> {
    let path = std::ffi::CString::new(format!("/proc/{pid}/exe")).ok()?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statfs buffer we own.
    (unsafe { libc::statfs(path.as_ptr(), &mut st) } == 0).then_some(st.f_type as u32)
}

/// The comm of every thread of the process: exec leaves one thread, named after the new
/// program, so a name among them says the process may still run what it ran then.
pub fn thread_comms(pid: u32) -> Vec<String> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    dir.flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("comm")).ok())
        .map(|c| c.trim_end_matches('\n').to_string())
        .collect()
}

/// /proc/PID/cmdline, split at its NULs.
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let bytes = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(&bytes);
    Some(bytes.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect())
}

/// Where the process's open descriptors and file mappings lead (`/x (deleted)` for a file
/// unlinked since): a shell holds its script open, the loader maps its program.
pub fn open_and_mapped(pid: u32) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.flatten().filter_map(|e| fs::read_link(e.path()).ok()).map(|l| l.to_string_lossy().into_owned()))
        .into_iter()
        .flatten()
        .collect();
    if let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) {
        // address perms offset dev inode path: the path is what follows the fifth field.
        out.extend(maps.lines().filter_map(|l| {
            let mut rest = l;
            for _ in 0..5 {
                rest = rest.trim_start().split_once(' ')?.1;
            }
            Some(rest.trim_start().to_string()).filter(|p| p.starts_with('/'))
        }));
    }
    out.sort();
    out.dedup();
    out
}

/// Where /proc/PID/fd/FD leads.
pub fn fd_target(pid: u32, fd: u32) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok().map(|l| l.to_string_lossy().into_owned())
}

/// The process's working directory.
pub fn cwd(pid: u32) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/cwd")).ok().map(|l| l.to_string_lossy().into_owned())
}

/// Whether something is at `path` as the process sees its file system (its root and its
/// mount namespace, through /proc/PID/root); None when that cannot be read.
pub fn exists_for(pid: u32, path: &str) -> Option<bool> {
    let root = format!("/proc/{pid}/root");
    fs::metadata(&root).ok()?;
    Some(fs::symlink_metadata(format!("{root}{path}")).is_ok())
}

/// The inode and device (`major:minor`) of `path` as the process sees its file system.
pub fn identity_for(pid: u32, path: &str) -> Option<(u64, String)> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(format!("/proc/{pid}/root{path}")).ok()?;
    Some((m.ino(), format!("{}:{}", libc::major(m.dev()), libc::minor(m.dev()))))
}

/// Inode of /proc/PID/ns/pid (`self` for this process).
pub fn pidns_of(pid: &str) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/pid")).ok().map(|m| m.ino() as u32)
}

/// A file system's name from its super block magic (include/uapi/linux/magic.h), or the
/// magic in hex.
pub fn fs_name(magic: u32) -> String {
    let name = match magic {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794c_7630 => "overlay",
        0x7371_7368 => "squashfs",
        0xE0F5_E1E2 => "erofs",
        0x8584_58f6 => "ramfs",
        0x9584_58f6 => "hugetlbfs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        0x0102_1997 => "9p",
        0x2fc1_2fc1 => "zfs",
        0xF2F5_2010 => "f2fs",
        0x9660 => "iso9660",
        0x4d44 => "vfat",
        0xFF53_4D42 | 0xFE53_4D42 => "cifs",
        0x00c3_6400 => "ceph",
        0x6175_6673 => "aufs",
        0x5345_434d => "secretmem",
        0x9fa0 => "proc",
        _ => return format!("{magic:#x}"),
    };
    name.to_string()
}

/// Container named by a process's cgroup path: (id, runtime). Knows the path forms of
/// Docker, containerd (CRI and ctr), CRI-O and Podman, with systemd or cgroupfs drivers.
pub fn container_of_cgroup(text: &str) -> Option<(String, Runtime)> {
    let is_hex64 = |s: &str| s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit());
    for line in text.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or("");
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        for (i, seg) in segs.iter().enumerate().rev() {
            let scoped = |prefix: &str| {
                seg.strip_prefix(prefix).and_then(|r| r.strip_suffix(".scope")).filter(|id| is_hex64(id))
            };
            if let Some(id) = scoped("docker-") {
                return Some((id.into(), Runtime::Docker));
            }
            if let Some(id) = scoped("cri-containerd-") {
                return Some((id.into(), Runtime::Containerd));
            }
            if let Some(id) = scoped("crio-") {
                return Some((id.into(), Runtime::CriO));
            }
            if let Some(id) = scoped("libpod-") {
                return Some((id.into(), Runtime::Podman));
            }
            let parent = if i > 0 { segs[i - 1] } else { "" };
            match parent {
                // podman with the cgroupfs manager: /libpod_parent/libpod-<id> (its conmons sit
                // beside, in /libpod_parent/conmon).
                "libpod_parent" => {
                    if let Some(id) = seg.strip_prefix("libpod-").filter(|id| is_hex64(id)) {
                        return Some((id.to_string(), Runtime::Podman));
                    }
                }
                // cgroupfs driver: /docker/<id>, and containerd's /<namespace>/<id>.
                "docker" if is_hex64(seg) => return Some((seg.to_string(), Runtime::Docker)),
                "moby" => return Some((seg.to_string(), Runtime::Docker)),
                "k8s.io" | "default" => return Some((seg.to_string(), Runtime::Containerd)),
                _ => {}
            }
            // kubelet's cgroupfs layout: /kubepods/<qos>/pod<uid>/<id>.
            if parent.starts_with("pod") && is_hex64(seg) && segs.iter().any(|s| s.starts_with("kubepods")) {
                return Some((seg.to_string(), Runtime::Unknown));
            }
        }
    }
    None
}

pub fn container_of_pid(pid: u32) -> Option<(String, Runtime)> {
    container_of_cgroup(&fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?)
}

/// Processes whose cgroup names the container (ID or prefix), oldest first.
pub fn pids_in_cgroups_of(id: &str) -> Vec<u32> {
    let mut found: Vec<(u64, u32)> = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if container_of_pid(pid).is_some_and(|(cid, _)| cid.starts_with(id)) {
            let start = proc_start_ticks(pid).unwrap_or(u64::MAX);
            found.push((start, pid));
        }
    }
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

/// The processes in the container cgroup of `pid` (a container's init), from cgroup.procs
/// of a v1 hierarchy or the v2 tree: only a hierarchy whose path names the container counts
/// (in others, such as a hybrid host's name=systemd, the container may sit at the root,
/// beside every process on the host).
pub fn cgroup_procs(pid: u32) -> BTreeSet<u32> {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else { return BTreeSet::new() };
    for line in text.lines().filter(|l| container_of_cgroup(l).is_some()) {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if let Some(m) = cgroup_mount(ctrls)
            && let Ok(procs) = fs::read_to_string(format!("{m}{path}/cgroup.procs"))
        {
            return procs.lines().filter_map(|l| l.trim().parse().ok()).collect();
        }
    }
    BTreeSet::new()
}

/// Where the hierarchy of a /proc/PID/cgroup line is mounted, given the controllers that
/// line names (empty: the v2 tree).
pub fn cgroup_mount(controllers: &str) -> Option<String> {
    let mounts = fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let ok = f.len() > 3
            && if controllers.is_empty() {
                f[2] == "cgroup2"
            } else {
                f[2] == "cgroup" && controllers.split(',').all(|c| f[3].split(',').any(|o| o == c))
            };
        ok.then(|| f[1].to_string())
    })
}

/// The systemd unit a process's cgroup path names: the first component below the slices
/// that is a unit (`nginx.service`, `session-4.scope`, `docker-<id>.scope`), from systemd's
/// own hierarchy (`name=systemd` on cgroup v1 hosts) or the unified one; None outside
/// systemd's tree (a cgroupfs-driver container, the root).
pub fn unit_of_cgroup(text: &str) -> Option<String> {
    let path = |l: &str| l.splitn(3, ':').nth(2).map(str::to_string);
    let named = text.lines().find(|l| l.split(':').nth(1) == Some("name=systemd")).and_then(path);
    let unified = text.lines().find(|l| l.starts_with("0::")).and_then(path);
    named.into_iter().chain(unified).find_map(|p| {
        p.split('/')
            .filter(|c| !c.is_empty())
            .find(|c| !c.ends_with(".slice"))
            .filter(|c| is_unit(c))
            .map(str::to_string)
    })
}

pub fn unit_of_pid(pid: u32) -> Option<String> {
    unit_of_cgroup(&fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?)
}

/// A name of one of systemd's unit types that hold processes.
fn is_unit(c: &str) -> bool {
    [".service", ".scope", ".socket", ".mount", ".swap"].iter().any(|t| c.len() > t.len() && c.ends_with(t))
}

/// Every unit cgroup of the unified hierarchy now: its directory's inode (what the kernel
/// captures of a process, `Target::cgroup`) → the unit. A unit's directory goes when its
/// last process does, often before a SIGKILL's record is read: callers keep what it found.
pub fn unit_cgroups() -> Vec<(u64, String)> {
    use std::os::unix::fs::MetadataExt as _;
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let Some(root) = mounts
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split_whitespace().nth(4))
        .map(std::path::PathBuf::from)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut level = vec![root.clone()];
    // Units sit below slices: system.slice/x.service, user.slice/user-1000.slice/x.scope.
    for _ in 0..4 {
        let mut next = Vec::new();
        for dir in &level {
            for e in fs::read_dir(dir).into_iter().flatten().flatten() {
                let Ok(m) = e.metadata() else { continue };
                if !m.is_dir() {
                    continue;
                }
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".slice") {
                    next.push(e.path());
                } else if is_unit(&name) {
                    out.push((m.ino(), name));
                }
            }
        }
        level = next;
    }
    out
}

/// The cgroup directories of systemd's tree a unit's processes live in (the unified
/// hierarchy's, and systemd's named one on cgroup v1 hosts): every directory of that name.
pub fn unit_cgroup_dirs(unit: &str) -> Vec<std::path::PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let roots: Vec<std::path::PathBuf> = mounts
        .lines()
        .filter(|l| l.contains(" - cgroup2 ") || (l.contains(" - cgroup ") && l.contains("name=systemd")))
        .filter_map(|l| l.split_whitespace().nth(4).map(std::path::PathBuf::from))
        .collect();
    let mut found = Vec::new();
    for root in roots {
        // Units sit under slices: system.slice/x.service, user.slice/user-1000.slice/x.scope.
        let mut level = vec![root];
        for _ in 0..4 {
            let mut next = Vec::new();
            for dir in &level {
                for e in fs::read_dir(dir).into_iter().flatten().flatten() {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    if !e.file_type().is_ok_and(|t| t.is_dir()) {
                        continue;
                    }
                    if name == unit {
                        found.push(e.path());
                    } else if name.ends_with(".slice") {
                        next.push(e.path());
                    }
                }
            }
            level = next;
        }
    }
    found
}

/// The processes in a cgroup directory and the ones below it (a unit may delegate).
pub fn procs_under(dir: &std::path::Path) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(text) = fs::read_to_string(d.join("cgroup.procs")) {
            out.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "5fb8adf9ee62afc6d3f6f3d9590041818750b392dff015d7091eaaf99cf1c945";

    #[test]
    fn own_process_facts() {
        let me = std::process::id();
        assert!(proc_start_ticks(me).is_some());
        // The main thread waits on the test threads: running or sleeping, never a zombie.
        assert!(matches!(proc_state(me), Some('R' | 'S')));
        assert!(proc_state(i32::MAX as u32).is_none());
    }

    #[test]
    fn cgroup_path_forms() {
        let cases = [
            (format!("0::/system.slice/docker-{ID}.scope"), Runtime::Docker),
            (format!("12:pids:/docker/{ID}"), Runtime::Docker),
            (
                format!(
                    "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-{ID}.scope"
                ),
                Runtime::Containerd,
            ),
            (format!("0::/kubepods.slice/kubepods-pod1.slice/crio-{ID}.scope"), Runtime::CriO),
            (format!("0::/machine.slice/libpod-{ID}.scope"), Runtime::Podman),
            (format!("0::/machine.slice/libpod-{ID}.scope/container"), Runtime::Podman),
            (format!("8:pids:/libpod_parent/libpod-{ID}"), Runtime::Podman),
            (format!("4:memory:/kubepods/burstable/pod0a1b/{ID}"), Runtime::Unknown),
            (format!("3:cpu:/k8s.io/{ID}"), Runtime::Containerd),
        ];
        for (text, runtime) in cases {
            assert_eq!(container_of_cgroup(&text), Some((ID.to_string(), runtime)), "{text}");
        }
        assert_eq!(container_of_cgroup("5:pids:/default/web"), Some(("web".into(), Runtime::Containerd)));
        assert_eq!(container_of_cgroup("0::/user.slice/user-0.slice/session-1.scope"), None);
        assert_eq!(container_of_cgroup("0::/"), None);
        // podman's conmons are not in the container.
        assert_eq!(container_of_cgroup("8:pids:/libpod_parent/conmon"), None);
        assert_eq!(container_of_cgroup(&format!("0::/machine.slice/libpod-conmon-{ID}.scope")), None);
    }

    #[test]
    fn the_unit_of_a_cgroup_path() {
        assert_eq!(unit_of_cgroup("0::/system.slice/nginx.service\n").as_deref(), Some("nginx.service"));
        assert_eq!(
            unit_of_cgroup("1:name=systemd:/user.slice/user-1000.slice/session-4.scope\n0::/\n").as_deref(),
            Some("session-4.scope")
        );
        assert_eq!(unit_of_cgroup("0::/system.slice/nginx.service/worker\n").as_deref(), Some("nginx.service"));
        assert_eq!(unit_of_cgroup("0::/kubepods/besteffort/pod1/abc\n"), None);
        assert_eq!(unit_of_cgroup("0::/\n"), None);
    }
}
