//! What this host has, checked before a backend is chosen and attached: does bpf() work, is a
//! tracepoint there, can SystemTap build and load a module. `podsig doctor` collects the
//! same checks into its report; the backends never call into the command.

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

/// The running kernel is `major.minor` or newer (by its release; an unreadable one counts as
/// new, the kernels podsig is mostly run on).
pub(crate) fn kernel_at_least(major: u32, minor: u32) -> bool {
    release_at_least(&kernel_release(), major, minor)
}

fn release_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit()).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => true,
    }
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

/// Effective capabilities of this process, from /proc/self/status.
pub(crate) fn cap_eff() -> u64 {
    status_field("CapEff:").and_then(|v| u64::from_str_radix(&v, 16).ok()).unwrap_or(0)
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Enough privilege for the eBPF backend: CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON.
pub(crate) fn privileged(caps: u64) -> bool {
    let has = |c: u32| caps & (1u64 << c) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

fn status_field(key: &str) -> Option<String> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim().to_string())
}

/// Why bpf() failed, in words a person can act on. A refusal by the seccomp filter podsig
/// runs under (what a container runtime's default profile does) reads like missing
/// privilege (EPERM either way), and its fix is elsewhere: /proc/self/status tells them apart.
pub(crate) fn bpf_refusal(e: &std::io::Error) -> String {
    let seccomp_filter = status_field("Seccomp:").as_deref() == Some("2");
    bpf_refusal_from(e, seccomp_filter, privileged(cap_eff()))
}

fn bpf_refusal_from(e: &std::io::Error, seccomp_filter: bool, privileged: bool) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSYS) => "absent from this kernel (CONFIG_BPF_SYSCALL off)".into(),
        Some(libc::EPERM) if seccomp_filter => "refused (EPERM) by the seccomp filter podsig runs under, as a \
                                               container runtime's default profile does: run podsig with seccomp \
                                               unconfined"
            .into(),
        Some(libc::EPERM | libc::EACCES) if !privileged => {
            format!("refused without privilege ({e}): run as root, or grant CAP_BPF and CAP_PERFMON")
        }
        Some(libc::EPERM | libc::EACCES) => {
            format!("refused to a privileged podsig ({e}) by a security module's policy (SELinux, AppArmor, BPF LSM)")
        }
        _ => format!("failed ({e}): a kernel with CONFIG_BPF_SYSCALL=y"),
    }
}

/// Whether `program` is found in a directory of $PATH.
pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
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
    let loading = module_loading_check();
    let loads = loading.status == Status::Ok;
    checks.push(loading);
    let usable = version.is_some() && headers.exists() && debuginfo.is_some() && loads;
    let why = if usable {
        "stap, headers, debuginfo and module loading are all here".to_string()
    } else {
        let missing: Vec<&str> = checks.iter().filter(|c| c.status == Status::Missing).map(|c| c.name).collect();
        format!("missing: {}", missing.join(", "))
    };
    (checks, usable, why)
}

/// A module built ahead of time (`podsig stap-build`) needs only staprun, module loading,
/// and to have been built for this kernel by this podsig: no translator, headers or
/// debuginfo.
pub(crate) fn stap_module_checks(module: &Path, release: &str) -> (Vec<Check>, bool, String) {
    let staprun = on_path("staprun");
    let mut checks = vec![check(
        "staprun",
        staprun,
        if staprun { "found in PATH" } else { "not in PATH" },
        "apt-get install systemtap-runtime (Debian/Ubuntu) or dnf install systemtap-runtime",
    )];
    let fits = crate::source::stap::module::check(module, release);
    checks.push(check(
        "SystemTap module",
        fits.is_ok(),
        match &fits {
            Ok(_) => format!("{} was built for {release} by this podsig", module.display()),
            Err(e) => format!("{e:#}"),
        },
        format!("podsig stap-build --kernel-release {release} on a host with its headers and debuginfo"),
    ));
    checks.push(module_loading_check());
    let usable = checks.iter().all(|c| c.status == Status::Ok);
    let why = if usable {
        format!("staprun, module loading and {} are here", module.display())
    } else {
        let missing: Vec<String> = checks
            .iter()
            .filter(|c| c.status == Status::Missing)
            .map(|c| format!("{} ({})", c.name, c.detail))
            .collect();
        format!("missing: {}", missing.join(", "))
    };
    (checks, usable, why)
}

fn module_loading_check() -> Check {
    let modules = Path::new("/proc/modules").exists();
    let disabled = fs::read_to_string("/proc/sys/kernel/modules_disabled").is_ok_and(|s| s.trim() == "1");
    let loads = modules && !disabled;
    check(
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
    )
}

#[cfg(test)]
mod tests {

    #[test]
    fn releases_compare_by_major_and_minor() {
        assert!(release_at_least("6.18.44", 5, 17));
        assert!(release_at_least("5.17.0-rc1", 5, 17));
        assert!(!release_at_least("5.10.0-32-amd64", 5, 17));
        assert!(!release_at_least("4.19.0", 5, 17));
        assert!(release_at_least("", 5, 17));
    }
    use super::*;

    #[test]
    fn a_refused_bpf_names_who_refused_it() {
        let eperm = std::io::Error::from_raw_os_error(libc::EPERM);
        let seccomp = bpf_refusal_from(&eperm, true, true);
        assert!(seccomp.contains("seccomp filter") && seccomp.contains("unconfined"), "{seccomp}");
        assert!(bpf_refusal_from(&eperm, false, false).contains("run as root"));
        let lsm = bpf_refusal_from(&eperm, false, true);
        assert!(lsm.contains("security module") && !lsm.contains("run as root"), "{lsm}");
        let enosys = std::io::Error::from_raw_os_error(libc::ENOSYS);
        assert!(bpf_refusal_from(&enosys, true, true).contains("CONFIG_BPF_SYSCALL off"));
    }
}
