//! Turns what the user named into process ids the kernel filter can match, with one clear
//! error for anything that cannot be watched.

use std::collections::BTreeSet;

use anyhow::{Result, bail};

use crate::proc::proc_state;

/// `--pid` values: positive numbers only.
pub fn parse_pid(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(0) => Err("pid 0 is the kernel's idle task, not a process; give a process id \
                      (find one with `pgrep NAME`)"
            .into()),
        Ok(n) if n <= i32::MAX as u32 => Ok(n),
        _ if s.trim().starts_with('-') && s.trim()[1..].parse::<u32>().is_ok() => Err(format!(
            "{s} is not a process id: podsig watches processes by their pid (a positive number); kill(2)'s -1 \
             (every process) and -PGID (a process group) are not processes: use --all, or the group's pids"
        )),
        _ => Err(format!("'{s}' is not a process id; expected a positive number such as `pgrep NAME` prints")),
    }
}

/// Thread-group id of a task id, from /proc/PID/status.
fn tgid_of(pid: u32) -> Option<u32> {
    let p = procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?;
    Some(p.status().ok()?.tgid as u32)
}

/// Checks each pid names a live process; a thread id becomes its process (signals to any
/// thread of a watched process are reported). Duplicates are dropped, order kept.
pub fn resolve_pids(pids: &[u32]) -> Result<Vec<u32>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for &pid in pids {
        let Some(tgid) = tgid_of(pid) else {
            bail!("no process with pid {pid}: it is not running (check with `ps -p {pid}`)");
        };
        if tgid != pid {
            tracing::info!("pid {pid} is a thread of process {tgid}; watching process {tgid}");
        }
        if matches!(proc_state(tgid), Some('Z' | 'X')) {
            bail!("process {tgid} has already exited (a zombie waiting for its parent); nothing to watch");
        }
        if seen.insert(tgid) {
            out.push(tgid);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_parsing() {
        assert_eq!(parse_pid("42"), Ok(42));
        assert!(parse_pid("0").unwrap_err().contains("idle task"));
        assert!(parse_pid("abc").unwrap_err().contains("'abc' is not a process id"));
        assert!(parse_pid("-3").is_err());
        assert!(parse_pid("4294967295").is_err());
    }

    #[test]
    fn resolving_live_and_missing_pids() {
        let me = std::process::id();
        assert_eq!(resolve_pids(&[me, me]).unwrap(), vec![me]);
        let err = resolve_pids(&[i32::MAX as u32]).unwrap_err().to_string();
        assert!(err.contains("no process with pid"), "{err}");
    }
}
