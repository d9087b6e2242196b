//! A signal record's head: the sender and target fields learnt once per run of hits (kept in
//! `HIT_CACHE`), and those read with every record (comm, syscall, the target's state).

use core::{ffi::c_void, ptr};

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task, bpf_get_current_uid_gid, generated},
    macros::map,
    maps::LruHashMap,
};
use podsig_common::{
    COMM_LEN, DISPOSITION_DEFAULT, DISPOSITION_HANDLER, DISPOSITION_IGNORE, DISPOSITION_UNKNOWN, FLAG_SENDER_EXITING,
    FLAG_TARGET_BLOCKED, FLAG_TARGET_GROUP_EXIT, FLAG_TARGET_RESUMED, FLAG_TARGET_UNKILLABLE, KernelOffsets,
    SYSCALL_UNKNOWN, SignalEvent,
};

use super::{HIT_CACHE, HitCache, RECORD, SIGCONT, SIGKILL};
use crate::kernel::{signal, task};
use crate::{
    globals::offsets,
    kernel::{
        read,
        task::{
            PF_EXITING, SIGNAL_CLD_CONTINUED, SIGNAL_CLD_STOPPED, SIGNAL_GROUP_EXIT, SIGNAL_UNKILLABLE, cgroup_ino,
            memcg_ino, ns_info, ns_nr, read_comm, zero_comm,
        },
    },
};

// The record's parts, each a subprogram of its own. In the ring-buffer build (5.8+) they are
// global functions (`subprogram!`): the verifier checks each once, apart from its caller,
// instead of once for every way the caller can reach it: the hook's verification, most of
// the time to attach, went from ~40,000 instructions to a few thousand. They take only
// numbers and find what else they need (the sender is `current`) themselves.

subprogram! {
    /// Reads the sender's fields that stay put while it keeps signalling (its pid numbers,
    /// namespace, parent, start time) into the cache; its detail must go out again.
    fn podsig_learn_sender(now: u64) -> i32 {
        let off = offsets();
        let Some(c) = HIT_CACHE.get_ptr_mut(0) else { return 0 };
        unsafe {
            let current = bpf_get_current_task() as *const u8;
            let leader = task::group_leader(current, off).unwrap_or(ptr::null());
            let leader = if leader.is_null() { current } else { leader };
            (*c).pid_tgid = bpf_get_current_pid_tgid();
            (*c).mm = read::<u64>(current, off.task_mm).unwrap_or(0);
            (*c).sender_ns = now;
            (*c).detail_ns = 0;
            (*c).start_ns = task::start_time(leader, off).unwrap_or(0);
            let (ns_tid, pidns) = ns_info(current, off);
            (*c).sender_ns_tid = ns_tid;
            (*c).sender_pidns = pidns;
            (*c).sender_ns_pid = ns_nr(leader, off);
            (*c).sender_ppid = match task::real_parent(current, off) {
                Some(parent) if !parent.is_null() => task::tgid(parent, off).unwrap_or(0),
                _ => 0,
            };
            ((*c).sender_loginuid, (*c).sender_sessionid) = task::login(current, off);
        }
        0
    }
}

subprogram! {
    /// The same for the target's fields (its comm is read with every signal: exec changes it),
    /// the target being the cache's `target`.
    fn podsig_learn_target(tgid: u32, now: u64) -> i32 {
        let off = offsets();
        let Some(c) = HIT_CACHE.get_ptr_mut(0) else { return 0 };
        unsafe {
            let target = (*c).target as *const u8;
            (*c).target_tgid = tgid;
            (*c).target_ns = now;
            (*c).target_tid = task::pid(target, off).unwrap_or(0);
            let (ns_tid, pidns) = ns_info(target, off);
            (*c).target_ns_tid = ns_tid;
            (*c).target_pidns = pidns;
            (*c).target_ns_pid = match task::group_leader(target, off) {
                Some(leader) if !leader.is_null() => ns_nr(leader, off),
                _ => 0,
            };
        }
        0
    }
}

subprogram! {
    /// The rest of the record's head in RECORD's `slot` (the caller wrote the signal and who
    /// sent it where): the target's (the cache's `target`) and the sender's fields, mostly
    /// from the cache.
    fn podsig_fill_head(slot: u32) -> i32 {
        let off = offsets();
        let (Some(c), Some(e)) = (HIT_CACHE.get_ptr_mut(0), RECORD.get_ptr_mut(slot)) else { return 0 };
        unsafe {
            let e = &raw mut (*e).head;
            let current = bpf_get_current_task() as *const u8;
            fill_signal(e, (*c).target as *const u8, &*c, current, off);
        }
        0
    }
}

/// A signal record's head beyond the signal and its sender's and target's pids: the target,
/// the sender (mostly from the cache), the syscall.
#[inline(always)]
pub(crate) unsafe fn fill_signal(
    e: *mut SignalEvent,
    target: *const u8,
    c: &HitCache,
    current: *const u8,
    off: &KernelOffsets,
) {
    unsafe {
        let sig = (*e).sig;
        (*e).target_tid = c.target_tid;
        (*e).target_ns_tid = c.target_ns_tid;
        (*e).target_pidns = c.target_pidns;
        (*e).target_ns_pid = c.target_ns_pid;
        read_comm(&raw mut (*e).target_comm, target, off);
        // OOM kills are SIGKILLs; other signals do not need it.
        (*e).target_memcg = if sig == SIGKILL { memcg_ino(target, off) } else { 0 };
        (*e).target_cgroup = cgroup_ino(target, off);

        (*e).sender_uid = bpf_get_current_uid_gid() as u32;
        // Straight into the record: a local array would be zeroed byte by byte first.
        if generated::bpf_get_current_comm((*e).sender_comm.as_mut_ptr() as *mut c_void, COMM_LEN as u32) < 0 {
            zero_comm(&raw mut (*e).sender_comm);
        }
        (*e).sender_ns_tid = c.sender_ns_tid;
        (*e).sender_pidns = c.sender_pidns;
        (*e).sender_ns_pid = c.sender_ns_pid;
        (*e).sender_ppid = c.sender_ppid;
        (*e).sender_loginuid = c.sender_loginuid;
        (*e).sender_sessionid = c.sender_sessionid;
        (*e).sender_start_ns = c.start_ns;
        let (nr, arg0) = current_syscall(off);
        (*e).syscall_nr = nr;
        (*e).syscall_arg0 = arg0;
        (*e).argv_len = 0;
        (*e).depth = 0;
        if task::flags(current, off).unwrap_or(0) & PF_EXITING != 0 {
            (*e).flags |= FLAG_SENDER_EXITING;
        }
        target_state(e, target, sig, off);
    }
}

/// The target's disposition for `sig`, whether its thread blocks it, whether it is a pid
/// namespace's init or already exiting: what decides if the kernel drops the signal, read as
/// it is generated. Also what a SIGCONT did, the target's process group (the tty layer
/// signals whole groups) and its tracer (ptrace raises signals of its own).
#[inline(always)]
pub(crate) unsafe fn target_state(e: *mut SignalEvent, target: *const u8, sig: i32, off: &KernelOffsets) {
    unsafe {
        (*e).target_disposition = DISPOSITION_UNKNOWN;
        let idx = ((sig - 1) as u32) & 63;
        // Offsets of 0: fields this kernel's BTF did not have.
        let sighand = if off.task_sighand == 0 || off.k_sigaction_size == 0 {
            ptr::null()
        } else {
            task::sighand(target, off).unwrap_or(ptr::null())
        };
        if !sighand.is_null() {
            let slot = off.sighand_action + idx * off.k_sigaction_size + off.k_sigaction_handler;
            if let Some(handler) = read::<u64>(sighand, slot) {
                (*e).target_disposition = match handler {
                    0 => DISPOSITION_DEFAULT,
                    1 => DISPOSITION_IGNORE,
                    _ => DISPOSITION_HANDLER,
                };
            }
        }
        if off.task_blocked != 0 && task::blocked(target, off).unwrap_or(0) & (1u64 << idx) != 0 {
            (*e).flags |= FLAG_TARGET_BLOCKED;
        }
        let signal = task::signal(target, off).unwrap_or(ptr::null());
        (*e).target_pgid = 0;
        if !signal.is_null() {
            let flags = if off.signal_flags != 0 { signal::flags(signal, off).unwrap_or(0) } else { 0 };
            if flags & SIGNAL_UNKILLABLE != 0 {
                (*e).flags |= FLAG_TARGET_UNKILLABLE;
            }
            if flags & SIGNAL_GROUP_EXIT != 0 {
                (*e).flags |= FLAG_TARGET_GROUP_EXIT;
            }
            if sig == SIGCONT && flags & (SIGNAL_CLD_CONTINUED | SIGNAL_CLD_STOPPED) != 0 {
                resumed(e, target, off);
            }
            if off.signal_pids != 0 {
                (*e).target_pgid = signal::pgid(signal, off);
            }
        }
        (*e).target_tracer = 0;
        if off.task_parent != 0 {
            let parent = task::parent(target, off).unwrap_or(ptr::null());
            let real = task::real_parent(target, off).unwrap_or(ptr::null());
            if !parent.is_null() && parent != real {
                (*e).target_tracer = task::tgid(parent, off).unwrap_or(0);
            }
        }
    }
}

/// The first argument of the syscall the sender is executing (what tells kill(pid) from
/// kill(0) before a signal is folded into a run); 0 where it cannot be read. It is read on
/// every hit, folded ones included: a thread's saved registers stay where they are while it
/// lives, so where they are is found once per sender thread on this CPU (two helper calls)
/// and kept in the hit cache, keyed by the task and its pid_tgid.
#[inline(always)]
pub(crate) unsafe fn current_arg0(c: *mut HitCache, current: *const u8, pid_tgid: u64, off: &KernelOffsets) -> i64 {
    if off.regs_syscall_size == 0 || off.regs_arg0 == 0 {
        return 0;
    }
    unsafe {
        if (*c).regs_task != current as u64 || (*c).regs_pid_tgid != pid_tgid {
            (*c).regs = generated::bpf_task_pt_regs(generated::bpf_get_current_task_btf()) as u64;
            (*c).regs_task = current as u64;
            (*c).regs_pid_tgid = pid_tgid;
        }
        let regs = (*c).regs as *const u8;
        if regs.is_null() { 0 } else { read::<i64>(regs, off.regs_arg0).unwrap_or(0) }
    }
}

/// Per process, the target thread's run time when a SIGCONT last resumed it.
#[map]
pub(crate) static RESUMES: LruHashMap<u32, u64> = LruHashMap::with_max_entries(1024, 0);

/// Whether this SIGCONT resumed the target. prepare_signal() sets SIGNAL_CLD_CONTINUED (or
/// _STOPPED, for a stop it cut short) before the tracepoint, and the target clears it only
/// when it next runs: a second SIGCONT before then finds it still set, though there was
/// nothing left to resume. Stopping again takes running (each thread stops itself), so a
/// SIGCONT resumed something only if the target ran since the last one that did.
#[inline(always)]
pub(crate) unsafe fn resumed(e: *mut SignalEvent, target: *const u8, off: &KernelOffsets) {
    unsafe {
        let tgid = (*e).target_pid;
        let runtime = if off.task_runtime == 0 { 0 } else { read::<u64>(target, off.task_runtime).unwrap_or(0) };
        if runtime != 0 && RESUMES.get(&tgid).is_some_and(|&r| r == runtime) {
            return;
        }
        let _ = RESUMES.insert(&tgid, &runtime, 0);
        (*e).flags |= FLAG_TARGET_RESUMED;
    }
}

/// The syscall the sender is executing and its first argument, from its saved user
/// registers: a task inside kill(2) and friends sent the signal itself; one inside write(2)
/// got SIGPIPE from the kernel, though both arrive as SI_USER from the task to itself.
#[inline(always)]
pub(crate) unsafe fn current_syscall(off: &KernelOffsets) -> (i32, i64) {
    // A constant from the frozen read-only global: on kernels without bpf_task_pt_regs the
    // verifier prunes the call below as dead code.
    if off.regs_syscall_size == 0 {
        return (SYSCALL_UNKNOWN, 0);
    }
    unsafe {
        let task = generated::bpf_get_current_task_btf();
        let regs = generated::bpf_task_pt_regs(task) as *const u8;
        if regs.is_null() {
            return (SYSCALL_UNKNOWN, 0);
        }
        let nr = if off.regs_syscall_size == 8 {
            read::<i64>(regs, off.regs_syscall).map_or(SYSCALL_UNKNOWN, |n| n as i32)
        } else {
            read::<i32>(regs, off.regs_syscall).unwrap_or(SYSCALL_UNKNOWN)
        };
        let arg0 = if off.regs_arg0 == 0 { 0 } else { read::<i64>(regs, off.regs_arg0).unwrap_or(0) };
        (nr, arg0)
    }
}
