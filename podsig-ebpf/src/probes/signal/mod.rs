//! `signal_generate`: who sent a signal to a watched process, captured at signal time.
//!
//! Hooks `signal_generate` (BTF-typed, else raw), whose arguments are the tracepoint's
//! `TP_PROTO(int sig, struct kernel_siginfo *info, struct task_struct *task, int group,
//! int result)`: the target's `task_struct` is at hand, so the filter is one read of
//! `task->tgid` and a bitmap test (a hash lookup for forks followed in the kernel), and
//! nothing else runs for signals nobody watches.
//! Everything about the sender (identity, argv, ancestry) is read here because the sender —
//! `kill`, `pkill`, `runc`, `sh -c` — has usually exited before userspace could look.
//!
//! Struct offsets come from userspace (read from the running kernel's BTF) in `OFFSETS`.
//!
//! `fold` counts a storm's identical signals, `context` tells what the CPU was doing,
//! `record` fills a record's head, `sender` its detail (argv, ancestry), `exe` each
//! ancestor's executable.

mod context;
mod exe;
mod fold;
mod record;
mod sender;

use core::ptr;

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_get_smp_processor_id,
        bpf_ktime_get_boot_ns,
    },
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::PerCpuArray,
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
};
use podsig_common::{
    COMM_LEN, CONTEXT_HARDIRQ, CONTEXT_NMI, CONTEXT_SOFTIRQ, EVENT_FOLD, EVENT_SIGNAL, FLAG_NO_BTF, FLAG_NO_SIGINFO,
    FLAG_SENDER_REPEAT, FoldEvent, FoldState, KernelOffsets, SYSCALL_UNKNOWN, SignalEvent, SignalFull, TARGET_FLAGS,
    TARGET_SIGNALLED,
};

pub(crate) use self::sender::{podsig_detail_bounded, podsig_detail_loop};
use self::{
    context::cpu_context,
    fold::{FOLD, RunKey, end_run, fold_one, same_run, start_run},
    record::{current_arg0, podsig_fill_head, podsig_learn_sender, podsig_learn_target},
};
use crate::{
    emit::{Wake, bytes_of, count_lost, emit_signal},
    filter::{TARGET_BITS, TARGETS, arm_exit, signal_wanted},
    globals::{CONFIG, OFFSETS, config, offsets, tp_format},
    kernel::{
        read,
        task::{current_task, task_u64},
    },
    transport::output,
};

pub(crate) const SI_USER: i32 = 0;
pub(crate) const SI_KERNEL: i32 = 0x80;
/// `info` values that are markers, not pointers (SEND_SIG_NOINFO, SEND_SIG_PRIV).
pub(crate) const SEND_SIG_NOINFO: u64 = 0;
pub(crate) const SEND_SIG_PRIV: u64 = 1;

pub(crate) const SIGKILL: i32 = 9;
pub(crate) const SIGCONT: i32 = 18;

/// Per CPU: what the last hit read about its sender and target that does not change while
/// they live, so a storm's records are filled from here instead of ~30 pointer reads, and
/// when the sender's detail last went out.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct HitCache {
    pub(crate) pid_tgid: u64,
    /// `task_struct::mm`: an exec replaces it, and with it argv.
    pub(crate) mm: u64,
    pub(crate) sender_ns: u64,
    /// When this CPU last sent the sender's argv and ancestry; 0: not since learning it.
    pub(crate) detail_ns: u64,
    pub(crate) start_ns: u64,
    pub(crate) sender_ns_pid: u32,
    pub(crate) sender_ns_tid: u32,
    pub(crate) sender_pidns: u32,
    pub(crate) sender_ppid: u32,
    pub(crate) sender_loginuid: u32,
    pub(crate) sender_sessionid: u32,
    /// The target's `task_struct`, with its tgid (read on every hit by the filter).
    pub(crate) target: u64,
    pub(crate) target_ns: u64,
    pub(crate) target_tgid: u32,
    pub(crate) target_tid: u32,
    pub(crate) target_ns_pid: u32,
    pub(crate) target_ns_tid: u32,
    pub(crate) target_pidns: u32,
    /// The context `cpu_context` found, read back from here (see there).
    pub(crate) context: u32,
    /// This CPU's preempt count (per-CPU kernels): found once, then read on every hit.
    pub(crate) preempt_addr: u64,
    /// The saved syscall registers (`pt_regs`) of the sender thread `regs_task` (its
    /// `task_struct`) with `regs_pid_tgid`: see `current_arg0`.
    pub(crate) regs: u64,
    pub(crate) regs_task: u64,
    pub(crate) regs_pid_tgid: u64,
}

#[map]
pub(crate) static HIT_CACHE: PerCpuArray<HitCache> = PerCpuArray::with_max_entries(1, 0);

/// How long cached fields are trusted: a parent that dies reparents the sender, and a
/// multi-threaded exec can swap pids; a second bounds how long a report could lag that.
pub(crate) const CACHE_NS: u64 = 1_000_000_000;

/// Where a signal record is assembled before it is copied out, per CPU: slot `TASK_SLOT`
/// in task context, `INTERRUPT_SLOT` for a signal raised in an interrupt, which may land on
/// this CPU while a program in task context is half-way through its record (the request
/// hooks borrow the task slot's detail too).
#[map]
pub(crate) static RECORD: PerCpuArray<SignalFull> = PerCpuArray::with_max_entries(2, 0);
pub(crate) const TASK_SLOT: u32 = 0;
pub(crate) const INTERRUPT_SLOT: u32 = 1;

// The hook, in four builds: BTF-typed or raw tracepoint, times bpf_loop (5.17+) or a
// bounded loop. The BTF-typed tracepoint (5.5+) hands over `task` as a typed pointer the
// program may load from directly; the raw one only as a number, read through
// bpf_probe_read_kernel, a helper call that was a third of what the miss path (every signal
// nobody watches) added above an empty program. bpf_loop walks the ancestry in a callback
// the verifier checks once, which is what leaves room for each ancestor's executable.
//
// The rule for typed arguments: a newer verifier may type any tracepoint argument more
// strictly than the kernel that was current when a build was written (6.13+ types an
// argument the tracepoint may pass as NULL maybe-NULL, and one that may carry a small
// special value a scalar: `info` here, which can be SEND_SIG_NOINFO or SEND_SIG_PRIV). So
// only `task`, which signal_generate never passes as NULL, is loaded from directly, and only
// after a NULL test (what a maybe-NULL pointer needs); `info` is a number, tested for the
// markers, and its fields are read with bpf_probe_read_kernel in every build. Should a
// kernel still refuse the typed build, userspace loads the raw build with the same walk:
// it reports the same records, at a helper read more per unwatched signal.

/// BTF-typed tracepoint, ancestry with bpf_loop (5.17+).
#[btf_tracepoint(function = "signal_generate")]
pub fn signal_generate(ctx: BtfTracePointContext) -> i32 {
    let args = [ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3), ctx.arg(4)];
    on_signal::<_, true, true>(&ctx, args)
}

/// BTF-typed tracepoint, ancestry with a bounded loop (5.5 to 5.16).
#[btf_tracepoint(function = "signal_generate")]
pub fn signal_generate_bounded(ctx: BtfTracePointContext) -> i32 {
    let args = [ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3), ctx.arg(4)];
    on_signal::<_, false, true>(&ctx, args)
}

/// Raw tracepoint, ancestry with bpf_loop: a 5.17+ kernel that refuses the typed build.
#[raw_tracepoint(tracepoint = "signal_generate")]
pub fn signal_generate_raw_loop(ctx: RawTracePointContext) -> i32 {
    let args = [ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3), ctx.arg(4)];
    on_signal::<_, true, false>(&ctx, args)
}

/// Raw tracepoint, ancestry with a bounded loop: wherever neither BTF-typed tracepoints
/// nor bpf_loop are there.
#[raw_tracepoint(tracepoint = "signal_generate")]
pub fn signal_generate_raw(ctx: RawTracePointContext) -> i32 {
    let args = [ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3), ctx.arg(4)];
    on_signal::<_, false, false>(&ctx, args)
}

/// A build every verifier refuses, as a newer kernel refused the typed build that loaded
/// from `info`: a load through an argument typed as a number (`sig`). Userspace loads it in
/// the typed build's place when `PODSIG_FORCE_FALLBACK=refuse` asks, so the tests prove the
/// path a refused build takes (the one-line warning, `doctor`, the records' `lacks`).
#[btf_tracepoint(function = "signal_generate")]
pub fn signal_generate_refused(ctx: BtfTracePointContext) -> i32 {
    let sig: u64 = ctx.arg(0);
    // SAFETY: never runs: the verifier refuses this load.
    unsafe { ptr::read_volatile(sig as *const u32) as i32 }
}

/// `args`: the tracepoint's (sig, info, task, group, result). `DIRECT`: `task` may be loaded
/// from (a BTF-typed pointer), and so may `current` where the kernel hands it out typed
/// (`KernelOffsets::task_btf`).
///
/// Long: the miss path (every signal nobody watches) and the fold test must be one inlined
/// body with the tracepoint's arguments in registers; a helper function here would be a
/// BPF-to-BPF call on the path whose cost the bench measures against an empty program.
#[inline(always)]
pub(crate) fn on_signal<C: EbpfContext, const LOOP: bool, const DIRECT: bool>(ctx: &C, args: [u64; 5]) -> i32 {
    let [sig, info, target, group, result] = args;
    let target = target as *const u8;
    let sig = sig as i32;
    // The signal set first: in node mode (every process watched) it is the whole filter,
    // and a storm of a signal outside it (SIGUSR1, SIGCHLD) costs one load and a compare.
    let mask = unsafe { ptr::read_volatile(&raw const CONFIG.signal_mask) };
    if !(1..=64).contains(&sig) || mask & (1u64 << ((sig - 1) & 63)) == 0 {
        return 0;
    }
    // The miss path, taken by every signal nobody watches: load only the globals it needs,
    // not the whole offset and config structs.
    let tgid_off = unsafe { ptr::read_volatile(&raw const OFFSETS.task_tgid) };
    let tgid = if DIRECT {
        // A kernel that types `task` maybe-NULL refuses the load below without this test.
        if target.is_null() {
            return 0;
        }
        // SAFETY: a BTF-typed pointer: the verifier checks the access against the type and
        // the JIT makes a fault read as zero.
        unsafe { ptr::read_volatile(target.add(tgid_off as usize) as *const u32) }
    } else {
        let Some(tgid) = (unsafe { read::<u32>(target, tgid_off) }) else {
            return 0;
        };
        tgid
    };
    let watch_all = unsafe { ptr::read_volatile(&raw const CONFIG.watch_all) };
    if watch_all == 0 {
        match TARGET_BITS.get(tgid >> 6) {
            // Userspace sets a bit only for a pid it put in TARGETS, and clears it first.
            Some(w) if w & (1u64 << (tgid & 63)) != 0 => {}
            Some(_) if unsafe { ptr::read_volatile(&raw const CONFIG.follow_forks) } == 0 => return 0,
            // Forks followed in the kernel, or a pid beyond the bitmap: only the hash knows.
            _ => {
                if unsafe { TARGETS.get(&tgid).is_none() } {
                    return 0;
                }
            }
        }
    } else {
        // exit_mask is within the signals reported (userspace makes it so).
        arm_exit(tgid, sig, unsafe { ptr::read_volatile(&raw const CONFIG.exit_mask) });
    }
    // A hit. A storm from one sender is mostly the same signal again, counted in place: only
    // what tells signals apart is read before that test (direct loads in the typed builds,
    // helper reads for siginfo's code and errno, the CPU's context and the syscall's first
    // argument), everything else only for a record.
    let off = offsets();
    let Some(c) = HIT_CACHE.get_ptr_mut(0) else {
        return 0;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let (current, typed) = current_task::<DIRECT>(off);
    let mm = unsafe { task_u64(current, typed, off.task_mm) };
    let (code, errno, info_flags) = unsafe { siginfo(info, off) };
    let context = unsafe { cpu_context(c, current, off) };
    let arg0 = unsafe { current_arg0(c, current, pid_tgid, off) };
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let key = RunKey {
        pid_tgid,
        mm,
        target: target as u64,
        sig,
        code,
        errno,
        group: group as i32,
        result: result as i32,
        context,
        arg0,
    };
    // A SIGCONT is never folded: what it does (resume a stopped process, or nothing) is the
    // target's state at that moment, which the run's key does not hold.
    let fold = if unsafe { ptr::read_volatile(&raw const CONFIG.fold) } != 0 && sig != SIGCONT {
        FOLD.get_ptr_mut(0)
    } else {
        None
    };
    if let Some(f) = fold
        && unsafe { same_run(f, &key) }
    {
        unsafe { fold_one(f, now) };
        return 0;
    }
    unsafe { report::<C, LOOP>(ctx, c, fold, &key, info_flags, now, tgid) };
    0
}

/// Reports a signal that does not continue this CPU's run: the run's end (its final count)
/// first, then this signal's record, which starts the next run. Every record is assembled
/// in `RECORD` by the subprograms below and copied out as far as it goes (the head, or the
/// head and the sender's detail).
///
/// Long: the order is the contract with the reader (the run's end before the record that
/// starts the next, a record's head filled before its detail); the parts that need not be
/// inline are already the global subprograms it calls (`podsig_learn_*`, `podsig_fill_head`,
/// `podsig_detail_*`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn report<C: EbpfContext, const LOOP: bool>(
    ctx: &C,
    c: *mut HitCache,
    fold: Option<*mut FoldState>,
    k: &RunKey,
    info_flags: u32,
    now: u64,
    tgid: u32,
) {
    let cfg = config();
    unsafe {
        if (*c).pid_tgid != k.pid_tgid || (*c).mm != k.mm || now.wrapping_sub((*c).sender_ns) >= CACHE_NS {
            podsig_learn_sender(now);
        }
        if (*c).target != k.target || (*c).target_tgid != tgid || now.wrapping_sub((*c).target_ns) >= CACHE_NS {
            // Handed over through the cache: a typed pointer cannot be a global function's
            // argument, and a load from a map is a number to the verifier.
            (*c).target = k.target;
            podsig_learn_target(tgid, now);
        }
        if let Some(f) = fold
            && (*f).active != 0
        {
            if (*f).count != 0 {
                let ended = FoldEvent {
                    kind: EVENT_FOLD,
                    cpu: bpf_get_smp_processor_id(),
                    seq: (*f).seq,
                    count: (*f).count,
                    last_ns: (*f).last_ns,
                };
                if !output(ctx, bytes_of(&ended), Wake::Batched, &cfg) {
                    // No room: this signal is the one lost, and the run goes on, its count exact.
                    count_lost();
                    return;
                }
            }
            // Over (its count is out): should this signal's record not fit, the next signal
            // starts a run of its own rather than one the reader no longer follows.
            end_run(f);
        }
        let interrupt = matches!(k.context, CONTEXT_SOFTIRQ | CONTEXT_HARDIRQ | CONTEXT_NMI);
        let slot = if interrupt { INTERRUPT_SLOT } else { TASK_SLOT };
        let Some(e) = RECORD.get_ptr_mut(slot) else { return };
        let h = &raw mut (*e).head;
        let seq = match fold {
            // Never 0 (that says "not folded"), even for CPU 0's first run.
            Some(f) => ((bpf_get_smp_processor_id() as u64) << 48) | (((*f).next + 1) & 0xffff_ffff_ffff),
            None => 0,
        };
        (*h).kind = EVENT_SIGNAL;
        (*h).sig = k.sig;
        (*h).boot_ns = now;
        (*h).code = k.code;
        (*h).errno = k.errno;
        (*h).group = k.group;
        (*h).result = k.result;
        (*h).context = k.context;
        (*h).flags = info_flags;
        (*h).seq = seq;
        (*h).sender_pid = (k.pid_tgid >> 32) as u32;
        (*h).sender_tid = k.pid_tgid as u32;
        (*h).target_pid = tgid;
        podsig_fill_head(slot);
        // In an interrupt `current` is whatever task it landed on: it sent nothing, so none
        // of its argv or ancestry goes out (userspace names it only as the interrupted task).
        // Otherwise the sender's argv and ancestry go out once per window; the records
        // between leave them out.
        let window = cfg.repeat_window_ms as u64 * 1_000_000;
        let detail = !interrupt && ((*c).detail_ns == 0 || now.wrapping_sub((*c).detail_ns) >= window);
        let size = if detail {
            if LOOP {
                podsig_detail_loop();
            } else {
                podsig_detail_bounded();
            }
            size_of::<SignalFull>()
        } else {
            if !interrupt {
                (*h).flags |= FLAG_SENDER_REPEAT;
            }
            size_of::<SignalEvent>()
        };
        if !output(ctx, core::slice::from_raw_parts(e as *const u8, size), Wake::Batched, &cfg) {
            count_lost();
            return;
        }
        // Only a record that is in the buffer can stand for the next ones.
        if detail && window != 0 {
            (*c).detail_ns = now;
        }
        if let Some(f) = fold {
            start_run(f, k, seq, now);
        }
    }
}

/// si_code, si_errno and flags from the tracepoint's `info`, which may be a marker rather
/// than a pointer (SEND_SIG_NOINFO, SEND_SIG_PRIV): a number in every build, its fields read
/// with bpf_probe_read_kernel (see the rule above the builds).
#[inline(always)]
pub(crate) unsafe fn siginfo(info: u64, off: &KernelOffsets) -> (i32, i32, u32) {
    match info {
        SEND_SIG_NOINFO => (SI_USER, 0, FLAG_NO_SIGINFO),
        SEND_SIG_PRIV => (SI_KERNEL, 0, FLAG_NO_SIGINFO),
        // Read on every hit, folded ones included: one helper call for both where si_code
        // follows si_errno (every kernel's layout so far), else one each.
        _ if off.siginfo_code == off.siginfo_errno + 4 => unsafe {
            let both = read::<u64>(info as *const u8, off.siginfo_errno).unwrap_or(0);
            ((both >> 32) as i32, both as i32, 0)
        },
        _ => unsafe {
            let info = info as *const u8;
            (read(info, off.siginfo_code).unwrap_or(0), read(info, off.siginfo_errno).unwrap_or(0), 0)
        },
    }
}

/// Does nothing: `cargo xtask bench` attaches it to measure the cost floor of the hook.
#[raw_tracepoint(tracepoint = "signal_generate")]
pub fn signal_generate_empty(_ctx: RawTracePointContext) -> i32 {
    0
}

// Fallback for kernels without BTF: the classic tracepoints, whose record layouts come from
// tracefs `format` files. The target is known only by tid and comm; the sender only through
// the `current` helpers. Userspace completes the report from /proc.

#[tracepoint(category = "signal", name = "signal_generate")]
pub fn signal_generate_tp(ctx: TracePointContext) -> i32 {
    let f = tp_format();
    let cfg = config();
    let Ok(tid) = (unsafe { ctx.read_at::<i32>(f.sg_pid as usize) }) else {
        return 0;
    };
    let tid = tid as u32;
    let tgid = match unsafe { TARGETS.get(&tid) } {
        Some(&v) if v & TARGET_SIGNALLED == 0 => v & !TARGET_FLAGS,
        // Node mode's own entry says nothing of the tgid: userspace resolves it.
        Some(_) => 0,
        None if cfg.watch_all != 0 => 0,
        None => return 0,
    };
    let sig = unsafe { ctx.read_at::<i32>(f.sg_sig as usize) }.unwrap_or(0);
    if !signal_wanted(sig, &cfg) {
        return 0;
    }
    if cfg.watch_all != 0 {
        // Only the thread is known here; kill(2) reaches a process through its leader.
        arm_exit(tid, sig, cfg.exit_mask);
    }
    emit_signal::<SignalEvent, _>(&ctx, &cfg, |e| unsafe {
        ptr::write_bytes(e, 0, 1);
        (*e).kind = EVENT_SIGNAL;
        (*e).sig = sig;
        (*e).boot_ns = bpf_ktime_get_boot_ns();
        (*e).errno = ctx.read_at::<i32>(f.sg_errno as usize).unwrap_or(0);
        (*e).code = ctx.read_at::<i32>(f.sg_code as usize).unwrap_or(0);
        (*e).group = ctx.read_at::<i32>(f.sg_group as usize).unwrap_or(0);
        (*e).result = ctx.read_at::<i32>(f.sg_result as usize).unwrap_or(0);
        (*e).target_pid = tgid;
        (*e).target_tid = tid;
        (*e).target_comm = ctx.read_at::<[u8; COMM_LEN]>(f.sg_comm as usize).unwrap_or([0; COMM_LEN]);
        let pid_tgid = bpf_get_current_pid_tgid();
        (*e).sender_pid = (pid_tgid >> 32) as u32;
        (*e).sender_tid = pid_tgid as u32;
        (*e).sender_uid = bpf_get_current_uid_gid() as u32;
        (*e).sender_comm = bpf_get_current_comm().unwrap_or([0; COMM_LEN]);
        (*e).flags = FLAG_NO_BTF;
        (*e).syscall_nr = SYSCALL_UNKNOWN;
    });
    0
}
