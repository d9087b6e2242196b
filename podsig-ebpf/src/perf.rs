//! podsig's eBPF programs over a perf event array, for kernels without BPF ring buffers
//! (before 5.8), where the ring-buffer object cannot even be loaded (its map type is
//! unknown there). Records are built in a per-CPU scratch slot, then copied out.
#![no_std]
#![no_main]

use aya_ebpf::maps::PerfEventByteArray;

include!("programs.rs");

#[map]
static EVENTS: PerfEventByteArray = PerfEventByteArray::new(0);

/// One record's worth of space per CPU (the largest record type, SignalFull).
#[map]
static SCRATCH: PerCpuArray<SignalFull> = PerCpuArray::with_max_entries(1, 0);

/// A small record copied out whole (the kernel counts what the perf buffer drops).
#[inline(always)]
fn output<T: 'static, C: EbpfContext>(ctx: &C, record: &T, _cfg: &FilterConfig) -> bool {
    let bytes = unsafe { core::slice::from_raw_parts(record as *const T as *const u8, core::mem::size_of::<T>()) };
    EVENTS.output(ctx, bytes, 0);
    true
}

struct Slot<T: 'static>(*mut T);

#[inline(always)]
fn reserve<T: 'static>() -> Option<Slot<T>> {
    const { assert!(core::mem::size_of::<T>() <= core::mem::size_of::<SignalFull>()) };
    SCRATCH.get_ptr_mut(0).map(|p| Slot(p as *mut T))
}

impl<T: 'static> Slot<T> {
    #[inline(always)]
    fn ptr(&mut self) -> *mut T {
        self.0
    }

    /// The kernel counts what the perf buffer could not take; userspace reads that count.
    #[inline(always)]
    fn submit<C: EbpfContext>(self, ctx: &C, _wake: Wake, _cfg: &FilterConfig) {
        let bytes = unsafe { core::slice::from_raw_parts(self.0 as *const u8, core::mem::size_of::<T>()) };
        EVENTS.output(ctx, bytes, 0);
    }
}
