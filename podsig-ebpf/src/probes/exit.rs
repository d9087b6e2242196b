//! `sched_process_exit`: a watched process's end, with its exit code.

use core::ptr;

use aya_ebpf::{
    EbpfContext,
    helpers::bpf_ktime_get_boot_ns,
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use podsig_common::{
    COMM_LEN, EVENT_EXIT, EXIT_CODE_UNKNOWN, ExitEvent, FLAG_NO_BTF, FilterConfig, TARGET_CHILD, TARGET_FLAGS,
    TARGET_SIGNALLED,
};

use crate::kernel::{signal, task};
use crate::{
    emit::{Wake, count_lost},
    filter::TARGETS,
    globals::{config, offsets, tp_format},
    kernel::task::read_comm,
    transport::reserve,
};

#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(ctx: RawTracePointContext) -> i32 {
    let task: *const u8 = ctx.arg::<u64>(0) as *const u8;
    let off = offsets();
    let cfg = config();
    let Some(tgid) = (unsafe { task::tgid(task, off) }) else {
        return 0;
    };
    let Some(&value) = (unsafe { TARGETS.get(&tgid) }) else {
        return 0;
    };
    // Report the process, not each thread: only the last thread out sees `live` at zero.
    let signal = unsafe { task::signal(task, off) }.unwrap_or(ptr::null());
    if !signal.is_null() && unsafe { signal::live(signal, off) }.unwrap_or(0) != 0 {
        return 0;
    }
    if value & TARGET_CHILD != 0 {
        // A followed child: forget it so its pid, once reused, is not watched.
        let _ = TARGETS.remove(&tgid);
        return 0;
    }
    if value & TARGET_SIGNALLED != 0 {
        // Node mode's: reported once, then forgotten (its pid may be reused).
        let _ = TARGETS.remove(&tgid);
    }
    let tid = unsafe { task::pid(task, off) }.unwrap_or(0);
    let exit_code = unsafe { task::exit_code(task, off) }.unwrap_or(0);
    emit_exit(&ctx, &cfg, tgid, tid, exit_code, 0, |comm| unsafe { read_comm(comm, task, off) });
    0
}

/// Reports a watched process's exit. Rare and final: it wakes the reader now, so the report
/// ends promptly.
#[inline(always)]
pub(crate) fn emit_exit<C: EbpfContext>(
    ctx: &C,
    cfg: &FilterConfig,
    tgid: u32,
    tid: u32,
    exit_code: i32,
    flags: u32,
    comm: impl FnOnce(*mut [u8; COMM_LEN]),
) {
    let Some(mut entry) = reserve::<ExitEvent>() else {
        count_lost();
        return;
    };
    let e: *mut ExitEvent = entry.ptr();
    unsafe {
        (*e).kind = EVENT_EXIT;
        (*e).pid = tgid;
        (*e).boot_ns = bpf_ktime_get_boot_ns();
        (*e).tid = tid;
        (*e).exit_code = exit_code;
        comm(&raw mut (*e).comm);
        (*e).flags = flags;
        (*e)._pad = 0;
    }
    entry.submit(ctx, Wake::Now, cfg);
}

#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn sched_process_exit_tp(ctx: TracePointContext) -> i32 {
    let f = tp_format();
    let cfg = config();
    let Ok(tid) = (unsafe { ctx.read_at::<i32>(f.exit_pid as usize) }) else {
        return 0;
    };
    let tid = tid as u32;
    let Some(&value) = (unsafe { TARGETS.get(&tid) }) else {
        return 0;
    };
    let tgid = value & !TARGET_FLAGS;
    if value & TARGET_SIGNALLED != 0 {
        // Node mode's entry for this thread: the thread is done with it either way.
        let _ = TARGETS.remove(&tid);
    }
    // group_dead (≥ 6.16) says the last thread left; older kernels: the leader's exit.
    let last = if f.exit_group_dead != u32::MAX {
        unsafe { ctx.read_at::<u8>(f.exit_group_dead as usize) }.unwrap_or(0) != 0
    } else {
        tid == tgid
    };
    if !last {
        return 0;
    }
    emit_exit(&ctx, &cfg, tgid, tid, EXIT_CODE_UNKNOWN, FLAG_NO_BTF, |comm| unsafe {
        *comm = ctx.read_at::<[u8; COMM_LEN]>(f.exit_comm as usize).unwrap_or([0; COMM_LEN]);
    });
    0
}
