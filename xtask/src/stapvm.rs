//! The SystemTap backend for real, on two pairs of a distribution's SystemTap and the
//! kernel it builds for: Debian bullseye's own SystemTap 4.4 for bullseye's 5.10 (the user
//! the fallback exists for), and sid's SystemTap 5.6 for trixie's 6.12 (the first that
//! builds and starts a module there). For each, a module built once by `podsig stap-build`
//! in a debootstrapped root of that suite, then a guest of that kernel where:
//! - the same short-lived `sh -c kill` is watched through the module and through eBPF at
//!   once, and the two records are compared field by field ([`DIFFERS`]);
//! - podsig runs under a seccomp filter that refuses bpf(2), with the default backend:
//!   `auto` must say why eBPF cannot run, load the module, and report the kill;
//! - the same without a module (and no stap in the guest): one error naming what each
//!   backend lacks.
//!
//! The roots and their downloads (~1 GB each, 7–9 GB unpacked, mostly debuginfo) are cached
//! outside the clone; the host's own apt sources are never touched (each root has its own).

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::vm::{self, MARK};

const APT: [&str; 2] = ["-o", "Acquire::Check-Valid-Until=false"];

/// A SystemTap and the kernel it builds modules for.
pub struct Pair {
    /// `--kernel stap-NAME` selects it alone.
    pub name: &'static str,
    /// The root's suite (debootstrap), whose SystemTap builds the module.
    suite: &'static str,
    /// The root's apt sources: its suite, and the kernel's when that is another.
    sources: &'static [&'static str],
    /// The kernel's debug package; the newest match is the kernel.
    dbg_pattern: &'static str,
    /// podsig built static (musl): the host's build needs a newer C library than the
    /// root's (bullseye's glibc 2.31; the host build asks for 2.34).
    pub static_podsig: bool,
}

pub const PAIRS: &[Pair] = &[
    Pair {
        name: "bullseye",
        suite: "bullseye",
        sources: &["bullseye"],
        dbg_pattern: r"^linux-image-5\.10\.0-[0-9]+-amd64-dbg$",
        static_podsig: true,
    },
    Pair {
        name: "sid",
        suite: "sid",
        sources: &["sid", "trixie"],
        dbg_pattern: r"^linux-image-6\.12\.[0-9]+\+deb13-amd64-dbg$",
        static_podsig: false,
    },
];

impl Pair {
    fn root(&self) -> PathBuf {
        vm::cache_dir().join(format!("stap/{}-root", self.suite))
    }
}

/// /proc and /dev inside the root while apt and stap run there; unmounted on drop.
pub(crate) struct Mounts(Vec<PathBuf>);

impl Mounts {
    pub(crate) fn new(root: &Path) -> Result<Self> {
        let mut m = Mounts(Vec::new());
        for (what, args) in [("proc", vec!["-t", "proc", "proc"]), ("dev", vec!["--bind", "/dev"])] {
            let dir = root.join(what);
            let st = Command::new("mount").args(&args).arg(&dir).status()?;
            if !st.success() {
                bail!("mounting {}", dir.display());
            }
            m.0.push(dir);
        }
        Ok(m)
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for d in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(d).status();
        }
    }
}

pub(crate) fn chroot(root: &Path) -> Command {
    let mut c = Command::new("chroot");
    c.arg(root).env("DEBIAN_FRONTEND", "noninteractive").env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    c
}

pub(crate) fn run(what: &str, cmd: &mut Command) -> Result<String> {
    let o = cmd.output().with_context(|| format!("{what}: starting {cmd:?}"))?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
        bail!("{what} failed: {last}");
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The root of `pair`'s suite with SystemTap, headers and debuginfo for its newest kernel,
/// and that kernel's vmlinuz.
pub struct Env {
    root: PathBuf,
    release: String,
    vmlinuz: PathBuf,
}

/// Builds (once) or refreshes `pair`'s [`Env`]; runs on a thread of its own.
pub fn environment(pair: &Pair) -> Result<Env> {
    let root = pair.root();
    let suite = pair.suite;
    let mirror = vm::host_mirror()?;
    if !root.join(".podsig-debootstrapped").exists() {
        let tmp = root.with_extension("tmp");
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(tmp.parent().unwrap())?;
        println!("xtask: vm-test: stap: debootstrap --variant=minbase {suite} (once, cached in {})", root.display());
        run("debootstrap", Command::new("debootstrap").args(["--variant=minbase", suite]).arg(&tmp).arg(&mirror))?;
        let _ = fs::remove_dir_all(&root);
        fs::rename(&tmp, &root)?;
        fs::write(root.join(".podsig-debootstrapped"), "")?;
    }
    let sources: String = pair.sources.iter().map(|s| format!("deb {mirror} {s} main\n")).collect();
    fs::write(root.join("etc/apt/sources.list"), sources)?;
    let _mounts = Mounts::new(&root)?;
    let stamp = root.join(".podsig-apt-updated");
    let stale = fs::metadata(&stamp)
        .and_then(|m| m.modified())
        .map_or(true, |t| t.elapsed().unwrap_or_default().as_secs() > 86400);
    if stale {
        run(
            &format!("apt-get update in the {suite} root"),
            chroot(&root).arg("apt-get").args(APT).args(["update", "-q"]),
        )?;
        fs::write(&stamp, "")?;
    }
    let found = run("apt-cache search", chroot(&root).args(["apt-cache", "search", "--names-only", pair.dbg_pattern]))?;
    let mut names: Vec<String> =
        found.lines().filter_map(|l| l.split_whitespace().next().map(str::to_string)).collect();
    names.sort_by_key(|n| {
        n.split(|c: char| !c.is_ascii_digit()).filter_map(|x| x.parse::<u64>().ok()).collect::<Vec<_>>()
    });
    let dbg =
        names.pop().with_context(|| format!("no kernel debug package matches {} on the mirror", pair.dbg_pattern))?;
    let release = dbg.trim_start_matches("linux-image-").trim_end_matches("-dbg").to_string();
    let installed = root.join(format!(".podsig-installed-{release}"));
    if !installed.exists() {
        println!(
            "xtask: vm-test: stap: installing systemtap, headers and debuginfo for {release} in the {suite} root (once; ~1 GB)"
        );
        run(
            "installing SystemTap, headers and debuginfo",
            chroot(&root)
                .arg("apt-get")
                .args(APT)
                .args(["install", "-y", "-q", "--no-install-recommends", "systemtap"])
                .args([format!("linux-headers-{release}"), dbg.clone()]),
        )?;
        run("apt-get clean", chroot(&root).args(["apt-get", "clean"]))?;
        fs::write(&installed, "")?;
    }
    let vmlinuz = vm::cache_dir().join(format!("vmlinuz-{release}"));
    // trixie's headers pull in the kernel image itself: use its vmlinuz.
    let in_root = root.join(format!("boot/vmlinuz-{release}"));
    if !vmlinuz.exists() && in_root.exists() {
        fs::copy(&in_root, &vmlinuz)?;
    }
    if !vmlinuz.exists() {
        let pkg = format!("linux-image-{release}-unsigned");
        println!("xtask: vm-test: stap: downloading {pkg}");
        run(
            "downloading the kernel",
            chroot(&root).args(["sh", "-c", &format!("cd /tmp && apt-get {} download -q {pkg}", APT.join(" "))]),
        )?;
        let deb = fs::read_dir(root.join("tmp"))?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{pkg}_"))))
            .context("the kernel package was not downloaded")?;
        vm::extract_vmlinuz(&deb, &release, &vmlinuz)?;
        let _ = fs::remove_file(&deb);
    }
    Ok(Env { root, release, vmlinuz })
}

/// `podsig stap-build` inside the root: the module users would build on their build host.
fn build_module(root: &Path, podsig: &Path, release: &str) -> Result<PathBuf> {
    fs::copy(podsig, root.join("podsig"))?;
    let _mounts = Mounts::new(root)?;
    let inside = format!("/podsig-{release}.ko");
    println!("xtask: vm-test: stap: podsig stap-build --kernel-release {release} (in the root)");
    run("podsig stap-build", chroot(root).args(["/podsig", "stap-build", "--kernel-release", release, "-o", &inside]))?;
    Ok(root.join(inside.trim_start_matches('/')))
}

const INIT: &str = r#"#!/bin/sh
export PATH=/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t debugfs debugfs /sys/kernel/debug
M="PODSIG-VM"
echo "$M kernel $(uname -r)"
# settle NAME:PID…: until each watch said it attached, or exited (at most 3 minutes).
settle() {
  i=0
  while test $i -lt 900; do
    ready=1
    for w in "$@"; do
      if ! grep -q "podsig: attached" /tmp/${w%%:*}.err && kill -0 ${w#*:} 2>/dev/null; then ready=0; fi
    done
    if test $ready = 1; then return; fi
    sleep 0.2; i=$((i+1))
  done
}
report() {
  echo "$M $1 watch-rc $2"
  while read -r l; do echo "$M $1 err $l"; done < /tmp/$1.err
  while read -r l; do echo "$M $1 out $l"; done < /tmp/$1.out
}
# One kill, seen by the module and by eBPF at once, on the same target.
sleep 600 &
T=$!
echo "$M target $T"
/podsig watch --backend stap --stap-module /podsig.ko --pid $T -o json > /tmp/stap.out 2> /tmp/stap.err &
S=$!
/podsig watch --backend ebpf --pid $T -o json > /tmp/ebpf.out 2> /tmp/ebpf.err &
E=$!
settle stap:$S ebpf:$E
sh -c "kill -KILL $T"
wait $E
ER=$?
wait $S
SR=$?
report ebpf $ER
report stap $SR
# The default backend with bpf() refused by a seccomp filter: the module, said in one line.
sleep 600 &
A=$!
echo "$M auto-target $A"
/no-bpf /podsig watch --stap-module /podsig.ko --pid $A -o json > /tmp/auto.out 2> /tmp/auto.err &
W=$!
settle auto:$W
sh -c "kill -KILL $A"
wait $W
report auto $?
# Neither: bpf() refused, no module given, no stap here.
/no-bpf /podsig watch --pid 1 --duration 5s > /tmp/neither.out 2> /tmp/neither.err
report neither $?
echo "$M done"
poweroff -f
"#;

/// busybox, podsig (with its libraries unless static), no-bpf, staprun and stapio with
/// their libraries (the root's), the module, the init script.
fn initramfs(pair: &Pair, root: &Path, no_bpf: &Path, module: &Path, work: &Path) -> Result<PathBuf> {
    let stapio = ["usr/libexec/systemtap/stapio", "usr/lib/systemtap/stapio"]
        .into_iter()
        .find(|p| root.join(p).exists())
        .context("stapio not found in the root")?;
    let mut files: Vec<(PathBuf, String)> = vec![
        (root.join("usr/bin/staprun"), "usr/bin/staprun".into()),
        (root.join(stapio), stapio.into()),
        (module.to_path_buf(), "podsig.ko".into()),
        (root.join("podsig"), "podsig".into()),
        (no_bpf.to_path_buf(), "no-bpf".into()),
    ];
    let stapio = format!("/{stapio}");
    let mut dynamic = vec!["/usr/bin/staprun", stapio.as_str()];
    if !pair.static_podsig {
        dynamic.push("/podsig");
    }
    for bin in dynamic {
        for line in run("ldd in the root", chroot(root).args(["ldd", bin]))?.lines() {
            if let Some(p) = line.split_whitespace().find(|w| w.starts_with('/')) {
                files.push((in_root(root, p)?, p.trim_start_matches('/').to_string()));
            }
        }
    }
    vm::pack_initramfs(
        work,
        INIT,
        &["sh", "mount", "sleep", "kill", "grep", "cat", "uname", "poweroff", "echo", "test"],
        &files,
    )
}

/// `path` inside `root`, its symlinks followed there: bullseye's
/// /lib64/ld-linux-x86-64.so.2 points at an absolute path, which from the host is the
/// host's own (or nothing).
fn in_root(root: &Path, path: &str) -> Result<PathBuf> {
    let mut p = PathBuf::from(path.trim_start_matches('/'));
    for _ in 0..40 {
        let full = root.join(&p);
        match fs::read_link(&full) {
            Ok(target) if target.is_absolute() => p = target.strip_prefix("/")?.to_path_buf(),
            Ok(target) => p = p.parent().unwrap_or(Path::new("")).join(target),
            Err(_) => return Ok(full),
        }
    }
    bail!("{path}: too many symbolic links in {}", root.display())
}

/// One pair's row of the vm-test table.
pub struct Outcome {
    pub pair: &'static str,
    pub release: String,
    pub stap_version: String,
    pub stap_ready_ms: String,
    pub ebpf_ready_ms: String,
    /// Both reported the kill and agree (the ancestry as a chain), or why not.
    pub same: Result<String, String>,
    /// Fields that differed on this kill: (field, eBPF's value, stap's value, why).
    pub differs: Vec<(String, String, String, &'static str)>,
    /// auto under the seccomp filter: its one line, or why it failed.
    pub auto: Result<String, String>,
    /// Neither backend: the one error, or why it failed.
    pub neither: Result<String, String>,
    pub console: String,
}

impl Outcome {
    pub fn pass(&self) -> bool {
        self.same.is_ok() && self.auto.is_ok() && self.neither.is_ok()
    }
}

fn ready_ms(lines: &[&str], backend: &str) -> String {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{backend} err podsig: attached (")))
        .and_then(|a| a.rsplit(", ").next())
        .map_or("?".into(), |ms| ms.trim_end_matches(')').trim_end_matches(" ms").to_string())
}

fn field(lines: &[&str], key: &str) -> Option<String> {
    lines.iter().find_map(|l| l.strip_prefix(key)).map(|v| v.trim().to_string())
}

/// The signal record `scenario` printed for `target`.
fn signal(lines: &[&str], scenario: &str, target: u64) -> Result<Value, String> {
    let prefix = format!("{scenario} out ");
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["kind"] == "signal" && v["target"]["pid"] == target)
        .ok_or_else(|| format!("no signal record from {scenario}"))
}

fn chain(v: &Value) -> Vec<(u64, String)> {
    v["ancestry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| (a["pid"].as_u64().unwrap_or(u64::MAX), a["comm"].as_str().unwrap_or("").to_string()))
        .collect()
}

/// Both backends reported the kill, and agree on signal, sender, parent and ancestry.
fn compare(s: &Value, e: &Value) -> Result<String, String> {
    if s["backend"] != "stap" || e["backend"] != "ebpf" {
        return Err(format!("backends: {} / {}", s["backend"], e["backend"]));
    }
    for (what, a, b) in [
        ("signal", &s["signal"]["name"], &e["signal"]["name"]),
        ("sender pid", &s["sender"]["pid"], &e["sender"]["pid"]),
        ("sender comm", &s["sender"]["comm"], &e["sender"]["comm"]),
        ("parent", &s["sender"]["ppid"], &e["sender"]["ppid"]),
    ] {
        if a != b {
            return Err(format!("{what} differs: stap {a}, ebpf {b}"));
        }
    }
    if e["signal"]["name"] != "SIGKILL" || e["sender"]["comm"] != "sh" {
        return Err(format!("not the kill sent: {e}"));
    }
    let (cs, ce) = (chain(s), chain(e));
    if cs != ce {
        return Err(format!("ancestry differs: stap {cs:?}, ebpf {ce:?}"));
    }
    if !ce.iter().any(|(p, _)| *p == 1) {
        return Err(format!("the ancestry does not reach pid 1: {ce:?}"));
    }
    Ok(ce.iter().map(|(p, c)| format!("{c}({p})")).collect::<Vec<_>>().join("=>"))
}

/// Who can see a field two records of the same kill may disagree on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// eBPF only: stap's value is null, absent, empty or false, never one of its own.
    Ebpf,
    /// stap only, where the eBPF build the kernel took does not capture it: eBPF's value is
    /// null, absent, empty or false.
    Stap,
    /// Both, each in its own terms (the backend, its clock, what it lacks).
    Both,
    /// Neither: podsig derives it from fields only eBPF sees, and says less for stap.
    Derived,
    /// Read by podsig from /proc while the process lives (a race with its exit), where
    /// the record did not bring it: either may have it, and where both do it is the same.
    Proc,
}

/// Every JSON field (a prefix of the flattened path; `[]` for any index) that may differ
/// between stap's and eBPF's records of the same kill, and why. Any other difference fails
/// the run; README lists these.
const DIFFERS: &[(&str, Seen, &str)] = &[
    ("backend", Seen::Both, "the backend that made the record"),
    ("time", Seen::Both, "stap reads the wall clock in the probe; eBPF converts its boot-clock stamp"),
    ("lacks", Seen::Both, "each record says what its hook leaves out"),
    ("boot_ns", Seen::Ebpf, "stap has no CLOCK_BOOTTIME reading"),
    ("errno", Seen::Ebpf, "the script does not read si_errno"),
    ("context", Seen::Ebpf, "the script cannot tell an interrupt from the task it landed on"),
    ("syscall", Seen::Ebpf, "the script does not read the sender's syscall"),
    ("target.ns_pid", Seen::Ebpf, "the script reads no pid namespace"),
    ("target.ns_init", Seen::Ebpf, "the script reads no pid namespace"),
    ("target.disposition", Seen::Ebpf, "the script does not read the target's signal handlers"),
    ("target.blocked", Seen::Ebpf, "the script does not read the target's blocked mask"),
    ("target.exiting", Seen::Ebpf, "the script does not read the target's group exit"),
    ("sender.ns_pid", Seen::Ebpf, "the script reads no pid namespace"),
    (
        "sender.exe",
        Seen::Proc,
        "eBPF's loop build reads it in the kernel; else podsig reads /proc while the sender still lives",
    ),
    ("ancestry[].exe", Seen::Ebpf, "the script reads no executable"),
    (
        "ancestry[].kthread",
        Seen::Stap,
        "eBPF reads an ancestor's flags with its executable, which its bounded build (no bpf_loop: 5.10) lacks",
    ),
    ("cause", Seen::Derived, "without the sender's syscall, SI_USER does not tell kill(2) from the kernel"),
    ("cause_detail", Seen::Derived, "follows cause"),
];

/// `v` flattened to (path, leaf) pairs, array indices kept (`ancestry[2].comm`).
fn flatten(v: &Value, path: &str, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                flatten(x, &if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flatten(x, &format!("{path}[{i}]"), out);
            }
        }
        leaf => {
            out.insert(path.to_string(), leaf.clone());
        }
    }
}

/// `ancestry[2].exe.ino` → `ancestry[].exe.ino`.
fn generic(path: &str) -> String {
    let mut out = String::new();
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => in_index = true,
            ']' => {
                in_index = false;
                out.push_str("[]");
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

fn empty(v: &Value) -> bool {
    matches!(v, Value::Null | Value::Bool(false)) || v.as_str() == Some("")
}

/// Field by field: every difference documented in [`DIFFERS`], what a backend cannot see
/// null or empty in its record, the two clocks within a second. Returns one row per documented field
/// that differed (eBPF's value, stap's, why).
fn field_diff(s: &Value, e: &Value) -> Result<Vec<(String, String, String, &'static str)>, String> {
    let (mut fs_, mut fe) = (BTreeMap::new(), BTreeMap::new());
    flatten(s, "", &mut fs_);
    flatten(e, "", &mut fe);
    let mut rows: BTreeMap<&str, (Vec<String>, Vec<String>, &'static str)> = BTreeMap::new();
    let mut undocumented = Vec::new();
    for path in fs_.keys().chain(fe.keys()).collect::<std::collections::BTreeSet<_>>() {
        let (a, b) = (fs_.get(path).unwrap_or(&Value::Null), fe.get(path).unwrap_or(&Value::Null));
        if a == b {
            continue;
        }
        let g = generic(path);
        let Some(&(name, seen, why)) = DIFFERS
            .iter()
            .find(|(p, _, _)| g == *p || g.starts_with(&format!("{p}.")) || g.starts_with(&format!("{p}[")))
        else {
            undocumented.push(format!("{path}: stap {a}, ebpf {b}"));
            continue;
        };
        if seen == Seen::Proc && !a.is_null() && !b.is_null() {
            return Err(format!("{path} differs: stap {a}, ebpf {b}"));
        }
        for (who, only, v) in [("stap", Seen::Ebpf, a), ("ebpf", Seen::Stap, b)] {
            if seen == only && !empty(v) {
                return Err(format!("{who} says {path} = {v}, which it cannot see (stap {a}, ebpf {b})"));
            }
        }
        let row = rows.entry(name).or_insert((Vec::new(), Vec::new(), why));
        // `ancestry[].exe` from `ancestry[1].exe.ino`: "ino: 69".
        let short = |v: &Value| match g.strip_prefix(name).map(|sub| sub.trim_start_matches(['.', '[', ']'])) {
            Some(sub) if !sub.is_empty() => format!("{sub}: {v}"),
            _ => v.to_string(),
        };
        for (list, v) in [(&mut row.0, b), (&mut row.1, a)] {
            if !v.is_null() && list.len() < 3 {
                list.push(short(v));
            }
        }
    }
    if !undocumented.is_empty() {
        return Err(format!("undocumented differences: {}", undocumented.join("; ")));
    }
    // "2026-12-04T15:06:01.123456789Z": the time of day is enough a second apart.
    let ns = |v: &Value| -> Option<i128> {
        let (_, t) = v.as_str()?.trim_end_matches('Z').split_once('T')?;
        let mut hms = t.split(':');
        let (h, m, s) = (hms.next()?.parse::<i128>().ok()?, hms.next()?.parse::<i128>().ok()?, hms.next()?);
        let (sec, frac) = s.split_once('.').unwrap_or((s, "0"));
        let frac: i128 = format!("{frac:0<9}")[..9].parse().ok()?;
        Some(((h * 60 + m) * 60 + sec.parse::<i128>().ok()?) * 1_000_000_000 + frac)
    };
    if let (Some(a), Some(b)) = (ns(&s["time"]), ns(&e["time"]))
        && (a - b).abs() > 1_000_000_000
    {
        return Err(format!("the clocks disagree by {} ms", (a - b) / 1_000_000));
    }
    let show = |l: &[String]| if l.is_empty() { "null".to_string() } else { l.join(", ") };
    Ok(rows.into_iter().map(|(n, (e, s, why))| (n.to_string(), show(&e), show(&s), why)).collect())
}

/// auto under the seccomp filter: one line saying why eBPF cannot run and that SystemTap
/// is used, then the kill reported through the module.
fn auto_verdict(lines: &[&str]) -> Result<String, String> {
    if field(lines, "auto watch-rc ").as_deref() != Some("0") {
        return Err(format!("podsig watch exited with {:?}", field(lines, "auto watch-rc ")));
    }
    let target: u64 = field(lines, "auto-target ").and_then(|t| t.parse().ok()).ok_or("no target pid")?;
    let said: Vec<&str> =
        lines.iter().filter_map(|l| l.strip_prefix("auto err ")).filter(|l| l.contains("backend auto")).collect();
    let [line] = said[..] else { return Err(format!("not one line from backend auto: {said:?}")) };
    for needle in
        ["eBPF cannot run here", "refused (EPERM) by the seccomp filter", "using SystemTap (module /podsig.ko)"]
    {
        if !line.contains(needle) {
            return Err(format!("{needle:?} not in {line:?}"));
        }
    }
    let r = signal(lines, "auto", target)?;
    if r["backend"] != "stap" || r["signal"]["name"] != "SIGKILL" || r["sender"]["comm"] != "sh" {
        return Err(format!("not the kill sent, through stap: {r}"));
    }
    Ok(line.trim_start_matches("WARN ").to_string())
}

/// bpf() refused and no module: one error naming what each backend lacks.
fn neither_verdict(lines: &[&str]) -> Result<String, String> {
    if field(lines, "neither watch-rc ").as_deref() == Some("0") {
        return Err("podsig watch succeeded with neither backend".into());
    }
    let err: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix("neither err ")).collect();
    let [line] = err[..] else { return Err(format!("not one line: {err:?}")) };
    for needle in ["no backend can run here", "refused (EPERM) by the seccomp filter", "SystemTap is missing: stap"] {
        if !line.contains(needle) {
            return Err(format!("{needle:?} not in {line:?}"));
        }
    }
    Ok(line.to_string())
}

/// Builds `pair`'s module in its root and its guest, boots it, judges.
pub fn live(
    pair: &Pair,
    env: Env,
    podsig: &Path,
    no_bpf: &Path,
    work: &Path,
    inputs: &mut crate::floating::Inputs,
) -> Result<Outcome> {
    let Env { root, release, vmlinuz } = env;
    inputs.note(&format!("kernel for {}'s SystemTap (newest matching {})", pair.name, pair.dbg_pattern), &release);
    // "Systemtap translator/driver (version 5.6/0.192, Debian version 5.6-1)", on stderr.
    let stap_version = run("stap -V", chroot(&root).args(["sh", "-c", "stap -V 2>&1"]))
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split("version ").nth(1))
        .map_or("?".into(), |v| v.split('/').next().unwrap_or("?").to_string());
    inputs.note(&format!("{}'s SystemTap", pair.name), &stap_version);
    let module = build_module(&root, podsig, &release)?;
    let dir = work.join(format!("stap-{}", pair.name));
    fs::create_dir_all(&dir)?;
    let initrd = initramfs(pair, &root, no_bpf, &module, &dir)?;
    let console = vm::qemu(&release, &vmlinuz, &initrd)?;
    let lines: Vec<&str> = console.lines().filter_map(|l| l.find(MARK).map(|i| &l[i + MARK.len()..])).collect();
    let both = field(&lines, "target ")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| "no target pid".to_string())
        .and_then(|t| Ok((signal(&lines, "stap", t)?, signal(&lines, "ebpf", t)?)));
    let (same, differs) = match both.and_then(|(s, e)| Ok((compare(&s, &e)?, field_diff(&s, &e)?))) {
        Ok((chain, rows)) => (Ok(chain), rows),
        Err(e) => (Err(e), Vec::new()),
    };
    Ok(Outcome {
        pair: pair.name,
        release,
        stap_version,
        stap_ready_ms: ready_ms(&lines, "stap"),
        ebpf_ready_ms: ready_ms(&lines, "ebpf"),
        same,
        differs,
        auto: auto_verdict(&lines),
        neither: neither_verdict(&lines),
        console: console.clone(),
    })
}

/// The tables vm-test prints for the pairs.
pub fn print(outcomes: &[Outcome]) {
    let cell = |r: &Result<String, String>| match r {
        Ok(_) => "pass".to_string(),
        Err(e) => format!("FAIL: {e}"),
    };
    println!(
        "\n| kernel | SystemTap | one `sh -c kill`, module (staprun) and eBPF at once | `auto`, bpf() refused by seccomp | neither backend: one error | ready: module load (ms, TCG) | ready: eBPF attach (ms, TCG) |\n|---|---|---|---|---|---|---|"
    );
    for o in outcomes {
        let same = match &o.same {
            Ok(chain) => format!("same signal, sender, parent, ancestry {chain}"),
            Err(e) => format!("FAIL: {e}"),
        };
        println!(
            "| {} | {} | {same} | {} | {} | {} | {} |",
            o.release,
            o.stap_version,
            cell(&o.auto),
            cell(&o.neither),
            o.stap_ready_ms,
            o.ebpf_ready_ms
        );
    }
    for o in outcomes {
        if !o.differs.is_empty() {
            println!(
                "\nFields that differed on {} (SystemTap {}):\n\n| field | eBPF | stap | why |\n|---|---|---|---|",
                o.release, o.stap_version
            );
            for (f, e, s, why) in &o.differs {
                println!("| `{f}` | {} | {} | {why} |", e.replace('|', "\\|"), s.replace('|', "\\|"));
            }
        }
        if let (Ok(auto), Ok(neither)) = (&o.auto, &o.neither) {
            println!("\n{} auto said: {auto}\n{} neither: {neither}", o.release, o.release);
        }
        if !o.pass() {
            eprintln!("\n--- guest console ({}) ---\n{}\n---", o.release, o.console);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pair() -> (Value, Value) {
        let ebpf = json!({"backend": "ebpf", "time": "2026-12-04T15:58:25.493036181Z", "syscall": "kill",
            "sender": {"pid": 178, "uid": 0, "exe": "/bin/busybox"},
            "ancestry": [{"pid": 0, "comm": "swapper/0", "kthread": true}, {"pid": 178, "comm": "sh",
                "exe": {"path": "/bin/busybox", "ino": 69}}]});
        let stap = json!({"backend": "stap", "time": "2026-12-04T15:58:25.489850903Z", "syscall": null,
            "sender": {"pid": 178, "uid": 0, "exe": null},
            "ancestry": [{"pid": 0, "comm": "swapper/0", "kthread": true}, {"pid": 178, "comm": "sh"}],
            "lacks": ["executable_identity"]});
        (stap, ebpf)
    }

    #[test]
    fn documented_differences_are_rows() {
        let (s, e) = pair();
        let rows = field_diff(&s, &e).unwrap();
        let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(names, ["ancestry[].exe", "backend", "lacks", "sender.exe", "syscall", "time"]);
        assert_eq!(rows[0].1, "ino: 69, path: \"/bin/busybox\"");
        assert_eq!(
            rows[4],
            ("syscall".into(), "\"kill\"".into(), "null".into(), "the script does not read the sender's syscall")
        );
        assert_eq!(generic("ancestry[12].exe.ino"), "ancestry[].exe.ino");
    }

    #[test]
    fn what_a_backend_cannot_see_is_never_a_value() {
        let (mut s, e) = pair();
        s["syscall"] = json!("tgkill");
        assert!(field_diff(&s, &e).unwrap_err().contains("stap says syscall = \"tgkill\", which it cannot see"));
        let (s, mut e) = pair();
        e["ancestry"][0]["kthread"] = json!(false);
        let rows = field_diff(&s, &e).unwrap();
        assert!(rows.iter().any(|r| r.0 == "ancestry[].kthread"));
        let (mut s, e) = pair();
        s["ancestry"][0]["kthread"] = json!(false);
        assert!(field_diff(&s, &e).unwrap_err().contains("ebpf says ancestry[0].kthread = true"));
    }

    #[test]
    fn proc_read_fields_may_be_either_sides_but_never_two_values() {
        let (mut s, mut e) = pair();
        s["sender"]["exe"] = json!("/bin/busybox");
        e["sender"]["exe"] = Value::Null;
        assert!(field_diff(&s, &e).unwrap().iter().any(|r| r.0 == "sender.exe"));
        e["sender"]["exe"] = json!("/bin/sh");
        assert!(field_diff(&s, &e).unwrap_err().contains("sender.exe differs"));
    }

    #[test]
    fn anything_else_that_differs_fails() {
        let (mut s, e) = pair();
        s["sender"]["uid"] = json!(1000);
        assert_eq!(field_diff(&s, &e).unwrap_err(), "undocumented differences: sender.uid: stap 1000, ebpf 0");
        let (mut s, e) = pair();
        s["time"] = json!("2026-12-04T15:58:27.0Z");
        assert!(field_diff(&s, &e).unwrap_err().starts_with("the clocks disagree by 1506 ms"));
    }
}
