//! Secrets: command lines masked before they leave podsig (every output, the history), and
//! history files only root (or a named group) may read.

use std::{
    os::unix::fs::MetadataExt as _,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use podsig_e2e::*;

const PASSWORD: &str = "hunter2-e2e";
const TOKEN: &str = "tok3n-e2e";

/// Runs `argv` with T set to the target's pid (the sender), to completion.
fn send_argv(argv: &[&str], target: u32) {
    let st = Command::new(argv[0])
        .args(&argv[1..])
        .env("T", target.to_string())
        .stdin(Stdio::null())
        .status()
        .expect("spawn sender");
    assert!(st.success(), "sender {argv:?}: {st}");
}

/// sh with secrets among its arguments ($0 and on), sending USR1 with its builtin kill.
fn sender() -> Vec<String> {
    [
        "sh",
        "-c",
        "kill -USR1 $T",
        "sh",
        &format!("--password={PASSWORD}"),
        &format!("https://bob:{TOKEN}@git.example/r.git"),
        "customer-4411",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn send_secrets(target: u32) {
    let argv = sender();
    send_argv(&argv.iter().map(String::as_str).collect::<Vec<_>>(), target);
}

fn argv_of(ev: &Value) -> Vec<String> {
    ev["sender"]["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect()
}

fn no_secret(text: &str) {
    assert!(!text.contains(PASSWORD) && !text.contains(TOKEN), "a secret left podsig: {text}");
}

#[test]
fn secrets_in_argv_are_masked_in_json_text_and_extra_patterns_or_kept_when_asked() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let target = Target::script("trap '' USR1; exec sleep 300");
    let t = target.pid().to_string();
    let usr1 = |v: &Value| v["kind"] == "signal" && v["signal"]["name"] == "SIGUSR1";

    let mut w = Podsig::start(&["watch", "--pid", &t, "-o", "json"]);
    send_secrets(target.pid());
    let ev = w.next_matching("USR1", usr1);
    no_secret(&ev.to_string());
    assert_eq!(
        argv_of(&ev),
        ["sh", "-c", "kill -USR1 $T", "sh", "--password=***", "https://***@git.example/r.git", "customer-4411"]
    );
    // mysql's -pSECRET: its argv[0] says which tool it is.
    send_argv(&["bash", "-c", "exec -a mysql sh -c 'kill -USR1 $T' -uroot -ps3cret-e2e app"], target.pid());
    let ev = w.next_matching("USR1 from mysql", usr1);
    assert_eq!(argv_of(&ev), ["mysql", "-c", "kill -USR1 $T", "-uroot", "-p***", "app"], "{ev}");
    drop(w);

    // The text form, and a pattern of the user's own.
    let (_, text) = {
        let mut c = Command::new(podsig_bin())
            .args(["watch", "--pid", &t, "-o", "text", "--count", "1", "--redact", r"customer-\d+"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Attached once it says so on stderr.
        let mut err = std::io::BufReader::new(c.stderr.take().unwrap());
        let mut line = String::new();
        while !line.starts_with("podsig: attached") {
            line.clear();
            assert!(std::io::BufRead::read_line(&mut err, &mut line).unwrap() > 0, "podsig never attached");
        }
        send_secrets(target.pid());
        let o = c.wait_with_output().unwrap();
        (o.status, String::from_utf8_lossy(&o.stdout).into_owned())
    };
    no_secret(&text);
    assert!(text.contains("argv: sh -c kill -USR1 $T sh --password=*** https://***@git.example/r.git ***"), "{text}");

    // --no-redact: as they are, and a warning that says so.
    let mut w = Podsig::start(&["watch", "--pid", &t, "-o", "json", "--no-redact"]);
    w.collect_stderr();
    assert!(
        w.stderr_lines.iter().any(|l| l.contains("--no-redact") && l.contains("secrets included")),
        "{:?}",
        w.stderr_lines
    );
    send_secrets(target.pid());
    let ev = w.next_matching("USR1", usr1);
    assert_eq!(argv_of(&ev), sender());
}

/// Every byte of the history's files: a secret must not be anywhere in them.
fn file_bytes(db: &Path) -> String {
    ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::read(format!("{}{s}", db.display())).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

#[test]
fn the_history_stores_masked_argv_and_masks_what_it_prints() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let dir = scratch("secrets-history");
    let target = Target::script("trap '' USR1; exec sleep 300");
    let t = target.pid().to_string();
    let db = dir.join("masked.db");
    let rec = Podsig::start(&["record", "--history", db.to_str().unwrap(), "--signal", "USR1"]);
    send_secrets(target.pid());
    let ev = history_until(&db, &["--pid", &t], |v| v["kind"] == "signal");
    assert_eq!(argv_of(&ev)[4], "--password=***");
    rec.signal(libc::SIGINT);
    assert!(rec.wait().0.success());
    // Masked before it was stored: the secret is not in the file at all.
    assert!(file_bytes(&db).contains("--password=***"));
    no_secret(&file_bytes(&db));
    let (st, text, _) = podsig_output(&["history", "--history", db.to_str().unwrap(), "--pid", &t, "-o", "text"]);
    assert!(st.success());
    no_secret(&text);

    // Recorded with --no-redact (or by an older podsig): stored as it was, masked when
    // printed unless asked otherwise.
    let raw = dir.join("raw.db");
    let rec = Podsig::start(&["record", "--history", raw.to_str().unwrap(), "--signal", "USR1", "--no-redact"]);
    send_secrets(target.pid());
    history_until(&raw, &["--pid", &t, "--no-redact"], |v| v["kind"] == "signal");
    rec.signal(libc::SIGINT);
    assert!(rec.wait().0.success());
    assert!(file_bytes(&raw).contains(PASSWORD));
    for format in ["json", "text"] {
        let (st, out, _) = podsig_output(&["history", "--history", raw.to_str().unwrap(), "--pid", &t, "-o", format]);
        assert!(st.success());
        no_secret(&out);
        assert!(out.contains("--password=***"), "{out}");
    }
    let raw_out = history(&raw, &["--pid", &t, "--no-redact"]);
    assert_eq!(argv_of(&raw_out[0]), sender());
    let _ = std::fs::remove_dir_all(&dir);
}

fn mode_gid(p: &Path) -> (u32, u32) {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.mode() & 0o7777, m.gid())
}

#[test]
fn history_files_are_0600_or_0640_with_a_group() {
    let _suite = suite(module_path!());
    if !privileged() {
        return;
    }
    let dir = scratch("secrets-modes");
    let target = Target::script("trap '' USR1; exec sleep 300");
    for (group, file_mode, dir_mode, gid) in [(None, 0o600, 0o700, 0), (Some("65534"), 0o640, 0o750, 65534)] {
        let sub = dir.join(if group.is_some() { "group" } else { "private" });
        let db = sub.join("history.db");
        let mut args = vec!["record", "--history", db.to_str().unwrap(), "--signal", "USR1"];
        if let Some(g) = group {
            args.extend(["--history-group", g]);
        }
        let rec = Podsig::start(&args);
        send("sh", "kill -USR1 $T", target.pid());
        history_until(&db, &["--pid", &target.pid().to_string()], |v| v["kind"] == "signal");
        // While it runs: the database, its log and its shared memory.
        let deadline = Instant::now() + TIMEOUT;
        while !Path::new(&format!("{}-shm", db.display())).exists() {
            assert!(Instant::now() < deadline);
            thread::sleep(Duration::from_millis(50));
        }
        for suffix in ["", "-wal", "-shm"] {
            let p = format!("{}{suffix}", db.display());
            assert_eq!(mode_gid(Path::new(&p)), (file_mode, gid), "{p}");
        }
        assert_eq!(mode_gid(&sub), (dir_mode, gid), "a directory podsig made");
        rec.signal(libc::SIGINT);
        assert!(rec.wait().0.success());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
