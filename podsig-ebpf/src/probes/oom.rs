//! `mark_victim`: the OOM killer's victim, with its memory figures.

use core::ptr;

use aya_ebpf::{
    helpers::bpf_ktime_get_boot_ns,
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use podsig_common::{EVENT_OOM, KernelOffsets, OomEvent};

use crate::kernel::{mm, signal, task};
use crate::{
    emit::{Wake, count_lost},
    filter::watched,
    globals::{OOM_FORMAT, config, offsets},
    transport::reserve,
};

/// The OOM killer marks its victim right after sending it SIGKILL: userspace pairs the two.
/// A raw tracepoint: the classic one attaches through a perf event, whose release waits for
/// RCU grace periods (~60 ms of every podsig's exit). Its figures are read from the victim
/// as the classic event computes them (6.x passes the task; older kernels only its pid, and
/// their classic event has no figures either).
#[raw_tracepoint(tracepoint = "mark_victim")]
pub fn mark_victim(ctx: RawTracePointContext) -> i32 {
    let off = offsets();
    let cfg = config();
    let arg0 = ctx.arg::<u64>(0);
    let task = if off.oom_task_arg != 0 { arg0 as *const u8 } else { ptr::null() };
    let pid = if task.is_null() {
        arg0 as u32
    } else {
        // The process: podsig watches processes, and names the SIGKILL's target by it.
        match unsafe { task::tgid(task, off) } {
            Some(pid) => pid,
            None => return 0,
        }
    };
    if !watched(pid, &cfg) {
        return 0;
    }
    let Some(mut entry) = reserve::<OomEvent>() else {
        count_lost();
        return 0;
    };
    let e: *mut OomEvent = entry.ptr();
    unsafe {
        (*e).kind = EVENT_OOM;
        (*e).pid = pid;
        (*e).boot_ns = bpf_ktime_get_boot_ns();
        (*e).total_vm_kb = u64::MAX;
        (*e).anon_rss_kb = u64::MAX;
        (*e).file_rss_kb = u64::MAX;
        (*e).shmem_rss_kb = u64::MAX;
        (*e).pgtables_kb = u64::MAX;
        (*e).oom_score_adj = i32::MIN;
        (*e)._pad = 0;
        if !task.is_null() {
            oom_figures(e, task, off);
        }
    }
    entry.submit(&ctx, Wake::Now, &cfg);
    0
}

/// include/linux/mm_types_task.h: the rss counters' order, unchanged since 4.5.
pub(crate) const MM_FILEPAGES: u32 = 0;
pub(crate) const MM_ANONPAGES: u32 = 1;
pub(crate) const MM_SHMEMPAGES: u32 = 3;

/// The victim's memory as `mark_victim` reports it: total_vm and each rss counter (its
/// `count`, negatives as 0, as get_mm_counter reads it) in kB, page tables in kB, and its
/// oom_score_adj.
#[inline(always)]
pub(crate) unsafe fn oom_figures(e: *mut OomEvent, task: *const u8, off: &KernelOffsets) {
    unsafe {
        let signal = task::signal(task, off).unwrap_or(ptr::null());
        if !signal.is_null() && off.signal_oom_score_adj != 0 {
            if let Some(adj) = signal::oom_score_adj(signal, off) {
                (*e).oom_score_adj = adj as i32;
            }
        }
        let mm = task::mm(task, off).unwrap_or(ptr::null());
        if mm.is_null() {
            return;
        }
        let kb = |pages: u64| pages << off.page_kb_shift;
        if off.mm_total_vm != 0 {
            if let Some(v) = mm::total_vm(mm, off) {
                (*e).total_vm_kb = kb(v);
            }
        }
        if off.mm_pgtables_bytes != 0 {
            if let Some(v) = mm::pgtables_bytes(mm, off) {
                (*e).pgtables_kb = (v.max(0) as u64) >> 10;
            }
        }
        if off.mm_rss_stat != 0 {
            let counter = |i: u32| mm::rss_count(mm, i, off).map(|v| kb(v.max(0) as u64));
            (*e).file_rss_kb = counter(MM_FILEPAGES).unwrap_or(u64::MAX);
            (*e).anon_rss_kb = counter(MM_ANONPAGES).unwrap_or(u64::MAX);
            (*e).shmem_rss_kb = counter(MM_SHMEMPAGES).unwrap_or(u64::MAX);
        }
    }
}

/// The same through the classic tracepoint, for kernels without BTF: its record layout comes
/// from tracefs.
#[tracepoint(category = "oom", name = "mark_victim")]
pub fn mark_victim_tp(ctx: TracePointContext) -> i32 {
    let f = unsafe { ptr::read_volatile(&OOM_FORMAT) };
    let cfg = config();
    let Ok(pid) = (unsafe { ctx.read_at::<i32>(f.pid as usize) }) else {
        return 0;
    };
    let pid = pid as u32;
    if !watched(pid, &cfg) {
        return 0;
    }
    let Some(mut entry) = reserve::<OomEvent>() else {
        count_lost();
        return 0;
    };
    let field = |off: u32| -> u64 {
        if off == u32::MAX { u64::MAX } else { unsafe { ctx.read_at::<u64>(off as usize) }.unwrap_or(u64::MAX) }
    };
    let e: *mut OomEvent = entry.ptr();
    unsafe {
        (*e).kind = EVENT_OOM;
        (*e).pid = pid;
        (*e).boot_ns = bpf_ktime_get_boot_ns();
        (*e).total_vm_kb = field(f.total_vm);
        (*e).anon_rss_kb = field(f.anon_rss);
        (*e).file_rss_kb = field(f.file_rss);
        (*e).shmem_rss_kb = field(f.shmem_rss);
        (*e).pgtables_kb = field(f.pgtables);
        (*e).oom_score_adj = if f.oom_score_adj == u32::MAX {
            i32::MIN
        } else {
            ctx.read_at::<i16>(f.oom_score_adj as usize).map_or(i32::MIN, |v| v as i32)
        };
        (*e)._pad = 0;
    }
    entry.submit(&ctx, Wake::Now, &cfg);
    0
}
