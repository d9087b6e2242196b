//! `signal_struct`: what the threads of a process share about signals.

use podsig_common::KernelOffsets;

use super::read;

/// Threads of the process not yet exited.
#[inline(always)]
pub(crate) unsafe fn live(signal: *const u8, off: &KernelOffsets) -> Option<i32> {
    unsafe { read(signal, off.signal_live) }
}

/// `SIGNAL_*`.
#[inline(always)]
pub(crate) unsafe fn flags(signal: *const u8, off: &KernelOffsets) -> Option<u32> {
    unsafe { read(signal, off.signal_flags) }
}

/// include/linux/pid.h `enum pid_type`: PIDTYPE_PID, _TGID, _PGID, _SID.
const PIDTYPE_PGID: u32 = 2;

/// The process group's id in the root pid namespace; 0 when unreadable.
#[inline(always)]
pub(crate) unsafe fn pgid(signal: *const u8, off: &KernelOffsets) -> u32 {
    unsafe {
        match read::<*const u8>(signal, off.signal_pids + PIDTYPE_PGID * 8) {
            Some(pid) if !pid.is_null() => read::<i32>(pid, off.pid_numbers + off.upid_nr).unwrap_or(0) as u32,
            _ => 0,
        }
    }
}

/// The process's controlling terminal's name (`pts3`) into `dst`; left zero when it has none.
#[inline(always)]
pub(crate) unsafe fn tty_name(signal: *const u8, dst: *mut [u8; podsig_common::TTY_LEN], off: &KernelOffsets) {
    if off.signal_tty == 0 || off.tty_name == 0 {
        return;
    }
    unsafe {
        let tty = read::<*const u8>(signal, off.signal_tty).unwrap_or(core::ptr::null());
        if !tty.is_null() {
            let _ = aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                dst as *mut core::ffi::c_void,
                podsig_common::TTY_LEN as u32,
                tty.add(off.tty_name as usize) as *const core::ffi::c_void,
            );
        }
    }
}

/// The process's oom_score_adj.
#[inline(always)]
pub(crate) unsafe fn oom_score_adj(signal: *const u8, off: &KernelOffsets) -> Option<i16> {
    unsafe { read(signal, off.signal_oom_score_adj) }
}
