//! The SystemTap backend for real: a kernel that loads modules (Debian trixie's 6.12),
//! a module built for it once by `podsig stap-build` in a sid root (SystemTap 5.6, the
//! first that builds and starts one for that kernel), and a guest where the same
//! short-lived `sh -c kill` is watched through that module and through eBPF at once.
//!
//! The root and its downloads (~1 GB, 6 GB unpacked, mostly debuginfo) are cached outside
//! the clone; the host's own apt sources are never touched (the root has its own).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::vm::{self, MARK};

/// The trixie kernels: the newest release whose debug package the mirror carries.
const DBG_PATTERN: &str = r"^linux-image-6\.12\.[0-9]+\+deb13-amd64-dbg$";
const APT: [&str; 2] = ["-o", "Acquire::Check-Valid-Until=false"];

fn root() -> PathBuf {
    vm::cache_dir().join("stap/sid-root")
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

/// The environment: the sid root with SystemTap, headers and debuginfo for the newest
/// trixie kernel, and that kernel's vmlinuz. Returns (root, release, vmlinuz).
fn environment() -> Result<(PathBuf, String, PathBuf)> {
    let root = root();
    let mirror = vm::host_mirror()?;
    if !root.join(".podsig-debootstrapped").exists() {
        let tmp = root.with_extension("tmp");
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(tmp.parent().unwrap())?;
        println!("xtask: vm-test: stap: debootstrap --variant=minbase sid (once, cached in {})", root.display());
        run("debootstrap", Command::new("debootstrap").args(["--variant=minbase", "sid"]).arg(&tmp).arg(&mirror))?;
        let _ = fs::remove_dir_all(&root);
        fs::rename(&tmp, &root)?;
        fs::write(root.join(".podsig-debootstrapped"), "")?;
    }
    // Its own sources: sid (SystemTap 5.6), trixie (the kernel and its debug symbols).
    fs::write(root.join("etc/apt/sources.list"), format!("deb {mirror} sid main\ndeb {mirror} trixie main\n"))?;
    let _mounts = Mounts::new(&root)?;
    let stamp = root.join(".podsig-apt-updated");
    let stale = fs::metadata(&stamp)
        .and_then(|m| m.modified())
        .map_or(true, |t| t.elapsed().unwrap_or_default().as_secs() > 86400);
    if stale {
        run("apt-get update in the sid root", chroot(&root).arg("apt-get").args(APT).args(["update", "-q"]))?;
        fs::write(&stamp, "")?;
    }
    let found = run("apt-cache search", chroot(&root).args(["apt-cache", "search", "--names-only", DBG_PATTERN]))?;
    let mut names: Vec<String> =
        found.lines().filter_map(|l| l.split_whitespace().next().map(str::to_string)).collect();
    names.sort_by_key(|n| {
        n.split(|c: char| !c.is_ascii_digit()).filter_map(|x| x.parse::<u64>().ok()).collect::<Vec<_>>()
    });
    let dbg = names.pop().context("no trixie 6.12 kernel debug package on the mirror")?;
    let release = dbg.trim_start_matches("linux-image-").trim_end_matches("-dbg").to_string();
    let installed = root.join(format!(".podsig-installed-{release}"));
    if !installed.exists() {
        println!(
            "xtask: vm-test: stap: installing systemtap, headers and debuginfo for {release} in the sid root (once; ~1 GB)"
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
    // The headers pull in the kernel image itself on current Debian: use its vmlinuz.
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
    Ok((root, release, vmlinuz))
}

/// `podsig stap-build` inside the root: the module users would build on their build host.
fn build_module(root: &Path, podsig: &Path, release: &str) -> Result<PathBuf> {
    fs::copy(podsig, root.join("podsig"))?;
    let _mounts = Mounts::new(root)?;
    let inside = format!("/podsig-{release}.ko");
    println!("xtask: vm-test: stap: podsig stap-build --kernel-release {release} (in the sid root)");
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
sleep 600 &
T=$!
# Both at once, on the same target: one kill, seen by the module and by eBPF.
/podsig watch --stap-module /podsig.ko --pid $T -o json > /tmp/stap.out 2> /tmp/stap.err &
S=$!
/podsig watch --backend ebpf --pid $T -o json > /tmp/ebpf.out 2> /tmp/ebpf.err &
E=$!
i=0
while ! grep -q "podsig: attached" /tmp/stap.err || ! grep -q "podsig: attached" /tmp/ebpf.err; do
  sleep 0.2; i=$((i+1))
  if [ $i -gt 900 ]; then break; fi
  if ! kill -0 $S 2>/dev/null || ! kill -0 $E 2>/dev/null; then break; fi
done
sh -c "kill -KILL $T"
wait $E
echo "$M ebpf watch-rc $?"
wait $S
echo "$M stap watch-rc $?"
echo "$M target $T"
for b in stap ebpf; do
  while read -r l; do echo "$M $b err $l"; done < /tmp/$b.err
  while read -r l; do echo "$M $b out $l"; done < /tmp/$b.out
done
echo "$M done"
poweroff -f
"#;

/// busybox, podsig, staprun and stapio with their libraries (sid's: newer than the
/// host's, and podsig runs on them), the module, the init script.
fn initramfs(root: &Path, podsig: &Path, module: &Path, work: &Path) -> Result<PathBuf> {
    let stapio = ["usr/libexec/systemtap/stapio", "usr/lib/systemtap/stapio"]
        .into_iter()
        .find(|p| root.join(p).exists())
        .context("stapio not found in the sid root")?;
    let mut files: Vec<(PathBuf, String)> = vec![
        (root.join("usr/bin/staprun"), "usr/bin/staprun".into()),
        (root.join(stapio), stapio.into()),
        (module.to_path_buf(), "podsig.ko".into()),
        (podsig.to_path_buf(), "podsig".into()),
    ];
    for bin in ["/usr/bin/staprun", &format!("/{stapio}"), "/podsig"] {
        for line in run("ldd in the sid root", chroot(root).args(["ldd", bin]))?.lines() {
            if let Some(p) = line.split_whitespace().find(|w| w.starts_with('/')) {
                files.push((root.join(p.trim_start_matches('/')), p.trim_start_matches('/').to_string()));
            }
        }
    }
    vm::pack_initramfs(
        work,
        INIT,
        &["sh", "mount", "sleep", "kill", "grep", "cat", "uname", "poweroff", "echo"],
        &files,
    )
}

/// The outcome row for the vm-test table.
pub struct Outcome {
    pub release: String,
    pub stap_version: String,
    pub stap_ready_ms: String,
    pub ebpf_ready_ms: String,
    pub verdict: Result<String, String>,
    pub console: String,
}

fn ready_ms(lines: &[&str], backend: &str) -> String {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{backend} err podsig: attached (")))
        .and_then(|a| a.rsplit(", ").next())
        .map_or("?".into(), |ms| ms.trim_end_matches(')').trim_end_matches(" ms").to_string())
}

/// Both backends reported the kill, and agree on signal, sender, parent and ancestry.
fn compare(lines: &[&str]) -> Result<String, String> {
    let target: u64 = lines
        .iter()
        .find_map(|l| l.strip_prefix("target "))
        .and_then(|t| t.trim().parse().ok())
        .ok_or("no target pid")?;
    let signal = |b: &str| -> Result<Value, String> {
        let prefix = format!("{b} out ");
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["kind"] == "signal" && v["target"]["pid"] == target)
            .ok_or_else(|| format!("no signal record from {b}"))
    };
    let (s, e) = (signal("stap")?, signal("ebpf")?);
    if s["backend"] != "stap" || e["backend"] != "ebpf" {
        return Err(format!("backends: {} / {}", s["backend"], e["backend"]));
    }
    let chain = |v: &Value| -> Vec<(u64, String)> {
        v["ancestry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| (a["pid"].as_u64().unwrap_or(u64::MAX), a["comm"].as_str().unwrap_or("").to_string()))
            .collect()
    };
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
    let (cs, ce) = (chain(&s), chain(&e));
    if cs != ce {
        return Err(format!("ancestry differs: stap {cs:?}, ebpf {ce:?}"));
    }
    if !ce.iter().any(|(p, _)| *p == 1) {
        return Err(format!("the ancestry does not reach pid 1: {ce:?}"));
    }
    Ok(ce.iter().map(|(p, c)| format!("{c}({p})")).collect::<Vec<_>>().join("=>"))
}

/// Builds (or reuses) the environment, the module and the guest, boots it, compares.
pub fn live(podsig: &Path, work: &Path, inputs: &mut crate::floating::Inputs) -> Result<Outcome> {
    let (root, release, vmlinuz) = environment()?;
    inputs.note("trixie kernel for SystemTap (newest with a -dbg package)", &release);
    // "Systemtap translator/driver (version 5.6/0.192, Debian version 5.6-1)", on stderr.
    let stap_version = run("stap -V", chroot(&root).args(["sh", "-c", "stap -V 2>&1"]))
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split("version ").nth(1))
        .map_or("?".into(), |v| v.split('/').next().unwrap_or("?").to_string());
    inputs.note("sid's SystemTap", &stap_version);
    let module = build_module(&root, podsig, &release)?;
    let dir = work.join("stap");
    fs::create_dir_all(&dir)?;
    let initrd = initramfs(&root, &root.join("podsig"), &module, &dir)?;
    let console = vm::qemu(&release, &vmlinuz, &initrd)?;
    let lines: Vec<&str> = console.lines().filter_map(|l| l.find(MARK).map(|i| &l[i + MARK.len()..])).collect();
    Ok(Outcome {
        release,
        stap_version,
        stap_ready_ms: ready_ms(&lines, "stap"),
        ebpf_ready_ms: ready_ms(&lines, "ebpf"),
        verdict: compare(&lines),
        console: console.clone(),
    })
}
