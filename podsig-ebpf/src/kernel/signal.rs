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

/// The process's oom_score_adj.
#[inline(always)]
pub(crate) unsafe fn oom_score_adj(signal: *const u8, off: &KernelOffsets) -> Option<i16> {
    unsafe { read(signal, off.signal_oom_score_adj) }
}
