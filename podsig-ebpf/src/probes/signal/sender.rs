//! A signal record's detail on its sender: argv, and the ancestry up to the idle task.

use core::{ffi::c_void, ptr};

use aya_ebpf::helpers::{bpf_get_current_task, generated};
use podsig_common::{
    ARGV_HEAD, ARGV_LEN, FLAG_ANCESTRY_COMPLETE, FLAG_ARGV_TRUNCATED, FLAG_KTHREAD, KernelOffsets, MAX_ANCESTRY,
    SenderDetail, SignalEvent,
};

use super::{RECORD, TASK_SLOT, exe::read_exe};
use crate::kernel::{mm, task};
use crate::{
    globals::offsets,
    kernel::task::{PF_KTHREAD, read_comm},
};

subprogram! {
    /// The sender's argv and ancestry (ancestry walked with bpf_loop).
    fn podsig_detail_loop() -> i32 {
        detail::<true>()
    }
}

subprogram! {
    /// The sender's argv and ancestry (ancestry walked with a bounded loop).
    fn podsig_detail_bounded() -> i32 {
        detail::<false>()
    }
}

#[inline(always)]
pub(crate) fn detail<const LOOP: bool>() -> i32 {
    let off = offsets();
    let Some(e) = RECORD.get_ptr_mut(TASK_SLOT) else { return 0 };
    unsafe {
        let current = bpf_get_current_task() as *const u8;
        let leader = task::group_leader(current, off).unwrap_or(ptr::null());
        let leader = if leader.is_null() { current } else { leader };
        fill_detail::<LOOP>(&raw mut (*e).head, &raw mut (*e).detail, current, leader, off);
    }
    0
}

/// The sender's argv and ancestry, with their lengths and flags in `e`.
#[inline(always)]
pub(crate) unsafe fn fill_detail<const LOOP: bool>(
    e: *mut SignalEvent,
    d: *mut SenderDetail,
    current: *const u8,
    leader: *const u8,
    off: &KernelOffsets,
) {
    unsafe {
        read_argv(e, d, current, off);
        walk_ancestry::<LOOP>(e, leader);
    }
}

/// The sender's command line, from its own memory: `current` is the sender, so its user
/// pages are the ones `bpf_probe_read_user` sees.
#[inline(always)]
pub(crate) unsafe fn read_argv(e: *mut SignalEvent, d: *mut SenderDetail, current: *const u8, off: &KernelOffsets) {
    unsafe {
        (*e).argv_len = 0;
        (*d).argv_total = 0;
        (*d)._pad = 0;
        let mm = task::mm(current, off).unwrap_or(ptr::null());
        if mm.is_null() {
            // No user memory: a kernel thread, or a process past exit_mm() (SIGCHLD to its
            // parent comes from there).
            if task::flags(current, off).unwrap_or(0) & PF_KTHREAD != 0 {
                (*e).flags |= FLAG_KTHREAD;
            }
            return;
        }
        let start: u64 = mm::arg_start(mm, off).unwrap_or(0);
        let end: u64 = mm::arg_end(mm, off).unwrap_or(0);
        if start == 0 || end <= start {
            return;
        }
        let total = end - start;
        (*d).argv_total = if total > u32::MAX as u64 { u32::MAX } else { total as u32 };
        let dst = (*d).argv.as_mut_ptr();
        if total > ARGV_LEN as u64 {
            // Too long for the buffer: keep its head and its tail, where `… kill <id> 9` is.
            const TAIL: usize = ARGV_LEN - ARGV_HEAD;
            let head = generated::bpf_probe_read_user(dst as *mut c_void, ARGV_HEAD as u32, start as *const c_void);
            let tail = generated::bpf_probe_read_user(
                dst.add(ARGV_HEAD) as *mut c_void,
                TAIL as u32,
                (end - TAIL as u64) as *const c_void,
            );
            if head == 0 && tail == 0 {
                (*e).argv_len = ARGV_LEN as u32;
                (*e).flags |= FLAG_ARGV_TRUNCATED;
            }
            return;
        }
        // Keep the bound visible to the verifier after LLVM's rewriting.
        let len = (total as u32) & (2 * ARGV_LEN as u32 - 1);
        if len == 0 || len > ARGV_LEN as u32 {
            return;
        }
        if generated::bpf_probe_read_user(dst as *mut c_void, len, start as *const c_void) == 0 {
            (*e).argv_len = len;
        }
    }
}

/// Walks `real_parent` from the sender's process up to the idle task (pid 0), recording each
/// process's tgid, comm and start time, as SystemTap's `task_ancestry` did.
///
/// With `bpf_loop` (5.17+) the verifier checks one step once; a bounded loop makes it check
/// every one of the MAX_ANCESTRY steps, ~0.5 ms each: most of the time to attach.
#[inline(always)]
pub(crate) unsafe fn walk_ancestry<const LOOP: bool>(e: *mut SignalEvent, start: *const u8) {
    let mut w = Walk { task: start as u64 };
    unsafe {
        (*e).depth = 0;
        if LOOP {
            generated::bpf_loop(MAX_ANCESTRY as u32, walk_step as *mut c_void, &raw mut w as *mut c_void, 0);
        } else {
            for i in 0..MAX_ANCESTRY {
                // The path walk is left to /proc where there is no bpf_loop: unrolled 40
                // times it would be more than the verifier takes.
                w.task = podsig_ancestor(i as u64, w.task);
                if w.task == 0 {
                    break;
                }
            }
        }
    }
}

pub(crate) struct Walk {
    task: u64,
}

#[inline(never)]
pub(crate) extern "C" fn walk_step(i: u64, w: *mut c_void) -> i64 {
    // SAFETY: bpf_loop hands back the Walk it was given, on the caller's stack.
    let w = unsafe { &mut *(w as *mut Walk) };
    w.task = podsig_ancestor_with_path(i, w.task);
    if w.task == 0 { 1 } else { 0 }
}

subprogram! {
    /// Records ancestor `i`, `task`, in the record, with its executable's path (bpf_loop
    /// kernels); returns the next one, 0 when the walk is over.
    fn podsig_ancestor_with_path(i: u64, task: u64) -> u64 {
        unsafe { ancestor::<true>(i, task) }
    }
}

subprogram! {
    /// The same without the executable's path (kernels without bpf_loop).
    fn podsig_ancestor(i: u64, task: u64) -> u64 {
        unsafe { ancestor::<false>(i, task) }
    }
}

/// Records ancestor `i` and returns its parent (by its thread-group leader: parents are
/// processes); 0 when the walk is over. The record's `depth` counts what is recorded.
#[inline(always)]
pub(crate) unsafe fn ancestor<const PATH: bool>(i: u64, task: u64) -> u64 {
    let off = offsets();
    let Some(r) = RECORD.get_ptr_mut(TASK_SLOT) else { return 0 };
    // A u64 throughout, so the verifier bounds the index it is used as with this test.
    if i >= MAX_ANCESTRY as u64 || task == 0 {
        return 0;
    }
    unsafe {
        let task = task as *const u8;
        let e = &raw mut (*r).head;
        let a = &raw mut (*r).detail.ancestry[i as usize];
        let tgid: u32 = task::tgid(task, off).unwrap_or(0);
        (*a).pid = tgid;
        (*a).start_ns = task::start_time(task, off).unwrap_or(0);
        read_comm(&raw mut (*a).comm, task, off);
        if PATH {
            read_exe(a, task, off);
        } else {
            // Builds without bpf_loop (before 5.17) walk 40 ancestors unrolled: the
            // executable's identity there made code 5.10's verifier refuses (LLVM carried
            // values across iterations in stack slots it saw read before written). Findings
            // come from /proc on those kernels.
            (*a).exe_flags = 0;
            (*a).exe_ino = 0;
            (*a).exe_dev = 0;
            (*a).exe_fs_magic = 0;
            (*a).exe_path[0] = 0;
        }
        (*e).depth = i as u32 + 1;
        if tgid == 0 {
            (*e).flags |= FLAG_ANCESTRY_COMPLETE;
            return 0;
        }
        let parent = task::real_parent(task, off).unwrap_or(ptr::null());
        if parent.is_null() {
            return 0;
        }
        match task::group_leader(parent, off) {
            Some(leader) if !leader.is_null() => leader as u64,
            _ => parent as u64,
        }
    }
}
