//! Kernel struct offsets from the running kernel's BTF.
//!
//! The eBPF program reads `task_struct` and friends with `bpf_probe_read_kernel` at offsets it
//! is given at load time, so one compiled program serves every kernel; this module is where
//! those offsets come from. Nothing here is guessed: a field missing from BTF is an error
//! that names it.

use std::{path::Path, sync::Mutex, thread::JoinHandle};

use btf_rs::{Btf, BtfType, Type};
use podsig_common::KernelOffsets;

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

    pub fn kernel_offsets(&self) -> Result<KernelOffsets, OffsetError> {
        let task = |f: &str| self.offset("task_struct", f);
        // Renamed from real_start_time in 5.5; both are ns since boot.
        let task_start_time = task("start_boottime").or_else(|_| task("real_start_time"))?;
        let (regs_syscall, regs_syscall_size) = self.syscall_register();
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
    }
}
