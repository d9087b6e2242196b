//! What the CPU was doing when the signal was generated: serving an interrupt, or a task.

use core::ptr;

use aya_ebpf::helpers::bpf_get_smp_processor_id;
use podsig_common::{
    CONTEXT_HARDIRQ, CONTEXT_NMI, CONTEXT_SOFTIRQ, CONTEXT_TASK, CONTEXT_UNKNOWN, KernelOffsets, PREEMPT_PERCPU_VIA_RQ,
    PREEMPT_TASK_FIELD,
};

use super::HitCache;
use crate::kernel::read;
use crate::kernel::{sched, task};

/// include/linux/preempt.h: the softirq-serving bit and the hardirq and NMI counts (their
/// positions have not moved since 2.6; NMI_BITS grew from 1 to 4 above bit 20 in 5.x).
pub(crate) const SOFTIRQ_OFFSET: u32 = 1 << 8;
pub(crate) const HARDIRQ_MASK: u32 = 0xf << 16;
pub(crate) const NMI_MASK: u32 = 0xf << 20;

/// What this CPU is doing: serving an interrupt (hard, soft, NMI) or running a task, from
/// the preempt count. `CONTEXT_UNKNOWN` where this kernel's layout does not say where it is.
#[inline(always)]
pub(crate) unsafe fn cpu_context(c: *mut HitCache, current: *const u8, off: &KernelOffsets) -> u32 {
    unsafe {
        let count = match off.preempt_source {
            PREEMPT_TASK_FIELD => task::preempt_count(current, off),
            PREEMPT_PERCPU_VIA_RQ => {
                if (*c).preempt_addr == 0 {
                    (*c).preempt_addr = percpu_preempt_addr(current, off);
                }
                if (*c).preempt_addr == 0 { None } else { read::<u32>((*c).preempt_addr as *const u8, 0) }
            }
            _ => None,
        };
        let context = match count {
            None => CONTEXT_UNKNOWN,
            Some(count) if count & NMI_MASK != 0 => CONTEXT_NMI,
            Some(count) if count & HARDIRQ_MASK != 0 => CONTEXT_HARDIRQ,
            Some(count) if count & SOFTIRQ_OFFSET != 0 => CONTEXT_SOFTIRQ,
            Some(_) => CONTEXT_TASK,
        };
        // Through memory: returned as it is, each of the five constants would be a path of
        // its own through the rest of the program for the verifier; a load from a map is one
        // number it does not know, and the paths meet here.
        ptr::write_volatile(&raw mut (*c).context, context);
        ptr::read_volatile(&raw const (*c).context)
    }
}

/// This CPU's copy of the per-CPU preempt count: `current` runs on this CPU, so its
/// runqueue (`se.cfs_rq->rq`) is this CPU's copy of `runqueues`, and every per-CPU variable
/// sits at the same distance from it in each CPU's copy of the section. Checked against
/// `rq->cpu` before it is trusted; 0 when it cannot be found.
#[inline(always)]
pub(crate) unsafe fn percpu_preempt_addr(current: *const u8, off: &KernelOffsets) -> u64 {
    unsafe {
        let cfs_rq = task::cfs_rq(current, off).unwrap_or(ptr::null());
        if cfs_rq.is_null() {
            return 0;
        }
        let rq = sched::cfs_rq_rq(cfs_rq, off).unwrap_or(ptr::null());
        if rq.is_null() {
            return 0;
        }
        let cpu = bpf_get_smp_processor_id();
        if sched::rq_cpu(rq, off) != Some(cpu) {
            return 0;
        }
        (rq as u64).wrapping_add(off.percpu_preempt_delta as i64 as u64)
    }
}
