//! Parses the lines the generated script prints into the shared event model.

use std::time::{Duration, UNIX_EPOCH};

use super::script::MARK;
use crate::event::{Ancestor, ExitRecord, Record, Sender, SignalRecord, Target};

#[derive(Debug, PartialEq)]
pub enum Line {
    /// `probe begin` ran: the module is loaded and the probes live.
    Ready,
    Record(Box<Record>),
    /// Not ours (stap's own output, or a line cut short).
    Other,
}

/// Reverses SystemTap's `text_str()`: C escapes (`\n`, `\t`, `\\`, `\"`, octal, hex).
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        i += 1;
        let c = b[i];
        i += 1;
        match c {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = (c - b'0') as u32;
                for _ in 0..2 {
                    match b.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + (d - b'0') as u32;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' => {
                let hex: String =
                    b[i..].iter().take(2).take_while(|d| d.is_ascii_hexdigit()).map(|&d| d as char).collect();
                i += hex.len();
                out.push(u8::from_str_radix(&hex, 16).unwrap_or(b'x'));
            }
            other => out.push(other),
        }
    }
    out
}

fn text(s: &str) -> String {
    String::from_utf8_lossy(&unescape(s)).into_owned()
}

fn wall(ns: u64) -> String {
    humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

pub fn parse(line: &str) -> Line {
    let f: Vec<&str> = line.split('\t').collect();
    if f.first() != Some(&MARK) {
        return Line::Other;
    }
    match f.get(1).copied() {
        Some("READY") => Line::Ready,
        Some("SIG") => signal(&f[2..]).map_or(Line::Other, |r| Line::Record(Box::new(Record::Signal(r)))),
        Some("EXIT") => exit(&f[2..]).map_or(Line::Other, |r| Line::Record(Box::new(Record::Exit(r)))),
        _ => Line::Other,
    }
}

fn signal(f: &[&str]) -> Option<SignalRecord> {
    if f.len() < 13 {
        return None;
    }
    let n = |i: usize| f[i].parse::<i64>().ok();
    let sig = n(1)? as i32;
    let code = n(2)? as i32;
    // Sender first, walking up: (tgid, start_ns, comm) triples, then the line's final tab.
    let mut ancestry: Vec<Ancestor> = f[13..]
        .chunks(3)
        .filter(|c| c.len() == 3)
        .filter_map(|c| {
            Some(Ancestor {
                pid: c[0].parse().ok()?,
                start_ns: c[1].parse().ok()?,
                comm: text(c[2]),
                ..Default::default()
            })
        })
        .collect();
    let complete = ancestry.last().is_some_and(|a| a.pid == 0);
    ancestry.reverse();
    let argv_bytes = unescape(f[12]);
    let argv: Vec<String> = if argv_bytes.is_empty() {
        Vec::new()
    } else {
        argv_bytes.split(|&b| b == 1).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
    };
    Some(SignalRecord {
        time: wall(n(0)? as u64),
        group: n(3)? != 0,
        target: Target { pid: n(4)? as u32, tid: n(5)? as u32, comm: text(f[6]), ..Default::default() },
        sender: Some(Sender {
            pid: n(7)? as u32,
            tid: n(8)? as u32,
            ppid: n(9)? as u32,
            uid: n(10)? as u32,
            comm: text(f[11]),
            argv,
            ..Default::default()
        }),
        ancestry: ancestry.into(),
        ancestry_complete: complete,
        ..SignalRecord::new("stap", sig, code)
    })
}

fn exit(f: &[&str]) -> Option<ExitRecord> {
    if f.len() < 4 {
        return None;
    }
    let pid: u32 = f[1].parse().ok()?;
    let (status, signal, core_dumped) = ExitRecord::decode(f[2].parse::<i64>().ok()? as i32);
    Some(ExitRecord {
        time: wall(f[0].parse().ok()?),
        node: None,
        boot_ns: None,
        backend: "stap",
        pid,
        tid: pid,
        comm: text(f[3]),
        status,
        signal,
        core_dumped,
        container: None,
        preceded_by: None,
        stop: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as the generated script prints them (text_str escapes; \001 between argv
    /// elements; a final tab after the ancestry).
    const KILL: &str = "PODSIG\tSIG\t1764015450123456789\t9\t0\t1\t7942\t7942\tserver\t23549\t23549\t23495\t0\tpkill\tpkill\\001-9\\001server\t23549\t2008505202486630\tpkill\t23495\t2008504817798337\tbash\t1\t80000000\tsystemd\t0\t0\tswapper/0\t";

    #[test]
    fn signal_line() {
        let Line::Record(r) = parse(KILL) else { panic!("not parsed") };
        let Record::Signal(s) = *r else { panic!() };
        assert_eq!(s.backend, "stap");
        assert_eq!((s.signal.name.as_str(), s.code.name), ("SIGKILL", Some("SI_USER")));
        assert_eq!((s.target.pid, s.target.comm.as_str()), (7942, "server"));
        assert_eq!(
            {
                let x = s.sender.as_ref().unwrap();
                (x.pid, x.ppid, x.comm.as_str())
            },
            (23549, 23495, "pkill")
        );
        assert_eq!(s.sender.as_ref().unwrap().argv, vec!["pkill", "-9", "server"]);
        let chain: Vec<(u32, &str)> = s.ancestry.iter().map(|a| (a.pid, a.comm.as_str())).collect();
        assert_eq!(chain, vec![(0, "swapper/0"), (1, "systemd"), (23495, "bash"), (23549, "pkill")]);
        assert!(s.ancestry_complete);
        assert_eq!(s.time, "2025-11-24T20:17:30.123456789Z");
        // What stap cannot see is null, not invented.
        assert_eq!((s.boot_ns, s.result, s.errno, s.target.ns_pid), (None, None, None, None));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["result"], serde_json::Value::Null);
    }

    #[test]
    fn hostile_comm_survives() {
        // text_str output for a comm of: tab, newline, quote, backslash, 0xff, semicolon.
        let line = KILL.replace("\tpkill\tpkill\\001", "\tev\\til\\n\\\"\\\\\\377;x\tpkill\\001");
        let Line::Record(r) = parse(&line) else { panic!("not parsed: {line}") };
        let Record::Signal(s) = *r else { panic!() };
        assert_eq!(s.sender.as_ref().unwrap().comm, "ev\til\n\"\\\u{fffd};x");
        assert_eq!(s.sender.as_ref().unwrap().argv[0], "pkill");
    }

    #[test]
    fn exit_line_and_others() {
        let Line::Record(r) = parse("PODSIG\tEXIT\t1764015450123501230\t7942\t9\tserver") else { panic!() };
        let Record::Exit(e) = *r else { panic!() };
        assert_eq!((e.pid, e.signal.map(|s| s.number), e.status), (7942, Some(9), None));
        assert_eq!(parse("PODSIG\tREADY"), Line::Ready);
        assert_eq!(parse("WARNING: something from stap"), Line::Other);
        assert_eq!(parse("PODSIG\tSIG\t1\t2"), Line::Other);
    }

    #[test]
    fn unescape_forms() {
        assert_eq!(unescape(r#"a\tb\n\\\"\001\x41"#), b"a\tb\n\\\"\x01A");
        assert_eq!(unescape(r#"trailing\"#), b"trailing\\");
    }
}
