//! Pairs the OOM killer's victim mark with the SIGKILL it follows.
//!
//! `oom:mark_victim` fires just after the OOM killer's SIGKILL for the same pid, so a
//! SIGKILL the kernel sent (SI_KERNEL) is held back briefly in case its mark follows. Order
//! is kept: records behind a held one wait with it, for at most `WINDOW`.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use crate::event::{OomInfo, Record, SignalRecord};

pub const WINDOW: Duration = Duration::from_millis(50);
const SI_KERNEL: i32 = 0x80;

#[derive(Default)]
pub struct Correlator {
    pending: VecDeque<(Record, Instant)>,
}

fn awaits_mark(s: &SignalRecord) -> bool {
    s.signal.number == libc::SIGKILL && s.code.value == SI_KERNEL && s.oom.is_none()
}

impl Correlator {
    pub fn push(&mut self, record: Record, now: Instant) {
        if let Record::Oom(oom) = record {
            self.attach(oom);
            return;
        }
        self.pending.push_back((record, now));
    }

    /// Folds the mark into the latest held SIGKILL for that pid; a mark whose signal was not
    /// reported (filtered by --signal) has nothing to explain and is dropped.
    fn attach(&mut self, oom: OomInfo) {
        let held = self.pending.iter_mut().rev().find_map(|(r, _)| match r {
            Record::Signal(s) if s.target.pid == oom.pid && awaits_mark(s) => Some(s),
            _ => None,
        });
        if let Some(s) = held {
            s.oom = Some(oom);
        }
    }

    /// Moves out every record that need not wait any longer, in order.
    pub fn ready(&mut self, now: Instant, out: &mut impl Extend<Record>) {
        while let Some((r, t)) = self.pending.front() {
            let waiting = matches!(r, Record::Signal(s) if awaits_mark(s));
            if waiting && now.duration_since(*t) < WINDOW {
                break;
            }
            out.extend(self.pending.pop_front().map(|(r, _)| r));
        }
    }

    /// Everything, now: the watch is ending.
    pub fn flush(&mut self, out: &mut impl Extend<Record>) {
        out.extend(self.pending.drain(..).map(|(r, _)| r));
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::*;

    fn sigkill(pid: u32, code: i32) -> Record {
        Record::Signal(SignalRecord {
            code: Code { value: code, name: None },
            target: Target { pid, tid: pid, comm: "x".into(), ..Default::default() },
            ..sample_signal()
        })
    }

    fn mark(pid: u32) -> Record {
        Record::Oom(OomInfo {
            pid,
            boot_ns: 0,
            total_vm_kb: None,
            anon_rss_kb: None,
            file_rss_kb: None,
            shmem_rss_kb: None,
            pgtables_kb: None,
            oom_score_adj: None,
            memory_cgroup: None,
            memory_limit_bytes: None,
        })
    }

    #[test]
    fn kernel_sigkill_waits_for_its_mark_and_keeps_order() {
        let t0 = Instant::now();
        let mut c = Correlator::default();
        let mut out = vec![];
        c.push(sigkill(7, SI_KERNEL), t0);
        c.push(sigkill(8, 0), t0);
        c.ready(t0, &mut out);
        assert!(out.is_empty(), "held, and the record behind it too");
        c.push(mark(7), t0);
        c.ready(t0 + Duration::from_millis(1), &mut out);
        assert_eq!(out.len(), 2);
        let Record::Signal(s) = &out[0] else { panic!() };
        assert_eq!(s.oom.as_ref().map(|o| o.pid), Some(7));
    }

    #[test]
    fn wait_is_bounded() {
        let t0 = Instant::now();
        let mut c = Correlator::default();
        let mut out = vec![];
        c.push(sigkill(7, SI_KERNEL), t0);
        c.ready(t0 + WINDOW, &mut out);
        assert_eq!(out.len(), 1);
        let Record::Signal(s) = &out[0] else { panic!() };
        assert!(s.oom.is_none());
    }

    #[test]
    fn user_sigkill_is_not_held() {
        let mut c = Correlator::default();
        let mut out = vec![];
        let t0 = Instant::now();
        c.push(sigkill(7, 0), t0);
        c.ready(t0, &mut out);
        assert_eq!(out.len(), 1);
        assert!(c.is_empty());
    }
}
