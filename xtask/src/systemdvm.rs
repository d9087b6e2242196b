//! The systemd guest: a Debian trixie root booted with systemd as pid 1 under QEMU, where
//! units are stopped by `systemctl` through `sudo` by a user who logged in, by a D-Bus call,
//! and by systemd on its own, while a busy D-Bus client talks to systemd all along. The
//! podsig records must name who asked systemd for each stop (issue 26), and never the busy
//! client.
//!
//! The root (systemd, dbus, sudo, trixie's kernel and an initramfs that mounts a virtio
//! disk) is debootstrapped once into the cache, outside the clone, with its own apt
//! sources. Each run makes a fresh ext4 image of it with `mke2fs -d` (nothing is mounted)
//! and writes podsig, the scenario and the unit that runs it into the image with debugfs,
//! so runs share nothing and the cached root is never changed by one.

use std::{
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{
    stapvm::{Mounts, chroot, run},
    vm::{self, MARK},
};

/// trixie: its glibc is newer than the host's (podsig is linked against bookworm's), its
/// 6.12 kernel has BTF and bpf_loop, and it boots to the scenario in under a minute of TCG.
const SUITE: &str = "trixie";
/// Written into the root when it is complete; a root with another recipe is built anew.
/// Change it whenever `build_root` changes what the root holds.
const RECIPE: &str = "podsig systemd guest 1";
/// Units that cost tens of seconds of TCG at boot and have nothing to do with stopping
/// units: udev (the root is found by the initramfs; devtmpfs has the rest), the gettys
/// (the serial console is the scenario's), timers and services that touch the disk.
const MASKED: &[&str] = &[
    "systemd-udevd.service",
    "systemd-udev-trigger.service",
    "systemd-udev-settle.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "serial-getty@ttyS0.service",
    "getty@tty1.service",
    "modprobe@drm.service",
    "modprobe@efi_pstore.service",
    "modprobe@fuse.service",
    "modprobe@configfs.service",
    "modprobe@loop.service",
    "modprobe@dm_mod.service",
    "dev-hugepages.mount",
    "dev-mqueue.mount",
    "sys-kernel-debug.mount",
    "systemd-remount-fs.service",
    "systemd-random-seed.service",
    "systemd-timesyncd.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    "systemd-tmpfiles-clean.timer",
];
/// The host waits this long for the guest to power itself off (it does so itself after
/// `GUEST_TIMEOUT_S` at the latest).
const HOST_TIMEOUT: Duration = Duration::from_secs(600);
const SCENARIO: &str = include_str!("systemd-scenario.sh");
/// Runs the scenario once the system is up, writing straight to the serial port (not
/// through journald, which may not have forwarded the last lines when the guest powers
/// off), and powers the guest off however the scenario ended.
const RUNNER_UNIT: &str = "[Unit]
Description=podsig's systemd scenario (cargo xtask vm-test --kernel systemd)
After=multi-user.target dbus.service

[Service]
Type=oneshot
ExecStart=/bin/bash /usr/local/lib/podsig-scenario
ExecStopPost=/bin/systemctl poweroff -ff
TimeoutStartSec=480
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
TTYReset=no
TTYVHangup=no
";
/// `systemd.wants=` starts the runner without an [Install] section or a symlink in the
/// image; `quiet`, `loglevel=1` and `systemd.show_status=false` keep the console to the
/// scenario's lines.
const APPEND: &str = "console=ttyS0 root=/dev/vda rw quiet loglevel=1 panic=-1 systemd.show_status=false \
                      systemd.wants=podsig-scenario.service";

fn root() -> PathBuf {
    vm::cache_dir().join("systemd").join(format!("{SUITE}-root"))
}

/// The root, built once: (root, kernel release). Rebuilt when its recipe changed.
fn environment() -> Result<(PathBuf, String)> {
    let root = root();
    let stamp = root.join(".podsig-root");
    if fs::read_to_string(&stamp).ok().as_deref() != Some(RECIPE) {
        let t0 = Instant::now();
        let tmp = root.with_extension("tmp");
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(tmp.parent().unwrap())?;
        println!("xtask: vm-test: systemd: building the {SUITE} root (once, cached in {})", root.display());
        build_root(&tmp)?;
        fs::write(tmp.join(".podsig-root"), RECIPE)?;
        let _ = fs::remove_dir_all(&root);
        fs::rename(&tmp, &root)?;
        println!("xtask: vm-test: systemd: root built in {} s", t0.elapsed().as_secs());
    }
    let release = fs::read_dir(root.join("boot"))?
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().strip_prefix("vmlinuz-").map(str::to_string))
        .max()
        .context("no kernel in the root's /boot")?;
    Ok((root, release))
}

fn build_root(root: &Path) -> Result<()> {
    let mirror = vm::host_mirror()?;
    // initramfs-tools before the kernel, so the kernel's postinst builds a small initramfs
    // with only what finds the root (MODULES=list): a chroot has no hardware to detect.
    run(
        "debootstrap",
        Command::new("debootstrap")
            .args(["--variant=minbase", "--include=systemd,systemd-sysv,dbus,sudo,procps,kmod,initramfs-tools", SUITE])
            .arg(root)
            .arg(&mirror),
    )?;
    fs::write(root.join("etc/apt/sources.list"), format!("deb {mirror} {SUITE} main\n"))?;
    fs::write(root.join("etc/initramfs-tools/conf.d/podsig"), "MODULES=list\nCOMPRESS=gzip\n")?;
    let modules = root.join("etc/initramfs-tools/modules");
    let mut m = fs::read_to_string(&modules).unwrap_or_default();
    m += "virtio_pci\nvirtio_blk\next4\n";
    fs::write(&modules, m)?;
    // sudo resolves the host name; debootstrap copied the host's.
    fs::write(root.join("etc/hostname"), "podsig-vm\n")?;
    fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n127.0.1.1 podsig-vm\n")?;
    for unit in MASKED {
        let link = root.join("etc/systemd/system").join(unit);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink("/dev/null", &link)?;
    }
    let _mounts = Mounts::new(root)?;
    run(
        "installing the kernel in the systemd root",
        chroot(root).args(["apt-get", "install", "-y", "-q", "--no-install-recommends", "linux-image-amd64"]),
    )?;
    run("apt-get clean", chroot(root).args(["apt-get", "clean"]))?;
    // The package lists are the bulk of what every image would copy, and no guest needs them.
    let lists = root.join("var/lib/apt/lists");
    let _ = fs::remove_dir_all(&lists);
    fs::create_dir_all(lists.join("partial"))?;
    Ok(())
}

/// A fresh disk image of the root with podsig, the scenario and its unit written in.
fn image(root: &Path, podsig: &Path, work: &Path) -> Result<PathBuf> {
    let img = work.join("systemd-root.ext4");
    let _ = fs::remove_file(&img);
    // Sparse: only what the root holds is written.
    run(
        "mke2fs -d",
        Command::new("mke2fs")
            .args(["-F", "-q", "-t", "ext4", "-L", "podsig-root", "-d"])
            .arg(root)
            .arg(&img)
            .arg("1536M"),
    )?;
    let scenario = work.join("podsig-scenario");
    fs::write(&scenario, SCENARIO)?;
    let unit = work.join("podsig-scenario.service");
    fs::write(&unit, RUNNER_UNIT)?;
    let files: [(&Path, &str); 3] = [
        (podsig, "/usr/local/bin/podsig"),
        (&scenario, "/usr/local/lib/podsig-scenario"),
        (&unit, "/etc/systemd/system/podsig-scenario.service"),
    ];
    // debugfs keeps each file's mode, and reports a failed write only in words: each is
    // checked after.
    let mut cmds = String::new();
    for (src, dest) in files {
        let (dir, name) = dest.rsplit_once('/').unwrap_or(("/", dest));
        cmds += &format!("cd {dir}\nwrite {} {name}\n", src.display());
    }
    let cmd_file = work.join("debugfs.cmds");
    fs::write(&cmd_file, cmds)?;
    run("debugfs write", Command::new("debugfs").arg("-w").arg("-f").arg(&cmd_file).arg(&img))?;
    for (_, dest) in files {
        let stat = run("debugfs stat", Command::new("debugfs").arg("-R").arg(format!("stat {dest}")).arg(&img))?;
        if !stat.contains("Inode:") {
            bail!("debugfs did not write {dest} into {}", img.display());
        }
    }
    Ok(img)
}

/// The outcome for the vm-test report.
pub struct Outcome {
    pub release: String,
    pub systemd: String,
    pub rows: Vec<Row>,
    /// Seconds: boot to the scenario's start, to the end of the actions, wall time of the
    /// guest, making the image.
    pub boot_s: String,
    pub actions_s: String,
    pub wall_s: u64,
    pub image_s: u64,
    pub console: String,
}

impl Outcome {
    pub fn pass(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(|r| r.errors.is_empty())
    }

    pub fn print(&self) {
        println!(
            "\n{} with {} as pid 1: boot to scenario {} s, actions done at {} s, guest wall time {} s (image {} s)",
            self.release, self.systemd, self.boot_s, self.actions_s, self.wall_s, self.image_s
        );
        println!(
            "\n| systemd action | signal → target | requested_by | client identity | stop verdict | result |\n|---|---|---|---|---|---|"
        );
        for r in &self.rows {
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                r.action,
                r.signal,
                r.requested,
                r.identity,
                r.verdict,
                if r.errors.is_empty() { "pass".to_string() } else { "FAIL".to_string() }
            );
        }
        let failed: Vec<String> = self
            .rows
            .iter()
            .filter(|r| !r.errors.is_empty())
            .map(|r| format!("{}: {}", r.action, r.errors.join("; ")))
            .collect();
        if !failed.is_empty() {
            eprintln!("\nxtask: vm-test: systemd guest failed:\n  {}", failed.join("\n  "));
            eprintln!("--- guest console ({}) ---\n{}\n---", self.release, self.console);
        }
    }
}

/// One row of the table: what was done, what podsig said, and what did not match.
pub struct Row {
    pub action: String,
    pub signal: String,
    pub requested: String,
    pub identity: String,
    pub verdict: String,
    pub errors: Vec<String>,
}

impl Row {
    fn new(action: &str) -> Self {
        Row {
            action: action.into(),
            signal: "—".into(),
            requested: "—".into(),
            identity: "—".into(),
            verdict: "—".into(),
            errors: Vec::new(),
        }
    }
}

/// Builds (or reuses) the root, boots a fresh image of it, checks what podsig reported.
pub fn live(podsig: &Path, work: &Path, inputs: &mut crate::floating::Inputs) -> Result<Outcome> {
    let (root, release) = environment()?;
    inputs.note("trixie kernel of the systemd guest (when its root was built)", &release);
    let dir = work.join("systemd");
    fs::create_dir_all(&dir)?;
    let t0 = Instant::now();
    let img = image(&root, podsig, &dir)?;
    let image_s = t0.elapsed().as_secs();
    let t0 = Instant::now();
    let drive = format!("file={},format=raw,if=virtio", img.display());
    let extra: [&OsStr; 4] = ["-smp".as_ref(), "2".as_ref(), "-drive".as_ref(), drive.as_ref()];
    let console = vm::qemu_with(
        &format!("{release} (systemd)"),
        &root.join(format!("boot/vmlinuz-{release}")),
        &root.join(format!("boot/initrd.img-{release}")),
        APPEND,
        &extra,
        HOST_TIMEOUT,
    )?;
    let wall_s = t0.elapsed().as_secs();
    let _ = fs::remove_file(&img);
    let lines = guest_lines(&console);
    let fact = |k: &str| lines.iter().find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()));
    let systemd = fact("systemd-version ").map_or("?".into(), |v| v.split(" (").next().unwrap_or("?").to_string());
    inputs.note("systemd in the guest", &systemd);
    Ok(Outcome {
        release,
        systemd,
        rows: verdict(&lines),
        boot_s: fact("boot-s ").unwrap_or_else(|| "?".into()),
        actions_s: fact("actions-done-s ").unwrap_or_else(|| "?".into()),
        wall_s,
        image_s,
        console,
    })
}

/// The scenario's lines, without the mark and the `systemd ` that starts each.
fn guest_lines(console: &str) -> Vec<&str> {
    console
        .lines()
        .filter_map(|l| l.find(MARK).map(|i| &l[i + MARK.len()..]))
        .filter_map(|l| l.strip_prefix("systemd "))
        .collect()
}

/// Where the records are found: the step's main process, as the guest named it.
struct Step<'a> {
    records: &'a [Value],
    pid: Option<u64>,
}

impl Step<'_> {
    /// systemd's `sig` to the step's process.
    fn signal(&self, sig: &str) -> Option<&Value> {
        self.records.iter().find(|r| {
            r["kind"] == "signal"
                && r["signal"]["name"] == sig
                && self.pid.is_some_and(|p| r["target"]["pid"] == p)
                && r["sender"]["pid"] == 1
        })
    }

    /// The verdict of the step's process's stop: on its SIGKILL or on its exit.
    fn stop(&self) -> Option<&Value> {
        self.records
            .iter()
            .filter(|r| {
                let pid = if r["kind"] == "exit" { &r["pid"] } else { &r["target"]["pid"] };
                self.pid.is_some_and(|p| *pid == p) && r["stop"].is_object()
            })
            .map(|r| &r["stop"])
            .next_back()
    }
}

/// What the client that asked systemd must look like.
struct Want<'a> {
    unit: &'a str,
    comm: &'a str,
    method: &'a str,
    /// `systemctl kill -s KILL`: the signal asked for.
    signal: Option<i64>,
    /// argv, exactly (systemctl), or words it must hold (busctl).
    argv: &'a [&'a str],
    argv_exact: bool,
    /// The audit session of alice's login for this step, as the guest read it.
    session: Option<u64>,
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// Whether `sudo` is among the requester's ancestors.
fn via_sudo(rb: &Value) -> bool {
    rb["ancestry"].as_array().is_some_and(|a| a.iter().any(|p| p["comm"] == "sudo"))
}

/// The row's requested_by and identity cells.
fn requested_cells(rb: &Value) -> (String, String) {
    let c = &rb["client"];
    let requested = if rb.is_object() {
        format!(
            "{}({}) {} {} (link {}, {} ms)",
            text(&c["comm"]),
            c["pid"],
            text(&rb["request"]["method"]),
            text(&rb["request"]["object"]),
            text(&rb["link"]),
            rb["elapsed_ms"]
        )
    } else {
        "none".into()
    };
    let sudo = via_sudo(rb);
    let identity = if rb.is_object() {
        format!(
            "uid {}, login uid {}, session {}, tty {}{}",
            c["uid"],
            c["login_uid"],
            c["session"],
            text(&c["tty"]),
            if sudo { ", via sudo" } else { "" }
        )
    } else {
        "—".into()
    };
    (requested, identity)
}

/// The row's cells from a signal record, and every field that does not match `want`.
fn requested(row: &mut Row, rec: &Value, want: &Want) {
    let e = &mut row.errors;
    let rb = &rec["requested_by"];
    let c = &rb["client"];
    (row.requested, row.identity) = requested_cells(rb);
    let sudo = via_sudo(rb);
    if rec["target"]["unit"] != want.unit {
        e.push(format!("target.unit is {}, not {}", rec["target"]["unit"], want.unit));
    }
    if rec["sender"].get("unit").is_none() {
        e.push("no sender.unit".into());
    }
    if !rb.is_object() {
        e.push(format!("requested_by is {rb}, not {}'s {} request", want.comm, want.method));
        return;
    }
    let mut check = |ok: bool, what: String| {
        if !ok {
            e.push(what);
        }
    };
    check(rb["manager"] == "systemd", format!("requested_by.manager {}", rb["manager"]));
    check(rb["request"]["method"] == want.method, format!("method {}, not {}", rb["request"]["method"], want.method));
    check(rb["request"]["object"] == want.unit, format!("request.object {}", rb["request"]["object"]));
    // systemctl and the busctl call both ask for the job mode "replace"; a kill is no job,
    // and its mode is whom it signals (`systemctl kill` asks for "all" of the unit).
    if let Some(sig) = want.signal {
        check(rb["request"]["signal"] == sig, format!("request.signal {}, not {sig}", rb["request"]["signal"]));
        check(
            rb["request"]["mode"] == "all",
            format!("request.mode {}, not \"all\" (a kill's whom)", rb["request"]["mode"]),
        );
    } else {
        check(rb["request"]["mode"] == "replace", format!("request.mode {}, not \"replace\"", rb["request"]["mode"]));
    }
    check(rb["link"] == "request" || rb["link"] == "argv", format!("link {}", rb["link"]));
    check(rb["elapsed_ms"].is_u64(), format!("elapsed_ms {}", rb["elapsed_ms"]));
    check(rb["time"].is_string(), format!("time {}", rb["time"]));
    check(c["comm"] == want.comm, format!("client.comm {}, not {}", c["comm"], want.comm));
    check(c["uid"] == 0, format!("client.uid {}, not 0 (sudo)", c["uid"]));
    check(c["login_uid"] == 1000, format!("client.login_uid {}, not 1000 (alice)", c["login_uid"]));
    match want.session {
        Some(s) => check(c["session"] == s, format!("client.session {}, not alice's {s}", c["session"])),
        None => check(c["session"].is_u64(), format!("client.session {}", c["session"])),
    }
    let argv: Vec<String> = c["argv"].as_array().into_iter().flatten().map(text).collect();
    let ok = if want.argv_exact { argv == want.argv } else { want.argv.iter().all(|w| argv.iter().any(|a| a == w)) };
    check(ok, format!("client.argv {argv:?}, not {}{:?}", if want.argv_exact { "" } else { "holding " }, want.argv));
    let anc = rb["ancestry"].as_array().cloned().unwrap_or_default();
    check(sudo, "no sudo in requested_by.ancestry".into());
    check(anc.first().is_some_and(|a| a["pid"] == 0), "requested_by.ancestry does not start at pid 0".into());
    check(
        anc.last().is_some_and(|a| a["pid"] == c["pid"] && a["comm"] == c["comm"]),
        "requested_by.ancestry does not end with the client".into(),
    );
    check(rec.get("no_request").is_none(), format!("no_request is set too: {}", rec["no_request"]));
}

fn stop_verdict(row: &mut Row, step: &Step, want: &str, fix_directive: bool) {
    let Some(stop) = step.stop() else {
        row.verdict = "none".into();
        row.errors.push(format!("no stop verdict for pid {:?}", step.pid));
        return;
    };
    row.verdict = text(&stop["verdict"]);
    if stop["verdict"] != want {
        row.errors.push(format!("stop.verdict {}, not {want}", stop["verdict"]));
    }
    let fix = text(&stop["fix"]);
    let directives = ["TimeoutStopSec=", "KillMode=", "KillSignal=", "ExecStop=", "Restart="];
    if fix_directive && !directives.iter().any(|d| fix.contains(d)) {
        row.errors.push(format!("stop.fix names no unit directive ({}): {fix}", directives.join(", ")));
    }
}

/// A `sudo systemctl …` step of the scenario, and what podsig must say of it.
struct SystemctlAction {
    action: &'static str,
    /// The scenario's name for the step.
    step: &'static str,
    /// What systemd sends the unit's main process.
    sig: &'static str,
    method: &'static str,
    /// The signal the request asks for (`kill -s KILL`).
    signal: Option<i64>,
    argv: &'static [&'static str],
    verdict: &'static str,
}

const SYSTEMCTL_ACTIONS: [SystemctlAction; 3] = [
    SystemctlAction {
        action: "`sudo systemctl stop` (alice)",
        step: "stop",
        sig: "SIGTERM",
        method: "StopUnit",
        signal: None,
        argv: &["systemctl", "stop", "podsig-term.service"],
        verdict: "graceful_exit",
    },
    SystemctlAction {
        action: "`sudo systemctl restart` (alice)",
        step: "restart",
        sig: "SIGTERM",
        method: "RestartUnit",
        signal: None,
        argv: &["systemctl", "restart", "podsig-term.service"],
        verdict: "graceful_exit",
    },
    SystemctlAction {
        action: "`sudo systemctl kill -s KILL` (alice)",
        step: "kill",
        sig: "SIGKILL",
        method: "KillUnit",
        signal: Some(9),
        argv: &["systemctl", "kill", "-s", "KILL", "podsig-term.service"],
        verdict: "killed_without_term",
    },
];

/// Every row, from the guest's lines.
// Long: one row per scenario step, each checking the facts the guest printed for it.
fn verdict(lines: &[&str]) -> Vec<Row> {
    let fact = |k: &str| lines.iter().find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()));
    let records: Vec<Value> =
        lines.iter().filter_map(|l| l.strip_prefix("out ")).filter_map(|l| serde_json::from_str(l).ok()).collect();
    let step = |name: &str| Step {
        records: &records,
        pid: fact(&format!("{name} target ")).and_then(|p| p.parse().ok()).filter(|&p| p > 0),
    };
    // "stop login uid=1000 loginuid=1000 session=3 tty=/dev/pts/0"
    let session = |name: &str| -> Option<u64> {
        fact(&format!("{name} login "))?.split_whitespace().find_map(|w| w.strip_prefix("session="))?.parse().ok()
    };
    let mut rows = Vec::new();

    // The guest itself: systemd as pid 1, the scenario to its end, alice's login.
    let mut guest = Row::new("guest: systemd pid 1, alice logged in, `sudo` to root");
    let identity = fact("identity ").unwrap_or_default();
    guest.identity = if identity.is_empty() { "—".into() } else { identity.clone() };
    guest.signal = format!("watch mode: {}", fact("watch-mode ").unwrap_or_else(|| "?".into()));
    if fact("pid1 ").as_deref() != Some("systemd") {
        guest.errors.push(format!("pid 1 is {:?}, not systemd", fact("pid1 ")));
    }
    if fact("done ").is_none() {
        guest.errors.push("the scenario did not reach its end".into());
    }
    let kv = |k: &str| identity.split_whitespace().find_map(|w| w.strip_prefix(k)).unwrap_or("");
    if kv("uid=") != "0" || kv("loginuid=") != "1000" || kv("session=").parse::<u64>().is_err() {
        guest.errors.push(format!("sudo's child under alice's login is not uid 0 with login uid 1000: {identity:?}"));
    }
    if let Some(l) = lines.iter().find(|l| l.starts_with("timeout ") || l.contains(" as-alice-rc ")) {
        guest.errors.push(format!("a step went wrong in the guest: {l}"));
    }
    match fact("watch-mode ").as_deref() {
        Some("unit") => {}
        Some(m) => guest.errors.push(format!(
            "`watch --unit` did not attach (it said: {}); the scenario ran under `watch --{m}`",
            lines.iter().filter_map(|l| l.strip_prefix("watch-unit-err ")).collect::<Vec<_>>().join(" / ")
        )),
        None => guest.errors.push("podsig never watched".into()),
    }
    if records.is_empty() {
        guest.errors.push("the watch printed no record".into());
    }
    rows.push(guest);

    let term = "podsig-term.service";
    let noterm = "podsig-noterm.service";
    // Alice's three systemctl commands, each on the term unit.
    for a in SYSTEMCTL_ACTIONS {
        let (name, sig, want_verdict) = (a.step, a.sig, a.verdict);
        let mut row = Row::new(a.action);
        let s = step(name);
        row.signal = format!("{sig} → {term} ({})", s.pid.map_or("?".into(), |p| p.to_string()));
        match s.signal(sig) {
            Some(rec) => requested(
                &mut row,
                rec,
                &Want {
                    unit: term,
                    comm: "systemctl",
                    method: a.method,
                    signal: a.signal,
                    argv: a.argv,
                    argv_exact: true,
                    session: session(name),
                },
            ),
            None => row.errors.push(format!("no {sig} from systemd(1) to pid {:?}", s.pid)),
        }
        stop_verdict(&mut row, &s, want_verdict, false);
        rows.push(row);
    }

    // The D-Bus call: its SIGTERM is ignored, and systemd's SIGKILL after TimeoutStopSec=2
    // is the same request's doing.
    let s = step("busctl");
    let busctl_argv = ["busctl", "StopUnit", "podsig-noterm.service"];
    for sig in ["SIGTERM", "SIGKILL"] {
        let mut row = Row::new(&format!("`sudo busctl call … StopUnit` (alice): {sig}"));
        row.signal = format!("{sig} → {noterm} ({})", s.pid.map_or("?".into(), |p| p.to_string()));
        match s.signal(sig) {
            Some(rec) => requested(
                &mut row,
                rec,
                &Want {
                    unit: noterm,
                    comm: "busctl",
                    method: "StopUnit",
                    signal: None,
                    argv: &busctl_argv,
                    argv_exact: false,
                    session: session("busctl"),
                },
            ),
            None => row.errors.push(format!("no {sig} from systemd(1) to pid {:?}", s.pid)),
        }
        if sig == "SIGKILL" {
            stop_verdict(&mut row, &s, "grace_expired_term_ignored", true);
        }
        rows.push(row);
    }

    // systemd on its own: nobody asked.
    let mut row = Row::new("`RuntimeMaxSec=2` (no request)");
    let s = step("alone");
    row.signal = format!("SIGTERM → podsig-alone.service ({})", s.pid.map_or("?".into(), |p| p.to_string()));
    match s.signal("SIGTERM") {
        Some(rec) => {
            if rec["target"]["unit"] != "podsig-alone.service" {
                row.errors.push(format!("target.unit is {}", rec["target"]["unit"]));
            }
            if !rec["requested_by"].is_null() {
                row.errors.push(format!("requested_by is {}, not null", rec["requested_by"]));
            }
            match rec["no_request"].as_str() {
                Some(why) => row.requested = format!("none: {why}"),
                None => row.errors.push(format!("no_request is {}, not a reason", rec["no_request"])),
            }
        }
        None => row.errors.push(format!("no SIGTERM from systemd(1) to pid {:?}", s.pid)),
    }
    // Shown, not checked: under TCG systemd may stop it before its handler is set (it is
    // still systemd's forked "(podsig-alone)" child when RuntimeMaxSec runs out).
    row.verdict = s.stop().map_or("none".into(), |st| text(&st["verdict"]));
    rows.push(row);

    // The busy client: never anyone's requester.
    let mut row = Row::new("busy client (GetUnit, status, list-units, properties)");
    let calls: u64 = fact("busy-calls ").and_then(|n| n.parse().ok()).unwrap_or(0);
    row.signal = format!("{calls} calls during the actions");
    if calls == 0 {
        row.errors.push("the busy client made no call".into());
    }
    // Its calls are all below the podsig-busy shell, and none is a stop.
    let busy_words = ["GetUnit", "status", "list-units", "get-property"];
    let named: Vec<String> = records
        .iter()
        .filter(|r| {
            let rb = &r["requested_by"];
            let argv = rb["client"]["argv"].as_array().cloned().unwrap_or_default();
            rb["ancestry"].as_array().is_some_and(|a| a.iter().any(|p| p["comm"] == "podsig-busy"))
                || argv.iter().any(|a| a.as_str().is_some_and(|a| busy_words.contains(&a)))
        })
        .map(|r| format!("{} to pid {} named {}", text(&r["signal"]["name"]), r["target"]["pid"], r["requested_by"]))
        .collect();
    row.requested = if named.is_empty() { "never named".into() } else { format!("named {} times", named.len()) };
    row.errors.extend(named);
    rows.push(row);

    // The question afterwards, from the recorder's history.
    let mut row = Row::new("`podsig why --unit podsig-noterm.service`");
    let why = fact("why ").and_then(|w| serde_json::from_str::<Value>(&w).ok()).unwrap_or_default();
    row.verdict = text(&why["verdict"]);
    row.requested = if why["summary"].as_str().is_some_and(|s| s.contains("busctl")) {
        "summary names busctl".into()
    } else {
        "summary does not name busctl".into()
    };
    if fact("why-mode ").as_deref() != Some("unit") {
        row.errors.push(format!(
            "`why --unit` was refused: {}",
            lines.iter().filter_map(|l| l.strip_prefix("why-unit-err ")).collect::<Vec<_>>().join(" / ")
        ));
    }
    if why["verdict"] != "grace_expired_term_ignored" {
        row.errors.push(format!("verdict {}, not grace_expired_term_ignored", why["verdict"]));
    }
    if !why["summary"].as_str().is_some_and(|s| s.contains("busctl")) {
        row.errors.push(format!("the summary does not name busctl: {}", why["summary"]));
    }
    rows.push(row);
    rows
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A signal record from systemd(1), in the schema agreed for issue 26.
    fn signal(pid: u64, sig: &str, unit: &str, requested_by: Value, verdict: Option<&str>) -> String {
        let mut r = json!({
            "kind": "signal",
            "signal": {"name": sig},
            "target": {"pid": pid, "unit": unit},
            "sender": {"pid": 1, "comm": "systemd", "unit": "init.scope"},
            "requested_by": requested_by,
            "stop": verdict.map(|v| json!({"verdict": v, "fix": "let it handle SIGTERM, or lower TimeoutStopSec="})),
        });
        if r["requested_by"].is_null() {
            r["no_request"] =
                json!("systemd acted on its own (a timeout, watchdog, restart policy, dependency or shutdown)");
        }
        format!("PODSIG-VM systemd out {r}")
    }

    fn client(comm: &str, method: &str, unit: &str, signal: Option<i64>, argv: &[&str], session: u64) -> Value {
        json!({
            "manager": "systemd",
            "request": {"method": method, "object": unit, "mode": if signal.is_some() { json!("all") } else { json!("replace") },
                        "signal": signal, "timeout_s": null},
            "link": "request",
            "time": "2026-12-04T16:32:56Z",
            "elapsed_ms": 38,
            "client": {"pid": 437, "tid": 437, "comm": comm, "uid": 0, "login_uid": 1000, "session": session,
                       "tty": "pts/1", "argv": argv, "exe": null},
            "ancestry": [{"pid": 0, "comm": "swapper/0"}, {"pid": 1, "comm": "systemd"}, {"pid": 425, "comm": "sudo"},
                         {"pid": 437, "comm": comm}],
        })
    }

    fn console(busy_named: bool) -> String {
        let term = "podsig-term.service";
        let noterm = "podsig-noterm.service";
        let busctl = [
            "busctl",
            "call",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StopUnit",
            "ss",
            noterm,
            "replace",
        ];
        let mut l = vec![
            "PODSIG-VM systemd pid1 systemd".to_string(),
            "PODSIG-VM systemd watch-mode unit".into(),
            "PODSIG-VM systemd identity uid=0 loginuid=1000 session=1".into(),
            "PODSIG-VM systemd stop target 310".into(),
            "PODSIG-VM systemd stop login uid=1000 loginuid=1000 session=1 tty=/dev/pts/0".into(),
            "PODSIG-VM systemd restart target 455".into(),
            "PODSIG-VM systemd restart login uid=1000 loginuid=1000 session=2 tty=/dev/pts/0".into(),
            "PODSIG-VM systemd kill target 495".into(),
            "PODSIG-VM systemd kill login uid=1000 loginuid=1000 session=3 tty=/dev/pts/0".into(),
            "PODSIG-VM systemd busctl target 311".into(),
            "PODSIG-VM systemd busctl login uid=1000 loginuid=1000 session=4 tty=/dev/pts/0".into(),
            "PODSIG-VM systemd alone target 594".into(),
            "PODSIG-VM systemd busy-calls 64".into(),
            signal(
                310,
                "SIGTERM",
                term,
                client("systemctl", "StopUnit", term, None, &["systemctl", "stop", term], 1),
                None,
            ),
            format!(
                "PODSIG-VM systemd out {}",
                json!({"kind": "exit", "pid": 310, "stop": {"verdict": "graceful_exit", "fix": "nothing"}})
            ),
            signal(
                455,
                "SIGTERM",
                term,
                client("systemctl", "RestartUnit", term, None, &["systemctl", "restart", term], 2),
                None,
            ),
            format!(
                "PODSIG-VM systemd out {}",
                json!({"kind": "exit", "pid": 455, "stop": {"verdict": "graceful_exit", "fix": "nothing"}})
            ),
            signal(
                495,
                "SIGKILL",
                term,
                client("systemctl", "KillUnit", term, Some(9), &["systemctl", "kill", "-s", "KILL", term], 3),
                Some("killed_without_term"),
            ),
            signal(311, "SIGTERM", noterm, client("busctl", "StopUnit", noterm, None, &busctl, 4), None),
            signal(
                311,
                "SIGKILL",
                noterm,
                client("busctl", "StopUnit", noterm, None, &busctl, 4),
                Some("grace_expired_term_ignored"),
            ),
            signal(594, "SIGTERM", "podsig-alone.service", Value::Null, None),
            "PODSIG-VM systemd why-mode unit".into(),
            format!(
                "PODSIG-VM systemd why {}",
                json!({"verdict": "grace_expired_term_ignored", "summary": "… requested by: busctl(700) …"})
            ),
            "PODSIG-VM systemd done 152.86".into(),
        ];
        if busy_named {
            let mut c = client("systemctl", "GetUnit", term, None, &["systemctl", "status", term], 1);
            c["ancestry"][2]["comm"] = json!("podsig-busy");
            l.push(signal(9999, "SIGTERM", term, c, None));
        }
        l.join("\n")
    }

    #[test]
    fn the_agreed_schema_passes() {
        let c = console(false);
        let rows = verdict(&guest_lines(&c));
        let failed: Vec<String> =
            rows.iter().filter(|r| !r.errors.is_empty()).map(|r| format!("{}: {:?}", r.action, r.errors)).collect();
        assert!(failed.is_empty(), "{failed:#?}");
        assert_eq!(rows.len(), 9);
    }

    #[test]
    fn a_busy_client_named_as_requester_fails() {
        let c = console(true);
        let rows = verdict(&guest_lines(&c));
        let busy = rows.iter().find(|r| r.action.starts_with("busy client")).unwrap();
        assert_eq!(busy.errors.len(), 1, "{:?}", busy.errors);
    }

    #[test]
    fn a_missing_requester_or_wrong_login_fails() {
        let c = console(false).replace("\"login_uid\":1000", "\"login_uid\":null");
        let rows = verdict(&guest_lines(&c));
        let stop = rows.iter().find(|r| r.action.contains("systemctl stop")).unwrap();
        assert!(stop.errors.iter().any(|e| e.contains("login_uid")), "{:?}", stop.errors);
        let alone = console(false).replace("\"no_request\"", "\"other\"");
        let rows = verdict(&guest_lines(&alone));
        let row = rows.iter().find(|r| r.action.contains("RuntimeMaxSec")).unwrap();
        assert!(row.errors.iter().any(|e| e.contains("no_request")), "{:?}", row.errors);
    }
}
