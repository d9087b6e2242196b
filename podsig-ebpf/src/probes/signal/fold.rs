//! A storm's identical signals, counted per CPU instead of reported one by one.

use core::ptr;

use aya_ebpf::{macros::map, maps::PerCpuArray};
use podsig_common::FoldState;

/// Per CPU, the run of identical signals being counted instead of reported one by one.
#[map]
pub(crate) static FOLD: PerCpuArray<FoldState> = PerCpuArray::with_max_entries(1, 0);

/// What makes signals identical: a run of them is counted, not reported one by one.
pub(crate) struct RunKey {
    pub(crate) pid_tgid: u64,
    pub(crate) mm: u64,
    pub(crate) target: u64,
    pub(crate) sig: i32,
    pub(crate) code: i32,
    pub(crate) errno: i32,
    pub(crate) group: i32,
    pub(crate) result: i32,
    pub(crate) context: u32,
    /// The sender's syscall's first argument: kill(pid) and kill(0) differ in scope.
    pub(crate) arg0: i64,
}

/// The signal continues the CPU's current run.
#[inline(always)]
pub(crate) unsafe fn same_run(f: *const FoldState, k: &RunKey) -> bool {
    unsafe {
        (*f).active != 0
            && (*f).pid_tgid == k.pid_tgid
            && (*f).target == k.target
            && (*f).mm == k.mm
            && (*f).sig == k.sig
            && (*f).code == k.code
            && (*f).errno == k.errno
            && (*f).group == k.group
            && (*f).result == k.result
            && (*f).context == k.context
            && (*f).arg0 == k.arg0
    }
}

/// Counts one more signal of the run. `v_end` changes first and `v_start` last, so a reader
/// copying the struct in address order sees them differ whenever it raced a change.
#[inline(always)]
pub(crate) unsafe fn fold_one(f: *mut FoldState, now: u64) {
    unsafe {
        let v = ptr::read_volatile(&raw const (*f).v_start) + 1;
        ptr::write_volatile(&raw mut (*f).v_end, v);
        ptr::write_volatile(&raw mut (*f).count, (*f).count + 1);
        ptr::write_volatile(&raw mut (*f).last_ns, now);
        ptr::write_volatile(&raw mut (*f).v_start, v + 1);
        ptr::write_volatile(&raw mut (*f).v_end, v + 1);
    }
}

/// The run's end went out (or it had nothing folded): nothing more joins it.
#[inline(always)]
pub(crate) unsafe fn end_run(f: *mut FoldState) {
    unsafe {
        let v = ptr::read_volatile(&raw const (*f).v_start) + 1;
        ptr::write_volatile(&raw mut (*f).v_end, v);
        ptr::write_volatile(&raw mut (*f).active, 0);
        ptr::write_volatile(&raw mut (*f).count, 0);
        ptr::write_volatile(&raw mut (*f).v_start, v + 1);
        ptr::write_volatile(&raw mut (*f).v_end, v + 1);
    }
}

/// Makes the signal whose record just went out (with `seq`) the start of a new run.
#[inline(always)]
pub(crate) unsafe fn start_run(f: *mut FoldState, k: &RunKey, seq: u64, now: u64) {
    unsafe {
        let v = ptr::read_volatile(&raw const (*f).v_start) + 1;
        ptr::write_volatile(&raw mut (*f).v_end, v);
        ptr::write_volatile(&raw mut (*f).active, 1);
        ptr::write_volatile(&raw mut (*f).sig, k.sig);
        ptr::write_volatile(&raw mut (*f).code, k.code);
        ptr::write_volatile(&raw mut (*f).errno, k.errno);
        ptr::write_volatile(&raw mut (*f).group, k.group);
        ptr::write_volatile(&raw mut (*f).result, k.result);
        ptr::write_volatile(&raw mut (*f).context, k.context);
        ptr::write_volatile(&raw mut (*f).pid_tgid, k.pid_tgid);
        ptr::write_volatile(&raw mut (*f).mm, k.mm);
        ptr::write_volatile(&raw mut (*f).target, k.target);
        ptr::write_volatile(&raw mut (*f).arg0, k.arg0);
        ptr::write_volatile(&raw mut (*f).seq, seq);
        ptr::write_volatile(&raw mut (*f).count, 0);
        ptr::write_volatile(&raw mut (*f).last_ns, now);
        ptr::write_volatile(&raw mut (*f).next, (*f).next + 1);
        ptr::write_volatile(&raw mut (*f).v_start, v + 1);
        ptr::write_volatile(&raw mut (*f).v_end, v + 1);
    }
}
