//! Reading kernel memory: one module per kernel struct family, every field at the offset
//! userspace found in the running kernel's BTF (`globals::OFFSETS`).

use core::ptr;

pub(crate) mod fs;
pub(crate) mod mm;
pub(crate) mod sched;
pub(crate) mod signal;
pub(crate) mod task;

/// Reads a `T` at `base + off` from kernel memory.
#[inline(always)]
pub(crate) unsafe fn read<T: Copy>(base: *const u8, off: u32) -> Option<T> {
    unsafe { aya_ebpf::helpers::bpf_probe_read_kernel(base.add(off as usize) as *const T).ok() }
}

/// `x`, with everything the compiler knows about its range forgotten: a mask applied after
/// this survives optimisation, so the verifier sees the bound it proves.
#[inline(always)]
pub(crate) fn opaque(x: u32) -> u32 {
    // SAFETY: a read of a local.
    unsafe { ptr::read_volatile(&x) }
}
