//! Parses the lines the generated script prints into the shared event model.

use std::time::{Duration, UNIX_EPOCH};

use super::script::{MARK, MAX_ANCESTRY};
use crate::event::{Ancestor, BackendName, Delivery, ExitRecord, Lack, Record, Sender, SignalRecord, Target};

#[derive(Debug, PartialEq)]
pub enum Line {
    /// `probe begin` ran: the module is loaded and the probes live.
    Ready,
    Record(Box<Record>),
    /// Marked as ours but not a record this script prints (cut short, garbled): skipped and
    /// counted, never guessed at.
    Malformed,
    /// Not ours (stap's own output).
    Other,
}

/// The longest line read from stap: a record is at most a few KiB (argv and 40 ancestors,
/// escaped); anything longer is skipped as malformed rather than buffered.
pub const MAX_LINE: usize = 64 << 10;

/// One line read from stap's output.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    Line(Vec<u8>),
    /// A line longer than [`MAX_LINE`]: skipped to its end, not buffered.
    TooLong,
}

/// stap's output split into lines of at most [`MAX_LINE`] bytes, whatever it prints: no
/// line is held whole past the bound, and bytes that are not UTF-8 end nothing (a
/// `lines()` reader stops at the first such byte).
pub struct Lines<R> {
    r: R,
    buf: Vec<u8>,
}

impl<R: tokio::io::AsyncBufRead + Unpin> Lines<R> {
    pub fn new(r: R) -> Self {
        Self { r, buf: Vec::new() }
    }

    /// The next line without its newline; None at the end of the stream.
    pub async fn next(&mut self) -> std::io::Result<Option<Chunk>> {
        use tokio::io::AsyncBufReadExt as _;
        let mut too_long = false;
        self.buf.clear();
        loop {
            let avail = self.r.fill_buf().await?;
            if avail.is_empty() {
                return Ok(match (too_long, self.buf.is_empty()) {
                    (true, _) => Some(Chunk::TooLong),
                    (false, true) => None,
                    (false, false) => Some(Chunk::Line(std::mem::take(&mut self.buf))),
                });
            }
            let (take, used, end) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (i, i + 1, true),
                None => (avail.len(), avail.len(), false),
            };
            if !too_long {
                if self.buf.len() + take > MAX_LINE {
                    too_long = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(&avail[..take]);
                }
            }
            self.r.consume(used);
            if end {
                return Ok(Some(if too_long { Chunk::TooLong } else { Chunk::Line(std::mem::take(&mut self.buf)) }));
            }
        }
    }
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

/// One line of the script's output, as bytes: whatever stap (or a module built by another
/// podsig) prints, the answer is a record, `Malformed` or `Other`, never a panic.
pub fn parse(line: &[u8]) -> Line {
    let line = String::from_utf8_lossy(line);
    let f: Vec<&str> = line.split('\t').collect();
    if f.first() != Some(&MARK) {
        return Line::Other;
    }
    let record = match f.get(1).copied() {
        Some("READY") if f.len() == 2 => return Line::Ready,
        Some("SIG") => signal(&f[2..]).map(Record::Signal),
        Some("EXIT") => exit(&f[2..]).map(Record::Exit),
        _ => None,
    };
    record.map_or(Line::Malformed, |r| Line::Record(Box::new(r)))
}

/// task_struct flags, the same values on every kernel the script runs on.
const PF_EXITING: u32 = 0x0000_0004;
const PF_KTHREAD: u32 = 0x0020_0000;

fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
    s.parse().ok()
}

fn signal(f: &[&str]) -> Option<SignalRecord> {
    if f.len() < 15 {
        return None;
    }
    let sig: i32 = num(f[1])?;
    let code: i32 = num(f[2])?;
    // -1: hooked where the outcome is not decided yet (the tapset's signal.send).
    let result: i32 = num(f[13])?;
    let flags: u32 = num(f[14])?;
    // Sender first, walking up: (tgid, start_ns, flags, comm) each, then the line's final
    // tab. Every ancestor must be whole and the walk no longer than the script's bound.
    let rest = &f[15..];
    let (quads, tail) = rest.split_at(rest.len() - rest.len() % 4);
    if tail.iter().any(|t| !t.is_empty()) || quads.len() / 4 > MAX_ANCESTRY + 1 {
        return None;
    }
    let mut ancestry = Vec::with_capacity(quads.len() / 4);
    for c in quads.chunks_exact(4) {
        ancestry.push(Ancestor {
            pid: num(c[0])?,
            start_ns: num(c[1])?,
            kthread: num::<u32>(c[2])? & PF_KTHREAD != 0,
            comm: text(c[3]),
            ..Default::default()
        });
    }
    let complete = ancestry.last().is_some_and(|a| a.pid == 0);
    ancestry.reverse();
    let argv_bytes = unescape(f[12]);
    let argv: Vec<String> = if argv_bytes.is_empty() {
        Vec::new()
    } else {
        argv_bytes.split(|&b| b == 1).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
    };
    Some(SignalRecord {
        time: wall(num(f[0])?),
        group: num::<u8>(f[3])? != 0,
        target: Target { pid: num(f[4])?, tid: num(f[5])?, comm: text(f[6]), ..Default::default() },
        sender: Some(Sender {
            pid: num(f[7])?,
            tid: num(f[8])?,
            ppid: num(f[9])?,
            uid: num(f[10])?,
            comm: text(f[11]),
            argv,
            kthread: flags & PF_KTHREAD != 0,
            exiting: flags & PF_EXITING != 0,
            ..Default::default()
        }),
        ancestry: ancestry.into(),
        ancestry_complete: complete,
        result: (result >= 0).then(|| Delivery::from_kernel(result)),
        // Said in the record, as a weaker eBPF build says it: the script reads no
        // executable, no disposition, and cannot tell an interrupt from its task.
        lacks: vec![Lack::ExecutableIdentity, Lack::TargetDisposition, Lack::Context],
        ..SignalRecord::new(BackendName::Stap, sig, code)
    })
}

fn exit(f: &[&str]) -> Option<ExitRecord> {
    if f.len() != 4 {
        return None;
    }
    let pid: u32 = num(f[1])?;
    let mut e = ExitRecord::new(BackendName::Stap, pid, pid, text(f[3]), Some(num(f[2])?));
    e.time = wall(num(f[0])?);
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as the generated script prints them (text_str escapes; \001 between argv
    /// elements; a final tab after the ancestry).
    const KILL: &str = "PODSIG\tSIG\t1764015450123456789\t9\t0\t1\t7942\t7942\tserver\t23549\t23549\t23495\t0\tpkill\tpkill\\001-9\\001server\t-1\t4194304\t23549\t2008505202486630\t4194304\tpkill\t23495\t2008504817798337\t4194560\tbash\t1\t80000000\t4194560\tsystemd\t0\t0\t2097218\tswapper/0\t";

    #[test]
    fn signal_line() {
        let Line::Record(r) = parse(KILL.as_bytes()) else { panic!("not parsed") };
        let Record::Signal(s) = *r else { panic!() };
        assert_eq!(s.backend, BackendName::Stap);
        assert_eq!((s.signal.name.as_str(), s.code.name.as_deref()), ("SIGKILL", Some("SI_USER")));
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
        let kthreads: Vec<bool> = s.ancestry.iter().map(|a| a.kthread).collect();
        assert_eq!(kthreads, vec![true, false, false, false], "PF_KTHREAD (0x200000) on swapper only");
        let sender = s.sender.as_ref().unwrap();
        assert!(!sender.kthread && !sender.exiting);
        let dying = KILL.replace("server\t-1\t4194304\t", "server\t-1\t4194308\t");
        let Line::Record(r) = parse(dying.as_bytes()) else { panic!("not parsed") };
        let Record::Signal(d) = *r else { panic!() };
        assert!(d.sender.unwrap().exiting, "PF_EXITING (4)");
        assert!(s.ancestry_complete);
        assert_eq!(s.time, "2025-11-24T20:17:30.123456789Z");
        // What stap cannot see is null, not invented: no outcome from the tapset's kprobe (-1).
        assert_eq!((s.boot_ns, s.result, s.errno, s.target.ns_pid), (None, None, None, None));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["result"], serde_json::Value::Null);
        assert_eq!(json["lacks"], serde_json::json!(["executable_identity", "target_disposition", "context"]));
        // The signal_generate tracepoint knows it.
        let traced = KILL.replace("server\t-1\t", "server\t1\t");
        let Line::Record(r) = parse(traced.as_bytes()) else { panic!("not parsed") };
        let Record::Signal(s) = *r else { panic!() };
        assert_eq!(s.result, Some(Delivery::Ignored));
    }

    #[test]
    fn hostile_comm_survives() {
        // text_str output for a comm of: tab, newline, quote, backslash, 0xff, semicolon.
        let line = KILL.replace("\tpkill\tpkill\\001", "\tev\\til\\n\\\"\\\\\\377;x\tpkill\\001");
        let Line::Record(r) = parse(line.as_bytes()) else { panic!("not parsed: {line}") };
        let Record::Signal(s) = *r else { panic!() };
        assert_eq!(s.sender.as_ref().unwrap().comm, "ev\til\n\"\\\u{fffd};x");
        assert_eq!(s.sender.as_ref().unwrap().argv[0], "pkill");
    }

    #[test]
    fn exit_line_and_others() {
        let Line::Record(r) = parse(b"PODSIG\tEXIT\t1764015450123501230\t7942\t9\tserver") else { panic!() };
        let Record::Exit(e) = *r else { panic!() };
        assert_eq!((e.pid, e.signal.map(|s| s.number), e.status), (7942, Some(9), None));
        assert_eq!(parse(b"PODSIG\tREADY"), Line::Ready);
        assert_eq!(parse(b"WARNING: something from stap"), Line::Other);
        // Ours, but cut short or garbled: counted, not guessed at.
        assert_eq!(parse(b"PODSIG\tSIG\t1\t2"), Line::Malformed);
        assert_eq!(parse(b"PODSIG\tEXIT\tnow\t7942\t9\tserver"), Line::Malformed);
        assert_eq!(parse(b"PODSIG\tHELLO"), Line::Malformed);
        let cut = &KILL[..KILL.len() - "\t2097218\tswapper/0\t".len()];
        assert_eq!(parse(cut.as_bytes()), Line::Malformed, "an ancestor cut in half");
        let negative = KILL.replace("\t7942\t7942\t", "\t-7942\t7942\t");
        assert_eq!(parse(negative.as_bytes()), Line::Malformed, "a pid is never negative");
    }

    #[test]
    fn unescape_forms() {
        assert_eq!(unescape(r#"a\tb\n\\\"\001\x41"#), b"a\tb\n\\\"\x01A");
        assert_eq!(unescape(r#"trailing\"#), b"trailing\\");
    }

    /// The decoder's fuzz tests (see `crate::fuzz_config` for their bound).
    mod fuzz {
        use proptest::prelude::*;

        use super::{super::*, KILL};

        /// Bytes that matter to the parser, mixed with anything at all.
        fn token() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                Just(b"\t".to_vec()),
                Just(b"\\".to_vec()),
                Just(b"\\x".to_vec()),
                Just(b"\\377".to_vec()),
                Just(b"PODSIG".to_vec()),
                Just(b"SIG".to_vec()),
                Just(b"EXIT".to_vec()),
                Just(b"-1".to_vec()),
                Just(b"99999999999999999999999".to_vec()),
                Just(vec![0xff, 0xfe]),
                Just(vec![0]),
                proptest::collection::vec(any::<u8>(), 0..16),
            ]
        }

        /// A line from the real format with one field replaced, cut, or repeated.
        fn mutated() -> impl Strategy<Value = Vec<u8>> {
            let fields: Vec<Vec<u8>> = KILL.split('\t').map(|f| f.as_bytes().to_vec()).collect();
            let n = fields.len();
            (0..n, token(), 0..n, 0..4u8, 0..200usize).prop_map(move |(at, tok, cut, how, repeat)| {
                let mut f = fields.clone();
                match how {
                    0 => f[at] = tok,
                    1 => f.truncate(cut.max(2)),
                    2 => {
                        // An ancestry far longer than the script ever prints.
                        let extra: Vec<Vec<u8>> = f[17..21].to_vec();
                        for _ in 0..repeat {
                            f.splice(17..17, extra.iter().cloned());
                        }
                    }
                    _ => f[at].extend_from_slice(&tok),
                }
                f.join(&b'\t')
            })
        }

        fn read_all(input: &[u8], capacity: usize) -> Vec<Chunk> {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let mut lines = Lines::new(tokio::io::BufReader::with_capacity(capacity, input));
                let mut out = Vec::new();
                while let Some(c) = lines.next().await.unwrap() {
                    assert!(lines.buf.capacity() <= 2 * MAX_LINE, "a line is never held past the bound");
                    out.push(c);
                }
                out
            })
        }

        proptest! {
            #![proptest_config(crate::fuzz_config(2000))]

            #[test]
            fn arbitrary_bytes_are_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
                let _ = parse(&bytes);
                // Marked as ours, they are a record, Ready or malformed: never passed over.
                let mut marked = b"PODSIG\t".to_vec();
                marked.extend_from_slice(&bytes);
                prop_assert_ne!(parse(&marked), Line::Other);
            }

            #[test]
            fn damaged_records_are_records_or_malformed(line in mutated()) {
                match parse(&line) {
                    Line::Record(r) => {
                        if let Record::Signal(s) = *r {
                            prop_assert!(s.ancestry.len() <= MAX_ANCESTRY + 1);
                            let argv: usize = s.sender.as_ref().map_or(0, |x| x.argv.iter().map(String::len).sum());
                            // Lossy UTF-8 may turn one byte into three, never more.
                            prop_assert!(argv <= 3 * line.len());
                        }
                    }
                    Line::Malformed | Line::Ready => {}
                    Line::Other => prop_assert!(!line.starts_with(b"PODSIG\t")),
                }
            }

            #[test]
            fn lines_are_split_and_bounded(
                parts in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..64), 0..8usize), 0..24),
                capacity in 1..4096usize,
            ) {
                // Segments, some of them past the bound, joined with newlines.
                let mut input = Vec::new();
                let mut want = Vec::new();
                for (bytes, kind) in &parts {
                    let bytes: Vec<u8> = bytes.iter().copied().filter(|&b| b != b'\n').collect();
                    if *kind == 0 {
                        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 1));
                        want.push(Chunk::TooLong);
                    } else {
                        input.extend_from_slice(&bytes);
                        want.push(Chunk::Line(bytes));
                    }
                    input.push(b'\n');
                }
                prop_assert_eq!(read_all(&input, capacity), want);
            }
        }

        #[test]
        fn a_line_without_end_is_not_buffered_whole() {
            let input = vec![b'a'; 16 << 20];
            assert_eq!(read_all(&input, 8192), vec![Chunk::TooLong]);
            assert_eq!(read_all(b"PODSIG\tREADY", 3), vec![Chunk::Line(b"PODSIG\tREADY".to_vec())]);
            assert_eq!(read_all(b"a\xff\n\n", 3), vec![Chunk::Line(vec![b'a', 0xff]), Chunk::Line(vec![])]);
        }
    }
}
