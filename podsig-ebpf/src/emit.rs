//! How a record leaves: through the build's `transport`, a full buffer counted in `LOST`.

use aya_ebpf::{EbpfContext, macros::map, maps::PerCpuArray};
use podsig_common::FilterConfig;

use crate::transport::reserve;

/// Records dropped because the ring buffer was full; userspace sums the CPUs and reports.
#[map]
pub(crate) static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub(crate) fn count_lost() {
    if let Some(n) = LOST.get_ptr_mut(0) {
        unsafe { *n += 1 };
    }
}

/// When a record should wake the reader: at its own pace (a storm's records), or now (the
/// rare and final ones: exits, OOM marks).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    Batched,
    Now,
}

/// A wire record's bytes.
#[inline(always)]
pub(crate) fn bytes_of<T>(v: &T) -> &[u8] {
    unsafe { core::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }
}

/// Reserves a signal record, has `fill` write it in place, submits it at the storm's pace;
/// a full buffer is counted, never silent. False when it was.
#[inline(always)]
pub(crate) fn emit_signal<T: 'static, C: EbpfContext>(ctx: &C, cfg: &FilterConfig, fill: impl FnOnce(*mut T)) -> bool {
    let Some(mut entry) = reserve::<T>() else {
        count_lost();
        return false;
    };
    fill(entry.ptr());
    entry.submit(ctx, Wake::Batched, cfg);
    true
}
