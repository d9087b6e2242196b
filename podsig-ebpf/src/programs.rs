// Kernel side of podsig: who sent a signal to a watched process, captured at signal time.
//
// Hooks the raw `signal_generate` tracepoint, whose arguments are the tracepoint's
// `TP_PROTO(int sig, struct kernel_siginfo *info, struct task_struct *task, int group,
// int result)`: the target's `task_struct` is at hand, so the filter is one read of
// `task->tgid` and one hash lookup, and nothing else runs for signals nobody watches.
// Everything about the sender (identity, argv, ancestry) is read here because the sender —
// `kill`, `pkill`, `runc`, `sh -c` — has usually exited before userspace could look.
//
// Struct offsets come from userspace (read from the running kernel's BTF) in `OFFSETS`.

use core::{ffi::c_void, ptr};

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task,
        bpf_get_current_uid_gid, bpf_get_smp_processor_id, bpf_ktime_get_boot_ns, generated,
    },
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::{Array, HashMap, PerCpuArray},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
    EbpfContext,
};
use podsig_common::{
    ANCESTOR_KTHREAD, ARGV_HEAD, ARGV_LEN, Ancestor, COMM_LEN, CONTEXT_HARDIRQ, CONTEXT_NMI, CONTEXT_SOFTIRQ,
    CONTEXT_TASK, CONTEXT_UNKNOWN, DISPOSITION_DEFAULT, DISPOSITION_HANDLER, DISPOSITION_IGNORE,
    DISPOSITION_UNKNOWN, EVENT_EXIT, EVENT_FOLD, EVENT_OOM, EVENT_SIGNAL, FoldEvent, FoldState, EXE_INTERNAL_MOUNT, EXE_OTHER_MNT_NS,
    EXE_PATH_COMPLETE, EXE_PATH_LEN, EXE_PRESENT, EXE_UNLINKED, EXIT_CODE_UNKNOWN, ExitEvent,
    FLAG_ANCESTRY_COMPLETE, FLAG_ARGV_TRUNCATED, FLAG_KTHREAD, FLAG_NO_BTF, FLAG_NO_SIGINFO,
    FLAG_SENDER_EXITING, FLAG_SENDER_REPEAT, FLAG_TARGET_BLOCKED, FLAG_TARGET_UNKILLABLE,
    FilterConfig, KernelOffsets, MAX_ANCESTRY, OomEvent, OomFormat, PREEMPT_PERCPU_VIA_RQ,
    PREEMPT_TASK_FIELD, SYSCALL_UNKNOWN, SenderDetail, SignalEvent, SignalFull,
    TARGET_BITMAP_WORDS, TARGET_CHILD, TARGET_FLAGS, TARGET_SIGNALLED, TracepointFormat,
};

const SI_USER: i32 = 0;
const SI_KERNEL: i32 = 0x80;
/// bpf_map_update_elem: only if the key is not there yet.
const BPF_NOEXIST: u64 = 1;
/// `info` values that are markers, not pointers (SEND_SIG_NOINFO, SEND_SIG_PRIV).
const SEND_SIG_NOINFO: u64 = 0;
const SEND_SIG_PRIV: u64 = 1;

#[unsafe(no_mangle)]
// SAFETY: plain integers; the loader rewrites the zeros with the running kernel's offsets.
static OFFSETS: KernelOffsets = unsafe { core::mem::zeroed() };
/// include/linux/sched.h; unchanged since 2.6.27.
const PF_KTHREAD: u32 = 0x0020_0000;
const PF_EXITING: u32 = 0x0000_0004;
/// include/linux/sched/signal.h: init of a pid namespace (or the system), since 2.6.26.
const SIGNAL_UNKILLABLE: u32 = 0x0000_0040;
/// include/linux/preempt.h: the softirq-serving bit and the hardirq and NMI counts (their
/// positions have not moved since 2.6; NMI_BITS grew from 1 to 4 above bit 20 in 5.x).
const SOFTIRQ_OFFSET: u32 = 1 << 8;
const HARDIRQ_MASK: u32 = 0xf << 16;
const NMI_MASK: u32 = 0xf << 20;

#[unsafe(no_mangle)]
static CONFIG: FilterConfig = FilterConfig {
    watch_all: 0,
    wakeup_bytes: 0,
    signal_mask: 0,
    follow_forks: 0,
    repeat_window_ms: 0,
    fold: 0,
    _pad: 0,
    exit_mask: 0,
};

#[unsafe(no_mangle)]
static TP_FORMAT: TracepointFormat = TracepointFormat {
    sg_sig: 0,
    sg_errno: 0,
    sg_code: 0,
    sg_comm: 0,
    sg_pid: 0,
    sg_group: 0,
    sg_result: 0,
    exit_comm: 0,
    exit_pid: 0,
    exit_group_dead: 0,
    _pad: 0,
};

#[unsafe(no_mangle)]
static OOM_FORMAT: OomFormat = OomFormat {
    pid: 0,
    total_vm: 0,
    anon_rss: 0,
    file_rss: 0,
    shmem_rss: 0,
    pgtables: 0,
    oom_score_adj: 0,
    _pad: 0,
};

/// Watched processes, kept current by userspace: tgid → tgid with BTF; in fallback mode,
/// where only the target's tid is known, every tid of a watched process → its tgid.
#[map]
static TARGETS: HashMap<u32, u32> = HashMap::with_max_entries(16384, 0);

/// One bit per pid userspace put in TARGETS (BTF mode), written by userspace only: the
/// miss path tests a bit (an array lookup the verifier inlines) instead of hashing. Forks
/// followed in the kernel set no bit: with follow_forks the hash is always asked.
#[map]
static TARGET_BITS: Array<u64> = Array::with_max_entries(TARGET_BITMAP_WORDS, 0);

/// Per CPU: what the last hit read about its sender and target that does not change while
/// they live, so a storm's records are filled from here instead of ~30 pointer reads, and
/// when the sender's detail last went out.
#[repr(C)]
#[derive(Clone, Copy)]
struct HitCache {
    pid_tgid: u64,
    /// `task_struct::mm`: an exec replaces it, and with it argv.
    mm: u64,
    sender_ns: u64,
    /// When this CPU last sent the sender's argv and ancestry; 0: not since learning it.
    detail_ns: u64,
    start_ns: u64,
    sender_ns_pid: u32,
    sender_ns_tid: u32,
    sender_pidns: u32,
    sender_ppid: u32,
    /// The target's `task_struct`, with its tgid (read on every hit by the filter).
    target: u64,
    target_ns: u64,
    target_tgid: u32,
    target_tid: u32,
    target_ns_pid: u32,
    target_ns_tid: u32,
    target_pidns: u32,
    /// The context `cpu_context` found, read back from here (see there).
    context: u32,
    /// This CPU's preempt count (per-CPU kernels): found once, then read on every hit.
    preempt_addr: u64,
}

#[map]
static HIT_CACHE: PerCpuArray<HitCache> = PerCpuArray::with_max_entries(1, 0);

/// How long cached fields are trusted: a parent that dies reparents the sender, and a
/// multi-threaded exec can swap pids; a second bounds how long a report could lag that.
const CACHE_NS: u64 = 1_000_000_000;

/// Per CPU, the run of identical signals being counted instead of reported one by one.
#[map]
static FOLD: PerCpuArray<FoldState> = PerCpuArray::with_max_entries(1, 0);

/// Records dropped because the ring buffer was full; userspace sums the CPUs and reports.
#[map]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// The offsets, by reference: a copy on the stack is a quarter of the program's 512 bytes.
#[inline(always)]
fn offsets() -> &'static KernelOffsets {
    // Laundered so the compiler cannot fold the zero initialiser (the loader rewrites it);
    // the verifier still sees loads from the frozen global, so they stay constants to it.
    unsafe { &*core::hint::black_box(&raw const OFFSETS) }
}

#[inline(always)]
fn config() -> FilterConfig {
    unsafe { ptr::read_volatile(&CONFIG) }
}

/// Reads a `T` at `base + off` from kernel memory.
#[inline(always)]
unsafe fn read<T: Copy>(base: *const u8, off: u32) -> Option<T> {
    unsafe { aya_ebpf::helpers::bpf_probe_read_kernel(base.add(off as usize) as *const T).ok() }
}

const SIGKILL: i32 = 9;

/// task->cgroups->subsys[memory_cgrp_id]->cgroup->kn->id: the inode of the task's
/// memory cgroup directory; 0 when any link is missing.
#[inline(always)]
unsafe fn memcg_ino(task: *const u8, off: &KernelOffsets) -> u64 {
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
unsafe fn read_comm(dst: *mut [u8; COMM_LEN], task: *const u8, off: &KernelOffsets) {
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
unsafe fn zero_comm(dst: *mut [u8; COMM_LEN]) {
    unsafe {
        let w = dst as *mut [u32; 2];
        ptr::write_volatile(w, [0; 2]);
        ptr::write_volatile(w.add(1), [0; 2]);
    }
}

/// The task's pid number as seen from its own (innermost) pid namespace.
#[inline(always)]
unsafe fn ns_nr(task: *const u8, off: &KernelOffsets) -> u32 {
    unsafe { ns_info(task, off).0 }
}

/// (pid number in the innermost pid namespace, that namespace's inode number).
#[inline(always)]
unsafe fn ns_info(task: *const u8, off: &KernelOffsets) -> (u32, u32) {
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

#[inline(always)]
fn watched(tgid: u32, cfg: &FilterConfig) -> bool {
    cfg.watch_all != 0 || unsafe { TARGETS.get(&tgid).is_some() }
}

#[inline(always)]
fn count_lost() {
    if let Some(n) = LOST.get_ptr_mut(0) {
        unsafe { *n += 1 };
    }
}

/// When a record should wake the reader: at its own pace (a storm's records), or now (the
/// rare and final ones: exits, OOM marks).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wake {
    Batched,
    Now,
}

// The hook, in three builds. The BTF-typed tracepoint (5.5+) hands over `task` as a typed
// pointer the program may load from directly; the raw one only as a number, read through
// bpf_probe_read_kernel, a helper call that was a third of what the miss path (every
// signal nobody watches) added above an empty program. bpf_loop (5.17+) walks the ancestry
// in a callback the verifier checks once.

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

/// Raw tracepoint: wherever the typed one cannot load.
#[raw_tracepoint(tracepoint = "signal_generate")]
pub fn signal_generate_raw(ctx: RawTracePointContext) -> i32 {
    let args = [ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3), ctx.arg(4)];
    on_signal::<_, false, false>(&ctx, args)
}

/// `args`: the tracepoint's (sig, info, task, group, result). `DIRECT`: `task` and `info` may
/// be loaded from (BTF-typed pointers), and so may `current` where the kernel hands it out
/// typed (`KernelOffsets::task_btf`).
#[inline(always)]
fn on_signal<C: EbpfContext, const LOOP: bool, const DIRECT: bool>(ctx: &C, args: [u64; 5]) -> i32 {
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
    // one helper read for the CPU's context), everything else only for a record.
    let off = offsets();
    let Some(c) = HIT_CACHE.get_ptr_mut(0) else {
        return 0;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let (current, typed) = current_task::<DIRECT>(off);
    let mm = unsafe { task_u64(current, typed, off.task_mm) };
    let (code, errno, info_flags) = unsafe { siginfo::<DIRECT>(info, off) };
    let context = unsafe { cpu_context(c, current, off) };
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
    };
    let fold = if unsafe { ptr::read_volatile(&raw const CONFIG.fold) } != 0 { FOLD.get_ptr_mut(0) } else { None };
    if let Some(f) = fold
        && unsafe { same_run(f, &key) }
    {
        unsafe { fold_one(f, now) };
        return 0;
    }
    unsafe { report::<C, LOOP>(ctx, c, fold, &key, info_flags, now, tgid) };
    0
}

/// What makes signals identical: a run of them is counted, not reported one by one.
struct RunKey {
    pid_tgid: u64,
    mm: u64,
    target: u64,
    sig: i32,
    code: i32,
    errno: i32,
    group: i32,
    result: i32,
    context: u32,
}

/// `current`, and whether it is a BTF-typed pointer the program may load from.
#[inline(always)]
fn current_task<const DIRECT: bool>(off: &KernelOffsets) -> (*const u8, bool) {
    // `task_btf` is a constant from the frozen global: the verifier sees one branch only.
    if DIRECT && off.task_btf != 0 {
        (unsafe { generated::bpf_get_current_task_btf() } as *const u8, true)
    } else {
        (unsafe { bpf_get_current_task() } as *const u8, false)
    }
}

/// The 8-byte field at `at` of `task`: a load where the pointer is typed, else a helper read.
#[inline(always)]
unsafe fn task_u64(task: *const u8, typed: bool, at: u32) -> u64 {
    unsafe {
        if typed {
            ptr::read_volatile(task.add(at as usize) as *const u64)
        } else {
            read::<u64>(task, at).unwrap_or(0)
        }
    }
}

/// Reports a signal that does not continue this CPU's run: the run's end (its final count)
/// first, then this signal's record, which starts the next run. Every record is assembled
/// in `RECORD` by the subprograms below and copied out as far as it goes (the head, or the
/// head and the sender's detail).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn report<C: EbpfContext, const LOOP: bool>(
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
        let Some(e) = RECORD.get_ptr_mut(0) else { return };
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
        podsig_fill_head();
        // In an interrupt `current` is whatever task it landed on: it sent nothing, so none
        // of its argv or ancestry goes out (userspace names it only as the interrupted task).
        // Otherwise the sender's argv and ancestry go out once per window; the records
        // between leave them out.
        let interrupt = matches!(k.context, CONTEXT_SOFTIRQ | CONTEXT_HARDIRQ | CONTEXT_NMI);
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
            let leader = read::<*const u8>(current, off.task_group_leader).unwrap_or(ptr::null());
            let leader = if leader.is_null() { current } else { leader };
            (*c).pid_tgid = bpf_get_current_pid_tgid();
            (*c).mm = read::<u64>(current, off.task_mm).unwrap_or(0);
            (*c).sender_ns = now;
            (*c).detail_ns = 0;
            (*c).start_ns = read(leader, off.task_start_time).unwrap_or(0);
            let (ns_tid, pidns) = ns_info(current, off);
            (*c).sender_ns_tid = ns_tid;
            (*c).sender_pidns = pidns;
            (*c).sender_ns_pid = ns_nr(leader, off);
            (*c).sender_ppid = match read::<*const u8>(current, off.task_real_parent) {
                Some(parent) if !parent.is_null() => read(parent, off.task_tgid).unwrap_or(0),
                _ => 0,
            };
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
            (*c).target_tid = read(target, off.task_pid).unwrap_or(0);
            let (ns_tid, pidns) = ns_info(target, off);
            (*c).target_ns_tid = ns_tid;
            (*c).target_pidns = pidns;
            (*c).target_ns_pid = match read::<*const u8>(target, off.task_group_leader) {
                Some(leader) if !leader.is_null() => ns_nr(leader, off),
                _ => 0,
            };
        }
        0
    }
}

subprogram! {
    /// The rest of the record's head (the caller wrote the signal and who sent it where):
    /// the target's (the cache's `target`) and the sender's fields, mostly from the cache.
    fn podsig_fill_head() -> i32 {
        let off = offsets();
        let (Some(c), Some(e)) = (HIT_CACHE.get_ptr_mut(0), RECORD.get_ptr_mut(0)) else { return 0 };
        unsafe {
            let e = &raw mut (*e).head;
            let current = bpf_get_current_task() as *const u8;
            fill_signal(e, (*c).target as *const u8, &*c, current, off);
        }
        0
    }
}

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
fn detail<const LOOP: bool>() -> i32 {
    let off = offsets();
    let Some(e) = RECORD.get_ptr_mut(0) else { return 0 };
    unsafe {
        let current = bpf_get_current_task() as *const u8;
        let leader = read::<*const u8>(current, off.task_group_leader).unwrap_or(ptr::null());
        let leader = if leader.is_null() { current } else { leader };
        fill_detail::<LOOP>(&raw mut (*e).head, &raw mut (*e).detail, current, leader, off);
    }
    0
}

/// A wire record's bytes.
#[inline(always)]
fn bytes_of<T>(v: &T) -> &[u8] {
    unsafe { core::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }
}

/// Where a signal record is assembled before it is copied out, per CPU.
#[map]
static RECORD: PerCpuArray<SignalFull> = PerCpuArray::with_max_entries(1, 0);

/// si_code, si_errno and flags from the tracepoint's `info`, which may be a marker rather
/// than a pointer (SEND_SIG_NOINFO, SEND_SIG_PRIV); `DIRECT`: a BTF-typed pointer, loaded from.
#[inline(always)]
unsafe fn siginfo<const DIRECT: bool>(info: u64, off: &KernelOffsets) -> (i32, i32, u32) {
    match info {
        SEND_SIG_NOINFO => (SI_USER, 0, FLAG_NO_SIGINFO),
        SEND_SIG_PRIV => (SI_KERNEL, 0, FLAG_NO_SIGINFO),
        _ => unsafe {
            let info = info as *const u8;
            if DIRECT {
                (
                    ptr::read_volatile(info.add(off.siginfo_code as usize) as *const i32),
                    ptr::read_volatile(info.add(off.siginfo_errno as usize) as *const i32),
                    0,
                )
            } else {
                (read(info, off.siginfo_code).unwrap_or(0), read(info, off.siginfo_errno).unwrap_or(0), 0)
            }
        },
    }
}

/// The signal continues the CPU's current run.
#[inline(always)]
unsafe fn same_run(f: *const FoldState, k: &RunKey) -> bool {
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
    }
}

/// Counts one more signal of the run. `v_end` changes first and `v_start` last, so a reader
/// copying the struct in address order sees them differ whenever it raced a change.
#[inline(always)]
unsafe fn fold_one(f: *mut FoldState, now: u64) {
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
unsafe fn end_run(f: *mut FoldState) {
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
unsafe fn start_run(f: *mut FoldState, k: &RunKey, seq: u64, now: u64) {
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
        ptr::write_volatile(&raw mut (*f).seq, seq);
        ptr::write_volatile(&raw mut (*f).count, 0);
        ptr::write_volatile(&raw mut (*f).last_ns, now);
        ptr::write_volatile(&raw mut (*f).next, (*f).next + 1);
        ptr::write_volatile(&raw mut (*f).v_start, v + 1);
        ptr::write_volatile(&raw mut (*f).v_end, v + 1);
    }
}



/// What this CPU is doing: serving an interrupt (hard, soft, NMI) or running a task, from
/// the preempt count. `CONTEXT_UNKNOWN` where this kernel's layout does not say where it is.
#[inline(always)]
unsafe fn cpu_context(c: *mut HitCache, current: *const u8, off: &KernelOffsets) -> u32 {
    unsafe {
        let count = match off.preempt_source {
            PREEMPT_TASK_FIELD => read::<u32>(current, off.task_preempt_count),
            PREEMPT_PERCPU_VIA_RQ => {
                if (*c).preempt_addr == 0 {
                    (*c).preempt_addr = percpu_preempt_addr(current, off);
                }
                if (*c).preempt_addr == 0 { None } else { read::<u32>((*c).preempt_addr as *const u8, 0) }
            }
            _ => None,
        };
        let context = match count {
            None => CONTEXT_UNKNOWN,
            Some(count) if count & NMI_MASK != 0 => CONTEXT_NMI,
            Some(count) if count & HARDIRQ_MASK != 0 => CONTEXT_HARDIRQ,
            Some(count) if count & SOFTIRQ_OFFSET != 0 => CONTEXT_SOFTIRQ,
            Some(_) => CONTEXT_TASK,
        };
        // Through memory: returned as it is, each of the five constants would be a path of
        // its own through the rest of the program for the verifier; a load from a map is one
        // number it does not know, and the paths meet here.
        ptr::write_volatile(&raw mut (*c).context, context);
        ptr::read_volatile(&raw const (*c).context)
    }
}

/// This CPU's copy of the per-CPU preempt count: `current` runs on this CPU, so its
/// runqueue (`se.cfs_rq->rq`) is this CPU's copy of `runqueues`, and every per-CPU variable
/// sits at the same distance from it in each CPU's copy of the section. Checked against
/// `rq->cpu` before it is trusted; 0 when it cannot be found.
#[inline(always)]
unsafe fn percpu_preempt_addr(current: *const u8, off: &KernelOffsets) -> u64 {
    unsafe {
        let cfs_rq = read::<*const u8>(current, off.task_se_cfs_rq).unwrap_or(ptr::null());
        if cfs_rq.is_null() {
            return 0;
        }
        let rq = read::<*const u8>(cfs_rq, off.cfs_rq_rq).unwrap_or(ptr::null());
        if rq.is_null() {
            return 0;
        }
        let cpu = bpf_get_smp_processor_id();
        if read::<u32>(rq, off.rq_cpu) != Some(cpu) {
            return 0;
        }
        (rq as u64).wrapping_add(off.percpu_preempt_delta as i64 as u64)
    }
}

/// The target's disposition for `sig`, whether its thread blocks it, and whether it is a pid
/// namespace's init: what decides if the kernel drops the signal, read as it is generated.
#[inline(always)]
unsafe fn target_state(e: *mut SignalEvent, target: *const u8, sig: i32, off: &KernelOffsets) {
    unsafe {
        (*e).target_disposition = DISPOSITION_UNKNOWN;
        let idx = ((sig - 1) as u32) & 63;
        // Offsets of 0: fields this kernel's BTF did not have.
        let sighand = if off.task_sighand == 0 || off.k_sigaction_size == 0 {
            ptr::null()
        } else {
            read::<*const u8>(target, off.task_sighand).unwrap_or(ptr::null())
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
        if off.task_blocked != 0 && read::<u64>(target, off.task_blocked).unwrap_or(0) & (1u64 << idx) != 0 {
            (*e).flags |= FLAG_TARGET_BLOCKED;
        }
        let signal = read::<*const u8>(target, off.task_signal).unwrap_or(ptr::null());
        if !signal.is_null()
            && off.signal_flags != 0
            && read::<u32>(signal, off.signal_flags).unwrap_or(0) & SIGNAL_UNKILLABLE != 0
        {
            (*e).flags |= FLAG_TARGET_UNKILLABLE;
        }
    }
}

/// Node mode: a process that got a terminating signal is watched for its exit, so a stop
/// that ends without a SIGKILL (a handled SIGTERM, then exit) is told to the end. An entry
/// already there (the user's own target) is left as it is; a full map only loses the exit.
#[inline(always)]
fn arm_exit(key: u32, sig: i32, exit_mask: u64) {
    if (1..=64).contains(&sig) && exit_mask & (1u64 << (sig - 1)) != 0 {
        let _ = TARGETS.insert(&key, &(key | TARGET_SIGNALLED), BPF_NOEXIST);
    }
}

#[inline(always)]
fn signal_wanted(sig: i32, cfg: &FilterConfig) -> bool {
    (1..=64).contains(&sig) && cfg.signal_mask & (1u64 << (sig - 1)) != 0
}

/// Reserves a signal record, has `fill` write it in place, submits it at the storm's pace;
/// a full buffer is counted, never silent. False when it was.
#[inline(always)]
fn emit_signal<T: 'static, C: EbpfContext>(ctx: &C, cfg: &FilterConfig, fill: impl FnOnce(*mut T)) -> bool {
    let Some(mut entry) = reserve::<T>() else {
        count_lost();
        return false;
    };
    fill(entry.ptr());
    entry.submit(ctx, Wake::Batched, cfg);
    true
}

/// A signal record's head beyond the signal and its sender's and target's pids: the target,
/// the sender (mostly from the cache), the syscall.
#[inline(always)]
unsafe fn fill_signal(e: *mut SignalEvent, target: *const u8, c: &HitCache, current: *const u8, off: &KernelOffsets) {
    unsafe {
        let sig = (*e).sig;
        (*e).target_tid = c.target_tid;
        (*e).target_ns_tid = c.target_ns_tid;
        (*e).target_pidns = c.target_pidns;
        (*e).target_ns_pid = c.target_ns_pid;
        read_comm(&raw mut (*e).target_comm, target, off);
        // OOM kills are SIGKILLs; other signals do not need it.
        (*e).target_memcg = if sig == SIGKILL { memcg_ino(target, off) } else { 0 };

        (*e).sender_uid = bpf_get_current_uid_gid() as u32;
        // Straight into the record: a local array would be zeroed byte by byte first.
        if generated::bpf_get_current_comm((*e).sender_comm.as_mut_ptr() as *mut c_void, COMM_LEN as u32) < 0 {
            zero_comm(&raw mut (*e).sender_comm);
        }
        (*e).sender_ns_tid = c.sender_ns_tid;
        (*e).sender_pidns = c.sender_pidns;
        (*e).sender_ns_pid = c.sender_ns_pid;
        (*e).sender_ppid = c.sender_ppid;
        (*e).sender_start_ns = c.start_ns;
        let (nr, arg0) = current_syscall(off);
        (*e).syscall_nr = nr;
        (*e).syscall_arg0 = arg0;
        (*e).argv_len = 0;
        (*e).depth = 0;
        if read::<u32>(current, off.task_flags).unwrap_or(0) & PF_EXITING != 0 {
            (*e).flags |= FLAG_SENDER_EXITING;
        }
        target_state(e, target, sig, off);
    }
}

/// The sender's argv and ancestry, with their lengths and flags in `e`.
#[inline(always)]
unsafe fn fill_detail<const LOOP: bool>(
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

/// The syscall the sender is executing and its first argument, from its saved user
/// registers: a task inside kill(2) and friends sent the signal itself; one inside write(2)
/// got SIGPIPE from the kernel, though both arrive as SI_USER from the task to itself.
#[inline(always)]
unsafe fn current_syscall(off: &KernelOffsets) -> (i32, i64) {
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

/// The sender's command line, from its own memory: `current` is the sender, so its user
/// pages are the ones `bpf_probe_read_user` sees.
#[inline(always)]
unsafe fn read_argv(e: *mut SignalEvent, d: *mut SenderDetail, current: *const u8, off: &KernelOffsets) {
    unsafe {
        (*e).argv_len = 0;
        (*d).argv_total = 0;
        (*d)._pad = 0;
        let mm = read::<*const u8>(current, off.task_mm).unwrap_or(ptr::null());
        if mm.is_null() {
            // No user memory: a kernel thread, or a process past exit_mm() (SIGCHLD to its
            // parent comes from there).
            if read::<u32>(current, off.task_flags).unwrap_or(0) & PF_KTHREAD != 0 {
                (*e).flags |= FLAG_KTHREAD;
            }
            return;
        }
        let start: u64 = read(mm, off.mm_arg_start).unwrap_or(0);
        let end: u64 = read(mm, off.mm_arg_end).unwrap_or(0);
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
unsafe fn walk_ancestry<const LOOP: bool>(e: *mut SignalEvent, start: *const u8) {
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

struct Walk {
    task: u64,
}

#[inline(never)]
extern "C" fn walk_step(i: u64, w: *mut c_void) -> i64 {
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
unsafe fn ancestor<const PATH: bool>(i: u64, task: u64) -> u64 {
    let off = offsets();
    let Some(r) = RECORD.get_ptr_mut(0) else { return 0 };
    // A u64 throughout, so the verifier bounds the index it is used as with this test.
    if i >= MAX_ANCESTRY as u64 || task == 0 {
        return 0;
    }
    unsafe {
        let task = task as *const u8;
        let e = &raw mut (*r).head;
        let a = &raw mut (*r).detail.ancestry[i as usize];
        let tgid: u32 = read(task, off.task_tgid).unwrap_or(0);
        (*a).pid = tgid;
        (*a).start_ns = read(task, off.task_start_time).unwrap_or(0);
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
        let parent = read::<*const u8>(task, off.task_real_parent).unwrap_or(ptr::null());
        if parent.is_null() {
            return 0;
        }
        match read::<*const u8>(parent, off.task_group_leader) {
            Some(leader) if !leader.is_null() => leader as u64,
            _ => parent as u64,
        }
    }
}

/// Where an executable's path is assembled (per CPU) before it is copied into the record:
/// the walk's position, the components' name pointers and lengths (leaf first), and the
/// text. Kept in a map rather than on the stack so each step of the walk reads its state
/// afresh: the verifier then checks one step once instead of every path the walk can take.
#[repr(C)]
struct PathScratch {
    dentry: u64,
    vfsmount: u64,
    /// Components collected, and the bytes they need with their `/`s.
    n: u32,
    used: u32,
    /// The walk reached the root (else it stopped short: too deep, or out of room).
    complete: u32,
    pos: u32,
    names: [u64; PATH_COMPONENTS],
    lens: [u32; PATH_COMPONENTS],
    text: [u8; 2 * EXE_PATH_LEN],
}

#[map]
static PATH_SCRATCH: PerCpuArray<PathScratch> = PerCpuArray::with_max_entries(1, 0);

/// Components kept of an executable's path, and steps (components and mount crossings)
/// taken towards the root: `usr/lib/systemd/systemd` is 4 and 5.
const PATH_COMPONENTS: usize = 8;
const PATH_STEPS: u32 = 12;

/// The identity of the task's executable, as the kernel has it now: inode, device, file
/// system, whether it is unlinked or on a kernel-internal mount (memfd), whether its mount
/// is in another mount namespace than the task's, and its path's last
/// components. What /proc/PID/exe would say, but at signal time and for tasks already gone
/// by the time anyone could look.
#[inline(always)]
unsafe fn read_exe(a: *mut Ancestor, task: *const u8, off: &KernelOffsets) {
    unsafe {
        // Volatile: LLVM would merge neighbouring zero stores into a memset, a byte loop the
        // verifier walks byte by byte.
        ptr::write_volatile(&raw mut (*a).exe_ino, 0);
        ptr::write_volatile(&raw mut (*a).exe_dev, 0);
        ptr::write_volatile(&raw mut (*a).exe_fs_magic, 0);
        (*a).exe_path[0] = 0;
        let mut flags = 0;
        if read::<u32>(task, off.task_flags).unwrap_or(0) & PF_KTHREAD != 0 {
            flags |= ANCESTOR_KTHREAD;
        }
        (*a).exe_flags = flags;
        if off.mm_exe_file == 0 || off.file_inode == 0 {
            return;
        }
        let mm = read::<*const u8>(task, off.task_mm).unwrap_or(ptr::null());
        if mm.is_null() {
            return;
        }
        let file = read::<*const u8>(mm, off.mm_exe_file).unwrap_or(ptr::null());
        if file.is_null() {
            return;
        }
        flags |= EXE_PRESENT;
        let inode = read::<*const u8>(file, off.file_inode).unwrap_or(ptr::null());
        if !inode.is_null() {
            (*a).exe_ino = read::<u64>(inode, off.inode_ino).unwrap_or(0);
            if read::<u32>(inode, off.inode_nlink) == Some(0) {
                flags |= EXE_UNLINKED;
            }
            let sb = read::<*const u8>(inode, off.inode_sb).unwrap_or(ptr::null());
            if !sb.is_null() {
                (*a).exe_dev = read::<u32>(sb, off.sb_dev).unwrap_or(0);
                (*a).exe_fs_magic = read::<u64>(sb, off.sb_magic).unwrap_or(0) as u32;
            }
        }
        if off.mount_mnt == 0 || off.mount_ns == 0 || off.dentry_parent == 0 || off.dentry_name == 0 {
            (*a).exe_flags = flags;
            return;
        }
        let vfsmount = read::<u64>(file, off.file_vfsmount).unwrap_or(0);
        let mount = vfsmount.wrapping_sub(off.mount_mnt as u64) as *const u8;
        let mnt_ns = if vfsmount == 0 { 0 } else { read::<u64>(mount, off.mount_ns).unwrap_or(0) };
        // Internal mounts (kern_mount: memfd's shm, pipes) carry MNT_NS_INTERNAL, an error
        // pointer, or none: there is no path to such a file in any namespace.
        if mnt_ns < 4096 || mnt_ns >= (-4095i64) as u64 {
            flags |= EXE_INTERNAL_MOUNT;
        } else {
            let nsproxy = read::<*const u8>(task, off.task_nsproxy).unwrap_or(ptr::null());
            let own = if nsproxy.is_null() { 0 } else { read::<u64>(nsproxy, off.nsproxy_mnt_ns).unwrap_or(0) };
            if own != 0 && own != mnt_ns {
                flags |= EXE_OTHER_MNT_NS;
            }
        }
        if exe_path(a, file, off) {
            flags |= EXE_PATH_COMPLETE;
        }
        (*a).exe_flags = flags;
    }
}

/// Writes the last components of `file`'s path into `a.exe_path`, crossing mounts like
/// d_path does; true when it holds the whole path from the root.
#[inline(always)]
unsafe fn exe_path(a: *mut Ancestor, file: *const u8, off: &KernelOffsets) -> bool {
    unsafe {
        let Some(sc) = PATH_SCRATCH.get_ptr_mut(0) else { return false };
        (*sc).dentry = read::<u64>(file, off.file_dentry).unwrap_or(0);
        (*sc).vfsmount = read::<u64>(file, off.file_vfsmount).unwrap_or(0);
        if (*sc).dentry == 0 || (*sc).vfsmount == 0 {
            return false;
        }
        ptr::write_volatile(&raw mut (*sc).n, 0);
        ptr::write_volatile(&raw mut (*sc).used, 0);
        ptr::write_volatile(&raw mut (*sc).complete, 0);
        ptr::write_volatile(&raw mut (*sc).pos, 0);
        (*sc).text[0] = 0;
        let mut unused = 0u64;
        let ctx = &raw mut unused as *mut c_void;
        generated::bpf_loop(PATH_STEPS, path_step as *mut c_void, ctx, 0);
        generated::bpf_loop(PATH_COMPONENTS as u32, path_write as *mut c_void, ctx, 0);
        (*sc).text[EXE_PATH_LEN - 1] = 0;
        if generated::bpf_probe_read_kernel(
            (*a).exe_path.as_mut_ptr() as *mut c_void,
            EXE_PATH_LEN as u32,
            (*sc).text.as_ptr() as *const c_void,
        ) < 0
        {
            (*a).exe_path[0] = 0;
        }
        (*sc).complete != 0
    }
}

/// One step of the walk from the file towards the root: up a dentry (collecting its name),
/// or from a mount's root to where it is mounted. Stops (1) at the root, or when the next
/// component would not fit: the components nearest the file are the ones kept.
#[inline(never)]
extern "C" fn path_step(_i: u64, _ctx: *mut c_void) -> i64 {
    // A callback returns 0 or 1, and a global function's result is any number to the verifier.
    (core::hint::black_box(podsig_path_step()) != 0) as i64
}

subprogram! {
    /// `path_step`'s body: a global function, so the verifier checks it once rather than
    /// once per pass it makes over the bpf_loop callback (its state is all in PATH_SCRATCH).
    fn podsig_path_step() -> i64 {
        path_step_body()
    }
}

#[inline(always)]
fn path_step_body() -> i64 {
    let off = offsets();
    unsafe {
        let Some(sc) = PATH_SCRATCH.get_ptr_mut(0) else { return 1 };
        let dentry = (*sc).dentry;
        let vfsmount = (*sc).vfsmount;
        let mount = vfsmount.wrapping_sub(off.mount_mnt as u64) as *const u8;
        let root = read::<u64>(vfsmount as *const u8, off.vfsmount_root).unwrap_or(0);
        if dentry == root {
            // The root of this mount: carry on from where it is mounted.
            let parent = read::<u64>(mount, off.mount_parent).unwrap_or(0);
            if parent == 0 || parent == mount as u64 {
                (*sc).complete = 1;
                return 1;
            }
            (*sc).dentry = read::<u64>(mount, off.mount_mountpoint).unwrap_or(0);
            (*sc).vfsmount = parent.wrapping_add(off.mount_mnt as u64);
            return 0;
        }
        let n = (*sc).n;
        let len = read::<u32>(dentry as *const u8, off.dentry_name_len).unwrap_or(0);
        if n as usize >= PATH_COMPONENTS || (n > 0 && (*sc).used + len + 1 > EXE_PATH_LEN as u32 - 1) {
            return 1;
        }
        let k = n as usize & (PATH_COMPONENTS - 1);
        (*sc).names[k] = read::<u64>(dentry as *const u8, off.dentry_name).unwrap_or(0);
        (*sc).lens[k] = len;
        (*sc).n = n + 1;
        (*sc).used += len + 1;
        let up = read::<u64>(dentry as *const u8, off.dentry_parent).unwrap_or(0);
        if up == 0 || up == dentry {
            // A disconnected dentry (memfd's, a pseudo file's): its own name is all the
            // path there is, as d_path prints it.
            (*sc).complete = 1;
            return 1;
        }
        (*sc).dentry = up;
        0
    }
}

/// Appends component `n - 1 - j` (root side first) to the text as `/name`.
#[inline(never)]
extern "C" fn path_write(j: u64, _ctx: *mut c_void) -> i64 {
    (core::hint::black_box(podsig_path_write(j)) != 0) as i64
}

subprogram! {
    /// `path_write`'s body, a global function for the same reason as `podsig_path_step`.
    fn podsig_path_write(j: u64) -> i64 {
        path_write_body(j)
    }
}

#[inline(always)]
fn path_write_body(j: u64) -> i64 {
    unsafe {
        let Some(sc) = PATH_SCRATCH.get_ptr_mut(0) else { return 1 };
        let n = (*sc).n as u64;
        if j >= n {
            return 1;
        }
        let k = (n - 1 - j) as usize & (PATH_COMPONENTS - 1);
        let text = (*sc).text.as_mut_ptr();
        let at = (*sc).pos & (EXE_PATH_LEN as u32 - 1);
        *text.add(at as usize) = b'/';
        let at = opaque(at + 1) & (EXE_PATH_LEN as u32 - 1);
        let r = generated::bpf_probe_read_kernel_str(
            text.add(at as usize) as *mut c_void,
            EXE_PATH_LEN as u32 - at,
            (*sc).names[k] as *const c_void,
        );
        if r <= 0 {
            (*sc).complete = 0;
            return 1;
        }
        (*sc).pos = at + r as u32 - 1;
        if (*sc).pos >= EXE_PATH_LEN as u32 - 1 {
            return 1;
        }
        0
    }
}

/// `x`, with everything the compiler knows about its range forgotten: a mask applied after
/// this survives optimisation, so the verifier sees the bound it proves.
#[inline(always)]
fn opaque(x: u32) -> u32 {
    // SAFETY: a read of a local.
    unsafe { ptr::read_volatile(&x) }
}

/// Does nothing: `cargo xtask bench` attaches it to measure the cost floor of the hook.
#[raw_tracepoint(tracepoint = "signal_generate")]
pub fn signal_generate_empty(_ctx: RawTracePointContext) -> i32 {
    0
}

/// A watched process forked: watch the child too (when following, as for containers).
/// Threads share their process's tgid and need nothing.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    let cfg = config();
    if cfg.follow_forks == 0 {
        return 0;
    }
    let parent = ctx.arg::<u64>(0) as *const u8;
    let child = ctx.arg::<u64>(1) as *const u8;
    let off = offsets();
    let Some(ptgid) = (unsafe { read::<u32>(parent, off.task_tgid) }) else {
        return 0;
    };
    if unsafe { TARGETS.get(&ptgid).is_none() } {
        return 0;
    }
    let Some(ctgid) = (unsafe { read::<u32>(child, off.task_tgid) }) else {
        return 0;
    };
    if ctgid != ptgid {
        let _ = TARGETS.insert(&ctgid, &(ctgid | TARGET_CHILD), 0);
    }
    0
}

#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(ctx: RawTracePointContext) -> i32 {
    let task: *const u8 = ctx.arg::<u64>(0) as *const u8;
    let off = offsets();
    let cfg = config();
    let Some(tgid) = (unsafe { read::<u32>(task, off.task_tgid) }) else {
        return 0;
    };
    let Some(&value) = (unsafe { TARGETS.get(&tgid) }) else {
        return 0;
    };
    // Report the process, not each thread: only the last thread out sees `live` at zero.
    let signal = unsafe { read::<*const u8>(task, off.task_signal) }.unwrap_or(ptr::null());
    if !signal.is_null() && unsafe { read::<i32>(signal, off.signal_live) }.unwrap_or(0) != 0 {
        return 0;
    }
    if value & TARGET_CHILD != 0 {
        // A followed child: forget it so its pid, once reused, is not watched.
        let _ = TARGETS.remove(&tgid);
        return 0;
    }
    if value & TARGET_SIGNALLED != 0 {
        // Node mode's: reported once, then forgotten (its pid may be reused).
        let _ = TARGETS.remove(&tgid);
    }
    let tid = unsafe { read(task, off.task_pid) }.unwrap_or(0);
    let exit_code = unsafe { read(task, off.task_exit_code) }.unwrap_or(0);
    emit_exit(&ctx, &cfg, tgid, tid, exit_code, 0, |comm| unsafe { read_comm(comm, task, &off) });
    0
}

/// Reports a watched process's exit. Rare and final: it wakes the reader now, so the report
/// ends promptly.
#[inline(always)]
fn emit_exit<C: EbpfContext>(
    ctx: &C,
    cfg: &FilterConfig,
    tgid: u32,
    tid: u32,
    exit_code: i32,
    flags: u32,
    comm: impl FnOnce(*mut [u8; COMM_LEN]),
) {
    let Some(mut entry) = reserve::<ExitEvent>() else {
        count_lost();
        return;
    };
    let e: *mut ExitEvent = entry.ptr();
    unsafe {
        (*e).kind = EVENT_EXIT;
        (*e).pid = tgid;
        (*e).boot_ns = bpf_ktime_get_boot_ns();
        (*e).tid = tid;
        (*e).exit_code = exit_code;
        comm(&raw mut (*e).comm);
        (*e).flags = flags;
        (*e)._pad = 0;
    }
    entry.submit(ctx, Wake::Now, cfg);
}

// Fallback for kernels without BTF: the classic tracepoints, whose record layouts come from
// tracefs `format` files. The target is known only by tid and comm; the sender only through
// the `current` helpers. Userspace completes the report from /proc.

#[inline(always)]
fn tp_format() -> TracepointFormat {
    unsafe { ptr::read_volatile(&TP_FORMAT) }
}

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

/// The OOM killer marks its victim right after sending it SIGKILL: userspace pairs the two.
/// A raw tracepoint: the classic one attaches through a perf event, whose release waits for
/// RCU grace periods (~60 ms of every podsig's exit). Its figures are read from the victim
/// as the classic event computes them (6.x passes the task; older kernels only its pid, and
/// their classic event has no figures either).
#[raw_tracepoint(tracepoint = "mark_victim")]
pub fn mark_victim(ctx: RawTracePointContext) -> i32 {
    let off = offsets();
    let cfg = config();
    let arg0 = ctx.arg::<u64>(0);
    let task = if off.oom_task_arg != 0 { arg0 as *const u8 } else { ptr::null() };
    let pid = if task.is_null() {
        arg0 as u32
    } else {
        // The process: podsig watches processes, and names the SIGKILL's target by it.
        match unsafe { read::<u32>(task, off.task_tgid) } {
            Some(pid) => pid,
            None => return 0,
        }
    };
    if !watched(pid, &cfg) {
        return 0;
    }
    let Some(mut entry) = reserve::<OomEvent>() else {
        count_lost();
        return 0;
    };
    let e: *mut OomEvent = entry.ptr();
    unsafe {
        (*e).kind = EVENT_OOM;
        (*e).pid = pid;
        (*e).boot_ns = bpf_ktime_get_boot_ns();
        (*e).total_vm_kb = u64::MAX;
        (*e).anon_rss_kb = u64::MAX;
        (*e).file_rss_kb = u64::MAX;
        (*e).shmem_rss_kb = u64::MAX;
        (*e).pgtables_kb = u64::MAX;
        (*e).oom_score_adj = i32::MIN;
        (*e)._pad = 0;
        if !task.is_null() {
            oom_figures(e, task, off);
        }
    }
    entry.submit(&ctx, Wake::Now, &cfg);
    0
}

/// include/linux/mm_types_task.h: the rss counters' order, unchanged since 4.5.
const MM_FILEPAGES: u32 = 0;
const MM_ANONPAGES: u32 = 1;
const MM_SHMEMPAGES: u32 = 3;

/// The victim's memory as `mark_victim` reports it: total_vm and each rss counter (its
/// `count`, negatives as 0, as get_mm_counter reads it) in kB, page tables in kB, and its
/// oom_score_adj.
#[inline(always)]
unsafe fn oom_figures(e: *mut OomEvent, task: *const u8, off: &KernelOffsets) {
    unsafe {
        let signal = read::<*const u8>(task, off.task_signal).unwrap_or(ptr::null());
        if !signal.is_null() && off.signal_oom_score_adj != 0 {
            if let Some(adj) = read::<i16>(signal, off.signal_oom_score_adj) {
                (*e).oom_score_adj = adj as i32;
            }
        }
        let mm = read::<*const u8>(task, off.task_mm).unwrap_or(ptr::null());
        if mm.is_null() {
            return;
        }
        let kb = |pages: u64| pages << off.page_kb_shift;
        if off.mm_total_vm != 0 {
            if let Some(v) = read::<u64>(mm, off.mm_total_vm) {
                (*e).total_vm_kb = kb(v);
            }
        }
        if off.mm_pgtables_bytes != 0 {
            if let Some(v) = read::<i64>(mm, off.mm_pgtables_bytes) {
                (*e).pgtables_kb = (v.max(0) as u64) >> 10;
            }
        }
        if off.mm_rss_stat != 0 {
            let counter = |i: u32| {
                read::<i64>(mm, off.mm_rss_stat + i * off.rss_stride + off.rss_count).map(|v| kb(v.max(0) as u64))
            };
            (*e).file_rss_kb = counter(MM_FILEPAGES).unwrap_or(u64::MAX);
            (*e).anon_rss_kb = counter(MM_ANONPAGES).unwrap_or(u64::MAX);
            (*e).shmem_rss_kb = counter(MM_SHMEMPAGES).unwrap_or(u64::MAX);
        }
    }
}

/// The same through the classic tracepoint, for kernels without BTF: its record layout comes
/// from tracefs.
#[tracepoint(category = "oom", name = "mark_victim")]
pub fn mark_victim_tp(ctx: TracePointContext) -> i32 {
    let f = unsafe { ptr::read_volatile(&OOM_FORMAT) };
    let cfg = config();
    let Ok(pid) = (unsafe { ctx.read_at::<i32>(f.pid as usize) }) else {
        return 0;
    };
    let pid = pid as u32;
    if !watched(pid, &cfg) {
        return 0;
    }
    let Some(mut entry) = reserve::<OomEvent>() else {
        count_lost();
        return 0;
    };
    let field = |off: u32| -> u64 {
        if off == u32::MAX {
            u64::MAX
        } else {
            unsafe { ctx.read_at::<u64>(off as usize) }.unwrap_or(u64::MAX)
        }
    };
    let e: *mut OomEvent = entry.ptr();
    unsafe {
        (*e).kind = EVENT_OOM;
        (*e).pid = pid;
        (*e).boot_ns = bpf_ktime_get_boot_ns();
        (*e).total_vm_kb = field(f.total_vm);
        (*e).anon_rss_kb = field(f.anon_rss);
        (*e).file_rss_kb = field(f.file_rss);
        (*e).shmem_rss_kb = field(f.shmem_rss);
        (*e).pgtables_kb = field(f.pgtables);
        (*e).oom_score_adj = if f.oom_score_adj == u32::MAX {
            i32::MIN
        } else {
            ctx.read_at::<i16>(f.oom_score_adj as usize).map_or(i32::MIN, |v| v as i32)
        };
        (*e)._pad = 0;
    }
    entry.submit(&ctx, Wake::Now, &cfg);
    0
}

#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn sched_process_exit_tp(ctx: TracePointContext) -> i32 {
    let f = tp_format();
    let cfg = config();
    let Ok(tid) = (unsafe { ctx.read_at::<i32>(f.exit_pid as usize) }) else {
        return 0;
    };
    let tid = tid as u32;
    let Some(&value) = (unsafe { TARGETS.get(&tid) }) else {
        return 0;
    };
    let tgid = value & !TARGET_FLAGS;
    if value & TARGET_SIGNALLED != 0 {
        // Node mode's entry for this thread: the thread is done with it either way.
        let _ = TARGETS.remove(&tid);
    }
    // group_dead (≥ 6.16) says the last thread left; older kernels: the leader's exit.
    let last = if f.exit_group_dead != u32::MAX {
        unsafe { ctx.read_at::<u8>(f.exit_group_dead as usize) }.unwrap_or(0) != 0
    } else {
        tid == tgid
    };
    if !last {
        return 0;
    }
    emit_exit(&ctx, &cfg, tgid, tid, EXIT_CODE_UNKNOWN, FLAG_NO_BTF, |comm| unsafe {
        *comm = ctx.read_at::<[u8; COMM_LEN]>(f.exit_comm as usize).unwrap_or([0; COMM_LEN]);
    });
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
