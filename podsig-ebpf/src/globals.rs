//! The globals the loader rewrites before loading: the running kernel's struct offsets, the
//! filter's settings, and the classic tracepoints' record layouts (from tracefs).

use core::ptr;

use podsig_common::{FilterConfig, KernelOffsets, OomFormat, TracepointFormat};

#[unsafe(no_mangle)]
// SAFETY: plain integers; the loader rewrites the zeros with the running kernel's offsets.
pub(crate) static OFFSETS: KernelOffsets = unsafe { core::mem::zeroed() };

#[unsafe(no_mangle)]
pub(crate) static CONFIG: FilterConfig = FilterConfig {
    watch_all: 0,
    wakeup_bytes: 0,
    signal_mask: 0,
    follow_forks: 0,
    repeat_window_ms: 0,
    fold: 0,
    self_tgid: 0,
    exit_mask: 0,
};

#[unsafe(no_mangle)]
pub(crate) static TP_FORMAT: TracepointFormat = TracepointFormat {
    sg_sig: 0,
    sg_errno: 0,
    sg_code: 0,
    sg_comm: 0,
    sg_pid: 0,
    sg_group: 0,
    sg_result: 0,
    exit_comm: 0,
    exit_pid: 0,
    exit_group_dead: 0,
    _pad: 0,
};

#[unsafe(no_mangle)]
pub(crate) static OOM_FORMAT: OomFormat =
    OomFormat { pid: 0, total_vm: 0, anon_rss: 0, file_rss: 0, shmem_rss: 0, pgtables: 0, oom_score_adj: 0, _pad: 0 };

/// The offsets, by reference: a copy on the stack is a quarter of the program's 512 bytes.
#[inline(always)]
pub(crate) fn offsets() -> &'static KernelOffsets {
    // Laundered so the compiler cannot fold the zero initialiser (the loader rewrites it);
    // the verifier still sees loads from the frozen global, so they stay constants to it.
    unsafe { &*core::hint::black_box(&raw const OFFSETS) }
}

#[inline(always)]
pub(crate) fn config() -> FilterConfig {
    unsafe { ptr::read_volatile(&CONFIG) }
}

#[inline(always)]
pub(crate) fn tp_format() -> TracepointFormat {
    unsafe { ptr::read_volatile(&TP_FORMAT) }
}
