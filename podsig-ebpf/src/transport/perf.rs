//! The perf-event-array transport, for kernels without BPF ring buffers (before 5.8):
//! records are built in a per-CPU scratch slot, then copied out, and the `subprogram!`s are
//! inlined (global functions came in 5.6).

use aya_ebpf::{
    EbpfContext,
    macros::map,
    maps::{PerCpuArray, PerfEventByteArray},
};
use podsig_common::{FilterConfig, SignalFull};

use crate::emit::Wake;

/// A subprogram of the hook, inlined: this build serves kernels from before global functions
/// (5.6), and its verification time matters less than loading at all.
macro_rules! subprogram {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $t:ty),*) -> $r:ty $body:block) => {
        $(#[$m])*
        #[inline(always)]
        pub(crate) fn $name($($arg: $t),*) -> $r $body
    };
}

#[map]
static EVENTS: PerfEventByteArray = PerfEventByteArray::new(0);

/// One record's worth of space per CPU (the largest record type, SignalFull).
#[map]
static SCRATCH: PerCpuArray<SignalFull> = PerCpuArray::with_max_entries(1, 0);

pub(crate) struct Slot<T: 'static>(*mut T);

#[inline(always)]
pub(crate) fn reserve<T: 'static>() -> Option<Slot<T>> {
    const { assert!(core::mem::size_of::<T>() <= core::mem::size_of::<SignalFull>()) };
    SCRATCH.get_ptr_mut(0).map(|p| Slot(p as *mut T))
}

impl<T: 'static> Slot<T> {
    #[inline(always)]
    pub(crate) fn ptr(&mut self) -> *mut T {
        self.0
    }

    /// The kernel counts what the perf buffer could not take; userspace reads that count.
    #[inline(always)]
    pub(crate) fn submit<C: EbpfContext>(self, ctx: &C, _wake: Wake, _cfg: &FilterConfig) {
        let bytes = unsafe { core::slice::from_raw_parts(self.0 as *const u8, core::mem::size_of::<T>()) };
        EVENTS.output(ctx, bytes, 0);
    }
}

/// Copies a record out. The kernel counts what the perf buffer could not take (userspace
/// reads that count), so this never says it failed.
#[inline(always)]
pub(crate) fn output<C: EbpfContext>(ctx: &C, data: &[u8], _wake: Wake, _cfg: &FilterConfig) -> bool {
    EVENTS.output(ctx, data, 0);
    true
}
