//! `cargo xtask vm-test`: the eBPF backend on other real kernels, booted under QEMU.
//!
//! Debian's kernel packages are fetched with apt (bullseye's through a private apt
//! configuration, never touching the host's sources), their vmlinuz cached outside the
//! clone. One initramfs holds the release podsig (with the libraries ldd names), busybox and
//! an init script running the end-to-end scenario; the verdict is read from the serial
//! console.

use std::{
    fs,
    io::Read,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{
    prereqs::prereqs,
    system::{apt_ensure, binary, build, is_root},
};

/// A kernel to boot: (apt suite or "" for the host's own, package name pattern, the build
/// of the signal hook it must load). sid's is the newest kernel Debian ships, floating on
/// purpose: a newer verifier is where a build stops loading first.
const DEFAULT_KERNELS: &[(&str, &str, &str)] = &[
    // No bpf_loop before 5.17: the bounded walk, and no executable identity.
    ("bullseye", r"^linux-image-5\.10\.0-[0-9]+-amd64$", "typed_bounded"),
    ("", r"^linux-image-6\.1\.0-[0-9]+-amd64$", "typed_loop"),
    ("", r"^linux-image-6\.12\.[0-9]+\+deb12-amd64$", "typed_loop"),
    ("sid", r"^linux-image-[0-9]+\.[0-9]+\.[0-9]+\+deb[0-9]+-amd64$", "typed_loop"),
];
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
pub const MARK: &str = "PODSIG-VM ";

pub fn cache_dir() -> PathBuf {
    std::env::var_os("PODSIG_VM_CACHE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/cache/podsig-vm"))
}

fn sh_out(cmd: &mut Command) -> Result<String> {
    let o = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !o.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&o.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The host's Debian mirror, as its apt sources name it for the host's own release (no
/// address is written here): the entry whose suites include this system's codename.
pub fn host_mirror() -> Result<String> {
    let os = fs::read_to_string("/etc/os-release").unwrap_or_default();
    let codename = os
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|c| c.trim_matches('"').to_string())
        .context("no VERSION_CODENAME in /etc/os-release")?;
    let mut texts = vec![fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()];
    if let Ok(d) = fs::read_dir("/etc/apt/sources.list.d") {
        texts.extend(d.flatten().map(|e| fs::read_to_string(e.path()).unwrap_or_default()));
    }
    for t in &texts {
        // deb822 stanzas ("URIs:", "Suites:") and one-line entries ("deb URI suite …").
        for stanza in t.split("\n\n") {
            let get = |k: &str| stanza.lines().find_map(|l| l.trim().strip_prefix(k)).map(str::trim);
            if let (Some(uris), Some(suites)) = (get("URIs:"), get("Suites:"))
                && suites.split_whitespace().any(|s| s == codename)
            {
                return Ok(uris.split_whitespace().next().unwrap_or_default().to_string());
            }
        }
        for l in t.lines() {
            let w: Vec<&str> = l.split_whitespace().filter(|w| !w.starts_with('[')).collect();
            if w.len() >= 3 && w[0] == "deb" && w[2] == codename {
                return Ok(w[1].to_string());
            }
        }
    }
    bail!("no apt source for {codename} in the host's apt sources")
}

/// apt options for a private configuration serving one suite.
fn private_apt(suite: &str) -> Result<Vec<String>> {
    let dir = cache_dir().join(format!("apt-{suite}"));
    for d in ["lists/partial", "cache/archives/partial", "etc"] {
        fs::create_dir_all(dir.join(d))?;
    }
    let status = dir.join("status");
    if !status.exists() {
        fs::write(&status, "")?;
    }
    let list = dir.join("etc/sources.list");
    fs::write(
        &list,
        format!("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {} {suite} main\n", host_mirror()?),
    )?;
    let o = |k: &str, v: &Path| format!("-o{k}={}", v.display());
    Ok(vec![
        o("Dir::Etc::sourcelist", &list),
        "-oDir::Etc::sourceparts=-".into(),
        o("Dir::State::Lists", &dir.join("lists")),
        o("Dir::State::status", &status),
        o("Dir::Cache", &dir.join("cache")),
        "-oAcquire::Check-Valid-Until=false".into(),
        "-oAPT::Get::List-Cleanup=0".into(),
    ])
}

/// Newest package matching `pattern`: (package, release, apt options).
fn resolve(suite: &str, pattern: &str) -> Result<(String, String, Vec<String>)> {
    let opts = if suite.is_empty() { Vec::new() } else { private_apt(suite)? };
    let stamp = cache_dir().join(format!("apt-{}.updated", if suite.is_empty() { "host" } else { suite }));
    let stale = fs::metadata(&stamp)
        .and_then(|m| m.modified())
        .map_or(true, |t| t.elapsed().unwrap_or_default() > Duration::from_secs(86400));
    if stale {
        println!("xtask: vm-test: apt-get update ({})", if suite.is_empty() { "host suites" } else { suite });
        let mut c = Command::new("apt-get");
        c.args(&opts).args(["update", "-q"]);
        sh_out(&mut c)?;
        fs::write(&stamp, "")?;
    }
    let mut c = Command::new("apt-cache");
    c.args(&opts).args(["search", "--names-only", pattern]);
    let mut names: Vec<String> =
        sh_out(&mut c)?.lines().filter_map(|l| l.split_whitespace().next().map(str::to_string)).collect();
    // Highest ABI number last (6.1.0-9 < 6.1.0-50).
    names.sort_by_key(|n| {
        n.split(|c: char| !c.is_ascii_digit()).filter_map(|x| x.parse::<u64>().ok()).collect::<Vec<_>>()
    });
    let pkg = names.pop().with_context(|| {
        format!("no package matches {pattern} in {}", if suite.is_empty() { "the host's suites" } else { suite })
    })?;
    let release = pkg.trim_start_matches("linux-image-").to_string();
    Ok((pkg, release, opts))
}

/// The kernel's vmlinuz, downloaded and extracted once into the cache. Newer Debian kernels
/// (sid's 7.x) ship it in `linux-binary-RELEASE`, which `linux-image-RELEASE` depends on.
fn fetch(pkg: &str, release: &str, opts: &[String]) -> Result<PathBuf> {
    let vmlinuz = cache_dir().join(format!("vmlinuz-{release}"));
    if vmlinuz.exists() {
        return Ok(vmlinuz);
    }
    let debs = cache_dir().join("debs");
    fs::create_dir_all(&debs)?;
    for pkg in [pkg.to_string(), format!("linux-binary-{release}")] {
        let mut c = Command::new("apt-cache");
        c.args(opts).args(["show", "--no-all-versions", &pkg]);
        if sh_out(&mut c).is_err() {
            continue;
        }
        println!("xtask: vm-test: downloading {pkg}");
        let mut c = Command::new("apt-get");
        c.current_dir(&debs).args(opts).args(["download", "-q", &pkg]);
        sh_out(&mut c)?;
        let deb = fs::read_dir(&debs)?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{pkg}_"))))
            .context("downloaded .deb not found")?;
        let extracted = extract_vmlinuz(&deb, release, &vmlinuz);
        let _ = fs::remove_file(&deb);
        if extracted.is_ok() {
            return Ok(vmlinuz);
        }
    }
    bail!("no vmlinuz-{release} in {pkg} or linux-binary-{release}")
}

/// The kernel out of a kernel package, to `vmlinuz`: `./boot/vmlinuz-RELEASE` (up to
/// Debian 13), or `./usr/lib/modules/RELEASE/vmlinuz` (sid's linux-binary packages).
pub fn extract_vmlinuz(deb: &Path, release: &str, vmlinuz: &Path) -> Result<()> {
    let listing = sh_out(Command::new("dpkg-deb").arg("--contents").arg(deb))?;
    let member = [format!("./boot/vmlinuz-{release}"), format!("./usr/lib/modules/{release}/vmlinuz")]
        .into_iter()
        .find(|m| listing.lines().any(|l| l.split_whitespace().nth(5) == Some(m.as_str())))
        .with_context(|| format!("no vmlinuz for {release} in {}", deb.display()))?;
    let x = cache_dir().join(format!("x-{release}"));
    fs::create_dir_all(&x)?;
    let tar = Command::new("dpkg-deb").arg("--fsys-tarfile").arg(deb).stdout(Stdio::piped()).spawn()?;
    let st =
        Command::new("tar").arg("-x").arg("-C").arg(&x).arg(&member).stdin(tar.stdout.context("pipe")?).status()?;
    if !st.success() {
        bail!("extracting {member} from {}", deb.display());
    }
    fs::rename(x.join(&member), vmlinuz)?;
    let _ = fs::remove_dir_all(&x);
    Ok(())
}

const INIT: &str = r#"#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
PODSIG=/podsig
OUT=/tmp
. /scenarios.sh
poweroff -f
"#;

/// The scenarios, in a guest (from INIT) and on the host alike: `PODSIG` is the binary, `OUT`
/// a scratch directory; each line of the verdict starts with MARK.
const SCENARIOS: &str = r#"
M="PODSIG-VM"
echo "$M kernel $(uname -r)"
if [ -e /sys/kernel/btf/vmlinux ]; then echo "$M btf yes"; else echo "$M btf no"; fi
$PODSIG doctor -o json > $OUT/doctor.json 2>$OUT/doctor.err
echo "$M doctor-rc $?"
echo "$M doctor $(cat $OUT/doctor.json)"
# scenario NAME FORCED: a target, podsig watching it (-v: the build it loaded), a
# short-lived sh sending SIGKILL.
scenario() {
  sleep 600 &
  T=$!
  PODSIG_FORCE_FALLBACK="$2" $PODSIG -v watch --pid $T -o json > $OUT/$1.out 2> $OUT/$1.err &
  W=$!
  i=0
  while ! grep -q "podsig: attached" $OUT/$1.err; do
    sleep 0.2; i=$((i+1))
    if [ $i -gt 600 ]; then break; fi
  done
  sh -c "kill -KILL $T"
  wait $W
  echo "$M $1 watch-rc $?"
  echo "$M $1 target $T"
  while read -r l; do echo "$M $1 err $l"; done < $OUT/$1.err
  while read -r l; do echo "$M $1 out $l"; done < $OUT/$1.out
}
scenario main ""
scenario fallback "btf,ringbuf"
echo "$M done"
"#;

/// The initramfs: busybox, podsig and its libraries, the init script.
fn initramfs(podsig: &Path, work: &Path) -> Result<PathBuf> {
    let mut files = vec![(podsig.to_path_buf(), "podsig".to_string())];
    for lib in sh_out(Command::new("ldd").arg(podsig))?.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
        if let Some(p) = lib.split_whitespace().find(|w| w.starts_with('/')) {
            files.push((PathBuf::from(p), p.trim_start_matches('/').to_string()));
        }
    }
    let scenarios = work.join("scenarios.sh");
    fs::write(&scenarios, SCENARIOS)?;
    files.push((scenarios, "scenarios.sh".into()));
    pack_initramfs(work, INIT, &["sh", "mount", "sleep", "kill", "grep", "cat", "uname", "poweroff", "echo"], &files)
}

/// The host's kernel as one more row: the same scenarios, run here.
fn host(podsig: &Path, work: &Path) -> Result<Outcome> {
    let out = work.join("host");
    fs::create_dir_all(&out)?;
    println!("xtask: vm-test: the host's kernel");
    let o = Command::new("sh")
        .arg("-c")
        .arg(SCENARIOS)
        .env("PODSIG", podsig)
        .env("OUT", &out)
        .stdin(Stdio::null())
        .output()
        .context("running the scenarios on the host")?;
    let release = sh_out(Command::new("uname").arg("-r"))?.trim().to_string();
    // The host's best build is whatever its own features allow: doctor names it.
    let console = String::from_utf8_lossy(&o.stdout).into_owned();
    Ok(verdict(&format!("{release} (host)"), None, &console))
}

/// A gzipped cpio of busybox (with these applets), `files` (source, path in the image;
/// later entries win) and `init`.
pub fn pack_initramfs(work: &Path, init: &str, applets: &[&str], files: &[(PathBuf, String)]) -> Result<PathBuf> {
    let root = work.join("root");
    let _ = fs::remove_dir_all(&root);
    for d in ["bin", "proc", "sys", "dev", "tmp"] {
        fs::create_dir_all(root.join(d))?;
    }
    fs::copy("/bin/busybox", root.join("bin/busybox")).context("busybox-static is needed (/bin/busybox)")?;
    for applet in applets {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    for (src, dest) in files {
        let dest = root.join(dest);
        fs::create_dir_all(dest.parent().unwrap())?;
        let _ = fs::remove_file(&dest);
        fs::copy(src, &dest).with_context(|| format!("copying {}", src.display()))?;
    }
    let init_path = root.join("init");
    fs::write(&init_path, init)?;
    fs::set_permissions(&init_path, fs::Permissions::from_mode(0o755))?;
    let out = work.join("initramfs.cpio.gz");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!("cd {} && find . | cpio -o -H newc --quiet | gzip -1 > {}", root.display(), out.display()))
        .status()?;
    if !st.success() {
        bail!("building the initramfs");
    }
    Ok(out)
}

struct Outcome {
    release: String,
    btf: String,
    ring_buffer: String,
    backend: String,
    attach_ms: String,
    /// The build of the signal hook the watch loaded, and whether it is the row's.
    build: String,
    build_ok: Result<(), String>,
    main: Result<(), String>,
    fallback: Result<(), String>,
    console: String,
}

impl Outcome {
    fn pass(&self) -> bool {
        self.main.is_ok() && self.fallback.is_ok() && self.build_ok.is_ok()
    }
}

fn boot(release: &str, expected: &str, vmlinuz: &Path, initrd: &Path) -> Result<Outcome> {
    let console = qemu(release, vmlinuz, initrd)?;
    Ok(verdict(release, Some(expected), &console))
}

/// Boots a kernel with an initramfs under TCG and returns the serial console.
pub fn qemu(release: &str, vmlinuz: &Path, initrd: &Path) -> Result<String> {
    qemu_with(release, vmlinuz, initrd, "console=ttyS0 quiet loglevel=1 panic=-1", &[], BOOT_TIMEOUT)
}

/// `qemu` with a kernel command line, more QEMU arguments (a disk, CPUs) and a timeout of
/// its own. A guest still running at the timeout is killed, and the console says so.
///
/// A guest kernel that crashes before anything of the guest's own ran (no MARK line) is
/// booted once more, saying so: TCG's cross-vCPU code patching now and then leaves an
/// `int3` a booting kernel trips on (seen: `Oops: int3` in `enqueue_timer` at 1.3 s with
/// `-smp 2`), which says nothing about podsig. A crash once podsig's part began is kept.
pub(crate) fn qemu_with(
    release: &str,
    vmlinuz: &Path,
    initrd: &Path,
    append: &str,
    extra: &[&std::ffi::OsStr],
    timeout: Duration,
) -> Result<String> {
    let console = boot_once(release, vmlinuz, initrd, append, extra, timeout)?;
    match crashed_before_guest(&console) {
        Some(oops) => {
            println!(
                "xtask: vm-test: {release}: the guest kernel crashed while booting, before anything of \
                 podsig ran ({oops}): booting it again"
            );
            boot_once(release, vmlinuz, initrd, append, extra, timeout)
        }
        None => Ok(console),
    }
}

/// The console's first crash line when the kernel died before the guest printed a MARK line.
fn crashed_before_guest(console: &str) -> Option<&str> {
    for line in console.lines() {
        if line.contains(MARK) {
            return None;
        }
        if line.contains("Oops:") || line.contains("Kernel panic") {
            return Some(line.trim());
        }
    }
    None
}

fn boot_once(
    release: &str,
    vmlinuz: &Path,
    initrd: &Path,
    append: &str,
    extra: &[&std::ffi::OsStr],
    timeout: Duration,
) -> Result<String> {
    println!("xtask: vm-test: booting {release}");
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-m", "1024", "-nographic", "-no-reboot", "-kernel"])
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(extra)
        .args(["-append", append])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let mut stdout = child.stdout.take().context("pipe")?;
    let reader = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let t0 = Instant::now();
    let mut killed = false;
    while child.try_wait()?.is_none() {
        if t0.elapsed() > timeout {
            let _ = child.kill();
            killed = true;
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let _ = child.wait();
    let mut console = reader.join().unwrap_or_default().replace('\r', "");
    if killed {
        console += &format!("\n[xtask: the guest was still running after {} s: killed]\n", timeout.as_secs());
    }
    Ok(console)
}

/// Checks one scenario's records: the SIGKILL from the short-lived `sh -c kill`, then the
/// exit. `in_kernel`: ancestry and argv were captured in the kernel (BTF); otherwise the
/// sender is gone before /proc could be read and only what the tracepoint knew remains.
fn scenario(lines: &[&str], name: &str, in_kernel: bool, guest: bool) -> Result<(), String> {
    let prefix = format!("{name} ");
    let mine: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix(prefix.as_str())).collect();
    let field = |k: &str| mine.iter().find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()));
    if field("watch-rc ").as_deref() != Some("0") {
        return Err(format!("podsig watch exited with {:?}", field("watch-rc ")));
    }
    let target: u64 = field("target ").and_then(|t| t.parse().ok()).ok_or("no target pid")?;
    let records: Vec<Value> =
        mine.iter().filter_map(|l| l.strip_prefix("out ")).filter_map(|l| serde_json::from_str(l).ok()).collect();
    let sig = records.iter().find(|r| r["kind"] == "signal").ok_or("no signal record")?;
    let want = |ok: bool, what: &str| if ok { Ok(()) } else { Err(format!("{what}: {sig}")) };
    want(sig["signal"]["name"] == "SIGKILL", "signal")?;
    want(sig["target"]["pid"] == target, "target pid")?;
    want(sig["sender"]["comm"] == "sh", "sender comm")?;
    if in_kernel {
        want(sig["ancestry_source"] == "kernel", "ancestry source")?;
        want(sig["sender"]["argv"] == serde_json::json!(["sh", "-c", format!("kill -KILL {target}")]), "sender argv")?;
        want(sig["ancestry_complete"] == true, "ancestry complete")?;
        let anc = sig["ancestry"].as_array().cloned().unwrap_or_default();
        want(anc.first().is_some_and(|a| a["pid"] == 0), "ancestry from pid 0")?;
        // The guest's pid 1 is the initramfs's init; the host's is whatever it runs.
        want(anc.iter().any(|a| a["pid"] == 1 && (!guest || a["comm"] == "init")), "pid 1 in the ancestry")?;
        want(anc.last().is_some_and(|a| a["comm"] == "sh" && a["pid"] == sig["sender"]["pid"]), "sender last")?;
    } else {
        want(sig["ancestry_source"] == "proc", "ancestry source")?;
    }
    let exit = records.iter().find(|r| r["kind"] == "exit").ok_or("no exit record")?;
    if exit["pid"] != target || in_kernel && exit["signal"]["name"] != "SIGKILL" {
        return Err(format!("exit record: {exit}"));
    }
    Ok(())
}

/// The row's verdict from the scenarios' lines. `expected`: the build of the signal hook
/// this kernel must load; None: the best its features allow, as doctor reports it (the host).
fn verdict(release: &str, expected: Option<&str>, console: &str) -> Outcome {
    let lines: Vec<&str> = console.lines().filter_map(|l| l.find(MARK).map(|i| &l[i + MARK.len()..])).collect();
    let field = |k: &str| lines.iter().find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()));
    let guest = expected.is_some();
    let mut o = Outcome {
        release: release.to_string(),
        btf: field("btf ").unwrap_or_else(|| "?".into()),
        ring_buffer: "?".into(),
        backend: "?".into(),
        attach_ms: "?".into(),
        build: "?".into(),
        build_ok: Err("no build named in the watch's log".into()),
        main: scenario(&lines, "main", true, guest),
        fallback: scenario(&lines, "fallback", false, guest),
        console: console.to_string(),
    };
    let doc = field("doctor ").and_then(|d| serde_json::from_str::<Value>(&d).ok()).unwrap_or_default();
    let rb = doc["checks"].as_array().and_then(|c| c.iter().find(|c| c["name"] == "BPF ring buffer").cloned());
    o.ring_buffer = rb.map_or("?".into(), |c| if c["status"] == "ok" { "yes".into() } else { "no".into() });
    // "attached in 49ms: typed_loop build (…), events through a ring buffer"
    let attached = lines.iter().filter_map(|l| l.strip_prefix("main err ")).find_map(|l| l.split_once("attached in "));
    if let Some((_, after)) = attached.and_then(|(_, rest)| rest.split_once(": ")) {
        o.build = after.split(' ').next().unwrap_or("?").to_string();
    }
    let expected = expected.map(str::to_string).or_else(|| doc["hook"]["expected"].as_str().map(str::to_string));
    o.build_ok = match expected {
        Some(want) if want == o.build => Ok(()),
        Some(want) => {
            // What refused the better build: the line podsig printed, else doctor's reason.
            let said = lines.iter().find_map(|l| l.strip_prefix("main err ").filter(|l| l.contains("signal hook:")));
            let why = said.map(str::to_string).or_else(|| doc["hook"]["reason"].as_str().map(str::to_string));
            Err(format!(
                "loaded the {} build, not {want}: {}",
                o.build,
                why.unwrap_or_else(|| "no reason given".into())
            ))
        }
        None => Err(format!("doctor named no expected build: {doc}")),
    };
    if let Some(att) = lines.iter().find_map(|l| l.strip_prefix("main err podsig: attached (")) {
        // "backend ebpf, watching pid 123, 45 ms)"
        o.backend = att.split(',').next().unwrap_or("").trim_start_matches("backend ").to_string();
        o.attach_ms = att.rsplit(", ").next().unwrap_or("").trim_end_matches(')').trim_end_matches(" ms").to_string();
    }
    o
}

/// Runs every guest; a failure names the floating inputs (newest kernels, sid's SystemTap)
/// that moved since the last passing run.
pub fn run(podsig: &Path, only: &[String]) -> Result<()> {
    fs::create_dir_all(cache_dir())?;
    let mut inputs = crate::floating::Inputs::load();
    match run_guests(podsig, only, &mut inputs) {
        Ok(()) => {
            inputs.record_pass();
            Ok(())
        }
        Err(e) => Err(e.context(inputs.changes())),
    }
}

// Long: the guests in order (host, kernels, SystemTap pairs), their downloads overlapped with the
// boots; one sequence sharing the work directory and the outcomes.
fn run_guests(podsig: &Path, only: &[String], inputs: &mut crate::floating::Inputs) -> Result<()> {
    let work = cache_dir().join(format!("work-{}", std::process::id()));
    fs::create_dir_all(&work)?;
    let initrd = initramfs(podsig, &work)?;
    // SystemTap for real, on kernels that load modules: `stap` selects every pair,
    // `stap-NAME` one. Their roots download and unpack (network and disk; ~7 minutes the
    // first time) while the kernels below boot (CPU).
    let pairs: Vec<&'static crate::stapvm::Pair> = crate::stapvm::PAIRS
        .iter()
        .filter(|p| only.is_empty() || only.iter().any(|k| k == "stap" || *k == format!("stap-{}", p.name)))
        .collect();
    let prepared: Vec<_> = pairs.iter().map(|&p| (p, thread::spawn(move || crate::stapvm::environment(p)))).collect();
    let mut outcomes = Vec::new();
    if only.is_empty() || only.iter().any(|k| k == "host") {
        outcomes.push(host(podsig, &work)?);
    }
    for (suite, pattern, expected) in DEFAULT_KERNELS {
        let (pkg, release, opts) = resolve(suite, pattern)?;
        inputs.note(
            &format!("newest kernel matching {pattern} ({})", if suite.is_empty() { "host suites" } else { suite }),
            &release,
        );
        if !only.is_empty() && !only.iter().any(|k| release.contains(k.as_str())) {
            continue;
        }
        let vmlinuz = fetch(&pkg, &release, &opts)?;
        outcomes.push(boot(&release, expected, &vmlinuz, &initrd)?);
    }
    let mut stap = Vec::new();
    if !prepared.is_empty() {
        // Two builds: together, their features would unify and podsig would not be the
        // image's build (cached by `cargo xtask test`'s image step) but a second one.
        let built = crate::image::build_static(&["--package", "podsig"])
            .and_then(|()| crate::image::build_static(&["--package", "podsig-e2e", "--bin", "no-bpf"]));
        let no_bpf = crate::image::static_binary("no-bpf");
        for (pair, env) in prepared {
            let podsig = if pair.static_podsig { crate::image::static_binary("podsig") } else { podsig.to_path_buf() };
            let env = env.join().map_err(|_| anyhow::anyhow!("preparing the {} root panicked", pair.name));
            let outcome = built
                .as_ref()
                .map_err(|e| anyhow::anyhow!("{e:#}"))
                .and_then(|()| env?)
                .and_then(|env| crate::stapvm::live(pair, env, &podsig, &no_bpf, &work, inputs));
            match outcome {
                Ok(o) => stap.push(o),
                Err(e) if std::env::var_os("CI").is_some() => {
                    let _ = fs::remove_dir_all(&work);
                    bail!("vm-test: the SystemTap environment ({}) could not be built: {e:#}", pair.name);
                }
                Err(e) => {
                    println!("xtask: vm-test: SystemTap live run on {} not done (not a pass): {e:#}", pair.name)
                }
            }
        }
    }
    // systemd as pid 1: who asked it for each stop.
    let named = only.iter().any(|k| k == "systemd");
    let systemd = if only.is_empty() || named {
        match crate::systemdvm::live(podsig, &work, inputs) {
            Ok(o) => Some(o),
            // Asked for by name, a guest that cannot be built is no more a skip than in CI.
            Err(e) if named || std::env::var_os("CI").is_some() => {
                let _ = fs::remove_dir_all(&work);
                bail!("vm-test: the systemd guest could not be built: {e:#}");
            }
            Err(e) => {
                println!("xtask: vm-test: systemd guest not run (not a pass): {e:#}");
                None
            }
        }
    } else {
        None
    };
    let _ = fs::remove_dir_all(&work);
    let verdict = |r: &Result<(), String>| if r.is_ok() { "pass" } else { "FAIL" };
    println!(
        "\n| kernel | BTF | ring buffer | backend | signal hook build | scenario | forced fallback (no BTF, perf array) | attach (ms; TCG but the host) |\n|---|---|---|---|---|---|---|---|"
    );
    for o in &outcomes {
        println!(
            "| {} | {} | {} | {} | {}{} | {} | {} | {} |",
            o.release,
            o.btf,
            o.ring_buffer,
            o.backend,
            o.build,
            if o.build_ok.is_ok() { "" } else { " (FAIL)" },
            verdict(&o.main),
            verdict(&o.fallback),
            o.attach_ms
        );
    }
    crate::stapvm::print(&stap);
    if let Some(o) = &systemd {
        o.print();
    }
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.pass()).collect();
    for o in &failed {
        let why: Vec<String> = [("build", &o.build_ok), ("scenario", &o.main), ("fallback", &o.fallback)]
            .iter()
            .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
            .collect();
        eprintln!(
            "\nxtask: vm-test: {} failed: {}\n--- guest console ---\n{}\n---",
            o.release,
            why.join("; "),
            o.console
        );
    }
    if !failed.is_empty() {
        bail!("vm-test failed on {}", failed.iter().map(|o| o.release.as_str()).collect::<Vec<_>>().join(", "));
    }
    let failed: Vec<String> =
        stap.iter().filter(|o| !o.pass()).map(|o| format!("{} ({})", o.release, o.pair)).collect();
    if !failed.is_empty() {
        bail!("vm-test: the SystemTap runs failed on {}", failed.join(", "));
    }
    if systemd.as_ref().is_some_and(|o| !o.pass()) {
        bail!("vm-test: the systemd guest's stops were not reported as expected (table and console above)");
    }
    Ok(())
}

const VM_PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    ("cpio", "/usr/bin/cpio"),
    ("busybox-static", "/bin/busybox"),
    // The bullseye and sid roots where SystemTap builds the modules for the live runs.
    ("debootstrap", "/usr/sbin/debootstrap"),
    // The systemd guest's disk: an ext4 image of its root, files written in without mounting.
    ("e2fsprogs", "/usr/sbin/debugfs"),
];

/// `cargo xtask vm-test [--kernel K …]`: `only` the kernels named (all when empty).
pub fn task(only: &[String]) -> Result<()> {
    prereqs()?;
    apt_ensure("vm-test packages", VM_PACKAGES)?;
    if !is_root() {
        bail!("vm-test downloads kernels into /var/cache and runs apt: run it as root");
    }
    build(true)?;
    run(&binary(true), only)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_crash_before_the_guest_ran_is_booted_again() {
        let early = "Booting from ROM...\n[    1.267331] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n\
                     [    1.269626] Kernel panic - not syncing: Fatal exception in interrupt\n";
        assert_eq!(crashed_before_guest(early), Some("[    1.267331] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI"));
        let late = format!("{MARK}systemd boot-s 10.4\n[   30.1] Kernel panic - not syncing: oops\n");
        assert_eq!(crashed_before_guest(&late), None);
        assert_eq!(crashed_before_guest(&format!("{MARK}doctor ok\n")), None);
    }
}
