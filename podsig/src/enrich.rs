//! Adds to raw records what the kernel side does not capture: wall-clock time, and facts
//! only /proc has (the sender's executable) while the process is still there.

use std::{
    fs,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::event::Record;

pub struct Enricher {
    /// CLOCK_REALTIME − CLOCK_BOOTTIME, so kernel boot-clock stamps become wall time.
    wall_minus_boot_ns: i128,
    clk_tck: u64,
}

impl Default for Enricher {
    fn default() -> Self {
        Self::new()
    }
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer, valid clock id.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

impl Enricher {
    pub fn new() -> Self {
        let wall_minus_boot_ns = clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_BOOTTIME);
        // SAFETY: sysconf has no preconditions.
        let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Self { wall_minus_boot_ns, clk_tck: if tck > 0 { tck as u64 } else { 100 } }
    }

    /// RFC 3339 UTC with nanoseconds for a boot-clock timestamp.
    pub fn wall_time(&self, boot_ns: u64) -> String {
        let ns = (boot_ns as i128 + self.wall_minus_boot_ns).max(0) as u128;
        let t = UNIX_EPOCH + Duration::from_nanos(ns as u64);
        humantime::format_rfc3339_nanos(t).to_string()
    }

    pub fn now(&self) -> String {
        humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
    }

    pub fn enrich(&self, record: &mut Record) {
        match record {
            Record::Signal(s) => {
                s.time = self.wall_time(s.boot_ns);
                let start = s.ancestry.last().filter(|a| a.pid == s.sender.pid).map(|a| a.start_ns);
                s.sender.exe = self.exe_if_same_process(s.sender.pid, start);
            }
            Record::Exit(e) => e.time = self.wall_time(e.boot_ns),
            Record::Lost(l) => l.time = self.now(),
        }
    }

    /// The sender's executable, but only if `pid` still names the process that sent the
    /// signal: a short-lived sender's pid can already belong to someone else.
    fn exe_if_same_process(&self, pid: u32, start_ns: Option<u64>) -> Option<String> {
        if let Some(start_ns) = start_ns {
            let ticks = proc_start_ticks(pid)?;
            let expect = start_ns as u128 * self.clk_tck as u128 / 1_000_000_000;
            if (ticks as u128).abs_diff(expect) > 1 {
                return None;
            }
        }
        fs::read_link(format!("/proc/{pid}/exe")).ok().map(|p| p.to_string_lossy().into_owned())
    }
}

/// Field 22 of /proc/PID/stat: start time in clock ticks since boot. The comm field (2) may
/// hold spaces and parentheses, so fields are counted from the last ')'.
pub fn proc_start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Field 3 of /proc/PID/stat: the state letter ('Z' zombie, 'X' dead, …).
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].split_whitespace().next()?.chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_facts() {
        let me = std::process::id();
        assert!(proc_start_ticks(me).is_some());
        // The main thread waits on the test threads: running or sleeping, never a zombie.
        assert!(matches!(proc_state(me), Some('R' | 'S')));
        assert!(proc_state(u32::MAX).is_none());
    }

    #[test]
    fn wall_time_is_rfc3339_nanos() {
        let e = Enricher::new();
        let t = e.wall_time(0);
        assert!(t.ends_with('Z') && t.len() == "2026-11-24T20:17:30.123456789Z".len(), "{t}");
    }
}
