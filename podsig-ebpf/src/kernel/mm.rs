//! `mm_struct`: a process's user memory.

use podsig_common::KernelOffsets;

use super::read;

/// Where argv starts in user memory.
#[inline(always)]
pub(crate) unsafe fn arg_start(mm: *const u8, off: &KernelOffsets) -> Option<u64> {
    unsafe { read(mm, off.mm_arg_start) }
}

/// Where argv ends in user memory.
#[inline(always)]
pub(crate) unsafe fn arg_end(mm: *const u8, off: &KernelOffsets) -> Option<u64> {
    unsafe { read(mm, off.mm_arg_end) }
}

/// The executable the memory was exec'd from.
#[inline(always)]
pub(crate) unsafe fn exe_file(mm: *const u8, off: &KernelOffsets) -> Option<*const u8> {
    unsafe { read(mm, off.mm_exe_file) }
}

/// Pages mapped.
#[inline(always)]
pub(crate) unsafe fn total_vm(mm: *const u8, off: &KernelOffsets) -> Option<u64> {
    unsafe { read(mm, off.mm_total_vm) }
}

/// Bytes of page tables.
#[inline(always)]
pub(crate) unsafe fn pgtables_bytes(mm: *const u8, off: &KernelOffsets) -> Option<i64> {
    unsafe { read(mm, off.mm_pgtables_bytes) }
}

/// The `count` of rss counter `i` (`MM_FILEPAGES`…), in pages.
#[inline(always)]
pub(crate) unsafe fn rss_count(mm: *const u8, i: u32, off: &KernelOffsets) -> Option<i64> {
    unsafe { read(mm, off.mm_rss_stat + i * off.rss_stride + off.rss_count) }
}
