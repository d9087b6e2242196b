//! The scheduler's runqueues, for finding this CPU's per-CPU data.

use podsig_common::KernelOffsets;

use super::read;

/// The runqueue a CFS runqueue belongs to.
#[inline(always)]
pub(crate) unsafe fn cfs_rq_rq(cfs_rq: *const u8, off: &KernelOffsets) -> Option<*const u8> {
    unsafe { read(cfs_rq, off.cfs_rq_rq) }
}

/// The CPU a runqueue serves.
#[inline(always)]
pub(crate) unsafe fn rq_cpu(rq: *const u8, off: &KernelOffsets) -> Option<u32> {
    unsafe { read(rq, off.rq_cpu) }
}
