//! Where records come from: `target` (what to watch), then a backend (`ebpf`, or `stap` where
//! eBPF cannot run) turns the watch request into kernel hooks and hands back raw events.
//!
//! Each backend produces the same `event::Record`s; enrichment and output never know which
//! backend ran.

pub mod backend;
pub mod ebpf;
pub mod features;
pub mod stap;
pub mod target;

use anyhow::{Result, bail};

use crate::event::Record;

pub use self::backend::{Backend, BackendKind, Malformed, RequestCapture, WatchSpec};

/// The backends behind one type, so the watch loop is written once.
pub enum AnyBackend {
    Ebpf(Box<ebpf::EbpfBackend>),
    Stap(Box<stap::StapBackend>),
}

impl Backend for AnyBackend {
    fn name(&self) -> &'static str {
        match self {
            AnyBackend::Ebpf(b) => b.name(),
            AnyBackend::Stap(b) => b.name(),
        }
    }
    async fn ready(&mut self) -> Result<()> {
        match self {
            AnyBackend::Ebpf(b) => b.ready().await,
            AnyBackend::Stap(b) => b.ready().await,
        }
    }
    fn drain(&mut self, out: &mut Vec<Record>) -> Result<()> {
        match self {
            AnyBackend::Ebpf(b) => b.drain(out),
            AnyBackend::Stap(b) => b.drain(out),
        }
    }
    fn unwatch(&mut self, pid: u32) -> Result<()> {
        match self {
            AnyBackend::Ebpf(b) => b.unwatch(pid),
            AnyBackend::Stap(b) => b.unwatch(pid),
        }
    }
    fn watch(&mut self, pid: u32) -> Result<()> {
        match self {
            AnyBackend::Ebpf(b) => Backend::watch(b.as_mut(), pid),
            AnyBackend::Stap(b) => b.watch(pid),
        }
    }
    fn watch_root(&mut self, pid: u32) -> Result<()> {
        match self {
            AnyBackend::Ebpf(b) => b.watch_root(pid),
            AnyBackend::Stap(b) => b.watch_root(pid),
        }
    }
    fn take_malformed(&mut self) -> u64 {
        match self {
            AnyBackend::Ebpf(b) => b.take_malformed(),
            AnyBackend::Stap(b) => b.take_malformed(),
        }
    }
    fn captures_requests(&self) -> RequestCapture {
        match self {
            AnyBackend::Ebpf(b) => b.captures_requests(),
            AnyBackend::Stap(b) => b.captures_requests(),
        }
    }
}

/// What the eBPF backend needs from this kernel, or what is missing.
pub fn ebpf_missing() -> Vec<String> {
    let mut missing = Vec::new();
    if let Err(e) = features::bpf_map_create(2, 4, 4, 1) {
        missing.push(format!("the bpf() syscall, {}", features::bpf_refusal(&e)));
    }
    let _ = ebpf::tracefs::ensure_mounted();
    // Only whether BTF is there: reading it is the attach's job (a few ms, not done twice),
    // and a kernel whose BTF lacks what podsig needs fails there with its own message.
    let in_btf = std::path::Path::new(ebpf::offsets::VMLINUX_BTF).exists();
    if !in_btf && !features::tracepoint("signal", "signal_generate") {
        missing.push("the signal:signal_generate tracepoint (a 3.x+ kernel with tracepoints)".into());
    }
    // No ring buffer (< 5.8) is fine: the perf event array fallback takes over.
    missing
}

/// Why SystemTap cannot run here, if it cannot: with a prebuilt module, what loading it
/// needs; without one, what compiling one here needs.
pub fn stap_missing(module: Option<&std::path::Path>) -> Option<String> {
    let release = features::kernel_release();
    let (_, usable, why) = match module {
        Some(m) => features::stap_module_checks(m, &release),
        None => features::stap_checks(&release),
    };
    (!usable).then_some(why)
}

/// Starts, on another thread, what attaching `kind` will need first (the kernel's layout
/// from BTF), so the caller's remaining start-up overlaps it.
pub fn prefetch(kind: BackendKind) {
    if kind != BackendKind::Stap {
        ebpf::prefetch();
    }
}

pub async fn attach(kind: BackendKind, spec: &WatchSpec) -> Result<AnyBackend> {
    let ebpf = |spec| -> Result<AnyBackend> { Ok(AnyBackend::Ebpf(Box::new(ebpf::EbpfBackend::attach(spec)?))) };
    let stap = async |spec: &WatchSpec| -> Result<AnyBackend> {
        let backend = stap::StapBackend::attach(spec, spec.verbose).await?;
        if !spec.requests.is_empty() {
            // As the eBPF backend says when its request hooks cannot attach.
            tracing::warn!(
                "requests to managers cannot be captured with SystemTap, so no signal names who asked a manager \
                 for it"
            );
        }
        Ok(AnyBackend::Stap(Box::new(backend)))
    };
    let module = spec.stap_module.as_deref();
    match kind {
        BackendKind::Ebpf if module.is_some() => {
            bail!("--stap-module is never loaded with --backend ebpf: drop one of them")
        }
        BackendKind::Ebpf => ebpf(spec),
        BackendKind::Stap => stap(spec).await,
        BackendKind::Auto => {
            let missing = ebpf_missing();
            if missing.is_empty() {
                if tracing::enabled!(tracing::Level::INFO) {
                    let why = match module {
                        Some(m) => format!("the SystemTap module {} is not loaded", m.display()),
                        None => format!(
                            "SystemTap would not do: {}",
                            stap_missing(None).unwrap_or_else(|| "it would work too".into())
                        ),
                    };
                    tracing::info!("backend auto: eBPF is supported here; {why}");
                }
                return ebpf(spec);
            }
            match stap_missing(module) {
                None => {
                    // Said at every verbosity: the records will carry less than eBPF's.
                    let how =
                        module.map_or("compiling a module with stap".into(), |m| format!("module {}", m.display()));
                    tracing::warn!(
                        "backend auto: eBPF cannot run here, it needs {}; using SystemTap ({how})",
                        missing.join("; ")
                    );
                    stap(spec).await
                }
                Some(stap_why) => bail!(
                    "no backend can run here: eBPF needs {}; SystemTap is {stap_why} (see `podsig doctor`)",
                    missing.join("; ")
                ),
            }
        }
    }
}
