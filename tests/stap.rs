//! The SystemTap backend. This kernel loads no modules, so stap cannot run live here (the
//! QEMU tests do that); these tests check the generated script with the real stap parser,
//! run the whole pipeline against a stand-in `stap` that replays recorded output, and check
//! that auto picks eBPF here and says why SystemTap would not do.

use std::{fs, os::unix::fs::PermissionsExt, path::Path, process::Command};

use podsig_e2e::*;

fn have_stap() -> bool {
    if Command::new("stap").arg("--version").output().is_ok() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "CI must have systemtap (cargo xtask test installs it)");
    eprintln!("skipped: systemtap is not installed (cargo xtask test installs it)");
    false
}

#[test]
fn real_stap_parses_every_generated_script() {
    let _suite = suite(module_path!());
    if !have_stap() {
        return;
    }
    // Pass 1 (parsing) needs no kernel, but stap insists on a build tree to name one.
    let build = scratch("stap-build");
    fs::create_dir_all(build.join("include/config")).unwrap();
    fs::write(build.join("include/config/kernel.release"), "6.1.0-podsig-test\n").unwrap();
    fs::write(build.join(".config"), "").unwrap();
    fs::write(build.join("Module.symvers"), "").unwrap();
    let variants: &[&[&str]] = &[
        &["--pid", "7942"],
        &["--pid", "7942", "--pid", "8001", "--signal", "KILL", "--signal", "TERM"],
        &["--all"],
        &["--all", "--signal", "RTMIN+3"],
    ];
    for args in variants {
        let mut a = vec!["watch", "--backend", "stap", "--print-script"];
        a.extend_from_slice(args);
        let (st, script, err) = podsig_output(&a);
        assert!(st.success(), "{a:?}: {err}");
        let path = build.join("podsig.stp");
        fs::write(&path, &script).unwrap();
        let o = Command::new("stap").arg("-r").arg(&build).arg("-p1").arg(&path).output().unwrap();
        assert!(o.status.success(), "{args:?}: stap -p1 rejected:\n{}\n{script}", String::from_utf8_lossy(&o.stderr));
    }
    // And the parser does reject a broken script: the check above is not vacuous.
    fs::write(build.join("bad.stp"), "probe begin { printf(\"x\" }").unwrap();
    let o = Command::new("stap").arg("-r").arg(&build).arg("-p1").arg(build.join("bad.stp")).output().unwrap();
    assert!(!o.status.success());
    let _ = fs::remove_dir_all(&build);
}

#[test]
fn script_takes_numbers_only() {
    let _suite = suite(module_path!());
    let (st, _, err) = podsig_output(&["watch", "--backend", "stap", "--print-script", "--pid", "1;system(\"id\")"]);
    assert!(!st.success());
    assert!(err.contains("is not a process id"), "{err}");
    let (st, _, err) = podsig_output(&["watch", "--print-script", "--pid", "1"]);
    assert!(!st.success() && err.contains("--backend stap"), "{err}");
}

/// A stand-in `stap`: checks the script it is given is private, answers with lines recorded
/// from the real script's format (aimed at the pid the script watches), and waits for the
/// SIGINT podsig sends on exit.
fn stand_in(dir: &Path, body: &str) {
    let script = format!(
        r#"#!/bin/sh
if [ "$1" = --version ]; then echo "Systemtap translator/driver (version 4.8/0.188, stand-in)" >&2; exit 0; fi
# The script comes last; the watch comes as -G name=value parameters.
for a; do S="$a"; case "$a" in target_pids=*) T="${{a#target_pids=}}";; esac; done
echo "$*" > {dir}/args
echo "$(stat -c %a "$S") $(stat -c %a "$(dirname "$S")")" > {dir}/modes
{body}
"#,
        dir = dir.display()
    );
    let path = dir.join("stap");
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn path_with(dir: &Path) -> String {
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default())
}

#[test]
fn stap_backend_pipeline_against_a_stand_in() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let dir = scratch("stand-in");
    // Recorded from the generated script's printf formats; the sender renamed itself with a
    // tab and a newline, which text_str escapes.
    stand_in(
        &dir,
        &format!(
            r#"trap 'echo interrupted > {d}/sigint; exit 0' INT
printf 'PODSIG\tREADY\n'
echo "WARNING: a stap warning on stderr" >&2
printf 'PODSIG\tSIG\t1764015450123456789\t15\t0\t1\t%s\t%s\tsleep\t4242\t4242\t4200\t0\tev\\til\\n\tkill\\001-TERM\\001%s\t-1\t4194304\t4242\t2008505202486630\t4194304\tev\\til\\n\t4200\t2008504817798337\t4194560\tbash\t1\t80000000\t4194560\tsystemd\t0\t0\t2097218\tswapper/0\t\n' "$T" "$T" "$T"
sleep 0.2
printf 'PODSIG\tEXIT\t1764015450123501230\t%s\t15\tsleep\n' "$T"
while :; do sleep 0.05; done"#,
            d = dir.display()
        ),
    );
    let target = Target::sleep();
    let t = target.pid();
    let mut w = Podsig::start_env(
        &["watch", "--backend", "stap", "--pid", &t.to_string(), "-o", "json"],
        &[("PATH", &path_with(&dir)), ("PODSIG_STAP_NO_PREFLIGHT", "1")],
    );
    assert!(w.stderr_lines.iter().any(|l| l == "podsig: compiling SystemTap module…"), "{:?}", w.stderr_lines);
    assert!(w.stderr_lines.last().unwrap().starts_with("podsig: attached (backend stap"));
    let ev = w.next_kind("signal");
    assert_eq!(ev["backend"], "stap");
    assert_eq!(ev["target"]["pid"], t);
    assert_eq!(ev["signal"]["name"], "SIGTERM");
    assert_eq!(ev["sender"]["comm"], "ev\til\n");
    assert_eq!(ev["sender"]["argv"], serde_json::json!(["kill", "-TERM", t.to_string()]));
    assert_eq!(ev["ancestry"][0]["comm"], "swapper/0");
    assert_eq!(ev["ancestry_complete"], true);
    // What stap cannot see is null, and the verdict claims no more than si_code allows.
    for field in ["result", "errno", "boot_ns", "syscall"] {
        assert_eq!(ev[field], Value::Null, "{field}: {ev}");
    }
    assert_eq!(ev["cause"], "unknown");
    let exit = w.next_kind("exit");
    assert_eq!(exit["backend"], "stap");
    assert_eq!(exit["signal"]["name"], "SIGTERM");
    let (st, _, err) = w.wait();
    assert!(st.success(), "{err:?}");
    assert!(err.iter().any(|l| l == "podsig: stap: WARNING: a stap warning on stderr"), "{err:?}");
    // The watch went in as parameters, the script last.
    let args = fs::read_to_string(dir.join("args")).unwrap();
    assert!(args.starts_with(&format!("-G watch_all=0 -G target_pids={t} ")), "{args}");
    // The script was private, and stap was stopped cleanly (SIGINT, so it unloads).
    assert_eq!(fs::read_to_string(dir.join("modes")).unwrap().trim(), "600 700");
    assert_eq!(fs::read_to_string(dir.join("sigint")).unwrap().trim(), "interrupted");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn stap_compile_failure_is_one_line() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let dir = scratch("stand-in-fail");
    stand_in(
        &dir,
        r#"echo "In file included from stp_task_work.c:1:" >&2
echo "/usr/share/systemtap/runtime/linux/stp_task_work.c:60:15: error: too few arguments to function 'task_work_cancel'" >&2
echo "Pass 4: compilation failed.  [man error::pass4]" >&2
exit 1"#,
    );
    let target = Target::sleep();
    let env = [("PATH", path_with(&dir)), ("PODSIG_STAP_NO_PREFLIGHT", "1".into())];
    let o = Command::new(podsig_bin())
        .args(["watch", "--backend", "stap", "--pid", &target.pid().to_string()])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("podsig: compiling")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    for needle in ["version 4.8", release.trim(), "task_work_cancel", "upgrade SystemTap", "--verbose"] {
        assert!(lines[0].contains(needle), "{needle:?} missing from: {}", lines[0]);
    }
    // --verbose passes stap's own output through.
    let o = Command::new(podsig_bin())
        .args(["-v", "watch", "--backend", "stap", "--pid", &target.pid().to_string()])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("podsig: stap: Pass 4: compilation failed."), "{err}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn stap_preflight_names_what_is_missing_here() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::sleep();
    let (st, _, err) = podsig_output(&["watch", "--backend", "stap", "--pid", &target.pid().to_string()]);
    assert!(!st.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("the SystemTap backend cannot run here"), "{err}");
    assert!(err.contains("no loadable-module support") && err.contains("CONFIG_MODULES"), "{err}");
    assert!(err.contains("linux-headers-"), "{err}");
}

#[test]
fn auto_picks_ebpf_here_and_says_why_not_stap() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::sleep();
    let (st, _, err) = podsig_output(&["-v", "watch", "--pid", &target.pid().to_string(), "--duration", "100ms"]);
    assert!(st.success(), "{err}");
    assert!(err.contains("podsig: attached (backend ebpf"), "{err}");
    let why = err.lines().find(|l| l.contains("backend auto")).unwrap_or_else(|| panic!("{err}"));
    assert!(why.contains("SystemTap would not do") && why.contains("kernel module loading"), "{why}");
}

/// `stap-build` then `watch --stap-module`, against a stand-in `stap` that writes a module
/// as kbuild would (an ELF with a .modinfo naming it and its kernel) and a stand-in
/// `staprun` that loads nothing but prints what the module would.
#[test]
// Long: one scenario in the order it happens; its steps share the processes and the watch.
fn prebuilt_module_is_built_once_and_loaded_with_staprun() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let dir = scratch("stand-in-module");
    let fake_stap = format!(
        r#"#!/bin/sh
if [ "$1" = --version ]; then echo "Systemtap translator/driver (version 5.6/0.192, stand-in)" >&2; exit 0; fi
echo "$*" > {d}/build-args
while [ $# -gt 1 ]; do case "$1" in -r) R="$2"; shift;; -m) M="$2"; shift;; esac; shift; done
printf 'license=GPL\000name=%s\000vermagic=%s SMP preempt mod_unload \000' "$M" "$R" > {d}/modinfo
objcopy -I binary -O elf64-x86-64 -B i386:x86-64 --rename-section .data=.modinfo {d}/modinfo "$M.ko"
"#,
        d = dir.display()
    );
    let fake_staprun = format!(
        r#"#!/bin/sh
echo "$*" > {d}/load-args
for a; do case "$a" in target_pids=*) T="${{a#target_pids=}}";; esac; done
trap 'echo unloaded > {d}/sigint; exit 0' INT
printf 'PODSIG\tREADY\n'
printf 'PODSIG\tSIG\t1764015450123456789\t15\t0\t1\t%s\t%s\tsleep\t4242\t4242\t4200\t0\tsh\tsh\001-c\001kill\t0\t4194304\t4242\t2008505202486630\t4194304\tsh\t1\t80000000\t4194560\tinit\t0\t0\t2097218\tswapper/0\t\n' "$T" "$T"
while :; do sleep 0.05; done
"#,
        d = dir.display()
    );
    for (name, text) in [("stap", fake_stap), ("staprun", fake_staprun)] {
        fs::write(dir.join(name), text).unwrap();
        fs::set_permissions(dir.join(name), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap().trim().to_string();
    let env = [("PATH", path_with(&dir)), ("PODSIG_STAP_NO_PREFLIGHT", "1".into())];
    let module = dir.join("podsig-here.ko");
    let o = Command::new(podsig_bin())
        .args(["stap-build", "--kernel-release", &release, "-o", module.to_str().unwrap()])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(&format!("for kernel {release}")), "{err}");
    let build_args = fs::read_to_string(dir.join("build-args")).unwrap();
    assert!(build_args.starts_with(&format!("-p4 -r {release} -m podsig_")), "{build_args}");

    // Loaded on the node it was built for: the same events as every backend.
    let target = Target::sleep();
    let t = target.pid();
    let mut w = Podsig::start_env(
        &[
            "watch",
            "--backend",
            "stap",
            "--stap-module",
            module.to_str().unwrap(),
            "--pid",
            &t.to_string(),
            "-o",
            "json",
        ],
        &[("PATH", &path_with(&dir))],
    );
    assert!(w.stderr_lines.last().unwrap().starts_with("podsig: attached (backend stap"), "{:?}", w.stderr_lines);
    let ev = w.next_kind("signal");
    assert_eq!((ev["backend"].as_str(), ev["target"]["pid"].as_u64()), (Some("stap"), Some(t as u64)));
    assert_eq!(ev["sender"]["argv"], serde_json::json!(["sh", "-c", "kill"]));
    // staprun finds the module by its file name: the renamed file was loaded as a copy
    // under the module's own name (the one stap-build gave it).
    let load_args = fs::read_to_string(dir.join("load-args")).unwrap();
    let (loaded, params) = load_args.trim().split_once(' ').unwrap();
    let module_name = build_args.split_whitespace().skip_while(|a| *a != "-m").nth(1).unwrap();
    assert!(loaded.ends_with(&format!("/{module_name}.ko")), "{load_args}");
    assert_eq!(params, format!("watch_all=0 target_pids={t}"));
    w.signal(libc::SIGINT);
    assert!(w.wait().0.success());
    assert_eq!(fs::read_to_string(dir.join("sigint")).unwrap().trim(), "unloaded");

    // Built for another kernel: refused in one line, before anything loads.
    let other = dir.join("podsig-other.ko");
    let o = Command::new(podsig_bin())
        .args(["stap-build", "-r", "6.1.0-50-amd64", "-o", other.to_str().unwrap()])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (st, _, err) = podsig_output(&[
        "watch",
        "--backend",
        "stap",
        "--stap-module",
        other.to_str().unwrap(),
        "--pid",
        &t.to_string(),
    ]);
    assert!(!st.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("was built for kernel 6.1.0-50-amd64, but this kernel is {release}")), "{err}");
    assert!(err.contains(&format!("podsig stap-build --kernel-release {release}")), "{err}");

    // With the default backend the module is the fallback: eBPF works here, so it is not
    // loaded (and -v says so).
    let (st, _, err) = podsig_output(&[
        "-v",
        "watch",
        "--stap-module",
        module.to_str().unwrap(),
        "--pid",
        &t.to_string(),
        "--duration",
        "100ms",
    ]);
    assert!(st.success(), "{err}");
    assert!(err.contains("podsig: attached (backend ebpf"), "{err}");
    assert!(err.contains(&format!("the SystemTap module {} is not loaded", module.display())), "{err}");
    // Asked for eBPF and a module at once: the module would never load.
    let (st, _, err) = podsig_output(&[
        "watch",
        "--backend",
        "ebpf",
        "--stap-module",
        module.to_str().unwrap(),
        "--pid",
        &t.to_string(),
    ]);
    assert!(!st.success());
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        ["podsig: --stap-module is never loaded with --backend ebpf: drop one of them"]
    );

    // eBPF refused by a seccomp filter, and this kernel loads no modules: neither backend
    // runs, and the one error says what each lacks (the stand-in staprun is there).
    let o = refuse_bpf(Command::new(podsig_bin()).args([
        "watch",
        "--stap-module",
        module.to_str().unwrap(),
        "--pid",
        &t.to_string(),
    ]))
    .env("PATH", path_with(&dir))
    .stdin(std::process::Stdio::null())
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    for needle in [
        "no backend can run here",
        "eBPF needs the bpf() syscall, refused (EPERM) by the seccomp filter",
        "kernel module loading",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert!(!err.contains("staprun ("), "staprun is there: {err}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn stap_build_names_the_packages_a_release_needs() {
    let _suite = suite(module_path!());
    let (st, _, err) = podsig_output(&["stap-build", "--kernel-release", "6.12.117+deb13-amd64", "-o", "/tmp/x.ko"]);
    assert!(!st.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    for needle in [
        "cannot build a SystemTap module for kernel 6.12.117+deb13-amd64",
        "linux-headers-6.12.117+deb13-amd64",
        "linux-image-6.12.117+deb13-amd64-dbg",
        "kernel-devel-6.12.117+deb13-amd64",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    let (st, _, err) = podsig_output(&["stap-build", "--kernel-release", "../../etc"]);
    assert!(!st.success() && err.contains("is not a kernel release"), "{err}");
}
