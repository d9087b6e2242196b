//! An ancestor's executable: its identity (inode, device, file system, mount) and its path's
//! last components, walked from `mm->exe_file` up the dentries and mounts as d_path does.

use core::{ffi::c_void, ptr};

use aya_ebpf::{helpers::generated, macros::map, maps::PerCpuArray};
use podsig_common::{
    ANCESTOR_KTHREAD, Ancestor, EXE_INTERNAL_MOUNT, EXE_OTHER_MNT_NS, EXE_PATH_COMPLETE, EXE_PATH_LEN, EXE_PRESENT,
    EXE_UNLINKED, KernelOffsets,
};

use crate::kernel::{fs, mm, task};
use crate::{
    globals::offsets,
    kernel::{opaque, task::PF_KTHREAD},
};

/// Where an executable's path is assembled (per CPU) before it is copied into the record:
/// the walk's position, the components' name pointers and lengths (leaf first), and the
/// text. Kept in a map rather than on the stack so each step of the walk reads its state
/// afresh: the verifier then checks one step once instead of every path the walk can take.
#[repr(C)]
pub(crate) struct PathScratch {
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
pub(crate) static PATH_SCRATCH: PerCpuArray<PathScratch> = PerCpuArray::with_max_entries(1, 0);

/// Components kept of an executable's path, and steps (components and mount crossings)
/// taken towards the root: `usr/lib/systemd/systemd` is 4 and 5.
pub(crate) const PATH_COMPONENTS: usize = 8;
pub(crate) const PATH_STEPS: u32 = 12;

/// The identity of the task's executable, as the kernel has it now: inode, device, file
/// system, whether it is unlinked or on a kernel-internal mount (memfd), whether its mount
/// is in another mount namespace than the task's, and its path's last
/// components. What /proc/PID/exe would say, but at signal time and for tasks already gone
/// by the time anyone could look.
#[inline(always)]
pub(crate) unsafe fn read_exe(a: *mut Ancestor, task: *const u8, off: &KernelOffsets) {
    unsafe {
        // Volatile: LLVM would merge neighbouring zero stores into a memset, a byte loop the
        // verifier walks byte by byte.
        ptr::write_volatile(&raw mut (*a).exe_ino, 0);
        ptr::write_volatile(&raw mut (*a).exe_dev, 0);
        ptr::write_volatile(&raw mut (*a).exe_fs_magic, 0);
        (*a).exe_path[0] = 0;
        let mut flags = 0;
        if task::flags(task, off).unwrap_or(0) & PF_KTHREAD != 0 {
            flags |= ANCESTOR_KTHREAD;
        }
        (*a).exe_flags = flags;
        if off.mm_exe_file == 0 || off.file_inode == 0 {
            return;
        }
        let mm = task::mm(task, off).unwrap_or(ptr::null());
        if mm.is_null() {
            return;
        }
        let file = mm::exe_file(mm, off).unwrap_or(ptr::null());
        if file.is_null() {
            return;
        }
        flags |= EXE_PRESENT;
        let inode = fs::file_inode(file, off).unwrap_or(ptr::null());
        if !inode.is_null() {
            (*a).exe_ino = fs::inode_ino(inode, off).unwrap_or(0);
            if fs::inode_nlink(inode, off) == Some(0) {
                flags |= EXE_UNLINKED;
            }
            let sb = fs::inode_sb(inode, off).unwrap_or(ptr::null());
            if !sb.is_null() {
                (*a).exe_dev = fs::sb_dev(sb, off).unwrap_or(0);
                (*a).exe_fs_magic = fs::sb_magic(sb, off).unwrap_or(0) as u32;
            }
        }
        if off.mount_mnt == 0 || off.mount_ns == 0 || off.dentry_parent == 0 || off.dentry_name == 0 {
            (*a).exe_flags = flags;
            return;
        }
        let vfsmount = fs::file_vfsmount(file, off).unwrap_or(0);
        let mount = vfsmount.wrapping_sub(off.mount_mnt as u64) as *const u8;
        let mnt_ns = if vfsmount == 0 { 0 } else { fs::mount_ns(mount, off).unwrap_or(0) };
        // Internal mounts (kern_mount: memfd's shm, pipes) carry MNT_NS_INTERNAL, an error
        // pointer, or none: there is no path to such a file in any namespace.
        if mnt_ns < 4096 || mnt_ns >= (-4095i64) as u64 {
            flags |= EXE_INTERNAL_MOUNT;
        } else {
            let nsproxy = task::nsproxy(task, off).unwrap_or(ptr::null());
            let own = if nsproxy.is_null() { 0 } else { fs::nsproxy_mnt_ns(nsproxy, off).unwrap_or(0) };
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
pub(crate) unsafe fn exe_path(a: *mut Ancestor, file: *const u8, off: &KernelOffsets) -> bool {
    unsafe {
        let Some(sc) = PATH_SCRATCH.get_ptr_mut(0) else { return false };
        (*sc).dentry = fs::file_dentry(file, off).unwrap_or(0);
        (*sc).vfsmount = fs::file_vfsmount(file, off).unwrap_or(0);
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
pub(crate) extern "C" fn path_step(_i: u64, _ctx: *mut c_void) -> i64 {
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
pub(crate) fn path_step_body() -> i64 {
    let off = offsets();
    unsafe {
        let Some(sc) = PATH_SCRATCH.get_ptr_mut(0) else { return 1 };
        let dentry = (*sc).dentry;
        let vfsmount = (*sc).vfsmount;
        let mount = vfsmount.wrapping_sub(off.mount_mnt as u64) as *const u8;
        let root = fs::vfsmount_root(vfsmount as *const u8, off).unwrap_or(0);
        if dentry == root {
            // The root of this mount: carry on from where it is mounted.
            let parent = fs::mount_parent(mount, off).unwrap_or(0);
            if parent == 0 || parent == mount as u64 {
                (*sc).complete = 1;
                return 1;
            }
            (*sc).dentry = fs::mount_mountpoint(mount, off).unwrap_or(0);
            (*sc).vfsmount = parent.wrapping_add(off.mount_mnt as u64);
            return 0;
        }
        let n = (*sc).n;
        let len = fs::dentry_name_len(dentry as *const u8, off).unwrap_or(0);
        if n as usize >= PATH_COMPONENTS || (n > 0 && (*sc).used + len + 1 > EXE_PATH_LEN as u32 - 1) {
            return 1;
        }
        let k = n as usize & (PATH_COMPONENTS - 1);
        (*sc).names[k] = fs::dentry_name(dentry as *const u8, off).unwrap_or(0);
        (*sc).lens[k] = len;
        (*sc).n = n + 1;
        (*sc).used += len + 1;
        let up = fs::dentry_parent(dentry as *const u8, off).unwrap_or(0);
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
pub(crate) extern "C" fn path_write(j: u64, _ctx: *mut c_void) -> i64 {
    (core::hint::black_box(podsig_path_write(j)) != 0) as i64
}

subprogram! {
    /// `path_write`'s body, a global function for the same reason as `podsig_path_step`.
    fn podsig_path_write(j: u64) -> i64 {
        path_write_body(j)
    }
}

#[inline(always)]
pub(crate) fn path_write_body(j: u64) -> i64 {
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
