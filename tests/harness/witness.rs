//! The witness: another tool (bpftrace) on the same tracepoint, whose view of each signal
//! podsig's records are checked against.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::process::TIMEOUT;

/// What the kernel's own tracepoint said of one signal, as an independent tool saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witnessed {
    pub sig: i32,
    pub code: i32,
    pub group: i32,
    pub result: i32,
    /// `current`'s thread when the signal was generated: the sender, outside interrupt
    /// context.
    pub tid: u32,
    pub comm: String,
}

/// bpftrace on `signal:signal_generate` for signals to one process: the witness podsig's
/// records are checked against (the same tracepoint, read by another tool).
pub struct Witness {
    child: Child,
    lines: Receiver<String>,
}

impl Witness {
    /// Attached and printing once this returns.
    pub fn start(target: u32) -> Self {
        let program = format!(
            "tracepoint:signal:signal_generate /args->pid == {target}/ {{ printf(\"W %d %d %d %d %d %s\\n\", \
             args->sig, args->code, args->group, args->result, tid, comm); }}"
        );
        let mut child = Command::new("bpftrace")
            .args(["-e", &program])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("bpftrace is needed as the witness (cargo xtask test installs it)");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        // bpftrace says "Attaching" before it has attached: only a signal it reports proves
        // it sees them. SIGURG does nothing to a process without a handler for it.
        let deadline = Instant::now() + TIMEOUT;
        loop {
            // SAFETY: kill(2) of a test's own target with a signal it ignores.
            unsafe { libc::kill(target as i32, libc::SIGURG) };
            match lines.recv_timeout(Duration::from_millis(200)) {
                Ok(l) if l.starts_with("W 23 ") => break,
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => panic!("bpftrace exited before attaching"),
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("bpftrace did not attach within {TIMEOUT:?}");
            }
        }
        // Its other reports of that SIGURG.
        while lines.recv_timeout(Duration::from_millis(50)).is_ok() {}
        Self { child, lines }
    }

    /// The next signal of number `sig` the witness saw.
    pub fn next(&mut self, sig: i32) -> Witnessed {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = self.lines.recv_timeout(left).unwrap_or_else(|e| panic!("the witness saw no signal {sig}: {e}"));
            let f: Vec<&str> = l.splitn(7, ' ').collect();
            if f.len() < 7 || f[0] != "W" {
                continue;
            }
            let n = |i: usize| f[i].parse::<i64>().unwrap();
            let w = Witnessed {
                sig: n(1) as i32,
                code: n(2) as i32,
                group: n(3) as i32,
                result: n(4) as i32,
                tid: n(5) as u32,
                comm: f[6].to_string(),
            };
            if w.sig == sig {
                return w;
            }
        }
    }

    /// Checks a podsig record against what the witness saw of the same signal.
    pub fn agrees(&mut self, ev: &Value) -> Witnessed {
        let sig = ev["signal"]["number"].as_i64().unwrap() as i32;
        let w = self.next(sig);
        let result = ["delivered", "ignored", "already_pending", "overflow_fail", "lose_info"][w.result as usize];
        assert_eq!(ev["code"]["value"], w.code, "si_code: witness {w:?}, podsig {ev}");
        assert_eq!(ev["group"], w.group != 0, "group: witness {w:?}, podsig {ev}");
        assert_eq!(ev["result"], result, "result: witness {w:?}, podsig {ev}");
        if !ev["sender"].is_null() {
            assert_eq!(ev["sender"]["tid"], w.tid, "sender: witness {w:?}, podsig {ev}");
        }
        w
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        // SIGINT: bpftrace detaches and exits; one that does not within a second is killed.
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(1);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
