//! `sched_process_fork`: a watched process's children are watched too, when following.

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use podsig_common::TARGET_CHILD;

use crate::kernel::task;
use crate::{
    filter::TARGETS,
    globals::{config, offsets},
};

/// A watched process forked: watch the child too (when following, as for containers).
/// Threads share their process's tgid and need nothing.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    let cfg = config();
    if cfg.follow_forks == 0 {
        return 0;
    }
    let parent = ctx.arg::<u64>(0) as *const u8;
    let child = ctx.arg::<u64>(1) as *const u8;
    let off = offsets();
    let Some(ptgid) = (unsafe { task::tgid(parent, off) }) else {
        return 0;
    };
    if unsafe { TARGETS.get(&ptgid).is_none() } {
        return 0;
    }
    let Some(ctgid) = (unsafe { task::tgid(child, off) }) else {
        return 0;
    };
    if ctgid != ptgid {
        let _ = TARGETS.insert(&ctgid, &(ctgid | TARGET_CHILD), 0);
    }
    0
}
