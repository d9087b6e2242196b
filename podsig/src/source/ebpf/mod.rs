//! The eBPF backend: loads `podsig-ebpf` (embedded at build time), feeds it the running
//! kernel's struct offsets and the targets, and decodes its ring buffer into records.
//!
//! This file loads and attaches; `reader` waits on and drains the ring buffer (or the perf
//! buffers); `decode` turns the bytes into records.

pub mod build;
mod decode;
pub mod offsets;
mod reader;
pub mod tracefs;

use std::{io, path::Path};

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray},
    programs::{BtfTracePoint, RawTracePoint, TracePoint},
};
use podsig_common::{FilterConfig, TARGET_BITMAP_WORDS, TARGET_CHILD, TracepointFormat};

use self::{
    build::{Build, Hook},
    decode::REPEAT_WINDOW_MS,
    reader::Reader,
};
use crate::source::backend::{Backend, RequestCapture, WatchSpec};
use crate::{event::Record, signals};

static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/podsig"));
/// The same programs over a perf event array, for kernels without BPF ring buffers (< 5.8).
static PROGRAM_PERF: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/podsig-perf"));

/// 2 MiB holds ~14,000 storm records (144 bytes; a sender's detail goes once a second) or
/// ~1,200 records from distinct senders, ~10 ms of the fastest storm one core can send,
/// which the reader drains in a fraction of that. The buffer is mapped twice and all of it
/// is resident, so it is most of podsig's memory: bigger buys nothing but RSS.
pub const DEFAULT_RING_BYTES: u32 = 2 << 20;

/// How often connections of exited clients are forgotten (see `prune_conns`).
const CONNS_PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

pub struct EbpfBackend {
    // Field order is drop order: the maps go before the programs and links they feed.
    reader: Reader,
    targets: HashMap<MapData, u32, u32>,
    /// The miss path's pid bitmap (BTF mode); this process is its only writer.
    target_bits: Array<MapData, u64>,
    /// Fallback mode keys the filter by tid: the tids added for each watched process.
    tids: std::collections::HashMap<u32, Vec<u32>>,
    mode: Mode,
    hook: Hook,
    /// Whether clients' requests to the manager sockets are captured, and whose.
    requests: RequestCapture,
    /// When the kernel's list of clients' connections was last rid of exited clients'.
    conns_pruned: std::time::Instant,
    /// The object: its programs stay attached while it is held.
    ebpf: Ebpf,
}

/// How the kernel side reads what it reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `task_struct` and the rest read at offsets from the kernel's BTF (BTF-typed or raw
    /// tracepoints): everything is captured in kernel, ancestry included.
    Btf,
    /// Classic tracepoints with layouts from tracefs, for kernels without BTF: the sender's
    /// ancestry and argv come from /proc, so a sender that already exited is reported bare.
    Tracepoint,
}

/// `PODSIG_FORCE_FALLBACK=btf` takes the no-BTF path on any kernel (tests, comparisons);
/// `ringbuf` the perf event array, `tp_btf` the raw tracepoint, `loop` the bounded walk, and
/// `refuse` loads a build every verifier refuses in the typed build's place (the path a
/// kernel that refuses the typed build takes). Comma-separated.
pub const FORCE_FALLBACK_ENV: &str = "PODSIG_FORCE_FALLBACK";

fn forced(what: &str) -> bool {
    std::env::var(FORCE_FALLBACK_ENV).is_ok_and(|v| v.split(',').any(|f| f.trim() == what))
}

enum Layout {
    /// Boxed: the BTF layout is several hundred bytes, the tracepoint one a few dozen.
    Btf(Box<offsets::BtfLayout>),
    Tracepoint(TracepointFormat),
}

fn layout() -> Result<Layout> {
    // Without BTF, the line that says the classic tracepoint build runs says what it lacks.
    if forced("btf") {
        tracing::info!("{FORCE_FALLBACK_ENV}: not using kernel BTF");
    } else if Path::new(offsets::VMLINUX_BTF).exists() {
        return Ok(Layout::Btf(Box::new(offsets::layout()?)));
    }
    // The fallback reads the classic tracepoints' formats (and ids) from tracefs.
    if let Err(e) = tracefs::ensure_mounted() {
        tracing::warn!("{e:#}");
    }
    Ok(Layout::Tracepoint(tracefs::tracepoint_format()?))
}

/// aya's probes of the kernel's BPF features (a dozen small loads, ~2 ms), and whether the
/// kernel has ring buffers, asked on a thread of their own as soon as podsig knows it will
/// attach: with the kernel's layout cached, they are what attaching would wait for first.
static FEATURES: std::sync::Mutex<Option<std::thread::JoinHandle<bool>>> = std::sync::Mutex::new(None);

fn spawn_feature_checks() -> std::thread::JoinHandle<bool> {
    std::thread::spawn(|| {
        aya::features();
        !forced("ringbuf") && crate::source::features::bpf_map_create(27, 0, 0, page_size()).is_ok() // BPF_MAP_TYPE_RINGBUF
    })
}

/// Starts what attaching will need first, while the caller gets on with the rest.
pub(super) fn prefetch() {
    if let Ok(mut slot) = FEATURES.lock()
        && slot.is_none()
    {
        *slot = Some(spawn_feature_checks());
    }
    if !forced("btf") {
        offsets::prefetch();
    }
}

impl EbpfBackend {
    /// Loads and attaches for `spec`; a build weaker than the kernel's best says so in one
    /// line.
    pub fn attach(spec: &WatchSpec) -> Result<Self> {
        let me = Self::open(spec)?;
        if let Some(line) = me.hook.degraded() {
            tracing::warn!("{line}");
        }
        Ok(me)
    }

    /// Loads and attaches for `spec`, quietly: `attach`, and `doctor`'s probe of the build.
    pub fn open(spec: &WatchSpec) -> Result<Self> {
        let t0 = std::time::Instant::now();
        raise_memlock();
        let features = FEATURES.lock().ok().and_then(|mut slot| slot.take()).unwrap_or_else(spawn_feature_checks);
        let layout = layout()?;
        tracing::debug!("kernel layout read in {:?}", t0.elapsed());
        let ring_bytes = spec.ring_bytes.max(page_size()).next_power_of_two();
        let ringbuf = features.join().unwrap_or(false);
        if forced("ringbuf") {
            tracing::info!("{FORCE_FALLBACK_ENV}: not using the BPF ring buffer");
        }
        if !ringbuf {
            tracing::info!("no BPF ring buffer on this kernel: using a perf event array");
        }
        let config = filter_config(spec, ring_bytes, ringbuf);
        let (mut ebpf, mode, oom_format) = load(&config, &layout, ringbuf, ring_bytes)?;
        tracing::debug!("program loaded at {:?}", t0.elapsed());

        let targets: HashMap<MapData, u32, u32> =
            HashMap::try_from(ebpf.take_map("TARGETS").context("map TARGETS missing")?)?;
        let target_bits: Array<MapData, u64> =
            Array::try_from(ebpf.take_map("TARGET_BITS").context("map TARGET_BITS missing")?)?;
        let events = ebpf.take_map("EVENTS").context("map EVENTS missing")?;
        let lost = PerCpuArray::try_from(ebpf.take_map("LOST").context("map LOST missing")?)?;
        let fold = PerCpuArray::try_from(ebpf.take_map("FOLD").context("map FOLD missing")?)?;
        let reader = Reader::open(events, ringbuf, ring_bytes, page_size(), lost, fold)?;
        let hook = Hook::new(Build::Tracepoint, None, None);
        let mut me = Self {
            reader,
            targets,
            target_bits,
            tids: Default::default(),
            mode,
            hook,
            requests: RequestCapture::Off,
            conns_pruned: std::time::Instant::now(),
            ebpf,
        };
        // Filter first, then attach: nothing is reported before the targets are in place.
        for &pid in &spec.pids {
            me.add_target(pid, false)?;
        }
        me.hook = me.attach_programs(&layout, t0)?;
        me.reader.set_lacks(me.hook.lacks);
        me.attach_extras(spec, oom_format.is_some())?;
        if !spec.requests.is_empty() {
            // Requests are evidence for a link, not the watch itself: without them the
            // signals are still reported, with one line saying what is missing.
            match me.attach_requests(&spec.requests) {
                Ok(capture) => me.requests = capture,
                Err(e) => tracing::warn!(
                    "requests to managers cannot be captured, so no signal names who asked a manager for it: {e:#}"
                ),
            }
        }
        tracing::info!(
            "attached in {:?}: {} build ({}), events through a {}",
            t0.elapsed(),
            me.hook.build.as_str(),
            me.hook.build.describe(),
            me.reader.transport()
        );
        // Reading the kernel's BTF and the object left freed heap behind; hand those pages
        // back so a long watch stays small.
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only releases free heap memory.
        unsafe {
            libc::malloc_trim(0);
        }
        Ok(me)
    }

    /// Verifies and attaches the signal hook and the exit hook; says which build of the
    /// signal hook runs, and why when it is not the kernel's best.
    fn attach_programs(&mut self, layout: &Layout, t0: std::time::Instant) -> Result<Hook> {
        let l = match layout {
            Layout::Btf(l) => l,
            Layout::Tracepoint(_) => {
                attach(&mut self.ebpf, "signal_generate_tp", At::Classic("signal", "signal_generate"))?;
                attach(&mut self.ebpf, "sched_process_exit_tp", At::Classic("sched", "sched_process_exit"))?;
                let (expected, reason) = match forced("btf") {
                    true => (None, Some(format!("forced by {FORCE_FALLBACK_ENV}=btf"))),
                    false => (Some(Build::Tracepoint), None),
                };
                return Ok(Hook::new(Build::Tracepoint, expected, reason));
            }
        };
        let expected = Build::best(true, l.signal_generate_btf_id.is_some(), l.has_loop);
        let skip: Vec<&str> = ["tp_btf", "loop"].into_iter().filter(|f| forced(f)).collect();
        let mut reason = (!skip.is_empty()).then(|| format!("forced by {FORCE_FALLBACK_ENV}={}", skip.join(",")));
        let mut first_error = None;
        let mut chosen = None;
        for build in expected.candidates(!forced("tp_btf"), !forced("loop")) {
            match self.attach_signal(build, l.signal_generate_btf_id) {
                Ok(()) => {
                    chosen = Some(build);
                    break;
                }
                Err(e) => {
                    // The whole refusal, verifier log included, for -v; the line that says
                    // a weaker build runs names its first refusing line.
                    tracing::info!("{e:#}");
                    reason.get_or_insert_with(|| format!("{} was refused: {}", build.as_str(), refusal(&e)));
                    first_error.get_or_insert(e);
                }
            }
        }
        let Some(build) = chosen else {
            return Err(first_error.unwrap_or_else(|| anyhow!("no build of the signal hook to load")));
        };
        tracing::debug!("{} verified and attached at {:?}", build.program(), t0.elapsed());
        attach(&mut self.ebpf, "sched_process_exit", At::Raw("sched_process_exit"))?;
        let reason = if build == expected { None } else { reason };
        Ok(Hook::new(build, Some(expected), reason))
    }

    /// Loads one build of the signal hook and attaches it: a typed build against the
    /// tracepoint's BTF id, a raw one by name.
    fn attach_signal(&mut self, build: Build, btf_id: Option<u32>) -> Result<()> {
        match btf_id.filter(|_| build.typed()) {
            Some(id) => {
                let program = if forced("refuse") { "signal_generate_refused" } else { build.program() };
                attach(&mut self.ebpf, program, At::Typed(id))
            }
            None if build.typed() => Err(anyhow!("{}: this kernel has no BTF-typed signal_generate", build.as_str())),
            None => attach(&mut self.ebpf, build.program(), At::Raw("signal_generate")),
        }
    }

    /// The fork hook (a container watch, BTF mode) and the OOM mark, which is optional.
    fn attach_extras(&mut self, spec: &WatchSpec, oom_format: bool) -> Result<()> {
        if spec.follow && self.mode == Mode::Btf {
            attach(&mut self.ebpf, "sched_process_fork", At::Raw("sched_process_fork"))?;
        }
        let oom = match self.mode {
            Mode::Btf => Some(attach(&mut self.ebpf, "mark_victim", At::Raw("mark_victim"))),
            Mode::Tracepoint => {
                oom_format.then(|| attach(&mut self.ebpf, "mark_victim_tp", At::Classic("oom", "mark_victim")))
            }
        };
        if let Some(Err(e)) = oom {
            tracing::warn!("OOM kills cannot be recognised: {e:#}");
        }
        Ok(())
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The request hooks: `connect` and `close` keep the kernel's list of clients'
    /// connections to the manager sockets, the writing syscalls capture what those clients
    /// write. The walk of a client's ancestry is the signal hook's (bpf_loop or bounded).
    fn attach_requests(
        &mut self,
        sockets: &[(std::path::PathBuf, crate::requests::wire::Socket)],
    ) -> Result<RequestCapture> {
        if self.mode != Mode::Btf {
            anyhow::bail!("they need kernel BTF, to read the client's identity and ancestry");
        }
        tracefs::ensure_mounted()?;
        const SYSCALLS: [(&str, usize); 6] = [
            ("sys_enter_connect", 3),
            ("sys_enter_close", 1),
            ("sys_enter_write", 3),
            ("sys_enter_writev", 3),
            ("sys_enter_sendto", 3),
            ("sys_enter_sendmsg", 2),
        ];
        for (name, args) in SYSCALLS {
            tracefs::check_syscall_args(name, args)?;
        }
        {
            let mut map: HashMap<&mut MapData, podsig_common::SocketPath, u32> =
                HashMap::try_from(self.ebpf.map_mut("SOCKETS").context("map SOCKETS missing")?)?;
            for (path, socket) in sockets {
                let bytes = path.as_os_str().as_encoded_bytes();
                if bytes.len() >= 108 {
                    tracing::debug!("{} is too long for a Unix socket path; not followed", path.display());
                    continue;
                }
                let mut key = podsig_common::SocketPath { path: [0; podsig_common::SOCKET_PATH_LEN] };
                key.path[..bytes.len()].copy_from_slice(bytes);
                let kind = decode::SOCKET_KINDS.iter().position(|s| s == socket).unwrap_or(0) as u32;
                map.insert(key, kind, 0).with_context(|| format!("following {}", path.display()))?;
            }
        }
        // connect and close first, then the scan: a client that connects or closes while
        // /proc is read is neither missed nor left behind.
        for (prog, tracepoint) in [("request_connect", "sys_enter_connect"), ("request_close", "sys_enter_close")] {
            attach(&mut self.ebpf, prog, At::Classic("syscalls", tracepoint))?;
        }
        // Connections made before now (kubelet's to containerd, typically) are learnt here,
        // not at their connect.
        let capture = match crate::requests::peers::existing_clients(sockets, std::process::id()) {
            Ok(clients) => {
                let mut conns: HashMap<&mut MapData, u64, u32> =
                    HashMap::try_from(self.ebpf.map_mut("CONNS").context("map CONNS missing")?)?;
                for (pid, fd, socket) in &clients {
                    let kind = decode::SOCKET_KINDS.iter().position(|s| s == socket).unwrap_or(0) as u32;
                    let _ = conns.insert(((*pid as u64) << 32) | *fd as u64, kind, 0);
                }
                tracing::info!("{} clients were connected to the manager sockets already", clients.len());
                RequestCapture::Whole
            }
            Err(e) => {
                tracing::warn!(
                    "clients connected to the manager sockets before podsig started are not followed (their requests \
                     will not be named, and no signal is said to have gone unasked): {e}"
                );
                RequestCapture::NewClientsOnly
            }
        };
        let walk = if self.hook.build.walks_with_loop() { "" } else { "_bounded" };
        let programs = [
            (format!("request_write{walk}"), "sys_enter_write"),
            (format!("request_writev{walk}"), "sys_enter_writev"),
            (format!("request_sendto{walk}"), "sys_enter_sendto"),
            (format!("request_sendmsg{walk}"), "sys_enter_sendmsg"),
        ];
        for (prog, tracepoint) in &programs {
            attach(&mut self.ebpf, prog, At::Classic("syscalls", tracepoint))?;
        }
        tracing::info!("capturing requests to {} manager socket paths", sockets.len());
        Ok(capture)
    }

    /// Forgets the connections of clients that exited without closing them (the usual end of
    /// a `docker` or `systemctl` run): only `close` removes an entry in the kernel, and a
    /// later process given the same pid must not have its writes to that fd taken for
    /// requests.
    fn prune_conns(&mut self) {
        let Some(map) = self.ebpf.map_mut("CONNS") else { return };
        let Ok(mut conns) = HashMap::<&mut MapData, u64, u32>::try_from(map) else { return };
        let gone: Vec<u64> = conns
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !std::path::Path::new(&format!("/proc/{}", k >> 32)).exists())
            .collect();
        for key in &gone {
            let _ = conns.remove(key);
        }
        if !gone.is_empty() {
            tracing::debug!("forgot {} connections of exited clients", gone.len());
        }
    }

    /// The build of the signal hook that runs, and how it compares with the kernel's best.
    pub fn hook(&self) -> &Hook {
        &self.hook
    }

    /// "ring buffer" or "perf event array".
    pub fn transport(&self) -> &'static str {
        self.reader.transport()
    }

    /// `member`: a container's process, whose exit only clears it from the filter.
    fn add_target(&mut self, pid: u32, member: bool) -> Result<()> {
        let ctx = || format!("adding pid {pid} to the filter");
        let value = if member { pid | TARGET_CHILD } else { pid };
        match self.mode {
            Mode::Btf => {
                self.targets.insert(pid, value, 0).with_context(ctx)?;
                self.set_bit(pid, true).with_context(ctx)?;
            }
            Mode::Tracepoint => {
                let mut tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
                    .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
                    .unwrap_or_default();
                if !tids.contains(&pid) {
                    tids.push(pid);
                }
                for &tid in &tids {
                    self.targets.insert(tid, value, 0).with_context(ctx)?;
                }
                self.tids.insert(pid, tids);
            }
        }
        Ok(())
    }

    /// The bitmap word holding `pid`, with its bit set or cleared. Only this process writes
    /// the bitmap, so read-modify-write loses nothing.
    fn set_bit(&mut self, pid: u32, on: bool) -> Result<()> {
        let (word, bit) = (pid >> 6, 1u64 << (pid & 63));
        if word >= TARGET_BITMAP_WORDS {
            return Ok(()); // beyond PID_MAX_LIMIT; the program asks the hash for those
        }
        let old = self.target_bits.get(&word, 0)?;
        let new = if on { old | bit } else { old & !bit };
        if new != old {
            self.target_bits.set(word, new, 0)?;
        }
        Ok(())
    }
}

/// The program's run-time switches for this watch.
fn filter_config(spec: &WatchSpec, ring_bytes: u32, ringbuf: bool) -> FilterConfig {
    FilterConfig {
        watch_all: spec.all as u32,
        // Wake the reader early enough that a storm never fills the buffer between polls.
        wakeup_bytes: ring_bytes / 4,
        signal_mask: signals::mask(&spec.signals),
        follow_forks: spec.follow as u32,
        // A ring buffer keeps whatever it accepted, in order; a perf buffer may drop a
        // record after the program sent it, so there every record carries its detail.
        repeat_window_ms: if ringbuf { REPEAT_WINDOW_MS } else { 0 },
        // A run's end must be reported after its first record, which only one ordered
        // buffer guarantees; per-CPU perf buffers report every signal.
        fold: ringbuf as u32,
        self_tgid: std::process::id(),
        // Node mode reports no exits but those of processes that got a terminating
        // signal: how their stop ended (crate::pipeline::story).
        exit_mask: if spec.all {
            signals::mask(&crate::pipeline::node_filter::TERMINATING) & signals::mask(&spec.signals)
        } else {
            0
        },
    }
}

/// Loads the object (ring-buffer or perf build) with the kernel's layout and the switches:
/// the mode, and the classic OOM record's layout.
fn load(
    config: &FilterConfig,
    layout: &Layout,
    ringbuf: bool,
    ring_bytes: u32,
) -> Result<(Ebpf, Mode, Option<podsig_common::OomFormat>)> {
    // No CO-RE relocations in the program: aya needs no kernel BTF to load it (and the
    // vendored aya no longer parses it unasked).
    let mut loader = EbpfLoader::new();
    loader.btf(None).override_global("CONFIG", config, true);
    if ringbuf {
        loader.map_max_entries("EVENTS", ring_bytes);
    }
    let mode = match layout {
        Layout::Btf(l) => {
            loader.override_global("OFFSETS", &l.offsets, true);
            Mode::Btf
        }
        Layout::Tracepoint(fmt) => {
            loader.override_global("TP_FORMAT", fmt, true);
            Mode::Tracepoint
        }
    };
    // The OOM mark is optional: without it an OOM kill is reported as a kernel SIGKILL. With
    // BTF it is a raw tracepoint; the classic one (record layout from tracefs) only serves
    // kernels without BTF.
    let oom_format = match mode {
        Mode::Btf => None,
        Mode::Tracepoint => {
            tracefs::oom_format().map_err(|e| tracing::warn!("OOM kills cannot be recognised: {e:#}")).ok()
        }
    };
    if let Some(f) = &oom_format {
        loader.override_global("OOM_FORMAT", f, true);
    }
    let ebpf = loader
        .load(if ringbuf { PROGRAM } else { PROGRAM_PERF })
        .map_err(|e| privilege_hint(anyhow::Error::new(e).context("loading the eBPF program")))?;
    Ok((ebpf, mode, oom_format))
}

/// Why a build was not loaded, in a few words: the verifier's refusing line when the
/// verifier refused it, else the error.
fn refusal(e: &anyhow::Error) -> String {
    let log = e.chain().find_map(|c| match c.downcast_ref::<aya::programs::ProgramError>() {
        Some(aya::programs::ProgramError::LoadError { verifier_log, .. }) => Some(verifier_log.to_string()),
        _ => None,
    });
    match log.as_deref().and_then(build::refusing_line) {
        Some(line) => format!("the verifier said `{line}`"),
        None => format!("{e:#}"),
    }
}

impl Backend for EbpfBackend {
    fn name(&self) -> &'static str {
        "ebpf"
    }

    fn take_malformed(&mut self) -> u64 {
        self.reader.take_malformed()
    }

    async fn ready(&mut self) -> Result<()> {
        self.reader.ready().await
    }

    fn drain(&mut self, out: &mut Vec<Record>) -> Result<()> {
        if self.requests != RequestCapture::Off && self.conns_pruned.elapsed() >= CONNS_PRUNE_EVERY {
            self.conns_pruned = std::time::Instant::now();
            self.prune_conns();
        }
        self.reader.drain(out)
    }

    fn watch(&mut self, pid: u32) -> Result<()> {
        self.add_target(pid, true)
    }

    fn watch_root(&mut self, pid: u32) -> Result<()> {
        self.add_target(pid, false)
    }

    fn captures_requests(&self) -> RequestCapture {
        self.requests
    }

    fn unwatch(&mut self, pid: u32) -> Result<()> {
        if self.mode == Mode::Btf {
            self.set_bit(pid, false).with_context(|| format!("removing pid {pid} from the filter"))?;
        }
        let keys = self.tids.remove(&pid).unwrap_or_else(|| vec![pid]);
        for key in keys {
            match self.targets.remove(&key) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("removing pid {pid} from the filter"));
                }
            }
        }
        Ok(())
    }
}

fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as u32 } else { 4096 }
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones use memcg and raising
/// the limit may be refused (no CAP_SYS_RESOURCE). Try, and never fail over it.
fn raise_memlock() {
    let rlim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: plain syscall with a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        tracing::debug!("could not raise RLIMIT_MEMLOCK ({}); fine on kernels >= 5.11", io::Error::last_os_error());
    }
}

/// Attaches the program that does nothing to signal_generate (`write`: to sys_enter_write,
/// the request capture's hook), for the benchmark's floor: what any program on that hook
/// costs. Held until the returned value is dropped.
pub fn attach_empty(write: bool) -> Result<Ebpf> {
    let mut ebpf = EbpfLoader::new()
        .btf(None)
        .map_max_entries("EVENTS", page_size())
        .load(PROGRAM)
        .map_err(|e| privilege_hint(anyhow::Error::new(e).context("loading the eBPF program")))?;
    if write {
        tracefs::ensure_mounted()?;
        attach(&mut ebpf, "request_write_empty", At::Classic("syscalls", "sys_enter_write"))?;
    } else {
        attach(&mut ebpf, "signal_generate_empty", At::Raw("signal_generate"))?;
    }
    Ok(ebpf)
}

/// Where a program attaches, which says how it is loaded too.
enum At<'a> {
    /// A BTF-typed tracepoint, by the id of its `btf_trace_*` typedef.
    Typed(u32),
    /// A raw tracepoint, by name.
    Raw(&'a str),
    /// A classic tracepoint (category, name), whose record layout tracefs gives.
    Classic(&'a str, &'a str),
}

/// Verifies and attaches one program of the object: every program goes through here, so a
/// missing privilege is named the same way whichever fails first.
fn attach(ebpf: &mut Ebpf, prog: &str, at: At) -> Result<()> {
    let program = ebpf.program_mut(prog).with_context(|| format!("program {prog} missing"))?;
    let refused = |e: aya::programs::ProgramError| {
        privilege_hint(anyhow::Error::new(e).context(format!("verifying program {prog}")))
    };
    match at {
        At::Typed(btf_id) => {
            let p: &mut BtfTracePoint = program.try_into()?;
            p.load_with_btf_id(btf_id).map_err(refused)?;
            p.attach().with_context(|| format!("attaching {prog} to its BTF-typed tracepoint"))?;
        }
        At::Raw(tracepoint) => {
            let p: &mut RawTracePoint = program.try_into()?;
            p.load().map_err(refused)?;
            p.attach(tracepoint).with_context(|| format!("attaching to raw tracepoint {tracepoint}"))?;
        }
        At::Classic(category, name) => {
            let p: &mut TracePoint = program.try_into()?;
            p.load().map_err(refused)?;
            p.attach(category, name).with_context(|| format!("attaching to tracepoint {category}:{name}"))?;
        }
    }
    Ok(())
}

/// Turns a permission failure into the one line a user needs.
fn privilege_hint(err: anyhow::Error) -> anyhow::Error {
    // The verifier refuses a program with EACCES too: as root that is what it means, and its
    // log is what says why.
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let denied = !root
        && err.chain().any(|c| {
            c.downcast_ref::<io::Error>()
                .and_then(io::Error::raw_os_error)
                .is_some_and(|e| e == libc::EPERM || e == libc::EACCES)
        })
        || format!("{err:#}").contains("Operation not permitted");
    if denied {
        anyhow!(
            "permission denied loading eBPF: run podsig as root (sudo podsig …) or with \
             CAP_BPF and CAP_PERFMON"
        )
    } else {
        err
    }
}
