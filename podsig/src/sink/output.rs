//! Renders records: the SystemTap recipe's text form, or NDJSON. stdout carries events only,
//! and every subcommand writes it through here: a stdout its reader closed early (`podsig …
//! | head -1`) ends the output quietly wherever it happens.

use std::io::{self, BufWriter, IsTerminal, Write};

use anyhow::Context as _;

use clap::ValueEnum;

use crate::event::{
    AncestrySource, Cause, ContainerRef, Context, Delivery, Disposition, ExitRecord, PrecededBy, Record, RequestedBy,
    Scope, Severity, SignalRecord, Stop,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// `-o` when not given: text for a person at a terminal, JSON lines for a pipe or a file.
pub fn default_format() -> Format {
    if io::stdout().is_terminal() { Format::Text } else { Format::Json }
}

/// Colour only for a person at a terminal, and never against NO_COLOR (no-color.org).
pub fn color_wanted() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && io::stdout().is_terminal()
}

/// Whether a write failed because stdout's reader is gone: the output is over, which is not
/// an error.
pub fn closed(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

/// What a write to stdout came to: Ok once its reader is gone, else the error, saying
/// `doing` what.
pub fn written(result: io::Result<()>, doing: &'static str) -> anyhow::Result<()> {
    match result {
        Err(e) if !closed(&e) => Err(e).context(doing),
        _ => Ok(()),
    }
}

/// Writes `bytes` to stdout: a report, a script, the man page.
pub fn print(bytes: &[u8]) -> anyhow::Result<()> {
    written(io::stdout().lock().write_all(bytes), "writing to stdout")
}

/// stdout, buffered: records and answers are written many small pieces at a time.
pub type Stdout = BufWriter<io::StdoutLock<'static>>;

pub fn stdout() -> Stdout {
    BufWriter::new(io::stdout().lock())
}

pub struct Output<W: Write> {
    format: Format,
    out: W,
    color: bool,
    notes: bool,
}

impl Output<Stdout> {
    /// Records to stdout as `format` prints them, coloured where wanted; `notes`: findings
    /// of severity `note` too (`-v`).
    pub fn stdout(format: Format, notes: bool) -> Self {
        Output::new(format, stdout()).with_color(format == Format::Text && color_wanted()).with_notes(notes)
    }
}

impl<W: Write> Output<W> {
    pub fn new(format: Format, out: W) -> Self {
        Self { format, out, color: false, notes: false }
    }

    /// Text output also prints findings of severity `note` (weak alone; `-v`).
    pub fn with_notes(mut self, notes: bool) -> Self {
        self.notes = notes;
        self
    }

    /// ANSI colours in text output (the caller decides: terminals only, NO_COLOR honoured).
    pub fn with_color(mut self, color: bool) -> Self {
        self.color = color;
        self
    }

    pub fn write(&mut self, record: &Record) -> io::Result<()> {
        match self.format {
            Format::Json => {
                serde_json::to_writer(&mut self.out, record)?;
                self.out.write_all(b"\n")
            }
            Format::Text => {
                let t = if self.color { colored(record, self.notes) } else { text_with(record, self.notes) };
                self.out.write_all(t.as_bytes())
            }
        }
    }

    /// A record already in NDJSON form (from the history), written as is.
    pub fn write_json_line(&mut self, json: &str) -> io::Result<()> {
        self.out.write_all(json.as_bytes())?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

pub fn text(record: &Record) -> String {
    text_with(record, false)
}

/// The text form; `notes`: also the findings of severity `note`.
pub fn text_with(record: &Record, notes: bool) -> String {
    match record {
        Record::Signal(s) => signal_text(s, notes),
        Record::Exit(e) => exit_text(e),
        Record::Lost(l) => format!("lost {} events (ring buffer full)\n", l.count),
        Record::Oom(_) | Record::Request(_) => String::new(),
    }
}

const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// The text form with ANSI colours: the signal line bold, warnings red, detail dim. Built
/// from the plain text so both forms always say the same thing.
fn colored(record: &Record, notes: bool) -> String {
    let plain = text_with(record, notes);
    let mut out = String::with_capacity(plain.len() + 64);
    for (i, line) in plain.lines().enumerate() {
        let (pre, post) = if i == 0 {
            (BOLD, RESET)
        } else if line.starts_with("  alert:") || line.starts_with("  warning:") {
            (RED, RESET)
        } else if ["  why:", "  raised by the kernel:", "  stop:", "  fix:"].iter().any(|p| line.starts_with(p)) {
            (YELLOW, RESET)
        } else if line.starts_with("  ") {
            (DIM, RESET)
        } else {
            ("", "")
        };
        out.push_str(pre);
        out.push_str(line);
        out.push_str(post);
        out.push('\n');
    }
    out
}

/// Comm and argv bytes are the process's own choice: keep one event per line set.
fn clean(s: &str) -> String {
    s.chars().flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] }).collect()
}

/// `systemctl(9121) "systemctl restart nginx" ← sudo ← bash ← sshd, login uid 1000 (alice),
/// session 4, 38 ms earlier`: the client, what it ran, who ran it, who logged in.
pub fn requested_by(r: &RequestedBy) -> String {
    let c = &r.client;
    let mut t = format!("{}({}) \"{}\"", c.comm, c.pid, c.argv.join(" "));
    // The client's ancestors, nearest first, up to a login's worth of them.
    let above: Vec<&str> = r.ancestry.iter().rev().skip(1).take(4).map(|a| a.comm.as_str()).collect();
    for a in above {
        t += &format!(" ← {a}");
    }
    if let Some(uid) = c.login_uid {
        t += &format!(", login uid {uid}");
        if let Some(user) = &c.login_user {
            t += &format!(" ({user})");
        }
    }
    if let Some(session) = c.session {
        t += &format!(", session {session}");
    }
    if let Some(tty) = &c.tty {
        t += &format!(", on {tty}");
    }
    t += &format!(", {} earlier", crate::pipeline::story::duration(r.elapsed_ms));
    let q = &r.request;
    t += &format!(" ({} {} to {}", r.manager, q.method, q.object);
    if let Some(s) = q.signal {
        t += &format!(", {}", crate::signals::name(s));
    }
    if let Some(secs) = q.timeout_s {
        t += &format!(", grace {secs} s");
    }
    t += &format!(", from its {})", if r.link == "argv" { "command line" } else { "request" });
    t
}

/// `33475m5.202486630s`, SystemTap's rendering of a start time since boot.
pub fn stap_time(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    format!("{}m{}.{:09}s", secs / 60, secs % 60, ns % 1_000_000_000)
}

// Long: the text format line by line, in the order printed (the SystemTap recipe's first).
fn signal_text(s: &SignalRecord, notes: bool) -> String {
    let from = s.sender.as_ref().map_or_else(|| "kernel".to_string(), |x| format!("{}({})", clean(&x.comm), x.pid));
    let mut t = format!("{from} send {} to {}({})\n", s.signal.name, clean(&s.target.comm), s.target.pid);
    // The recipe's line names a sender even when no process asked for the signal (a fault,
    // SIGPIPE, a limit, the OOM killer): the next line says so at once, and why.
    let kernel = matches!(s.cause, Cause::Kernel | Cause::OomKill) && !s.cause_detail.is_empty();
    if kernel {
        t += &format!("  raised by the kernel: {}\n", clean(&s.cause_detail));
    }
    if let Some(sender) = &s.sender {
        let parent =
            s.ancestry.iter().rev().nth(1).filter(|a| a.pid == sender.ppid).map_or("?".to_string(), |a| clean(&a.comm));
        t += &format!("parent of sender: {parent}({})\n", sender.ppid);
        let chain: Vec<String> =
            s.ancestry.iter().map(|a| format!("{}({})", clean(&a.comm), stap_time(a.start_ns))).collect();
        t += &format!("task_ancestry:{}\n", chain.join("=>"));
    }
    t += &format!("  {}", s.time);
    if s.count > 1 {
        t += &format!(" repeated={}", s.count);
        if let Some(last) = &s.last_time {
            t += &format!(" last={last}");
        }
    }
    if let Some(result) = s.result {
        t += &format!(" result={result}");
    }
    t += &format!(" code={}", s.code.name.as_deref().map_or_else(|| s.code.value.to_string(), str::to_string));
    if let Some(errno) = s.errno.filter(|&e| e != 0) {
        t += &format!(" errno={errno}");
    }
    if s.scope != Scope::Process {
        t += &format!(" to={}", s.scope);
        if let Some(pgid) = s.pgid {
            t += &format!("({pgid})");
        }
    }
    // The default disposition on a delivered signal says nothing; anything else explains
    // what the target did with it.
    if let Some(d) =
        s.target.disposition.filter(|&d| d != Disposition::Default || s.result != Some(Delivery::Delivered))
    {
        t += &format!(" disposition={d}");
    }
    if s.target.blocked == Some(true) {
        t += " blocked";
    }
    if s.target.ns_init == Some(true) {
        t += " target=ns-init";
    }
    if s.sender.is_some() && !s.ancestry_complete {
        t += " ancestry=incomplete";
    }
    if s.ancestry_source == AncestrySource::Proc {
        t += " ancestry_source=proc";
    }
    if let Some(sc) = &s.syscall {
        t += &format!(" syscall={sc}");
    }
    if let Some(c) = &s.target.container {
        t += &container_text(c);
    } else if let Some(u) = &s.target.unit {
        t += &format!(" unit: {}", clean(u));
    }
    if let Some(c) = s.sender.as_ref().and_then(|x| x.container.as_ref())
        && s.target.container.as_ref().is_none_or(|t| t.id != c.id)
    {
        t += &format!(" sender-container: {}", clean(c.name.as_deref().unwrap_or(&crate::containers::short(&c.id))));
    }
    t += &format!(" cause: {}", s.cause.as_str());
    if let Some(sender) = s.sender.as_ref().filter(|x| !x.argv.is_empty()) {
        let argv: Vec<String> = sender.argv.iter().map(|a| clean(a)).collect();
        t += &format!(" argv: {}", argv.join(" "));
    }
    t.push('\n');
    if let Some(i) = &s.interrupted {
        t += &format!(
            "  interrupted: {}({}), the task the CPU was running when {} context raised it; not the sender\n",
            clean(&i.comm),
            i.pid,
            s.context.map_or("interrupt", Context::as_str)
        );
    }
    if !s.cause_detail.is_empty() && !kernel {
        t += &format!("  why: {}\n", clean(&s.cause_detail));
    }
    if let Some(r) = &s.requested_by {
        t += &format!("  requested by: {}\n", clean(&requested_by(r)));
    } else if let Some(n) = &s.no_request {
        t += &format!("  requested by: nobody: {}\n", clean(n));
    }
    t += &story_text(s.preceded_by.as_ref(), s.stop.as_ref(), s.target.pid);
    for f in s.findings.iter().filter(|f| notes || f.severity != Severity::Note) {
        t += &format!("  {}: {}({}) {}\n", f.severity.as_str(), clean(&f.comm), f.pid, clean(&f.detail));
    }
    t
}

fn exit_text(e: &ExitRecord) -> String {
    let how = match (&e.signal, e.status) {
        (Some(sig), _) => {
            format!("killed by {}{}", sig.name, if e.core_dumped { " (core dumped)" } else { "" })
        }
        (None, Some(status)) => format!("exited with status {status}"),
        (None, None) => "exited".to_string(),
    };
    let mut t = format!("{}({}) {how}\n  {}", clean(&e.comm), e.pid, e.time);
    if let Some(c) = &e.container {
        t += &container_text(c);
    }
    t.push('\n');
    t + &story_text(e.preceded_by.as_ref(), e.stop.as_ref(), e.pid)
}

/// ` container: NAME pod: NS/POD` on a detail line.
fn container_text(c: &ContainerRef) -> String {
    let mut t = format!(" container: {}", clean(c.name.as_deref().unwrap_or(&crate::containers::short(&c.id))));
    if let Some(pod) = &c.pod {
        t += &format!(" pod: {}/{}", clean(c.namespace.as_deref().unwrap_or("?")), clean(pod));
    }
    t
}

/// `after:` (the terminating signal before), `stop:` (the verdict) and `fix:` lines.
fn story_text(after: Option<&PrecededBy>, stop: Option<&Stop>, pid: u32) -> String {
    let mut t = String::new();
    if let Some(p) = after {
        t += &format!("  after: {}\n", clean(&crate::pipeline::story::after(p, pid)));
    }
    if let Some(s) = stop {
        let verdict = s.verdict.map_or("unknown", |v| v.as_str());
        t += &format!("  stop: {verdict}: {}\n  fix: {}\n", clean(&s.summary), clean(&s.fix));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::*;

    fn sample() -> SignalRecord {
        SignalRecord {
            syscall: Some("kill".into()),
            cause: Cause::Process,
            cause_detail: "kill(2) from pkill(23549)".into(),
            findings: vec![
                Finding {
                    pid: 23495,
                    comm: "bash".into(),
                    start_ns: 2_008_504_817_798_337,
                    kind: FindingKind::DeletedExecutable,
                    severity: Severity::Alert,
                    evidence: Evidence::Kernel,
                    detail: "its executable /tmp/bash was deleted after it started".into(),
                    script: None,
                },
                Finding {
                    pid: 23495,
                    comm: "bash".into(),
                    start_ns: 2_008_504_817_798_337,
                    kind: FindingKind::WritableLocation,
                    severity: Severity::Note,
                    evidence: Evidence::Kernel,
                    detail: "runs from /tmp/bash, in world-writable /tmp".into(),
                    script: None,
                },
            ],
            ..sample_signal()
        }
    }

    #[test]
    fn text_matches_the_systemtap_recipe() {
        let t = text(&Record::Signal(sample()));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "pkill(23549) send SIGKILL to server(7942)");
        assert_eq!(lines[1], "parent of sender: bash(23495)");
        assert_eq!(
            lines[2],
            "task_ancestry:swapper/0(0m0.000000000s)=>systemd(0m0.080000000s)=>\
             bash(33475m4.817798337s)=>pkill(33475m5.202486630s)"
        );
        assert_eq!(
            lines[3],
            "  2026-11-24T20:17:30.123456789Z result=delivered code=SI_USER syscall=kill \
             cause: process argv: pkill -9 server"
        );
        assert_eq!(lines[4], "  why: kill(2) from pkill(23549)");
        assert_eq!(lines[5], "  alert: bash(23495) its executable /tmp/bash was deleted after it started");
        // Notes only with -v.
        assert_eq!(lines.len(), 6);
        let t = text_with(&Record::Signal(sample()), true);
        assert_eq!(t.lines().nth(6), Some("  note: bash(23495) runs from /tmp/bash, in world-writable /tmp"));
    }

    #[test]
    fn colour_wraps_the_same_text() {
        let r = Record::Signal(sample());
        let c = colored(&r, false);
        assert!(c.contains(RED) && c.starts_with(BOLD));
        let stripped = c.replace(RED, "").replace(BOLD, "").replace(DIM, "").replace(YELLOW, "").replace(RESET, "");
        assert_eq!(stripped, text(&r));
    }

    #[test]
    fn control_bytes_are_escaped_in_text() {
        let mut s = sample();
        s.sender.as_mut().unwrap().comm = "evil\nname".into();
        assert!(text(&Record::Signal(s)).starts_with("evil\\nname(23549) send"));
    }

    #[test]
    fn json_is_one_line_per_record() {
        let mut buf = Vec::new();
        let mut o = Output::new(Format::Json, &mut buf);
        o.write(&Record::Signal(sample())).unwrap();
        let s = String::from_utf8(buf).unwrap();
        assert_eq!(s.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["kind"], "signal");
        assert_eq!(v["signal"]["name"], "SIGKILL");
        assert_eq!(v["ancestry"][0]["comm"], "swapper/0");
        assert_eq!(v["sender"]["exe"], serde_json::Value::Null);
    }

    #[test]
    fn exit_text_says_how() {
        let mut e = ExitRecord::new(BackendName::Ebpf, 7942, 7942, "server".into(), Some(9));
        e.time = "T".into();
        e.boot_ns = Some(0);
        assert_eq!(exit_text(&e), "server(7942) killed by SIGKILL\n  T\n");
    }
}
