//! `podsig why`: the last stop of a pod, container or process, told from the recorder's
//! history as one paragraph (what stopped, when, who sent what, the verdict and the fix),
//! then the records it rests on.
//!
//! The stored records are replayed through the pipeline's story stage, as the live watch
//! runs it ([`Pipeline::replay`]), so older rows (recorded before stories existed) get a
//! verdict too. A link the replay cannot make, because its other half lies outside the
//! selection (`--pid` of a container process whose SIGTERM went to the init), is kept as it
//! was recorded.

use std::{
    io::Write,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Result, bail};
use serde::Serialize;

use crate::{
    cli::WhyArgs,
    containers,
    event::ContainerRef,
    event::Record,
    pipeline::{Pipeline, story},
    sink::history,
    sink::output::{self, Format},
};

/// What stopped: the process, its container and node.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Subject {
    pub pid: u32,
    pub comm: String,
    pub container: Option<ContainerRef>,
    pub node: Option<String>,
}

/// The answer, as `-o json` prints it.
#[derive(Debug, Serialize)]
pub struct Answer {
    /// Null when no stop is recorded, or the backend could not tell.
    pub verdict: Option<&'static str>,
    /// The paragraph.
    pub summary: String,
    pub fix: Option<String>,
    /// When the stop ended (the SIGKILL, or the exit).
    pub time: Option<String>,
    pub target: Option<Subject>,
    /// The evidence, oldest first, as `watch -o json` prints records.
    pub records: Vec<Record>,
}

pub fn run(args: WhyArgs, verbose: bool) -> Result<()> {
    let conn = match history::open_ro(&args.history) {
        Ok(c) => c,
        Err(_) if !args.history.exists() => bail!(
            "no history at {}: `podsig why` answers from the flight recorder's history; start it on this node \
             (`sudo podsig record`, or the DaemonSet in deploy/kubernetes/) and ask again after the next stop (or \
             give --history PATH)",
            args.history.display()
        ),
        Err(e) => return Err(e),
    };
    let what = selection(&args);
    let q = history::Query {
        pod: args.pod.clone(),
        namespace: args.pod_namespace.clone(),
        container: args.container.clone(),
        container_name: args.container_name.clone(),
        unit: args.unit.clone(),
        pid: args.pid,
        signals: story::story_signals(),
        with_exits: true,
        // The stop's first signal may precede --since by up to the window.
        since: args.since.map(|s| s + args.stop_window),
        last: None,
    };
    let rows = history::query(&conn, &q)?;
    let mut records = Vec::with_capacity(rows.len());
    for json in &rows {
        match serde_json::from_str::<Record>(json) {
            Ok(r) => records.push(r),
            Err(e) => tracing::warn!("skipping a history row podsig cannot read: {e}"),
        }
    }
    if records.is_empty() {
        let since = args.since.map_or(String::new(), |s| format!(" in the last {}", humantime::format_duration(s)));
        bail!("no signal or exit recorded for {what}{since} in {}", args.history.display());
    }
    let cutoff = args.since.map(|s| now_ns() - s.as_nanos() as i128);
    let answer = answer(records, args.stop_window, cutoff, &what);
    let format = args.output.unwrap_or_else(output::default_format);
    let mut out = output::stdout();
    let written = match format {
        Format::Json => {
            serde_json::to_writer(&mut out, &answer).map_err(std::io::Error::other).and_then(|()| out.write_all(b"\n"))
        }
        Format::Text => write_text(&mut out, &answer, verbose),
    }
    .and_then(|()| out.flush());
    output::written(written, "writing the answer to stdout")
}

fn selection(args: &WhyArgs) -> String {
    let mut parts = Vec::new();
    if let Some(p) = &args.pod {
        parts.push(match &args.pod_namespace {
            Some(ns) => format!("pod {ns}/{p}"),
            None => format!("pod {p}"),
        });
    }
    if let Some(n) = &args.container_name {
        parts.push(format!("container {n}"));
    }
    if let Some(c) = &args.container {
        parts.push(format!("container {}", containers::short(c)));
    }
    if let Some(u) = &args.unit {
        parts.push(format!("unit {u}"));
    }
    if let Some(p) = args.pid {
        parts.push(format!("pid {p}"));
    }
    parts.join(", ")
}

fn now_ns() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128)
}

fn wall_ns(t: &str) -> Option<i128> {
    Some(humantime::parse_rfc3339(t).ok()?.duration_since(UNIX_EPOCH).ok()?.as_nanos() as i128)
}

fn time_of(r: &Record) -> &str {
    match r {
        Record::Signal(s) => &s.time,
        Record::Exit(e) => &e.time,
        Record::Lost(l) => &l.time,
        Record::Oom(_) => "",
        Record::Request(r) => &r.time,
    }
}

fn subject_of(r: &Record) -> Option<Subject> {
    match r {
        Record::Signal(s) => Some(Subject {
            pid: s.target.pid,
            comm: s.target.comm.clone(),
            container: s.target.container.clone(),
            node: s.node.clone(),
        }),
        Record::Exit(e) => {
            Some(Subject { pid: e.pid, comm: e.comm.clone(), container: e.container.clone(), node: e.node.clone() })
        }
        _ => None,
    }
}

/// The answer from the selected records: the last stop (a container's, that is its
/// init's, before any of its other processes'), or what is known when none ended.
pub fn answer(records: Vec<Record>, window: Duration, cutoff: Option<i128>, what: &str) -> Answer {
    let replayed = Pipeline::replay(records, window);
    let recent = |r: &Record| cutoff.is_none_or(|c| wall_ns(time_of(r)).is_some_and(|t| t >= c));
    let stops: Vec<usize> =
        (0..replayed.len()).filter(|&i| replayed[i].0.stop().is_some() && recent(&replayed[i].0)).collect();
    let chosen =
        stops.iter().rev().find(|&&i| replayed[i].0.stop().is_some_and(|s| s.container_init)).or(stops.last()).copied();
    let Some(i) = chosen else { return inconclusive(replayed, cutoff, what) };
    let (record, story) = (&replayed[i].0, replayed[i].1);
    let stop = record.stop().expect("chosen for its stop").clone();
    let subject = subject_of(record).expect("a signal or an exit");
    // The evidence: the chosen story's records, and the story of the init whose signal
    // this one's is linked to.
    let linked = match record {
        Record::Signal(s) => s.preceded_by.as_ref().filter(|p| p.target.pid != s.target.pid).and_then(|p| {
            replayed.iter().find_map(|(r, st)| match r {
                Record::Signal(x)
                    if x.target.pid == p.target.pid && x.last_time.as_ref().unwrap_or(&x.time) == &p.time =>
                {
                    *st
                }
                _ => None,
            })
        }),
        _ => None,
    };
    let in_story = |st: &Option<u64>| st.is_some() && (*st == story || *st == linked);
    let evidence: Vec<Record> = replayed.iter().filter(|(_, st)| in_story(st)).map(|(r, _)| r.clone()).collect();
    let time = time_of(record).to_string();
    // How it ended, when the verdict's own words do not say (a SIGKILL's do).
    let by_kill = matches!(record, Record::Signal(s) if s.signal.number == libc::SIGKILL);
    let exit = evidence.iter().find_map(|r| match r {
        Record::Exit(e)
            if e.pid == subject.pid
                && e.stop.is_none()
                && !(by_kill && e.signal.as_ref().is_some_and(|s| s.number == libc::SIGKILL)) =>
        {
            Some(e)
        }
        _ => None,
    });
    let verdict = stop.verdict.map(|v| v.as_str());
    let mut summary =
        format!("{} was stopped at {}{}: {}.", describe(&subject, stop.container_init), time, ago(&time), stop.summary);
    if let Some(e) = exit {
        let code = e.exit_code().map_or(String::new(), |c| format!(" (exit code {c})"));
        let how = match (&e.signal, e.status) {
            (Some(s), _) => format!("killed by {}", s.name),
            (None, Some(st)) => format!("exited with status {st}"),
            (None, None) => "exited".into(),
        };
        summary += &format!(" It was {how}{code} at {}.", e.time);
    }
    summary += &format!(" Verdict: {}. Fix: {}.", verdict.unwrap_or("unknown"), stop.fix);
    Answer { verdict, summary, fix: Some(stop.fix), time: Some(time), target: Some(subject), records: evidence }
}

/// No stop ended within the selection: say what the last terminating signal was.
fn inconclusive(replayed: Vec<(Record, Option<u64>)>, cutoff: Option<i128>, what: &str) -> Answer {
    let last = replayed.iter().rev().find(|(r, st)| {
        st.is_some()
            && matches!(r, Record::Signal(_))
            && cutoff.is_none_or(|c| wall_ns(time_of(r)).is_some_and(|t| t >= c))
    });
    let Some((Record::Signal(s), story)) = last else {
        return Answer {
            verdict: None,
            summary: format!("No stop of {what} is recorded in that time, and no terminating signal to it."),
            fix: None,
            time: None,
            target: None,
            records: Vec::new(),
        };
    };
    let subject = subject_of(&Record::Signal(s.clone())).expect("a signal");
    let p = crate::event::PrecededBy {
        signal: s.signal.clone(),
        time: s.time.clone(),
        elapsed_ms: 0,
        result: s.result,
        disposition: s.target.disposition,
        blocked: s.target.blocked,
        ns_init: s.target.ns_init,
        exiting: s.target.exiting,
        target: crate::event::Party { pid: s.target.pid, comm: s.target.comm.clone() },
        sender: None,
        cause: s.cause,
    };
    let summary = format!(
        "No stop of {what} is recorded: the last terminating signal was {} from {} to {} at {}{}, {}, and neither a \
         SIGKILL nor its exit followed in the history (it may still run, or its end was not recorded: exits are \
         recorded for processes that got a terminating signal, with the eBPF backend).",
        s.signal.name,
        s.sender_name(),
        describe(&subject, false),
        s.time,
        ago(&s.time),
        story::outcome(&p)
    );
    let records = replayed.iter().filter(|(_, st)| st == story).map(|(r, _)| r.clone()).collect();
    Answer { verdict: None, summary, fix: None, time: None, target: Some(subject), records }
}

/// `container app of pod prod/web (5fb8adf9ee62…), its init sh(5938) on node n1,`, or
/// `sleep(5952) in container …`, or `sleep(7942) on node n1`.
fn describe(t: &Subject, init: bool) -> String {
    let node = t.node.as_ref().map_or(String::new(), |n| format!(" on node {n}"));
    let Some(c) = &t.container else { return format!("{}({}){node}", t.comm, t.pid) };
    let mut s = format!("Container {}", c.name.as_deref().unwrap_or(&containers::short(&c.id)));
    if let Some(pod) = &c.pod {
        s += &format!(" of pod {}/{pod}", c.namespace.as_deref().unwrap_or("?"));
    }
    if c.name.is_some() {
        s += &format!(" ({})", containers::short(&c.id));
    }
    if init {
        format!("{s}, its init {}({}){node},", t.comm, t.pid)
    } else {
        format!("{}({}) in {}{node}", t.comm, t.pid, s.replacen("Container", "container", 1))
    }
}

/// ` (12 min ago)`.
fn ago(time: &str) -> String {
    let Some(t) = wall_ns(time) else { return String::new() };
    let secs = ((now_ns() - t).max(0) / 1_000_000_000) as u64;
    let d = match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} d {} h", secs / 86_400, secs % 86_400 / 3600),
    };
    format!(" ({d} ago)")
}

/// Wraps a paragraph at `width` columns, on spaces.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let n = word.chars().count();
        if line > 0 && line + 1 + n > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out += word;
        line += n;
    }
    out
}

fn write_text(out: &mut impl Write, a: &Answer, verbose: bool) -> std::io::Result<()> {
    writeln!(out, "{}", wrap(&clean(&a.summary), 100))?;
    if a.records.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\nevidence ({} record{}, oldest first):",
        a.records.len(),
        if a.records.len() == 1 { "" } else { "s" }
    )?;
    let mut o = output::Output::new(Format::Text, &mut *out).with_notes(verbose);
    for r in &a.records {
        o.write(r)?;
    }
    Ok(())
}

/// Names in the paragraph are the processes' own choice: no control characters.
fn clean(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{
        BackendName, ContainerRef, Delivery, Disposition, ExitRecord, Sender, SignalId, sample_container, sample_signal,
    };

    fn at(secs: u64) -> String {
        let t = humantime::parse_rfc3339("2026-11-24T20:17:30Z").unwrap() + Duration::from_secs(secs);
        humantime::format_rfc3339_nanos(t).to_string()
    }

    fn to_init(secs: u64, sig: i32, pid: u32, disposition: Disposition, result: Delivery) -> Record {
        let mut s = sample_signal();
        s.time = at(secs);
        s.node = Some("n1".into());
        s.signal = SignalId::new(sig);
        s.target.pid = pid;
        s.target.comm = "sh".into();
        s.target.ns_init = Some(true);
        s.target.disposition = Some(disposition);
        s.target.blocked = Some(false);
        s.target.container = Some(ContainerRef { id: format!("{pid:064x}"), ..sample_container("web") });
        s.sender = Some(Sender { pid: 5000 + secs as u32, comm: "runc".into(), ..Default::default() });
        s.cause = crate::event::Cause::RuntimeStop;
        s.result = Some(result);
        Record::Signal(s)
    }

    fn exit(secs: u64, pid: u32, status: Option<i32>, sig: Option<i32>) -> Record {
        let mut e = ExitRecord::new(BackendName::Ebpf, pid, pid, "sh".into(), None);
        (e.time, e.node, e.status, e.signal) = (at(secs), Some("n1".into()), status, sig.map(SignalId::new));
        Record::Exit(e)
    }

    #[test]
    fn the_last_stop_from_rows_recorded_before_stories() {
        // Two stops of pod web, as an older recorder stored them (no links, no verdicts).
        let records = vec![
            to_init(0, libc::SIGTERM, 40, Disposition::Handler, Delivery::Delivered),
            exit(1, 40, Some(0), None),
            to_init(100, libc::SIGTERM, 50, Disposition::Default, Delivery::Ignored),
            to_init(102, libc::SIGKILL, 50, Disposition::Default, Delivery::Delivered),
            exit(102, 50, None, Some(libc::SIGKILL)),
        ];
        let a = answer(records, story::DEFAULT_WINDOW, None, "pod web");
        assert_eq!(a.verdict, Some("grace_expired_term_ignored"));
        assert_eq!(a.records.len(), 3, "the second stop's TERM, KILL and exit");
        assert!(a.summary.starts_with("Container app of pod prod/web ("), "{}", a.summary);
        assert!(a.summary.contains("its init sh(50) on node n1, was stopped at 2026-11-24T20:19:12"), "{}", a.summary);
        assert!(!a.summary.contains("It was killed by"), "the SIGKILL's exit code is said once: {}", a.summary);
        assert!(a.summary.contains("Fix: make the container's init handle SIGTERM"), "{}", a.summary);
        let Record::Signal(k) = &a.records[1] else { panic!() };
        assert_eq!(k.preceded_by.as_ref().unwrap().elapsed_ms, 2000);
        // --since past the second stop: none; with the first in range, the first.
        let records =
            vec![to_init(0, libc::SIGTERM, 40, Disposition::Handler, Delivery::Delivered), exit(1, 40, Some(0), None)];
        let a = answer(records, story::DEFAULT_WINDOW, None, "pod web");
        assert_eq!(a.verdict, Some("graceful_exit"));
        assert!(
            a.summary.contains("exited with status 0, 1.0 s after SIGTERM from runc(5000), which it handled"),
            "{}",
            a.summary
        );
        let text = {
            let mut b = Vec::new();
            write_text(&mut b, &a, false).unwrap();
            String::from_utf8(b).unwrap()
        };
        assert!(text.contains("\nevidence (2 records, oldest first):\nrunc(5000) send SIGTERM to sh(40)"), "{text}");
        assert!(text.contains("  stop: graceful_exit: "), "{text}");
        let paragraph = text.split("\n\n").next().unwrap();
        assert!(paragraph.lines().count() > 1 && paragraph.lines().all(|l| l.chars().count() <= 100), "{text}");
    }

    #[test]
    fn a_term_with_no_end_is_said_so() {
        let a = answer(
            vec![to_init(0, libc::SIGTERM, 40, Disposition::Default, Delivery::Ignored)],
            story::DEFAULT_WINDOW,
            None,
            "pod web",
        );
        assert_eq!(a.verdict, None);
        assert!(
            a.summary.starts_with("No stop of pod web is recorded: the last terminating signal was SIGTERM"),
            "{}",
            a.summary
        );
        assert!(a.summary.contains("ignored (pid 1 of its namespace, no handler)"), "{}", a.summary);
        let cutoff = Some(wall_ns(&at(3600)).unwrap());
        let a = answer(
            vec![to_init(0, libc::SIGTERM, 40, Disposition::Default, Delivery::Ignored)],
            story::DEFAULT_WINDOW,
            cutoff,
            "pod web",
        );
        assert!(a.records.is_empty() && a.target.is_none());
    }

    #[test]
    fn wrapping() {
        assert_eq!(wrap("aa bb cc", 5), "aa bb\ncc");
        assert_eq!(wrap("a  b", 10), "a b");
    }
}
