//! The ring-buffer transport (5.8+): records are reserved in the BPF ring buffer and written
//! in place, and the `subprogram!`s are global functions (5.6+).

use aya_ebpf::{
    EbpfContext,
    bindings::BPF_RB_FORCE_WAKEUP,
    macros::map,
    maps::{RingBuf, ring_buf::RingBufEntry},
};
use podsig_common::{FilterConfig, SignalFull};

use crate::emit::Wake;

/// A subprogram of the hook as a global function (5.6+; this build needs 5.8): verified once,
/// on its own, rather than at every call in every state its caller reaches it in.
macro_rules! subprogram {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $t:ty),*) -> $r:ty $body:block) => {
        $(#[$m])*
        #[unsafe(no_mangle)]
        #[inline(never)]
        pub extern "C" fn $name($($arg: $t),*) -> $r $body
    };
}

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(0, 0);

const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_AVAIL_DATA: u64 = 0;

/// Room for one record, written in place.
pub(crate) struct Slot<T: 'static>(RingBufEntry<T>);

#[inline(always)]
pub(crate) fn reserve<T: 'static>() -> Option<Slot<T>> {
    EVENTS.reserve::<T>(0).map(Slot)
}

impl<T: 'static> Slot<T> {
    #[inline(always)]
    pub(crate) fn ptr(&mut self) -> *mut T {
        self.0.as_mut_ptr()
    }

    #[inline(always)]
    pub(crate) fn submit<C: EbpfContext>(self, _ctx: &C, wake: Wake, cfg: &FilterConfig) {
        let flags = if wake == Wake::Now { BPF_RB_FORCE_WAKEUP as u64 } else { wakeup_flags(cfg) };
        self.0.submit(flags);
    }
}

/// Copies a record out (one the program assembled in its own memory); false when the buffer
/// had no room for it.
#[inline(always)]
pub(crate) fn output<C: EbpfContext>(_ctx: &C, data: &[u8], wake: Wake, cfg: &FilterConfig) -> bool {
    let flags = if wake == Wake::Now { BPF_RB_FORCE_WAKEUP as u64 } else { wakeup_flags(cfg) };
    EVENTS.output::<[u8]>(data, flags).is_ok()
}

/// Submit without waking the reader unless this record takes the buffer past the wakeup
/// level: userspace drains on a short timer, and a wakeup per event would dominate the cost
/// of a signal storm. Past the level the reader is awake and draining already (or will be at
/// its next tick), so only the records crossing it wake it.
#[inline(always)]
fn wakeup_flags(cfg: &FilterConfig) -> u64 {
    let avail = EVENTS.query(BPF_RB_AVAIL_DATA);
    let level = cfg.wakeup_bytes as u64;
    // Whatever its size, a signal record that crossed the level lands within one largest
    // signal record (plus its 8-byte header) of it; request records, bigger, wake the reader
    // themselves.
    if avail > level && avail <= level + 8 + core::mem::size_of::<SignalFull>() as u64 {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP
    }
}
