//! Feature probes the backends run before choosing and attaching: does bpf() work, is a
//! tracepoint there, can SystemTap build and load a module. `podsig doctor` collects the
//! same probes into its report; the backends never call into the command.

use std::{fs, os::fd::FromRawFd, path::Path, process::Command};

use serde::Serialize;

use crate::source::ebpf::tracefs;

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Missing,
    Info,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

pub(crate) fn check(name: &'static str, ok: bool, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        status: if ok { Status::Ok } else { Status::Missing },
        detail: detail.into(),
        fix: (!ok).then(|| fix.into()),
    }
}

pub(crate) fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Creates (and closes) a BPF map of `map_type`: proves bpf() works and the type exists.
pub(crate) fn bpf_map_create(map_type: u32, key: u32, value: u32, entries: u32) -> Result<(), std::io::Error> {
    // union bpf_attr, BPF_MAP_CREATE part: map_type, key_size, value_size, max_entries.
    let mut attr = [0u8; 128];
    for (i, v) in [map_type, key, value, entries].iter().enumerate() {
        attr[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    }
    // SAFETY: bpf(BPF_MAP_CREATE) reads `attr` within the size given.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 0, attr.as_ptr(), attr.len() as u32) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor we own.
    drop(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) });
    Ok(())
}

pub(crate) fn tracepoint(category: &str, name: &str) -> bool {
    Path::new(tracefs::TRACEFS).join("events").join(category).join(name).exists()
}

/// The first line of `stap --version` (SystemTap prints it on stderr), if stap runs.
pub(crate) fn stap_version() -> Option<String> {
    Command::new("stap").arg("--version").output().ok().filter(|o| o.status.success() || !o.stderr.is_empty()).map(
        |o| {
            let all = String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
            all.lines().next().unwrap_or("").to_string()
        },
    )
}

/// SystemTap needs its translator, this kernel's headers and debuginfo, and a kernel that
/// loads modules.
pub(crate) fn stap_checks(release: &str) -> (Vec<Check>, bool, String) {
    let mut checks = Vec::new();
    let version = stap_version();
    checks.push(check(
        "stap",
        version.is_some(),
        version.clone().unwrap_or_else(|| "not installed".into()),
        "apt-get install systemtap (Debian/Ubuntu) or dnf install systemtap (Fedora/RHEL)",
    ));
    let headers = Path::new("/lib/modules").join(release).join("build");
    checks.push(check(
        "kernel headers",
        headers.exists(),
        format!("{}{}", headers.display(), if headers.exists() { "" } else { " absent" }),
        format!("apt-get install linux-headers-{release} (Debian/Ubuntu) or dnf install kernel-devel-{release}"),
    ));
    let debuginfo =
        [format!("/usr/lib/debug/boot/vmlinux-{release}"), format!("/usr/lib/debug/lib/modules/{release}/vmlinux")]
            .into_iter()
            .find(|p| Path::new(p).exists());
    checks.push(check(
        "kernel debuginfo",
        debuginfo.is_some(),
        debuginfo.clone().unwrap_or_else(|| "no vmlinux with debug info".into()),
        format!("apt-get install linux-image-{release}-dbg (Debian) / -dbgsym (Ubuntu ddebs) or dnf debuginfo-install kernel-{release}"),
    ));
    let modules = Path::new("/proc/modules").exists();
    let disabled = fs::read_to_string("/proc/sys/kernel/modules_disabled").is_ok_and(|s| s.trim() == "1");
    let loads = modules && !disabled;
    checks.push(check(
        "kernel module loading",
        loads,
        if !modules {
            "this kernel has no loadable-module support (CONFIG_MODULES off)".to_string()
        } else if disabled {
            "kernel.modules_disabled=1".to_string()
        } else {
            "modules can be loaded".to_string()
        },
        "SystemTap runs as a kernel module: use a kernel with CONFIG_MODULES=y, or the eBPF backend",
    ));
    let usable = version.is_some() && headers.exists() && debuginfo.is_some() && loads;
    let why = if usable {
        "stap, headers, debuginfo and module loading are all here".to_string()
    } else {
        let missing: Vec<&str> = checks.iter().filter(|c| c.status == Status::Missing).map(|c| c.name).collect();
        format!("missing: {}", missing.join(", "))
    };
    (checks, usable, why)
}
