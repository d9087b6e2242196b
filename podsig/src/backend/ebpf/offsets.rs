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
        *slot = std::thread::Builder::new().name("btf".into()).spawn(|| read_layout(Path::new(VMLINUX_BTF))).ok();
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
];

impl KernelBtf {
    pub fn open(path: &Path) -> Result<Self, OffsetError> {
        // mmap'ing sysfs BTF (6.x) is ~10× faster than reading it; older kernels refuse it.
        let btf = Btf::from_file_with_backend(path, btf_rs::Backend::Mmap)
            .or_else(|_| Btf::from_file(path))
            .map_err(|source| OffsetError::Read { path: path.display().to_string(), source })?;
        Ok(Self { btf, named: Default::default() })
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
            for id in self.btf.resolve_ids_by_regex(&all).unwrap_or_default() {
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

    pub fn kernel_offsets(&self) -> Result<KernelOffsets, OffsetError> {
        let task = |f: &str| self.offset("task_struct", f);
        // Renamed from real_start_time in 5.5; both are ns since boot.
        let task_start_time = task("start_boottime").or_else(|_| task("real_start_time"))?;
        let (regs_syscall, regs_syscall_size) = self.syscall_register();
        let (preempt_source, task_preempt_count, task_se_cfs_rq, cfs_rq_rq, rq_cpu, percpu_preempt_delta) =
            self.preempt_count();
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
            _pad: 0,
        })
    }
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
        eprintln!("{o:?}");
    }
}
