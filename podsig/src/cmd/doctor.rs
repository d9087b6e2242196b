//! `podsig doctor`: everything the SystemTap recipe's preparation section had a person check
//! by hand, checked, each with the fix when something is missing.

use std::{fs, path::Path};

use serde::Serialize;

use crate::sink::output::{self, Format};
use crate::source::{
    WatchSpec,
    ebpf::{EbpfBackend, build::Hook, offsets, tracefs},
    features::{
        self, Check, Status, bpf_map_create, bpf_refusal, cap_eff, check, kernel_release, stap_checks, tracepoint,
    },
};

#[derive(Debug, Serialize)]
pub struct BackendVerdict {
    pub usable: bool,
    pub why: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub kernel: String,
    pub checks: Vec<Check>,
    /// The build of the signal hook this kernel took when doctor loaded it, against the best
    /// it should take; null when eBPF could not be tried.
    pub hook: Option<Hook>,
    pub ebpf: BackendVerdict,
    pub stap: BackendVerdict,
}

impl Report {
    pub fn any_backend(&self) -> bool {
        self.ebpf.usable || self.stap.usable
    }
}

/// `podsig doctor`: the report, and a failure when no backend can run here.
pub fn command(args: crate::cli::DoctorArgs) -> anyhow::Result<()> {
    let report = run();
    match args.output {
        Format::Text => output::print(text(&report).as_bytes())?,
        Format::Json => output::print((serde_json::to_string(&report)? + "\n").as_bytes())?,
    }
    if !report.any_backend() {
        anyhow::bail!("no backend can run on this host (see the missing checks above)");
    }
    Ok(())
}

pub fn run() -> Report {
    let release = kernel_release();
    let mut checks = Vec::new();
    checks.push(Check { name: "kernel", status: Status::Info, detail: release.clone(), fix: None });
    let (privileged, bpf) = access_checks(&mut checks);
    let (mounted, sg, ex) = tracing_checks(&mut checks);
    let (btf_ok, confidential) = feature_checks(&mut checks);
    manager_checks(&mut checks);
    let mut ebpf_usable = privileged && bpf && sg && ex && (btf_ok || mounted) && !confidential;
    let hook = if ebpf_usable { hook_check(&mut checks) } else { None };
    ebpf_usable &= hook.is_some();
    let ebpf_why = ebpf_why(&checks, ebpf_usable, btf_ok);
    let (stap_checks, stap_usable, stap_why) = stap_checks(&release);
    checks.extend(stap_checks);
    Report {
        kernel: release,
        checks,
        hook,
        ebpf: BackendVerdict { usable: ebpf_usable, why: ebpf_why },
        stap: BackendVerdict { usable: stap_usable, why: stap_why },
    }
}

/// Privilege and the bpf() syscall: (privileged, bpf() works).
fn access_checks(checks: &mut Vec<Check>) -> (bool, bool) {
    let caps = cap_eff();
    let privileged = features::privileged(caps);
    checks.push(check(
        "privileges",
        privileged,
        format!("effective capabilities {caps:#x}"),
        "run as root (sudo podsig …) or grant CAP_BPF and CAP_PERFMON",
    ));

    let bpf = bpf_map_create(2, 4, 4, 1); // BPF_MAP_TYPE_ARRAY
    checks.push(check(
        "bpf() syscall",
        bpf.is_ok(),
        match &bpf {
            Ok(()) => "a BPF map was created".to_string(),
            Err(e) => format!("BPF_MAP_CREATE failed: {}", bpf_refusal(e)),
        },
        "needs CONFIG_BPF_SYSCALL=y, privilege, and no seccomp filter or security module refusing bpf()",
    ));
    (privileged, bpf.is_ok())
}

/// tracefs and the tracepoints podsig hooks: (tracefs mounted, signal_generate, exit).
fn tracing_checks(checks: &mut Vec<Check>) -> (bool, bool, bool) {
    let mounted_before = Path::new(tracefs::TRACEFS).join("events").exists();
    let mount = tracefs::ensure_mounted();
    checks.push(check(
        "tracefs",
        mount.is_ok(),
        match (&mount, mounted_before) {
            (Ok(()), true) => format!("mounted at {}", tracefs::TRACEFS),
            (Ok(()), false) => format!("was not mounted; mounted it at {}", tracefs::TRACEFS),
            (Err(e), _) => format!("{e:#}"),
        },
        format!("mount -t tracefs tracefs {}", tracefs::TRACEFS),
    ));

    let sg = tracepoint("signal", "signal_generate");
    let ex = tracepoint("sched", "sched_process_exit");
    let oom = tracepoint("oom", "mark_victim");
    checks.push(check(
        "tracepoint signal:signal_generate",
        sg,
        if sg { "present" } else { "absent" },
        "needs CONFIG_TRACEPOINTS (every distribution kernel has it)",
    ));
    checks.push(check(
        "tracepoint sched:sched_process_exit",
        ex,
        if ex { "present" } else { "absent" },
        "needs CONFIG_TRACEPOINTS",
    ));
    checks.push(check(
        "tracepoint oom:mark_victim",
        oom,
        if oom { "present: OOM kills are recognised" } else { "absent: OOM kills are reported as kernel SIGKILLs" },
        "a kernel with the oom tracepoints (4.x+)",
    ));
    (mount.is_ok(), sg, ex)
}

/// Kernel BTF, syscall evidence, the ring buffer, lockdown: (BTF usable, lockdown forbids).
fn feature_checks(checks: &mut Vec<Check>) -> (bool, bool) {
    let btf_path = Path::new(offsets::VMLINUX_BTF);
    let btf = offsets::KernelBtf::open(btf_path);
    let (btf_ok, btf_detail, helper) = match &btf {
        Ok(b) => match b.kernel_offsets() {
            Ok(_) => {
                (true, format!("{}: task_struct offsets resolved", offsets::VMLINUX_BTF), b.has_helper("task_pt_regs"))
            }
            Err(e) => (false, format!("{e}"), false),
        },
        Err(e) => (false, format!("{e}; podsig falls back to classic tracepoints and /proc"), false),
    };
    checks.push(check(
        "kernel BTF",
        btf_ok,
        btf_detail,
        "a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distribution kernels since 5.x); without it ancestry comes from /proc",
    ));
    checks.push(check(
        "syscall evidence (bpf_task_pt_regs)",
        helper,
        if helper {
            "present: kill(2) is told from kernel-raised signals"
        } else {
            "absent: cause relies on si_code alone"
        },
        "a 5.15+ kernel with BTF",
    ));

    let ringbuf = bpf_map_create(27, 0, 0, 4096); // BPF_MAP_TYPE_RINGBUF
    checks.push(check(
        "BPF ring buffer",
        ringbuf.is_ok(),
        match &ringbuf {
            Ok(()) => "supported".to_string(),
            Err(e) => format!("BPF_MAP_TYPE_RINGBUF unavailable ({e}): podsig uses a perf event array instead"),
        },
        "a 5.8+ kernel (optional: the perf event array fallback works without it)",
    ));

    let lockdown = fs::read_to_string("/sys/kernel/security/lockdown").ok();
    let mode = lockdown.as_deref().and_then(|l| {
        l.split_whitespace().find(|w| w.starts_with('[')).map(|w| w.trim_matches(['[', ']']).to_string())
    });
    let confidential = mode.as_deref() == Some("confidentiality");
    checks.push(check(
        "lockdown",
        !confidential,
        mode.map_or("not enforced (no lockdown LSM)".to_string(), |m| format!("mode {m}")),
        "confidentiality lockdown forbids reading kernel memory from BPF; boot with lockdown=integrity or none",
    ));
    (btf_ok, confidential)
}

/// The signal hook loaded for real, as `watch` loads it: which build the kernel took, and
/// what a weaker one leaves out.
fn hook_check(checks: &mut Vec<Check>) -> Option<Hook> {
    let hook = match EbpfBackend::open(&WatchSpec::default()) {
        Ok(b) => b.hook().clone(),
        Err(e) => {
            checks.push(check(
                "signal hook build",
                false,
                format!("no build of the hook loaded: {}", crate::error_line(&e)),
                "run `podsig -v watch --pid 1` for the verifier's whole log, and report it with this kernel's release",
            ));
            return None;
        }
    };
    let name = format!("{} ({})", hook.build.as_str(), hook.build.describe());
    let (status, detail, fix) = match hook.degraded() {
        None => (Status::Ok, format!("{name}: the best build, nothing left out"), None),
        Some(line) => {
            let fix = match (&hook.reason, hook.lacks.is_empty()) {
                (Some(_), _) => "report this kernel's release with `podsig -v watch --pid 1`'s log: the better \
                                 build should load here"
                    .to_string(),
                (None, false) => "a 5.17+ kernel with BTF captures what is left out".to_string(),
                (None, true) => "nothing to do: the records are complete".to_string(),
            };
            let status = if hook.lacks.is_empty() { Status::Info } else { Status::Missing };
            (status, line.trim_start_matches("signal hook: ").to_string(), Some(fix))
        }
    };
    checks.push(Check { name: "signal hook build", status, detail, fix });
    Some(hook)
}

/// The container managers that name containers (informational).
fn manager_checks(checks: &mut Vec<Check>) {
    let sock = Path::new("/run/containerd/containerd.sock");
    let namespaces: Vec<String> = fs::read_dir("/run/containerd/io.containerd.runtime.v2.task")
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    checks.push(Check {
        name: "containerd",
        status: Status::Info,
        detail: if sock.exists() {
            format!(
                "socket {} present; namespaces with running tasks: {}",
                sock.display(),
                if namespaces.is_empty() { "none".into() } else { namespaces.join(", ") }
            )
        } else {
            format!("no socket at {} (only needed to name containers)", sock.display())
        },
        fix: None,
    });

    let docker = crate::containers::docker::DEFAULT_SOCKETS.iter().map(Path::new).find(|p| p.exists());
    checks.push(Check {
        name: "docker",
        status: Status::Info,
        detail: match docker {
            Some(sock) => format!("socket {} present (names Docker's containers)", sock.display()),
            None => format!(
                "no socket at {} (only needed to name Docker's containers)",
                crate::containers::docker::DEFAULT_SOCKETS.join(" or ")
            ),
        },
        fix: None,
    });
}

/// Why eBPF is usable or not: the missing checks that matter (not the optional ones).
fn ebpf_why(checks: &[Check], usable: bool, btf_ok: bool) -> String {
    if usable {
        if btf_ok { "everything podsig's eBPF backend uses is here" } else { "usable through the no-BTF fallback" }
            .to_string()
    } else {
        let missing: Vec<&str> = checks
            .iter()
            .filter(|c| {
                c.status == Status::Missing
                    && !matches!(
                        c.name,
                        "tracepoint oom:mark_victim"
                            | "syscall evidence (bpf_task_pt_regs)"
                            | "kernel BTF"
                            | "BPF ring buffer"
                    )
            })
            .map(|c| c.name)
            .collect();
        format!("missing: {}", missing.join(", "))
    }
}

pub fn text(r: &Report) -> String {
    let mut t = String::new();
    for c in &r.checks {
        let status = match c.status {
            Status::Ok => "ok",
            Status::Missing => "missing",
            Status::Info => "info",
        };
        t += &format!("{status:<8} {:<36} {}\n", c.name, c.detail);
        if let Some(fix) = &c.fix {
            t += &format!("{:<8} {:<36} fix: {fix}\n", "", "");
        }
    }
    t += &format!("backend ebpf: {} ({})\n", if r.ebpf.usable { "usable" } else { "not usable" }, r.ebpf.why);
    t += &format!("backend stap: {} ({})\n", if r.stap.usable { "usable" } else { "not usable" }, r.stap.why);
    t
}
