//! `task_struct`, and what hangs off it: its pid numbers and namespace (`struct pid`), its
//! comm, its memory cgroup.

use core::{ffi::c_void, ptr};

use aya_ebpf::helpers::{bpf_get_current_task, generated};
use podsig_common::{COMM_LEN, KernelOffsets};

use super::read;

/// include/linux/sched.h; unchanged since 2.6.27.
pub(crate) const PF_KTHREAD: u32 = 0x0020_0000;
pub(crate) const PF_EXITING: u32 = 0x0000_0004;

/// include/linux/sched/signal.h `SIGNAL_*`, unchanged since 2.6.26: init of a pid
/// namespace (or the system); a group exit in progress; a SIGCONT ended a stop (or one in
/// progress), not yet reported to the parent.
pub(crate) const SIGNAL_UNKILLABLE: u32 = 0x0000_0040;
pub(crate) const SIGNAL_GROUP_EXIT: u32 = 0x0000_0004;
pub(crate) const SIGNAL_CLD_STOPPED: u32 = 0x0000_0010;
pub(crate) const SIGNAL_CLD_CONTINUED: u32 = 0x0000_0020;

/// task->cgroups->dfl_cgrp->kn->id: the inode of the task's cgroup directory in the unified
/// hierarchy; 0 when any link is missing.
#[inline(always)]
pub(crate) unsafe fn cgroup_ino(task: *const u8, off: &KernelOffsets) -> u64 {
    if off.css_set_dfl_cgrp == 0 {
        return 0;
    }
    unsafe {
        let mut p = read::<*const u8>(task, off.task_cgroups).unwrap_or(ptr::null());
        for link in [off.css_set_dfl_cgrp, off.cgroup_kn] {
            if p.is_null() {
                return 0;
            }
            p = read::<*const u8>(p, link).unwrap_or(ptr::null());
        }
        if p.is_null() { 0 } else { read::<u64>(p, off.kn_id).unwrap_or(0) }
    }
}

/// task->cgroups->subsys[memory_cgrp_id]->cgroup->kn->id: the inode of the task's
/// memory cgroup directory; 0 when any link is missing.
#[inline(always)]
pub(crate) unsafe fn memcg_ino(task: *const u8, off: &KernelOffsets) -> u64 {
    if off.css_set_memcg == 0 {
        return 0;
    }
    unsafe {
        let mut p = read::<*const u8>(task, off.task_cgroups).unwrap_or(ptr::null());
        for link in [off.css_set_memcg, off.css_cgroup, off.cgroup_kn] {
            if p.is_null() {
                return 0;
            }
            p = read::<*const u8>(p, link).unwrap_or(ptr::null());
        }
        if p.is_null() { 0 } else { read::<u64>(p, off.kn_id).unwrap_or(0) }
    }
}

#[inline(always)]
pub(crate) unsafe fn read_comm(dst: *mut [u8; COMM_LEN], task: *const u8, off: &KernelOffsets) {
    unsafe {
        if generated::bpf_probe_read_kernel(
            dst as *mut c_void,
            COMM_LEN as u32,
            task.add(off.task_comm as usize) as *const c_void,
        ) < 0
        {
            zero_comm(dst);
        }
    }
}

/// Two stores, where `*dst = [0; COMM_LEN]` is a memset: a byte loop the verifier walks byte
/// by byte (volatile, so LLVM cannot merge them back into one).
#[inline(always)]
pub(crate) unsafe fn zero_comm(dst: *mut [u8; COMM_LEN]) {
    unsafe {
        let w = dst as *mut [u32; 2];
        ptr::write_volatile(w, [0; 2]);
        ptr::write_volatile(w.add(1), [0; 2]);
    }
}

/// The task's pid number as seen from its own (innermost) pid namespace.
#[inline(always)]
pub(crate) unsafe fn ns_nr(task: *const u8, off: &KernelOffsets) -> u32 {
    unsafe { ns_info(task, off).0 }
}

/// (pid number in the innermost pid namespace, that namespace's inode number).
#[inline(always)]
pub(crate) unsafe fn ns_info(task: *const u8, off: &KernelOffsets) -> (u32, u32) {
    unsafe {
        let Some(pid) = read::<*const u8>(task, off.task_thread_pid) else {
            return (0, 0);
        };
        if pid.is_null() {
            return (0, 0);
        }
        let level: u32 = read(pid, off.pid_level).unwrap_or(0);
        let upid = off.pid_numbers + level * off.upid_size;
        let nr = read::<i32>(pid, upid + off.upid_nr).unwrap_or(0) as u32;
        let ns = read::<*const u8>(pid, upid + off.upid_ns).unwrap_or(ptr::null());
        let inum = if ns.is_null() { 0 } else { read::<u32>(ns, off.pidns_inum).unwrap_or(0) };
        (nr, inum)
    }
}

/// `current`, and whether it is a BTF-typed pointer the program may load from.
#[inline(always)]
pub(crate) fn current_task<const DIRECT: bool>(off: &KernelOffsets) -> (*const u8, bool) {
    // `task_btf` is a constant from the frozen global: the verifier sees one branch only.
    if DIRECT && off.task_btf != 0 {
        (unsafe { generated::bpf_get_current_task_btf() } as *const u8, true)
    } else {
        (unsafe { bpf_get_current_task() } as *const u8, false)
    }
}

/// The 8-byte field at `at` of `task`: a load where the pointer is typed, else a helper read.
#[inline(always)]
pub(crate) unsafe fn task_u64(task: *const u8, typed: bool, at: u32) -> u64 {
    unsafe {
        if typed { ptr::read_volatile(task.add(at as usize) as *const u64) } else { read::<u64>(task, at).unwrap_or(0) }
    }
}

/// The thread-group id: the process's pid.
#[inline(always)]
pub(crate) unsafe fn tgid(task: *const u8, off: &KernelOffsets) -> Option<u32> {
    unsafe { read(task, off.task_tgid) }
}

/// The thread's own id.
#[inline(always)]
pub(crate) unsafe fn pid(task: *const u8, off: &KernelOffsets) -> Option<u32> {
    unsafe { read(task, off.task_pid) }
}

/// The thread-group leader: the process's main thread.
#[inline(always)]
pub(crate) unsafe fn group_leader(task: *const u8, off: &KernelOffsets) -> Option<*const u8> {
    unsafe { read(task, off.task_group_leader) }
}

/// Its tracer while ptraced, else the same as `real_parent`.
#[inline(always)]
pub(crate) unsafe fn parent(task: *const u8, off: &KernelOffsets) -> Option<*const u8> {
    unsafe { read(task, off.task_parent) }
}

/// The parent that forked it (not a ptracer).
#[inline(always)]
pub(crate) unsafe fn real_parent(task: *const u8, off: &KernelOffsets) -> Option<*const u8> {
    unsafe { read(task, off.task_real_parent) }
}

/// Its user memory; null for kernel threads and past exit_mm().
#[inline(always)]
pub(crate) unsafe fn mm(task: *const u8, off: &KernelOffsets) -> Option<*const u8> {
    unsafe { read(task, off.task_mm) }
}

/// `PF_*`.
#[inline(always)]
pub(crate) unsafe fn flags(task: *const u8, off: &KernelOffsets) -> Option<u32> {
    unsafe { read(task, off.task_flags) }
}

/// The process's shared `signal_struct`.
#[inline(always)]
pub(crate) unsafe fn signal(task: *const u8, off: &KernelOffsets) -> Option<*const u8> {
    unsafe { read(task, off.task_signal) }
}

/// Its start, in ns since boot.
#[inline(always)]
pub(crate) unsafe fn start_time(task: *const u8, off: &KernelOffsets) -> Option<u64> {
    unsafe { read(task, off.task_start_time) }
}

/// The status it exits with.
#[inline(always)]
pub(crate) unsafe fn exit_code(task: *const u8, off: &KernelOffsets) -> Option<i32> {
    unsafe { read(task, off.task_exit_code) }
}

/// The process's signal handlers.
#[inline(always)]
pub(crate) unsafe fn sighand(task: *const u8, off: &KernelOffsets) -> Option<*const u8> {
    unsafe { read(task, off.task_sighand) }
}

/// The signals this thread blocks.
#[inline(always)]
pub(crate) unsafe fn blocked(task: *const u8, off: &KernelOffsets) -> Option<u64> {
    unsafe { read(task, off.task_blocked) }
}

/// Its namespaces.
#[inline(always)]
pub(crate) unsafe fn nsproxy(task: *const u8, off: &KernelOffsets) -> Option<*const u8> {
    unsafe { read(task, off.task_nsproxy) }
}

/// The CFS runqueue it is on (`se.cfs_rq`).
#[inline(always)]
pub(crate) unsafe fn cfs_rq(task: *const u8, off: &KernelOffsets) -> Option<*const u8> {
    unsafe { read(task, off.task_se_cfs_rq) }
}

/// Its audit login uid (the user who logged in, whatever `sudo` made it since) and audit
/// session; `u32::MAX` when unset or not on this kernel.
#[inline(always)]
pub(crate) unsafe fn login(task: *const u8, off: &KernelOffsets) -> (u32, u32) {
    let get = |at: u32| if at == 0 { u32::MAX } else { unsafe { read::<u32>(task, at) }.unwrap_or(u32::MAX) };
    (get(off.task_loginuid), get(off.task_sessionid))
}

/// The preempt count, where the task holds it.
#[inline(always)]
pub(crate) unsafe fn preempt_count(task: *const u8, off: &KernelOffsets) -> Option<u32> {
    unsafe { read(task, off.task_preempt_count) }
}
