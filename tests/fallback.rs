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
    let _suite = suite(module_path!());
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

/// Kernels before 5.17 have no bpf_loop, before 5.5 no BTF-typed tracepoints: the programs
/// built for them report the same ancestry.
#[test]
fn every_build_of_the_hook_reports_the_same_ancestry() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let mut chains = Vec::new();
    for (forced, walk) in [
        ("", "BTF-typed tracepoint, ancestry walked with bpf_loop"),
        ("loop", "BTF-typed tracepoint, ancestry walked with a bounded loop"),
        ("tp_btf", "raw tracepoint, ancestry walked with a bounded loop"),
    ] {
        let (target, mut w) = watch_forced(forced, walk);
        let t = target.pid();
        // sh → sh → kill: a chain whose shape both runs share.
        let sender = send("sh", "sh -c 'kill -TERM $T'", t);
        let ev = w.next_kind("signal");
        assert_eq!(ev["ancestry_complete"], true, "{walk}: {ev}");
        let chain: Vec<(u64, String)> = ev["ancestry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["pid"].as_u64().unwrap(), a["comm"].as_str().unwrap().to_string()))
            .collect();
        assert_eq!(chain[0], (0, "swapper/0".to_string()), "{walk}: {chain:?}");
        assert_eq!(chain[chain.len() - 2].0, sender as u64, "{walk}: the outer sh is the parent: {chain:?}");
        assert!(w.wait().0.success(), "{walk}");
        // Compare everything above this test's own processes, which differ between runs.
        chains.push(chain[..chain.len() - 2].to_vec());
    }
    assert_eq!(chains[0], chains[1]);
    assert_eq!(chains[0], chains[2]);
}
