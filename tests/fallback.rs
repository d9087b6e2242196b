//! The no-BTF fallback (classic tracepoints + /proc), forced on this kernel with
//! PODSIG_FORCE_FALLBACK=btf, and tracefs mounting on a host that has none mounted.

use std::process::{Command, Stdio};

use podsig_e2e::*;

fn tracefs_mounted() -> bool {
    std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/kernel/tracing"))
}

#[test]
fn no_btf_fallback_reports_live_sender_from_proc_and_mounts_tracefs() {
    // A suite of its own: unmounting tracefs under another test's podsig makes that one fail
    // to attach ("tracefs not found"), which is this test's doing, not podsig's.
    let _suite = suite(concat!(module_path!(), "::tracefs_unmounted"));
    if !privileged() {
        return;
    }
    // A fresh machine has no tracefs mounted; the fallback needs it for formats and ids.
    if tracefs_mounted() {
        let _ = Command::new("umount").arg("/sys/kernel/tracing").status();
    }
    let target = Target::sleep();
    let t = target.pid();
    let mut w =
        Podsig::start_env(&["watch", "--pid", &t.to_string(), "-o", "json"], &[("PODSIG_FORCE_FALLBACK", "btf")]);
    assert!(tracefs_mounted(), "podsig must mount tracefs when it is missing");
    // The sender stays alive a moment (sh waits for its sleep), so /proc still has it.
    let mut sender = Command::new("sh")
        .args(["-c", "kill -TERM $T; sleep 2"])
        .env("T", t.to_string())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let ev = w.next_kind("signal");
    assert_eq!(ev["signal"]["name"], "SIGTERM");
    assert_eq!(ev["ancestry_source"], "proc");
    assert_eq!(ev["target"]["pid"], t);
    assert_eq!(ev["target"]["comm"], "sleep");
    assert_eq!(ev["sender"]["pid"], sender.id());
    assert_eq!(ev["sender"]["comm"], "sh");
    assert_eq!(ev["sender"]["ppid"], std::process::id());
    assert_eq!(ev["sender"]["argv"], serde_json::json!(["sh", "-c", "kill -TERM $T; sleep 2"]));
    assert_eq!(ev["ancestry_complete"], true);
    let c = chain(&ev);
    assert_eq!(c[0], (0, "swapper/0".to_string()));
    assert_eq!(c[c.len() - 1], (sender.id() as u64, "sh".to_string()));
    assert_eq!(c[c.len() - 2], (std::process::id() as u64, own_comm()));
    let exit = w.next_kind("exit");
    assert_eq!(exit["pid"], t);
    // Read from the zombie's /proc entry (we have not reaped it): SIGTERM ended it.
    assert_eq!(exit["signal"]["name"], "SIGTERM", "{exit}");
    assert!(w.wait().0.success());
    sender.wait().unwrap();
}

#[test]
fn no_btf_fallback_marks_a_vanished_sender_incomplete() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::sleep();
    let t = target.pid();
    let mut w =
        Podsig::start_env(&["watch", "--pid", &t.to_string(), "-o", "json"], &[("PODSIG_FORCE_FALLBACK", "btf")]);
    // Hold podsig until the sender has exited and been reaped, so /proc has nothing left.
    w.signal(libc::SIGSTOP);
    let sender = send("sh", "kill -KILL $T", t);
    w.signal(libc::SIGCONT);
    let ev = w.next_kind("signal");
    assert_eq!(ev["sender"]["pid"], sender);
    assert_eq!(ev["sender"]["comm"], "sh");
    // Gone before userspace looked: nothing is invented.
    assert_eq!(ev["ancestry_complete"], false);
    assert_eq!(ev["ancestry_source"], "proc");
    assert!(w.wait().0.success());
}

/// A sleeping target watched by `podsig -v watch` with PODSIG_FORCE_FALLBACK=`forced`, once
/// its log says `says` (the transport or the build of the hook in use).
fn watch_forced(forced: &str, says: &str) -> (Target, Podsig) {
    let target = Target::sleep();
    let w = Podsig::start_env(
        &["-v", "watch", "--pid", &target.pid().to_string(), "-o", "json"],
        &[("PODSIG_FORCE_FALLBACK", forced)],
    );
    assert!(w.stderr_lines.iter().any(|l| l.contains(says)), "{forced}: {:?}", w.stderr_lines);
    (target, w)
}

/// Kernels before 5.8 have no BPF ring buffer: the perf event array takes over. Forced here,
/// alone and together with the no-BTF path.
#[test]
fn perf_event_array_fallback_reports_the_same_events() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    for forced in ["ringbuf", "btf,ringbuf"] {
        let (target, mut w) = watch_forced(forced, "events through a perf event array");
        let t = target.pid();
        let sender = send("sh", "kill -TERM $T", t);
        let ev = w.next_kind("signal");
        assert_eq!(ev["signal"]["name"], "SIGTERM", "{forced}");
        assert_eq!(ev["target"]["pid"], t);
        assert_eq!(ev["sender"]["pid"], sender);
        if forced == "ringbuf" {
            // BTF still there: everything is captured in kernel, as on the ring buffer.
            assert_eq!(ev["ancestry_source"], "kernel");
            assert_eq!(ev["ancestry_complete"], true);
            assert_eq!(ev["sender"]["argv"], serde_json::json!(["sh", "-c", "kill -TERM $T"]));
            assert_eq!(ev["syscall"], "kill");
        } else {
            assert_eq!(ev["ancestry_source"], "proc");
        }
        let exit = w.next_kind("exit");
        assert_eq!(exit["pid"], t);
        assert!(w.wait().0.success(), "{forced}");
    }
}

/// Kernels before 5.17 have no bpf_loop, before 5.5 no BTF-typed tracepoints, and a newer
/// verifier may refuse the typed build: every build of the hook reports the same ancestry,
/// and the bpf_loop builds, raw or typed, the same executables.
#[test]
fn every_build_of_the_hook_reports_the_same_ancestry() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let mut chains = Vec::new();
    for (forced, build, walk) in [
        ("", "typed_loop", "BTF-typed tracepoint, ancestry walked with bpf_loop"),
        ("tp_btf", "raw_loop", "raw tracepoint, ancestry walked with bpf_loop"),
        ("loop", "typed_bounded", "BTF-typed tracepoint, ancestry walked with a bounded loop"),
        ("tp_btf,loop", "raw_bounded", "raw tracepoint, ancestry walked with a bounded loop"),
    ] {
        let (target, mut w) = watch_forced(forced, &format!("{build} build ({walk})"));
        let t = target.pid();
        // sh → sh → kill: a chain whose shape both runs share.
        let sender = send("sh", "sh -c 'kill -TERM $T'", t);
        let ev = w.next_kind("signal");
        assert_eq!(ev["ancestry_complete"], true, "{walk}: {ev}");
        let chain: Vec<(u64, String, Value)> = ev["ancestry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["pid"].as_u64().unwrap(), a["comm"].as_str().unwrap().to_string(), a["exe"].clone()))
            .collect();
        assert_eq!((chain[0].0, chain[0].1.as_str()), (0, "swapper/0"), "{walk}: {chain:?}");
        assert_eq!(chain[chain.len() - 2].0, sender as u64, "{walk}: the outer sh is the parent: {chain:?}");
        let sh = &chain[chain.len() - 2].2;
        if build.ends_with("_loop") {
            // The outer sh's executable, identified in the kernel: /usr/bin/dash on Debian.
            let real = std::fs::canonicalize("/bin/sh").unwrap();
            assert_eq!(sh["path"], real.to_str().unwrap(), "{walk}: {ev}");
            assert_eq!(sh["unlinked"], false, "{walk}");
            assert!(ev.get("lacks").is_none(), "{walk}: the bpf_loop builds lack nothing: {ev}");
        } else {
            assert!(sh.is_null(), "{walk}: the bounded walk has no room for executables: {ev}");
            assert_eq!(ev["lacks"], serde_json::json!(["executable_identity"]), "{walk}");
        }
        assert!(w.wait().0.success(), "{walk}");
        // Compare everything above this test's own processes, which differ between runs.
        let above: Vec<(u64, String)> = chain[..chain.len() - 2].iter().map(|(p, c, _)| (*p, c.clone())).collect();
        chains.push((build, above));
    }
    for (build, chain) in &chains[1..] {
        assert_eq!(&chains[0].1, chain, "{build} against typed_loop");
    }
}

/// A kernel whose verifier refuses the typed build (6.18.44 did, over `info`): podsig loads
/// the raw bpf_loop build, says so in one line without -v, `doctor` says the same, and the
/// records lose nothing. Forced with a build every verifier refuses.
#[test]
fn a_refused_typed_build_is_said_aloud_and_loses_nothing() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::sleep();
    let t = target.pid();
    let mut w =
        Podsig::start_env(&["watch", "--pid", &t.to_string(), "-o", "json"], &[("PODSIG_FORCE_FALLBACK", "refuse")]);
    let said: Vec<&String> = w.stderr_lines.iter().filter(|l| l.contains("signal hook:")).collect();
    assert_eq!(said.len(), 1, "one line, without -v: {:?}", w.stderr_lines);
    let line = said[0];
    for part in ["raw_loop build", "not the typed_loop build", "verifier said `", "invalid mem access", "lose nothing"]
    {
        assert!(line.contains(part), "{part:?} in {line}");
    }
    let sender = send("sh", "sh -c 'kill -TERM $T'", t);
    let ev = w.next_kind("signal");
    assert_eq!(ev["ancestry"][ev["ancestry"].as_array().unwrap().len() - 2]["pid"], sender);
    assert!(ev.get("lacks").is_none(), "{ev}");
    assert!(w.wait().0.success());

    let out = Command::new(podsig_bin())
        .args(["doctor", "-o", "json"])
        .env("PODSIG_FORCE_FALLBACK", "refuse")
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["hook"]["build"], "raw_loop", "{doc}");
    assert_eq!(doc["hook"]["expected"], "typed_loop", "{doc}");
    assert!(doc["hook"]["reason"].as_str().unwrap().contains("invalid mem access"), "{doc}");
    let check = doc["checks"].as_array().unwrap().iter().find(|c| c["name"] == "signal hook build").unwrap();
    assert_eq!(check["status"], "info", "nothing is missing from the records: {check}");
    assert!(check["detail"].as_str().unwrap().starts_with("raw_loop build"), "{check}");

    // Unforced, this kernel takes the best build, and doctor says so.
    let out = Command::new(podsig_bin()).args(["doctor", "-o", "json"]).output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["hook"]["build"], "typed_loop", "{doc}");
    assert!(doc["hook"]["reason"].is_null(), "{doc}");
}

/// A build that lacks a capability says what in one line, and the records carry it, as
/// the metric counts it.
#[test]
fn a_build_without_executable_identity_says_so_and_its_records_carry_it() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::sleep();
    let t = target.pid();
    let mut w =
        Podsig::start_env(&["watch", "--pid", &t.to_string(), "-o", "json"], &[("PODSIG_FORCE_FALLBACK", "loop")]);
    let line = w.stderr_lines.iter().find(|l| l.contains("signal hook:")).expect("one line without -v");
    assert!(line.contains("typed_bounded build") && line.contains("forced by PODSIG_FORCE_FALLBACK=loop"), "{line}");
    assert!(line.contains("records lack executable identity (findings come from /proc)"), "{line}");
    send("sh", "kill -TERM $T", t);
    let ev = w.next_kind("signal");
    assert_eq!(ev["lacks"], serde_json::json!(["executable_identity"]), "{ev}");
    assert!(w.wait().0.success());
}
