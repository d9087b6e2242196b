//! The executable's file: `file`, `inode`, `super_block`, and the path up to the root
//! (`dentry`, `mount`, `vfsmount`, and the task's `nsproxy` for its mount namespace).

use podsig_common::KernelOffsets;

use super::read;

/// The file's inode.
#[inline(always)]
pub(crate) unsafe fn file_inode(file: *const u8, off: &KernelOffsets) -> Option<*const u8> {
    unsafe { read(file, off.file_inode) }
}

/// `f_path.mnt`: the mount it was opened through.
#[inline(always)]
pub(crate) unsafe fn file_vfsmount(file: *const u8, off: &KernelOffsets) -> Option<u64> {
    unsafe { read(file, off.file_vfsmount) }
}

/// `f_path.dentry`.
#[inline(always)]
pub(crate) unsafe fn file_dentry(file: *const u8, off: &KernelOffsets) -> Option<u64> {
    unsafe { read(file, off.file_dentry) }
}

/// The inode number.
#[inline(always)]
pub(crate) unsafe fn inode_ino(inode: *const u8, off: &KernelOffsets) -> Option<u64> {
    unsafe { read(inode, off.inode_ino) }
}

/// Links to it; 0 once unlinked.
#[inline(always)]
pub(crate) unsafe fn inode_nlink(inode: *const u8, off: &KernelOffsets) -> Option<u32> {
    unsafe { read(inode, off.inode_nlink) }
}

/// The file system it is on.
#[inline(always)]
pub(crate) unsafe fn inode_sb(inode: *const u8, off: &KernelOffsets) -> Option<*const u8> {
    unsafe { read(inode, off.inode_sb) }
}

/// The file system's device number.
#[inline(always)]
pub(crate) unsafe fn sb_dev(sb: *const u8, off: &KernelOffsets) -> Option<u32> {
    unsafe { read(sb, off.sb_dev) }
}

/// The file system's type (`*_MAGIC`).
#[inline(always)]
pub(crate) unsafe fn sb_magic(sb: *const u8, off: &KernelOffsets) -> Option<u64> {
    unsafe { read(sb, off.sb_magic) }
}

/// The mount's root dentry.
#[inline(always)]
pub(crate) unsafe fn vfsmount_root(vfsmount: *const u8, off: &KernelOffsets) -> Option<u64> {
    unsafe { read(vfsmount, off.vfsmount_root) }
}

/// The mount it is mounted on.
#[inline(always)]
pub(crate) unsafe fn mount_parent(mount: *const u8, off: &KernelOffsets) -> Option<u64> {
    unsafe { read(mount, off.mount_parent) }
}

/// The dentry it is mounted on.
#[inline(always)]
pub(crate) unsafe fn mount_mountpoint(mount: *const u8, off: &KernelOffsets) -> Option<u64> {
    unsafe { read(mount, off.mount_mountpoint) }
}

/// Its mount namespace.
#[inline(always)]
pub(crate) unsafe fn mount_ns(mount: *const u8, off: &KernelOffsets) -> Option<u64> {
    unsafe { read(mount, off.mount_ns) }
}

/// Its name's length.
#[inline(always)]
pub(crate) unsafe fn dentry_name_len(dentry: *const u8, off: &KernelOffsets) -> Option<u32> {
    unsafe { read(dentry, off.dentry_name_len) }
}

/// Its name (a pointer to the bytes).
#[inline(always)]
pub(crate) unsafe fn dentry_name(dentry: *const u8, off: &KernelOffsets) -> Option<u64> {
    unsafe { read(dentry, off.dentry_name) }
}

/// Its parent directory's dentry.
#[inline(always)]
pub(crate) unsafe fn dentry_parent(dentry: *const u8, off: &KernelOffsets) -> Option<u64> {
    unsafe { read(dentry, off.dentry_parent) }
}

/// The mount namespace of an `nsproxy`.
#[inline(always)]
pub(crate) unsafe fn nsproxy_mnt_ns(nsproxy: *const u8, off: &KernelOffsets) -> Option<u64> {
    unsafe { read(nsproxy, off.nsproxy_mnt_ns) }
}
