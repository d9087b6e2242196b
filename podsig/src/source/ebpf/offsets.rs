//! Kernel struct offsets from the running kernel's BTF.
//!
//! The eBPF program reads `task_struct` and friends with `bpf_probe_read_kernel` at offsets it
//! is given at load time, so one compiled program serves every kernel; this module is where
//! those offsets come from. Nothing here is guessed: a field missing from BTF is an error
//! that names it.

use std::{path::Path, sync::Mutex, thread::JoinHandle};

use btf_rs::{Btf, BtfType, Type};
use podsig_common::{KernelOffsets, PREEMPT_NONE, PREEMPT_PERCPU_VIA_RQ, PREEMPT_TASK_FIELD};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum OffsetError {
    #[error("cannot read kernel BTF at {path}: {source}")]
    Read { path: String, source: btf_rs::Error },
    #[error("kernel BTF has no struct {0}")]
    NoStruct(String),
    #[error("kernel BTF: struct {strukt} has no field {field}")]
    NoField { strukt: String, field: String },
    #[error("kernel BTF: {0}")]
    Btf(#[from] btf_rs::Error),
    #[error("tracepoint {name} has an unexpected prototype in kernel BTF: {why}")]
    Prototype { name: &'static str, why: String },
}

/// What the program needs from the kernel's BTF.
#[derive(Clone, Copy, Debug)]
pub struct BtfLayout {
    pub offsets: KernelOffsets,
    /// The kernel has bpf_loop (5.17+).
    pub has_loop: bool,
    /// Id of `btf_trace_signal_generate`, for the BTF-typed tracepoint program.
    pub signal_generate_btf_id: Option<u32>,
}

/// Reads the layout from `path`, checking the tracepoint prototypes the program relies on.
pub fn read_layout(path: &Path) -> Result<BtfLayout, OffsetError> {
    let btf = KernelBtf::open(path)?;
    for (name, want) in [("signal_generate", 5), ("sched_process_exit", 1)] {
        let got = btf.raw_tracepoint_args(name)?;
        if got < want {
            return Err(OffsetError::Prototype { name, why: format!("{got} arguments, podsig needs {want}") });
        }
    }
    Ok(BtfLayout {
        offsets: btf.kernel_offsets()?,
        has_loop: btf.has_helper("loop"),
        signal_generate_btf_id: btf.tracepoint_btf_id("signal_generate"),
    })
}

static PREFETCH: Mutex<Option<JoinHandle<Result<BtfLayout, OffsetError>>>> = Mutex::new(None);

/// Starts reading the layout on another thread (a scan of the whole BTF, most of the time
/// to attach), so the rest of start-up — the event loop, targets, containerd — overlaps it.
pub fn prefetch() {
    if !Path::new(VMLINUX_BTF).exists() {
        return;
    }
    if let Ok(mut slot) = PREFETCH.lock()
        && slot.is_none()
    {
        *slot = std::thread::Builder::new()
            .name("btf".into())
            .spawn(|| {
                let t0 = std::time::Instant::now();
                let dir = Path::new(cache::DIR);
                let key = cache::key();
                if let Some(layout) = key.as_deref().and_then(|k| cache::read(dir, k)) {
                    tracing::debug!("kernel layout from {} in {:?}", cache::DIR, t0.elapsed());
                    return Ok(layout);
                }
                let layout = read_layout(Path::new(VMLINUX_BTF));
                tracing::debug!("kernel BTF read in {:?} (on its own thread)", t0.elapsed());
                if let (Ok(layout), Some(key)) = (&layout, key) {
                    cache::write(dir, &key, layout);
                }
                layout
            })
            .ok();
    }
}

/// The layout of this boot's kernel, kept where only root can write, for the next podsig on
/// the same boot: the kernel's BTF cannot change until a reboot, and reading it is most of
/// what attaching waits for (~4 ms). The key names the boot, the kernel, the BTF file's size
/// and this podsig binary (a rebuilt one reads the BTF again); a file that is not root's and
/// private, or another key, is ignored and replaced. Where /run is not writable (a read-only
/// root file system) every start reads the BTF, as before.
mod cache {
    use std::{
        fs,
        io::Write as _,
        os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _},
        path::Path,
    };

    use podsig_common::KernelOffsets;

    use super::{BtfLayout, VMLINUX_BTF};

    pub const DIR: &str = "/run/podsig";
    const NAME: &str = "btf-layout";

    /// What the cached layout is valid for; None when it cannot be told.
    pub fn key() -> Option<String> {
        let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let release = fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
        let btf = fs::metadata(VMLINUX_BTF).ok()?;
        let exe = fs::metadata(std::env::current_exe().ok()?).ok()?;
        Some(format!(
            "podsig-layout-1 boot={} kernel={} btf={} exe={}:{}.{}:{} offsets={}",
            boot.trim(),
            release.trim(),
            btf.len(),
            exe.len(),
            exe.mtime(),
            exe.mtime_nsec(),
            exe.ino(),
            size_of::<KernelOffsets>(),
        ))
    }

    /// Only root's own, private file in root's own, private directory is trusted.
    fn private(path: &Path, dir: bool) -> bool {
        fs::symlink_metadata(path)
            .is_ok_and(|m| m.uid() == 0 && m.mode() & 0o077 == 0 && if dir { m.is_dir() } else { m.is_file() })
    }

    pub fn read(dir: &Path, key: &str) -> Option<BtfLayout> {
        let file = dir.join(NAME);
        if !private(dir, true) || !private(&file, false) {
            return None;
        }
        let bytes = fs::read(file).ok()?;
        let nl = bytes.iter().position(|&b| b == b'\n')?;
        if &bytes[..nl] != key.as_bytes() {
            return None;
        }
        let body = &bytes[nl + 1..];
        let n = size_of::<KernelOffsets>();
        if body.len() != n + 6 {
            return None;
        }
        let offsets: KernelOffsets = bytemuck::pod_read_unaligned(&body[..n]);
        let id = u32::from_le_bytes(body[n + 2..n + 6].try_into().ok()?);
        Some(BtfLayout { offsets, has_loop: body[n] != 0, signal_generate_btf_id: (body[n + 1] != 0).then_some(id) })
    }

    /// Best effort: any failure leaves the next start reading the BTF.
    pub fn write(dir: &Path, key: &str, layout: &BtfLayout) {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let _ = fs::create_dir(dir);
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        if !private(dir, true) {
            return;
        }
        let mut body = key.as_bytes().to_vec();
        body.push(b'\n');
        body.extend_from_slice(bytemuck::bytes_of(&layout.offsets));
        body.push(layout.has_loop as u8);
        body.push(layout.signal_generate_btf_id.is_some() as u8);
        body.extend_from_slice(&layout.signal_generate_btf_id.unwrap_or(0).to_le_bytes());
        let tmp = dir.join(format!("{NAME}.{}", std::process::id()));
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&body))
            .is_ok();
        if !(written && fs::rename(&tmp, dir.join(NAME)).is_ok()) {
            let _ = fs::remove_file(&tmp);
        }
    }
}

/// The kernel's layout: the prefetched one if a prefetch ran, else read now.
pub fn layout() -> Result<BtfLayout, OffsetError> {
    let pending = PREFETCH.lock().ok().and_then(|mut slot| slot.take());
    match pending.map(JoinHandle::join) {
        Some(Ok(layout)) => layout,
        _ => read_layout(Path::new(VMLINUX_BTF)),
    }
}

pub struct KernelBtf {
    btf: Btf,
    /// Where it was read from: the names podsig needs are found by a scan of its own.
    path: std::path::PathBuf,
    /// Types by name. A lookup by name scans every type of the mmap'ed BTF (~0.8 ms), so
    /// the first lookup finds every name in `WANTED` in one scan and later ones hit here.
    named: std::cell::RefCell<std::collections::HashMap<String, Vec<(u32, Type)>>>,
}

/// Every type name podsig looks up, found in one pass over the kernel's BTF.
const WANTED: &[&str] = &[
    "task_struct",
    "mm_struct",
    "pid",
    "upid",
    "signal_struct",
    "kernel_siginfo",
    "pt_regs",
    "pid_namespace",
    "css_set",
    "cgroup_subsys_state",
    "cgroup",
    "kernfs_node",
    "cgroup_subsys_id",
    "sched_entity",
    "cfs_rq",
    "rq",
    "thread_info",
    "pcpu_hot",
    "__preempt_count",
    "runqueues",
    ".data..percpu",
    "sighand_struct",
    "k_sigaction",
    "file",
    "inode",
    "super_block",
    "dentry",
    "mount",
    "vfsmount",
    "nsproxy",
    "bpf_func_id",
    "btf_trace_signal_generate",
    "btf_trace_sched_process_exit",
    "btf_trace_mark_victim",
    "percpu_counter",
];

/// The ids of the types called one of `names`, from one pass over the BTF file's type
/// section that reads a name only for the kinds podsig looks up (not the ~60,000 functions).
/// btf-rs's regex search does the same work for every name: ~5–9 ms of the ~10 ms the
/// layout took, against ~1 ms here. None when the file is not BTF this scan understands
/// (the caller then asks btf-rs).
fn scan_names(path: &Path, names: &[&str]) -> Option<Vec<u32>> {
    let file = std::fs::File::open(path).ok()?;
    let map = Mapped::of(&file)?;
    let d = map.bytes();
    let u32_at = |o: usize| d.get(o..o + 4).map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")));
    let u16_at = |o: usize| d.get(o..o + 2).map(|b| u16::from_ne_bytes(b.try_into().expect("2 bytes")));
    // struct btf_header: magic u16, version u8, flags u8, hdr_len, type_off, type_len, str_off,
    // str_len (u32 each); 0xeB9F in this machine's byte order, or it is not ours to read.
    if u16_at(0)? != 0xeb9f || d.get(2) != Some(&1) {
        return None;
    }
    let hdr_len = u32_at(4)? as usize;
    let (type_off, type_len) = (u32_at(8)? as usize, u32_at(12)? as usize);
    let (str_off, str_len) = (u32_at(16)? as usize, u32_at(20)? as usize);
    let strings = d.get(hdr_len + str_off..hdr_len + str_off + str_len)?;
    let wanted: std::collections::HashSet<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
    let (mut at, end) = (hdr_len + type_off, hdr_len + type_off + type_len);
    let mut ids = Vec::new();
    let mut id = 0u32;
    while at < end {
        id += 1;
        // struct btf_type: name_off, info (vlen in bits 0-15, kind in 24-28), size/type.
        let (name_off, info) = (u32_at(at)? as usize, u32_at(at + 4)?);
        let vlen = (info & 0xffff) as usize;
        let kind = (info >> 24) & 0x1f;
        // What follows each kind (include/uapi/linux/btf.h).
        let extra = match kind {
            1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
            3 => 12,                      // ARRAY
            4 | 5 | 15 | 19 => vlen * 12, // STRUCT, UNION, DATASEC, ENUM64
            6 | 13 => vlen * 8,           // ENUM, FUNC_PROTO
            2 | 7..=12 | 16 | 18 => 0,    // PTR, FWD, TYPEDEF, qualifiers, FUNC, FLOAT, TYPE_TAG
            _ => return None,
        };
        // FUNC (12) names are half of all names and never wanted.
        if kind != 12 && name_off != 0 {
            let name = strings.get(name_off..)?;
            let len = name.iter().position(|&b| b == 0)?;
            if wanted.contains(&name[..len]) {
                ids.push(id);
            }
        }
        at += 12 + extra;
    }
    (at == end).then_some(ids)
}

/// A read-only mapping of a whole file, unmapped on drop.
struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapped {
    fn of(file: &std::fs::File) -> Option<Self> {
        use std::os::fd::AsRawFd;
        let len = file.metadata().ok()?.len() as usize;
        if len == 0 {
            return None;
        }
        // SAFETY: a private read-only mapping of an open file, kept alive by `Mapped`.
        let ptr =
            unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_PRIVATE, file.as_raw_fd(), 0) };
        (ptr != libc::MAP_FAILED).then_some(Self { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes mapped readable at `ptr` for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmapping what `of` mapped.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

impl KernelBtf {
    pub fn open(path: &Path) -> Result<Self, OffsetError> {
        // mmap'ing sysfs BTF (6.x) is ~10× faster than reading it; older kernels refuse it.
        let btf = Btf::from_file_with_backend(path, btf_rs::Backend::Mmap)
            .or_else(|_| Btf::from_file(path))
            .map_err(|source| OffsetError::Read { path: path.display().to_string(), source })?;
        Ok(Self { btf, path: path.to_path_buf(), named: Default::default() })
    }

    /// The types called `name`.
    fn named(&self, name: &str) -> Vec<Type> {
        self.named_ids(name).into_iter().map(|(_, t)| t).collect()
    }

    /// The types called `name`, with their ids.
    fn named_ids(&self, name: &str) -> Vec<(u32, Type)> {
        let mut named = self.named.borrow_mut();
        if named.is_empty() {
            let alternatives: Vec<String> = WANTED.iter().map(|n| regex::escape(n)).collect();
            let all = regex::Regex::new(&format!("^(?:{})$", alternatives.join("|"))).expect("a valid pattern");
            for n in WANTED {
                named.insert(n.to_string(), Vec::new());
            }
            let ids = scan_names(&self.path, WANTED)
                .unwrap_or_else(|| self.btf.resolve_ids_by_regex(&all).unwrap_or_default());
            for id in ids {
                if let Ok(t) = self.btf.resolve_type_by_id(id)
                    && let Some(n) = t.as_btf_type().and_then(|b| self.btf.resolve_name(b).ok())
                    && let Some(v) = named.get_mut(&n)
                {
                    v.push((id, t));
                }
            }
        }
        named
            .entry(name.to_string())
            .or_insert_with(|| {
                let ids = self.btf.resolve_ids_by_name(name).unwrap_or_default();
                ids.into_iter().filter_map(|id| Some((id, self.btf.resolve_type_by_id(id).ok()?))).collect()
            })
            .clone()
    }

    /// The BTF id of `btf_trace_<name>`, which a BTF-typed tracepoint program is loaded
    /// against.
    pub fn tracepoint_btf_id(&self, name: &str) -> Option<u32> {
        self.named_ids(&format!("btf_trace_{name}"))
            .into_iter()
            .find_map(|(id, t)| matches!(t, Type::Typedef(_)).then_some(id))
    }

    fn strukt(&self, name: &str) -> Result<btf_rs::Struct, OffsetError> {
        self.named(name)
            .into_iter()
            .find_map(|t| match t {
                Type::Struct(s) | Type::Union(s) if !s.members.is_empty() => Some(s),
                _ => None,
            })
            .ok_or_else(|| OffsetError::NoStruct(name.to_string()))
    }

    /// Follows typedefs and qualifiers down to the struct or union a member holds, if any.
    fn aggregate_of(&self, member: &dyn BtfType) -> Option<btf_rs::Struct> {
        let mut t = self.btf.resolve_chained_type(member).ok()?;
        loop {
            t = match t {
                Type::Struct(s) | Type::Union(s) => return Some(s),
                Type::Typedef(ref x) => self.btf.resolve_chained_type(x).ok()?,
                Type::Const(ref x) | Type::Volatile(ref x) | Type::Restrict(ref x) => {
                    self.btf.resolve_chained_type(x).ok()?
                }
                Type::TypeTag(ref x) => self.btf.resolve_chained_type(x).ok()?,
                _ => return None,
            };
        }
    }

    /// Byte offset of `field` in `s`, searching anonymous struct/union members too (the
    /// kernel wraps fields in them: `mm_struct`'s, `kernel_siginfo`'s).
    fn find(&self, s: &btf_rs::Struct, field: &str) -> Option<(u32, btf_rs::Member)> {
        for m in &s.members {
            let name = self.btf.resolve_name(m).unwrap_or_default();
            if name == field {
                return Some((m.bit_offset() / 8, m.clone()));
            }
            if name.is_empty()
                && let Some(inner) = self.aggregate_of(m)
                && let Some((off, found)) = self.find(&inner, field)
            {
                return Some((m.bit_offset() / 8 + off, found));
            }
        }
        None
    }

    /// Offset of a dotted path such as `live.counter` inside struct `strukt`.
    pub fn offset(&self, strukt: &str, path: &str) -> Result<u32, OffsetError> {
        let no_field = || OffsetError::NoField { strukt: strukt.into(), field: path.into() };
        let mut s = self.strukt(strukt)?;
        let mut total = 0;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            let (off, member) = self.find(&s, part).ok_or_else(no_field)?;
            total += off;
            if parts.peek().is_some() {
                s = self.aggregate_of(&member).ok_or_else(no_field)?;
            }
        }
        Ok(total)
    }

    pub fn size_of(&self, strukt: &str) -> Result<u32, OffsetError> {
        Ok(self.strukt(strukt)?.size() as u32)
    }

    /// Number of arguments of a raw tracepoint, from its `btf_trace_<name>` typedef (a
    /// pointer to a prototype whose first parameter is the context).
    pub fn raw_tracepoint_args(&self, name: &'static str) -> Result<usize, OffsetError> {
        let why = |w: &str| OffsetError::Prototype { name, why: w.to_string() };
        let typedef = format!("btf_trace_{name}");
        let t = self.named(&typedef).into_iter().next().ok_or_else(|| why("no btf_trace typedef"))?;
        let Type::Typedef(td) = t else { return Err(why("not a typedef")) };
        let Type::Ptr(p) = self.btf.resolve_chained_type(&td)? else {
            return Err(why("not a function pointer"));
        };
        let Type::FuncProto(proto) = self.btf.resolve_chained_type(&p)? else {
            return Err(why("not a function pointer"));
        };
        Ok(proto.parameters.len().saturating_sub(1))
    }

    /// Whether `enum bpf_func_id` lists a helper, i.e. this kernel has it.
    pub fn has_helper(&self, name: &str) -> bool {
        let want = format!("BPF_FUNC_{name}");
        self.named("bpf_func_id").iter().any(|t| {
            matches!(t, Type::Enum(e) if e.members.iter().any(|m| {
                self.btf.resolve_name(m).is_ok_and(|n| n == want)
            }))
        })
    }

    /// The value of `member` in `enum name`, if the kernel has it.
    fn enum_value(&self, name: &str, member: &str) -> Option<u32> {
        self.named(name).iter().find_map(|t| match t {
            Type::Enum(e) => {
                e.members.iter().find(|m| self.btf.resolve_name(*m).is_ok_and(|n| n == member)).map(|m| m.val())
            }
            _ => None,
        })
    }

    /// Offset of the memory controller's slot in `css_set::subsys`; 0 when the kernel has
    /// no memory controller (then no memory cgroup is captured).
    fn css_set_memcg(&self) -> Result<u32, OffsetError> {
        let Some(id) = self.enum_value("cgroup_subsys_id", "memory_cgrp_id") else { return Ok(0) };
        Ok(self.offset("css_set", "subsys")? + id * 8)
    }

    /// Where `pt_regs` keeps the number of the syscall in progress, if podsig can read it
    /// (needs the bpf_task_pt_regs helper, 5.15+).
    fn syscall_register(&self) -> (u32, u32) {
        if !self.has_helper("task_pt_regs") {
            return (0, 0);
        }
        let field = if cfg!(target_arch = "aarch64") { "syscallno" } else { "orig_ax" };
        let Ok(s) = self.strukt("pt_regs") else { return (0, 0) };
        match self.find(&s, field) {
            Some((off, m)) => {
                let size = match self.btf.resolve_chained_type(&m) {
                    Ok(Type::Int(i)) => i.size() as u32,
                    Ok(Type::Typedef(td)) => match self.btf.resolve_chained_type(&td) {
                        Ok(Type::Int(i)) => i.size() as u32,
                        _ => 8,
                    },
                    _ => 8,
                };
                (off, size)
            }
            None => (0, 0),
        }
    }

    /// Offset of a per-CPU variable inside the kernel's `.data..percpu` section.
    fn percpu_var_offset(&self, var: &str) -> Option<u32> {
        let ids: Vec<u32> =
            self.named_ids(var).into_iter().filter(|(_, t)| matches!(t, Type::Var(_))).map(|(id, _)| id).collect();
        self.named(".data..percpu").into_iter().find_map(|t| match t {
            Type::Datasec(ds) => {
                ds.variables.iter().find(|v| v.get_type_id().is_some_and(|id| ids.contains(&id))).map(|v| v.offset())
            }
            _ => None,
        })
    }

    /// Where the preempt count lives (see `KernelOffsets::preempt_source`): (source, task
    /// field offset, `se.cfs_rq`, `cfs_rq::rq`, `rq::cpu`, per-CPU distance from `runqueues`).
    fn preempt_count(&self) -> (u32, u32, u32, u32, u32, i32) {
        if let Ok(off) = self.offset("task_struct", "thread_info.preempt_count") {
            return (PREEMPT_TASK_FIELD, off, 0, 0, 0, 0);
        }
        let percpu = self.percpu_var_offset("__preempt_count").or_else(|| {
            let base = self.percpu_var_offset("pcpu_hot")?;
            Some(base + self.offset("pcpu_hot", "preempt_count").ok()?)
        });
        let path = (|| {
            let count = percpu?;
            let rq = self.percpu_var_offset("runqueues")?;
            let se = self.offset("task_struct", "se").ok()? + self.offset("sched_entity", "cfs_rq").ok()?;
            Some((se, self.offset("cfs_rq", "rq").ok()?, self.offset("rq", "cpu").ok()?, count as i64 - rq as i64))
        })();
        match path {
            Some((se, cfs_rq_rq, rq_cpu, delta)) if i32::try_from(delta).is_ok() => {
                (PREEMPT_PERCPU_VIA_RQ, 0, se, cfs_rq_rq, rq_cpu, delta as i32)
            }
            _ => (PREEMPT_NONE, 0, 0, 0, 0, 0),
        }
    }

    /// The `pt_regs` field with a syscall's first argument.
    fn syscall_arg0_register(&self) -> u32 {
        let field = if cfg!(target_arch = "aarch64") { "orig_x0" } else { "di" };
        self.offset("pt_regs", field).unwrap_or(0)
    }

    // Long: one line per KernelOffsets field, in the struct's order.
    pub fn kernel_offsets(&self) -> Result<KernelOffsets, OffsetError> {
        let task = |f: &str| self.offset("task_struct", f);
        // Renamed from real_start_time in 5.5; both are ns since boot.
        let task_start_time = task("start_boottime").or_else(|_| task("real_start_time"))?;
        let (regs_syscall, regs_syscall_size) = self.syscall_register();
        let (preempt_source, task_preempt_count, task_se_cfs_rq, cfs_rq_rq, rq_cpu, percpu_preempt_delta) =
            self.preempt_count();
        let (mm_rss_stat, rss_stride, rss_count) = self.rss_stat();
        Ok(KernelOffsets {
            task_pid: task("pid")?,
            task_tgid: task("tgid")?,
            task_comm: task("comm")?,
            task_real_parent: task("real_parent")?,
            task_group_leader: task("group_leader")?,
            task_start_time,
            task_mm: task("mm")?,
            task_thread_pid: task("thread_pid")?,
            task_signal: task("signal")?,
            task_exit_code: task("exit_code")?,
            mm_arg_start: self.offset("mm_struct", "arg_start")?,
            mm_arg_end: self.offset("mm_struct", "arg_end")?,
            pid_level: self.offset("pid", "level")?,
            pid_numbers: self.offset("pid", "numbers")?,
            upid_size: self.size_of("upid")?,
            upid_nr: self.offset("upid", "nr")?,
            signal_live: self.offset("signal_struct", "live.counter")?,
            siginfo_errno: self.offset("kernel_siginfo", "si_errno")?,
            siginfo_code: self.offset("kernel_siginfo", "si_code")?,
            regs_syscall,
            regs_syscall_size,
            task_flags: task("flags")?,
            upid_ns: self.offset("upid", "ns")?,
            pidns_inum: self.offset("pid_namespace", "ns.inum")?,
            task_cgroups: task("cgroups")?,
            css_set_memcg: self.css_set_memcg()?,
            css_cgroup: self.offset("cgroup_subsys_state", "cgroup")?,
            cgroup_kn: self.offset("cgroup", "kn")?,
            kn_id: self.offset("kernfs_node", "id")?,
            preempt_source,
            task_preempt_count,
            task_se_cfs_rq,
            cfs_rq_rq,
            rq_cpu,
            percpu_preempt_delta,
            // What follows adds to the story (disposition, executables) but a kernel
            // without one of these fields still gets every signal reported: 0 tells the
            // program the field is not there.
            task_sighand: task("sighand").unwrap_or(0),
            sighand_action: self.offset("sighand_struct", "action").unwrap_or(0),
            k_sigaction_size: self.size_of("k_sigaction").unwrap_or(0),
            k_sigaction_handler: self.offset("k_sigaction", "sa.sa_handler").unwrap_or(0),
            task_blocked: task("blocked").unwrap_or(0),
            signal_flags: self.offset("signal_struct", "flags").unwrap_or(0),
            regs_arg0: self.syscall_arg0_register(),
            mm_exe_file: self.offset("mm_struct", "exe_file").unwrap_or(0),
            file_inode: self.offset("file", "f_inode").unwrap_or(0),
            file_dentry: self.offset("file", "f_path.dentry").unwrap_or(0),
            file_vfsmount: self.offset("file", "f_path.mnt").unwrap_or(0),
            inode_ino: self.offset("inode", "i_ino").unwrap_or(0),
            inode_nlink: self.offset("inode", "i_nlink").or_else(|_| self.offset("inode", "__i_nlink")).unwrap_or(0),
            inode_sb: self.offset("inode", "i_sb").unwrap_or(0),
            sb_dev: self.offset("super_block", "s_dev").unwrap_or(0),
            sb_magic: self.offset("super_block", "s_magic").unwrap_or(0),
            dentry_name: self.offset("dentry", "d_name.name").unwrap_or(0),
            dentry_name_len: self.offset("dentry", "d_name.len").unwrap_or(0),
            dentry_parent: self.offset("dentry", "d_parent").unwrap_or(0),
            mount_mnt: self.offset("mount", "mnt").unwrap_or(0),
            mount_parent: self.offset("mount", "mnt_parent").unwrap_or(0),
            mount_mountpoint: self.offset("mount", "mnt_mountpoint").unwrap_or(0),
            mount_ns: self.offset("mount", "mnt_ns").unwrap_or(0),
            vfsmount_root: self.offset("vfsmount", "mnt_root").unwrap_or(0),
            task_nsproxy: task("nsproxy").unwrap_or(0),
            nsproxy_mnt_ns: self.offset("nsproxy", "mnt_ns").unwrap_or(0),
            task_btf: self.has_helper("get_current_task_btf") as u32,
            oom_task_arg: self.oom_task_arg() as u32,
            mm_total_vm: self.offset("mm_struct", "total_vm").unwrap_or(0),
            mm_pgtables_bytes: self.offset("mm_struct", "pgtables_bytes").unwrap_or(0),
            mm_rss_stat,
            rss_stride,
            rss_count,
            signal_oom_score_adj: self.offset("signal_struct", "oom_score_adj").unwrap_or(0),
            page_kb_shift: page_size().trailing_zeros().saturating_sub(10),
            signal_pids: self.offset("signal_struct", "pids").unwrap_or(0),
            task_parent: self.offset("task_struct", "parent").unwrap_or(0),
            task_runtime: self.offset("task_struct", "se.sum_exec_runtime").unwrap_or(0),
            task_loginuid: self.offset("task_struct", "loginuid").unwrap_or(0),
            task_sessionid: self.offset("task_struct", "sessionid").unwrap_or(0),
            signal_tty: self.offset("signal_struct", "tty").unwrap_or(0),
            tty_name: self.offset("tty_struct", "name").unwrap_or(0),
            css_set_dfl_cgrp: self.offset("css_set", "dfl_cgrp").unwrap_or(0),
        })
    }

    /// Whether `oom:mark_victim` hands over the victim's `task_struct` (6.x), not just its pid.
    fn oom_task_arg(&self) -> bool {
        let Some(Type::Typedef(td)) = self.named("btf_trace_mark_victim").into_iter().next() else { return false };
        let Ok(Type::Ptr(p)) = self.btf.resolve_chained_type(&td) else { return false };
        let Ok(Type::FuncProto(proto)) = self.btf.resolve_chained_type(&p) else { return false };
        // The first parameter is the context; the tracepoint's own come after it.
        proto.parameters.get(1).is_some_and(|a| matches!(self.btf.resolve_chained_type(a), Ok(Type::Ptr(_))))
    }

    /// `mm_struct::rss_stat`: (offset, stride, offset of the count in each), or zeros. An
    /// array of `struct percpu_counter` since 6.2; before, `struct mm_rss_stat` holding an
    /// array of `atomic_long_t`.
    fn rss_stat(&self) -> (u32, u32, u32) {
        let Ok(mm) = self.strukt("mm_struct") else { return (0, 0, 0) };
        let Some((off, member)) = self.find(&mm, "rss_stat") else { return (0, 0, 0) };
        match self.btf.resolve_chained_type(&member) {
            Ok(Type::Array(a)) => match (self.btf.resolve_chained_type(&a), self.offset("percpu_counter", "count")) {
                (Ok(Type::Struct(pc)), Ok(count)) => (off, pc.size() as u32, count),
                _ => (0, 0, 0),
            },
            Ok(Type::Struct(_)) => match self.offset("mm_struct", "rss_stat.count") {
                Ok(at) => (at, 8, 0),
                Err(_) => (0, 0, 0),
            },
            _ => (0, 0, 0),
        }
    }
}

fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as u32 } else { 4096 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads this machine's kernel BTF: checks the lookups against layouts that have been
    /// stable for years (so a lookup bug, not a kernel change, is what fails here).
    #[test]
    fn offsets_from_running_kernel() {
        if !Path::new(VMLINUX_BTF).exists() {
            assert!(std::env::var_os("CI").is_none(), "CI needs {VMLINUX_BTF}");
            eprintln!("skipped: this kernel has no {VMLINUX_BTF}");
            return;
        }
        let btf = KernelBtf::open(Path::new(VMLINUX_BTF)).unwrap();
        let o = btf.kernel_offsets().unwrap();
        // struct upid { int nr; struct pid_namespace *ns; }
        assert_eq!((o.upid_nr, o.upid_size), (0, 16));
        // kernel_siginfo: si_signo, si_errno, si_code, in an anonymous struct.
        assert_eq!((o.siginfo_errno, o.siginfo_code), (4, 8));
        assert_eq!(o.task_tgid, o.task_pid + 4);
        assert!(o.mm_arg_end == o.mm_arg_start + 8);
        assert_eq!(btf.raw_tracepoint_args("signal_generate").unwrap(), 5);
        assert!(btf.tracepoint_btf_id("signal_generate").is_some_and(|id| id > 0));
        assert!(btf.offset("task_struct", "no_such_field").is_err());
        // 6.x on x86-64: the helper exists and orig_ax is an unsigned long.
        assert!(btf.has_helper("task_pt_regs"));
        assert!(!btf.has_helper("no_such_helper"));
        assert_eq!(o.regs_syscall_size, 8);
        // memory_cgrp_id is 4 on x86-64 configs with cpuset, cpu, cpuacct and io before it.
        assert!(o.css_set_memcg >= btf.offset("css_set", "subsys").unwrap() + 8, "{}", o.css_set_memcg);
        // x86-64 keeps the preempt count per CPU: found through the runqueue.
        #[cfg(target_arch = "x86_64")]
        assert_eq!(o.preempt_source, PREEMPT_PERCPU_VIA_RQ, "{o:?}");
        assert_ne!(o.percpu_preempt_delta, 0);
        // struct k_sigaction { struct sigaction sa; } with sa_handler first.
        assert_eq!(o.k_sigaction_handler, 0);
        assert!(o.k_sigaction_size >= 32);
        assert!(o.regs_arg0 > 0 && o.dentry_name > 0 && o.mount_mnt > 0);
        assert_eq!(o.task_btf, 1, "6.x has bpf_get_current_task_btf");
        eprintln!("{o:?}");
    }

    /// The cached layout comes back as it went in, for its key only, and only from a
    /// private file of root's.
    #[test]
    fn the_layout_cache_round_trips_and_trusts_only_roots_private_file() {
        use std::os::unix::fs::PermissionsExt as _;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: the cache is root's");
            return;
        }
        let dir = std::env::temp_dir().join(format!("podsig-layout-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut offsets = KernelOffsets::default();
        (offsets.task_tgid, offsets.percpu_preempt_delta, offsets.task_btf) = (2484, -12, 1);
        let layout = BtfLayout { offsets, has_loop: true, signal_generate_btf_id: Some(77) };
        cache::write(&dir, "k1", &layout);
        let back = cache::read(&dir, "k1").expect("read back");
        assert_eq!((back.offsets.task_tgid, back.offsets.percpu_preempt_delta, back.offsets.task_btf), (2484, -12, 1));
        assert_eq!((back.has_loop, back.signal_generate_btf_id), (true, Some(77)));
        assert!(cache::read(&dir, "k2").is_none(), "another boot, kernel or binary");
        let file = dir.join("btf-layout");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(cache::read(&dir, "k1").is_none(), "readable by others: not trusted");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The fast name scan finds exactly what btf-rs's search finds.
    #[test]
    fn name_scan_agrees_with_btf_rs() {
        if !Path::new(VMLINUX_BTF).exists() {
            eprintln!("skipped: this kernel has no {VMLINUX_BTF}");
            return;
        }
        let path = Path::new(VMLINUX_BTF);
        let mut fast = scan_names(path, WANTED).expect("this kernel's BTF is scanned");
        let btf = Btf::from_file(path).unwrap();
        let alternatives: Vec<String> = WANTED.iter().map(|n| regex::escape(n)).collect();
        let all = regex::Regex::new(&format!("^(?:{})$", alternatives.join("|"))).unwrap();
        let mut slow: Vec<u32> = btf
            .resolve_ids_by_regex(&all)
            .unwrap()
            .into_iter()
            .filter(|&id| !matches!(btf.resolve_type_by_id(id), Ok(Type::Func(_))))
            .collect();
        fast.sort();
        slow.sort();
        assert!(fast.len() > 20, "{fast:?}");
        assert_eq!(fast, slow);
    }
}
