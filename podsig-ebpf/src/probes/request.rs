//! Requests to managers: who writes to systemd's, the system bus's, Docker's or
//! containerd's control socket, and the first bytes of what they write, so that a manager's
//! signal can be linked to the client that asked for it (`systemctl stop`, `docker stop`,
//! kubelet's StopContainer). The client is captured as a signal's sender is: identity, login
//! uid and session, terminal, argv and ancestry, at the moment it writes.
//!
//! The filter is one hash lookup per write: `connect` records a client's socket in CONNS
//! when its path is one userspace named in SOCKETS, `close` forgets it (userspace forgets
//! those of clients that exit without closing), and the writing syscalls look their
//! (process, fd) up there. A process not talking to a manager costs that
//! lookup and nothing more.
//!
//! The hooks are the syscall tracepoints (no kprobes or fentry are needed): their records
//! hold the syscall's arguments as `unsigned long`s from `SYSCALL_ARGS` on, which userspace
//! checks against each tracepoint's tracefs format before attaching.

use core::{ffi::c_void, ptr};

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task, bpf_get_current_uid_gid,
        bpf_ktime_get_boot_ns, bpf_probe_read_user, bpf_probe_read_user_str_bytes, generated,
    },
    macros::{map, tracepoint},
    maps::{HashMap, LruHashMap, PerCpuArray},
    programs::TracePointContext,
};
use podsig_common::{
    EVENT_REQUEST, FLAG_ANCESTRY_COMPLETE, FLAG_ARGV_TRUNCATED, FLAG_KTHREAD, REQUEST_LEN, REQUEST_SENDMSG,
    REQUEST_SENDTO, REQUEST_WRITE, REQUEST_WRITEV, RequestFull, SOCKET_PATH_LEN, SenderDetail, SocketPath, TTY_LEN,
};

use super::signal::{RECORD, TASK_SLOT, podsig_detail_bounded, podsig_detail_loop};
use crate::kernel::{signal, task};
use crate::{
    emit::{Wake, bytes_of, count_lost},
    globals::{config, offsets},
    kernel::{
        opaque,
        task::{ns_nr, zero_comm},
    },
    transport::output,
};

/// The manager sockets, by path: userspace fills it, with the value a request record
/// carries to say which manager.
#[map]
pub(crate) static SOCKETS: HashMap<SocketPath, u32> = HashMap::with_max_entries(32, 0);

/// Clients' connections to those sockets: (tgid << 32 | fd) → the socket's value.
#[map]
pub(crate) static CONNS: LruHashMap<u64, u32> = LruHashMap::with_max_entries(8192, 0);

/// Where `connect`'s path is read to, per CPU (a key must be NUL-padded).
#[map]
static PATH: PerCpuArray<SocketPath> = PerCpuArray::with_max_entries(1, 0);

/// Where a request record is assembled, per CPU.
#[map]
static REQUEST: PerCpuArray<RequestFull> = PerCpuArray::with_max_entries(1, 0);

/// include/trace/events/syscalls.h: a syscall tracepoint's record holds the syscall number
/// (an int at 8) and then its arguments, each an unsigned long, from here.
const SYSCALL_ARGS: usize = 16;
const AF_UNIX: u16 = 1;
/// Iovecs of a writev/sendmsg copied, at most: D-Bus writes its header and body apart.
const MAX_IOVECS: u32 = 4;

/// A load from the tracepoint's record, not a helper read: it runs for every write on the
/// node, and the record is the program's context, which the verifier lets it read directly.
#[inline(always)]
fn arg(ctx: &TracePointContext, i: usize) -> u64 {
    // SAFETY: the record holds the syscall's arguments from SYSCALL_ARGS on; userspace checks
    // each tracepoint's format has at least the ones its hook reads.
    unsafe { ptr::read_volatile((ctx.as_ptr() as *const u8).add(SYSCALL_ARGS + 8 * i) as *const u64) }
}

#[inline(always)]
fn conn_key(fd: u64) -> u64 {
    (bpf_get_current_pid_tgid() & 0xffff_ffff_0000_0000) | (fd & 0xffff_ffff)
}

#[tracepoint(category = "syscalls", name = "sys_enter_connect")]
pub fn request_connect(ctx: TracePointContext) -> i32 {
    let (fd, addr, len) = (arg(&ctx, 0), arg(&ctx, 1) as *const u8, arg(&ctx, 2));
    if len <= 2 || (bpf_get_current_pid_tgid() >> 32) as u32 == config().self_tgid {
        return 0;
    }
    if unsafe { bpf_probe_read_user(addr as *const u16) }.unwrap_or(0) != AF_UNIX {
        return 0;
    }
    let Some(p) = PATH.get_ptr_mut(0) else { return 0 };
    unsafe {
        // Volatile word stores: a zeroing loop is what the verifier would walk byte by byte.
        let words = p as *mut [u64; SOCKET_PATH_LEN / 8];
        for i in 0..SOCKET_PATH_LEN / 8 {
            ptr::write_volatile((words as *mut u64).add(i), 0);
        }
        // sun_path (108 bytes) up to its NUL; an abstract socket's leading NUL reads empty.
        if bpf_probe_read_user_str_bytes(addr.add(2), &mut (&mut (*p).path)[..108]).is_err() {
            return 0;
        }
        if let Some(&socket) = SOCKETS.get(&*p) {
            let _ = CONNS.insert(&conn_key(fd), &socket, 0);
        }
    }
    0
}

/// Does nothing: `cargo xtask bench` attaches it to measure what any program on the write
/// hook costs, the floor of the request capture's added cost.
#[tracepoint(category = "syscalls", name = "sys_enter_write")]
pub fn request_write_empty(_ctx: TracePointContext) -> i32 {
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_close")]
pub fn request_close(ctx: TracePointContext) -> i32 {
    // The fd may be reused for anything else: forget it. One hash operation, as the writes.
    let _ = CONNS.remove(&conn_key(arg(&ctx, 0)));
    0
}

// The writing syscalls, each in two builds: the client's ancestry walked with bpf_loop (5.17+),
// with each ancestor's executable, or with a bounded loop, as the signal hook's builds.

#[tracepoint(category = "syscalls", name = "sys_enter_write")]
pub fn request_write(ctx: TracePointContext) -> i32 {
    on_write::<true>(&ctx, REQUEST_WRITE)
}

#[tracepoint(category = "syscalls", name = "sys_enter_write")]
pub fn request_write_bounded(ctx: TracePointContext) -> i32 {
    on_write::<false>(&ctx, REQUEST_WRITE)
}

#[tracepoint(category = "syscalls", name = "sys_enter_sendto")]
pub fn request_sendto(ctx: TracePointContext) -> i32 {
    on_write::<true>(&ctx, REQUEST_SENDTO)
}

#[tracepoint(category = "syscalls", name = "sys_enter_sendto")]
pub fn request_sendto_bounded(ctx: TracePointContext) -> i32 {
    on_write::<false>(&ctx, REQUEST_SENDTO)
}

#[tracepoint(category = "syscalls", name = "sys_enter_writev")]
pub fn request_writev(ctx: TracePointContext) -> i32 {
    on_vector::<true>(&ctx, REQUEST_WRITEV)
}

#[tracepoint(category = "syscalls", name = "sys_enter_writev")]
pub fn request_writev_bounded(ctx: TracePointContext) -> i32 {
    on_vector::<false>(&ctx, REQUEST_WRITEV)
}

#[tracepoint(category = "syscalls", name = "sys_enter_sendmsg")]
pub fn request_sendmsg(ctx: TracePointContext) -> i32 {
    on_vector::<true>(&ctx, REQUEST_SENDMSG)
}

#[tracepoint(category = "syscalls", name = "sys_enter_sendmsg")]
pub fn request_sendmsg_bounded(ctx: TracePointContext) -> i32 {
    on_vector::<false>(&ctx, REQUEST_SENDMSG)
}

/// write(fd, buf, count) and sendto(fd, buf, len, …).
#[inline(always)]
fn on_write<const LOOP: bool>(ctx: &TracePointContext, syscall: u32) -> i32 {
    let fd = arg(ctx, 0);
    let Some(&socket) = (unsafe { CONNS.get(&conn_key(fd)) }) else { return 0 };
    let Some(r) = REQUEST.get_ptr_mut(0) else { return 0 };
    let (buf, count) = (arg(ctx, 1), arg(ctx, 2));
    unsafe {
        let len = copy_in(r, 0, buf, count);
        finish::<LOOP>(ctx, r, socket, fd as u32, syscall, len, count);
    }
    0
}

/// writev(fd, iov, iovcnt) and sendmsg(fd, msghdr, flags): the first iovecs, one after
/// another, as the peer reads them.
#[inline(always)]
fn on_vector<const LOOP: bool>(ctx: &TracePointContext, syscall: u32) -> i32 {
    let fd = arg(ctx, 0);
    let Some(&socket) = (unsafe { CONNS.get(&conn_key(fd)) }) else { return 0 };
    let Some(r) = REQUEST.get_ptr_mut(0) else { return 0 };
    let (iov, count) = if syscall == REQUEST_SENDMSG {
        // struct user_msghdr (LP64): msg_iov at 16, msg_iovlen at 24.
        let msg = arg(ctx, 1) as *const u8;
        unsafe {
            (
                bpf_probe_read_user(msg.add(16) as *const u64).unwrap_or(0),
                bpf_probe_read_user(msg.add(24) as *const u64).unwrap_or(0),
            )
        }
    } else {
        (arg(ctx, 1), arg(ctx, 2))
    };
    let mut len = 0u32;
    let mut total = 0u64;
    for i in 0..MAX_IOVECS {
        if i as u64 >= count || len as usize >= REQUEST_LEN {
            break;
        }
        // struct iovec: base, len.
        let at = (iov + 16 * i as u64) as *const u64;
        let (base, n) =
            unsafe { (bpf_probe_read_user(at).unwrap_or(0), bpf_probe_read_user(at.wrapping_add(1)).unwrap_or(0)) };
        total += n;
        len += unsafe { copy_in(r, len, base, n) };
    }
    unsafe { finish::<LOOP>(ctx, r, socket, fd as u32, syscall, len, total) };
    0
}

/// Copies up to what is left of REQUEST_LEN of user memory at `src` into the body at `at`;
/// returns the bytes copied. The body is twice REQUEST_LEN long so that the verifier, which
/// bounds `at` and `n` apart, can see every copy fits.
#[inline(always)]
unsafe fn copy_in(r: *mut RequestFull, at: u32, src: u64, n: u64) -> u32 {
    let room = (REQUEST_LEN as u32).saturating_sub(at) as u64;
    let n = if n < room { n } else { room };
    // The bounds, tested after `opaque` so LLVM cannot drop them as already known: the
    // verifier sees at ≤ 1023 and n ≤ 1024, so at + n stays within the 2048-byte body.
    let n = opaque(n as u32);
    if n == 0 || n > REQUEST_LEN as u32 {
        return 0;
    }
    let at = opaque(at) & (REQUEST_LEN as u32 - 1);
    unsafe {
        let dst = (*r).body.as_mut_ptr().add(at as usize) as *mut c_void;
        if generated::bpf_probe_read_user(dst, n, src as *const c_void) == 0 { n } else { 0 }
    }
}

/// Fills the head (the client, as a signal's sender), borrows the sender detail's walk for
/// its argv and ancestry, and sends the record, waking the reader: the signal a request asked
/// for may follow within milliseconds. Writes to a manager are few next to the writes that
/// miss, though on the system bus every client's count, systemd's own broadcasts included.
#[inline(always)]
unsafe fn finish<const LOOP: bool>(
    ctx: &TracePointContext,
    r: *mut RequestFull,
    socket: u32,
    fd: u32,
    syscall: u32,
    len: u32,
    total: u64,
) {
    let off = offsets();
    let cfg = config();
    unsafe {
        let h = &raw mut (*r).head;
        let pid_tgid = bpf_get_current_pid_tgid();
        (*h).kind = EVENT_REQUEST;
        (*h).socket = socket;
        (*h).boot_ns = bpf_ktime_get_boot_ns();
        (*h).pid = (pid_tgid >> 32) as u32;
        (*h).tid = pid_tgid as u32;
        (*h).uid = bpf_get_current_uid_gid() as u32;
        (*h).fd = fd;
        (*h).syscall = syscall;
        (*h).len = len;
        (*h).total = total;
        (*h)._pad = 0;
        match bpf_get_current_comm() {
            Ok(c) => (*h).comm = c,
            Err(_) => zero_comm(&raw mut (*h).comm),
        }
        let current = bpf_get_current_task() as *const u8;
        let leader = task::group_leader(current, off).unwrap_or(ptr::null());
        let leader = if leader.is_null() { current } else { leader };
        (*h).start_ns = task::start_time(leader, off).unwrap_or(0);
        (*h).ns_pid = ns_nr(leader, off);
        (*h).ppid = match task::real_parent(current, off) {
            Some(parent) if !parent.is_null() => task::tgid(parent, off).unwrap_or(0),
            _ => 0,
        };
        ((*h).loginuid, (*h).sessionid) = task::login(current, off);
        ptr::write_volatile(&raw mut (*h).tty as *mut [u64; TTY_LEN / 8], [0; TTY_LEN / 8]);
        let sig = task::signal(current, off).unwrap_or(ptr::null());
        if !sig.is_null() {
            signal::tty_name(sig, &raw mut (*h).tty, off);
        }
        // The sender detail's walk writes into the signal record's task slot: a signal hook
        // cannot run on this CPU meanwhile but in an interrupt, which uses the other slot.
        // Every way out without the record is counted lost: userspace claims no request absent
        // across a loss.
        let Some(rec) = RECORD.get_ptr_mut(TASK_SLOT) else {
            count_lost();
            return;
        };
        (*rec).head.flags = 0;
        if LOOP {
            podsig_detail_loop();
        } else {
            podsig_detail_bounded();
        }
        (*h).argv_len = (*rec).head.argv_len;
        (*h).depth = (*rec).head.depth;
        (*h).flags = (*rec).head.flags & (FLAG_ANCESTRY_COMPLETE | FLAG_ARGV_TRUNCATED | FLAG_KTHREAD);
        if generated::bpf_probe_read_kernel(
            &raw mut (*r).detail as *mut c_void,
            size_of::<SenderDetail>() as u32,
            &raw const (*rec).detail as *const c_void,
        ) != 0
        {
            count_lost();
            return;
        }
        if !output(ctx, bytes_of(&*r), Wake::Now, &cfg) {
            count_lost();
        }
    }
}
