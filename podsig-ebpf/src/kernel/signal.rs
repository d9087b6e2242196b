//! `signal_struct`: what the threads of a process share about signals.

use podsig_common::KernelOffsets;

use super::read;

/// Threads of the process not yet exited.
#[inline(always)]
pub(crate) unsafe fn live(signal: *const u8, off: &KernelOffsets) -> Option<i32> {
    unsafe { read(signal, off.signal_live) }
}

/// `SIGNAL_*`.
#[inline(always)]
pub(crate) unsafe fn flags(signal: *const u8, off: &KernelOffsets) -> Option<u32> {
    unsafe { read(signal, off.signal_flags) }
}

/// include/linux/pid.h `enum pid_type`: PIDTYPE_PID, _TGID, _PGID, _SID.
const PIDTYPE_PGID: u32 = 2;

/// The process group's id in the root pid namespace; 0 when unreadable.
#[inline(always)]
pub(crate) unsafe fn pgid(signal: *const u8, off: &KernelOffsets) -> u32 {
    unsafe {
        match read::<*const u8>(signal, off.signal_pids + PIDTYPE_PGID * 8) {
            Some(pid) if !pid.is_null() => read::<i32>(pid, off.pid_numbers + off.upid_nr).unwrap_or(0) as u32,
            _ => 0,
        }
    }
}

/// The process's oom_score_adj.
#[inline(always)]
pub(crate) unsafe fn oom_score_adj(signal: *const u8, off: &KernelOffsets) -> Option<i16> {
    unsafe { read(signal, off.signal_oom_score_adj) }
}
