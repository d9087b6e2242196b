//! The decoder: ring-buffer bytes into records. Keeps each sender's argv and ancestry for the
//! repeat records that leave them out, and counts the runs of identical signals the kernel
//! folds.

use std::mem::size_of;

use podsig_common::*;

use crate::{
    event::{
        Ancestor, Ancestry, AncestrySource, BackendName, Client, Context, Delivery, Disposition, Exe, ExitRecord,
        Interrupted, Lack, OomInfo, Record, RequestRecord, Sender, SignalRecord, Target, cstr, split_argv,
    },
    requests::wire::Socket,
};

fn read_pod<T: bytemuck::Pod>(bytes: &[u8]) -> Option<T> {
    bytes.get(..size_of::<T>()).map(bytemuck::pod_read_unaligned)
}

/// A wire struct at the start of `bytes`: borrowed in place when aligned (ring-buffer
/// records are 8-byte aligned), else copied out.
fn view<T: bytemuck::Pod>(bytes: &[u8]) -> Option<std::borrow::Cow<'_, T>> {
    let head = bytes.get(..size_of::<T>())?;
    Some(match bytemuck::try_from_bytes(head) {
        Ok(v) => std::borrow::Cow::Borrowed(v),
        Err(_) => std::borrow::Cow::Owned(bytemuck::pod_read_unaligned(head)),
    })
}

/// Turns ring-buffer bytes into records: keeps each sender's argv and ancestry for the
/// repeat records that leave them out, and folds a run of identical signals into one record
/// with a count (a storm from one process is one line per drain, not a line per signal).
#[derive(Default)]
pub(super) struct Decoder {
    senders: std::collections::HashMap<(u32, u64), SenderInfo>,
    /// Per CPU, the sender whose detail that CPU sent last (ring-buffer builds, whose
    /// records say their CPU). The kernel's repeat records refer to exactly that detail:
    /// its sender cache is per CPU, and a new sender there sends its detail first. A detail
    /// no CPU refers to any more is dropped at once, so 10,000 short-lived senders cost what
    /// one does.
    detail_of_cpu: std::collections::HashMap<u32, (u32, u64)>,
    /// Bumped for every new sender detail, so a run never spans two.
    generation: u64,
    pending: Option<Pending>,
    /// Newest record time seen: sender details older than a few windows are forgotten.
    newest_ns: u64,
    missing_warned: bool,
    /// Per CPU, the run of identical signals the kernel is folding there: the record that
    /// started it, and how many of its folded signals have been reported.
    runs: std::collections::HashMap<u32, Run>,
    /// Records that could not be decoded (cut short, of an unknown kind).
    pub(super) malformed: crate::source::backend::Malformed,
    /// What the build of the hook that runs cannot see: every signal record says so.
    pub(super) lacks: &'static [Lack],
    /// A kernel before 5.17 still queues signals to a process in its group exit: a drop
    /// there is its disposition's doing, never the exit's.
    pub(super) keeps_signals_in_group_exit: bool,
}

struct Run {
    seq: u64,
    template: SignalRecord,
    reported: u64,
    last_ns: u64,
}

struct SenderInfo {
    /// `SenderDetail` bytes actually used (argv, ancestry) and the flags that came with them.
    wire: Vec<u8>,
    flags: u32,
    argv: Vec<String>,
    ancestry: Ancestry,
    generation: u64,
    sent_ns: u64,
}

struct Pending {
    identity: [u8; size_of::<SignalEvent>()],
    generation: u64,
    record: SignalRecord,
}

/// Flags that belong to the sender's detail, not to the signal.
const DETAIL_FLAGS: u32 = FLAG_ANCESTRY_COMPLETE | FLAG_KTHREAD | FLAG_ARGV_TRUNCATED;
/// How long the kernel may refer back to a sender detail (FilterConfig::repeat_window_ms).
pub(super) const REPEAT_WINDOW_MS: u32 = 1000;

impl Decoder {
    pub(super) fn decode(&mut self, bytes: &[u8], out: &mut Vec<Record>) {
        match read_pod::<u32>(bytes) {
            Some(EVENT_FOLD) => match read_pod::<FoldEvent>(bytes) {
                // The kernel starts a run only once its first record is in the buffer, so
                // the end of a run never seen is not something it sent.
                Some(f) => match self.runs.remove(&f.cpu) {
                    Some(run) if run.seq == f.seq => {
                        self.folded(run, f.count, f.last_ns, out);
                    }
                    other => {
                        if let Some(run) = other {
                            self.runs.insert(f.cpu, run);
                        }
                        self.malformed.note();
                    }
                },
                None => self.malformed.note(),
            },
            Some(EVENT_SIGNAL) if bytes.len() >= size_of::<SignalEvent>() => {
                let rest = &bytes[size_of::<SignalEvent>()..];
                // Ring-buffer records are 8-byte aligned: read in place rather than copy.
                let head = view::<SignalEvent>(bytes).expect("length checked");
                // A full record (not a repeat, BTF mode) must carry its sender's detail.
                let needs_detail = head.flags & (FLAG_SENDER_REPEAT | FLAG_NO_BTF) == 0 && !in_interrupt(&head);
                if needs_detail && rest.len() < size_of::<SenderDetail>() {
                    self.malformed.note();
                    return;
                }
                self.signal(&head, rest, out);
            }
            _ => {
                self.flush(out);
                match decode_other(bytes) {
                    Some(r) => out.push(r),
                    None => self.malformed.note(),
                }
            }
        }
    }

    /// Ends the current run: its record goes out.
    pub(super) fn flush(&mut self, out: &mut Vec<Record>) {
        if let Some(p) = self.pending.take() {
            out.push(Record::Signal(p.record));
        }
    }

    fn signal(&mut self, e: &SignalEvent, rest: &[u8], out: &mut Vec<Record>) {
        self.newest_ns = self.newest_ns.max(e.boot_ns);
        let key = (e.sender_pid, e.sender_start_ns);
        let mut generation = 0;
        if e.flags & (FLAG_SENDER_REPEAT | FLAG_NO_BTF) == 0 && !in_interrupt(e) {
            generation = self.learn(e, rest);
        } else if e.flags & FLAG_SENDER_REPEAT != 0 {
            generation = self.senders.get(&key).map_or(0, |s| s.generation);
        }
        let mut identity = [0u8; size_of::<SignalEvent>()];
        identity.copy_from_slice(bytemuck::bytes_of(e));
        {
            let id = &mut identity;
            let zero = |id: &mut [u8], at: usize, len: usize| id[at..at + len].fill(0);
            zero(id, std::mem::offset_of!(SignalEvent, boot_ns), 8);
            zero(id, std::mem::offset_of!(SignalEvent, argv_len), 4);
            zero(id, std::mem::offset_of!(SignalEvent, depth), 4);
            let at = std::mem::offset_of!(SignalEvent, flags);
            let flags = e.flags & !(DETAIL_FLAGS | FLAG_SENDER_REPEAT);
            id[at..at + 4].copy_from_slice(&flags.to_ne_bytes());
        }
        if let Some(p) = &mut self.pending
            && p.generation == generation
            && p.identity == identity
        {
            p.record.count += 1;
            p.record.last_boot_ns = Some(e.boot_ns);
            return;
        }
        self.flush(out);
        let mut record = signal_record(e, self.keeps_signals_in_group_exit);
        record.lacks = self.lacks.to_vec();
        if let Some(sender) = record.sender.as_mut().filter(|_| e.flags & FLAG_NO_BTF == 0) {
            match self.senders.get(&key) {
                Some(s) => {
                    sender.argv = s.argv.clone();
                    sender.argv_truncated = s.flags & FLAG_ARGV_TRUNCATED != 0;
                    sender.kthread = s.flags & FLAG_KTHREAD != 0;
                    record.ancestry = s.ancestry.clone();
                    record.ancestry_complete = s.flags & FLAG_ANCESTRY_COMPLETE != 0;
                }
                None if !self.missing_warned => {
                    // Cannot happen while the reader keeps details for longer than the
                    // kernel refers back to them; say so rather than guess.
                    self.missing_warned = true;
                    tracing::warn!(
                        "a repeat record from {}({}) came without its sender detail",
                        sender.comm,
                        e.sender_pid
                    );
                }
                None => {}
            }
        }
        if e.seq != 0 {
            // The CPU's previous run is over: its end, if it folded anything, came first.
            let cpu = (e.seq >> 48) as u32;
            self.runs.insert(cpu, Run { seq: e.seq, template: record.clone(), reported: 0, last_ns: e.boot_ns });
        }
        self.pending = Some(Pending { identity, generation, record });
    }

    /// The kernel's count for a run still going on `cpu`, read on the drain tick.
    pub(super) fn poll_fold(&mut self, cpu: u32, st: &FoldState, out: &mut Vec<Record>) {
        // A copy that raced the program's update is skipped: the next tick reads it again.
        if st.v_start != st.v_end || st.active == 0 {
            return;
        }
        let Some(run) = self.runs.get(&cpu) else { return };
        if run.seq != st.seq || st.count <= run.reported {
            return;
        }
        let run = self.runs.remove(&cpu).expect("just found");
        let run = self.folded(run, st.count, st.last_ns, out);
        self.runs.insert(cpu, run);
    }

    /// Reports the signals of `run` beyond those already reported, `count` in all: into the
    /// pending record when that is the run's, else as a record of its own whose `time` is
    /// the previous report's last and `last_time` the newest.
    fn folded(&mut self, mut run: Run, count: u64, last_ns: u64, out: &mut Vec<Record>) -> Run {
        let more = count.saturating_sub(run.reported);
        if more > 0 {
            match &mut self.pending {
                Some(p) if p.record.seq == run.seq => {
                    p.record.count += more;
                    p.record.last_boot_ns = Some(last_ns);
                }
                _ => {
                    self.flush(out);
                    let mut r = run.template.clone();
                    r.count = more;
                    r.boot_ns = Some(run.last_ns);
                    r.last_boot_ns = Some(last_ns);
                    out.push(Record::Signal(r));
                }
            }
            run.reported = count;
            run.last_ns = last_ns;
        }
        run
    }

    /// Keeps a full record's sender detail; returns its generation (unchanged if the detail
    /// is the one already known).
    fn learn(&mut self, e: &SignalEvent, rest: &[u8]) -> u64 {
        let Some(d) = read_detail(rest) else { return 0 };
        let argv_len = (e.argv_len as usize).min(d.argv.len());
        let depth = (e.depth as usize).min(MAX_ANCESTRY);
        let ancestry = &d.ancestry[..depth];
        let ancestry_bytes: &[u8] = bytemuck::cast_slice(ancestry);
        let flags = e.flags & DETAIL_FLAGS;
        let key = (e.sender_pid, e.sender_start_ns);
        if e.seq != 0
            && let Some(old) = self.detail_of_cpu.insert((e.seq >> 48) as u32, key)
            && old != key
            && !self.detail_of_cpu.values().any(|k| *k == old)
        {
            self.senders.remove(&old);
        }
        if let Some(s) = self.senders.get_mut(&key)
            && s.flags == flags
            && s.wire.len() == argv_len + ancestry_bytes.len()
            && s.wire[..argv_len] == d.argv[..argv_len]
            && s.wire[argv_len..] == *ancestry_bytes
        {
            s.sent_ns = e.boot_ns;
            return s.generation;
        }
        if self.senders.len() >= 1024 {
            // Records that do not say their CPU (perf-buffer builds): the kernel refers back
            // at most one window; keep a few for clock skew between CPUs.
            let keep_after = self.newest_ns.saturating_sub(5 * REPEAT_WINDOW_MS as u64 * 1_000_000);
            self.senders.retain(|_, s| s.sent_ns >= keep_after);
        }
        self.generation += 1;
        let mut wire = Vec::with_capacity(argv_len + ancestry_bytes.len());
        wire.extend_from_slice(&d.argv[..argv_len]);
        wire.extend_from_slice(ancestry_bytes);
        // The kernel walks from the sender up; reports read root first, like task_ancestry.
        let decoded: Vec<Ancestor> = ancestry.iter().rev().map(ancestor).collect();
        let argv = if flags & FLAG_ARGV_TRUNCATED != 0 && argv_len > ARGV_HEAD {
            // Head and tail of a longer command line, each cut wherever the bound fell.
            let mut v = split_argv(&d.argv[..ARGV_HEAD]);
            v.push("…".into());
            v.extend(split_argv(&d.argv[ARGV_HEAD..argv_len]));
            v
        } else {
            split_argv(&d.argv[..argv_len])
        };
        self.senders.insert(
            key,
            SenderInfo { wire, flags, argv, ancestry: decoded.into(), generation: self.generation, sent_ns: e.boot_ns },
        );
        self.generation
    }
}

fn read_detail(bytes: &[u8]) -> Option<std::borrow::Cow<'_, SenderDetail>> {
    view(bytes)
}

fn decode_other(bytes: &[u8]) -> Option<Record> {
    match read_pod::<u32>(bytes)? {
        EVENT_REQUEST => request(bytes).map(|r| Record::Request(Box::new(r))),
        EVENT_EXIT => {
            let e = read_pod::<ExitEvent>(bytes)?;
            let code = (e.exit_code != EXIT_CODE_UNKNOWN).then_some(e.exit_code);
            let mut x = ExitRecord::new(BackendName::Ebpf, e.pid, e.tid, cstr(&e.comm), code);
            x.boot_ns = Some(e.boot_ns);
            Some(Record::Exit(x))
        }
        EVENT_OOM => {
            let e = read_pod::<OomEvent>(bytes)?;
            let kb = |v: u64| (v != u64::MAX).then_some(v);
            Some(Record::Oom(OomInfo {
                pid: e.pid,
                boot_ns: e.boot_ns,
                total_vm_kb: kb(e.total_vm_kb),
                anon_rss_kb: kb(e.anon_rss_kb),
                file_rss_kb: kb(e.file_rss_kb),
                shmem_rss_kb: kb(e.shmem_rss_kb),
                pgtables_kb: kb(e.pgtables_kb),
                oom_score_adj: (e.oom_score_adj != i32::MIN).then_some(e.oom_score_adj),
                memory_cgroup: None,
                memory_limit_bytes: None,
            }))
        }
        // Counted by the caller as malformed.
        _ => None,
    }
}

/// A client's write to a manager's socket: who (as a sender), and the bytes, which the
/// requests stage reads.
fn request(bytes: &[u8]) -> Option<RequestRecord> {
    let r = view::<RequestFull>(bytes)?;
    let h = &r.head;
    let socket = *SOCKET_KINDS.get(h.socket as usize)?;
    let depth = (h.depth as usize).min(MAX_ANCESTRY);
    let argv_len = (h.argv_len as usize).min(ARGV_LEN);
    let argv = split_argv(&r.detail.argv[..argv_len]);
    let len = (h.len as usize).min(REQUEST_LEN);
    let unset = |v: u32| (v != u32::MAX).then_some(v);
    let tty = cstr(&h.tty);
    Some(RequestRecord {
        time: String::new(),
        node: None,
        boot_ns: h.boot_ns,
        socket,
        syscall: match h.syscall {
            REQUEST_WRITEV => "writev",
            REQUEST_SENDTO => "sendto",
            REQUEST_SENDMSG => "sendmsg",
            _ => "write",
        }
        .into(),
        fd: h.fd,
        client: Client {
            pid: h.pid,
            tid: h.tid,
            ns_pid: Some(h.ns_pid).filter(|&n| n != 0),
            ppid: h.ppid,
            uid: h.uid,
            login_uid: unset(h.loginuid),
            login_user: None,
            session: unset(h.sessionid),
            // tty_struct names a pty slave `pts3`; /dev and ps say `pts/3`.
            tty: (!tty.is_empty()).then(|| match tty.strip_prefix("pts") {
                Some(n) => format!("pts/{n}"),
                None => tty,
            }),
            comm: cstr(&h.comm),
            argv,
            argv_truncated: h.flags & FLAG_ARGV_TRUNCATED != 0,
            exe: None,
            start_ns: h.start_ns,
        },
        ancestry: r.detail.ancestry[..depth].iter().rev().map(ancestor).collect::<Vec<_>>().into(),
        ancestry_complete: h.flags & FLAG_ANCESTRY_COMPLETE != 0,
        bytes: r.body[..len].to_vec(),
        total: h.total,
        requests: Vec::new(),
    })
}

/// The value each manager socket is given in the kernel's SOCKETS map: its index here.
pub(super) const SOCKET_KINDS: [Socket; 4] =
    [Socket::SystemdPrivate, Socket::SystemBus, Socket::Docker, Socket::Containerd];

/// The record for `e` without its sender's detail (argv, ancestry), which the decoder adds.
/// `keeps_signals_in_group_exit`: the kernel is older than 5.17 (see [`Decoder`]).
fn signal_record(e: &SignalEvent, keeps_signals_in_group_exit: bool) -> SignalRecord {
    let context = match e.context {
        CONTEXT_TASK => Some(Context::Task),
        CONTEXT_SOFTIRQ => Some(Context::Softirq),
        CONTEXT_HARDIRQ => Some(Context::Hardirq),
        CONTEXT_NMI => Some(Context::Nmi),
        _ => None,
    };
    let btf = e.flags & FLAG_NO_BTF == 0;
    let sender = Sender {
        pid: e.sender_pid,
        tid: e.sender_tid,
        ns_pid: Some(e.sender_ns_pid).filter(|&n| n != 0),
        ppid: e.sender_ppid,
        uid: e.sender_uid,
        comm: cstr(&e.sender_comm),
        pidns: Some(e.sender_pidns).filter(|&n| n != 0),
        exiting: e.flags & FLAG_SENDER_EXITING != 0,
        login_uid: Some(e.sender_loginuid).filter(|&u| u != u32::MAX && btf),
        session: Some(e.sender_sessionid).filter(|&u| u != u32::MAX && btf),
        ..Default::default()
    };
    let (sender, interrupted) = if in_interrupt(e) {
        (None, Some(Interrupted { pid: sender.pid, tid: sender.tid, comm: sender.comm }))
    } else {
        (Some(sender), None)
    };
    SignalRecord {
        boot_ns: Some(e.boot_ns),
        errno: Some(e.errno),
        group: e.group != 0,
        result: Some(Delivery::from_kernel(e.result)),
        target: Target {
            pid: e.target_pid,
            tid: e.target_tid,
            ns_pid: Some(e.target_ns_pid).filter(|&n| n != 0),
            comm: cstr(&e.target_comm),
            disposition: match e.target_disposition {
                DISPOSITION_DEFAULT => Some(Disposition::Default),
                DISPOSITION_IGNORE => Some(Disposition::Ignore),
                DISPOSITION_HANDLER => Some(Disposition::Handler),
                _ => None,
            },
            blocked: btf.then_some(e.flags & FLAG_TARGET_BLOCKED != 0),
            // A fatal signal's group exit overwrites signal->flags (SIGNAL_GROUP_EXIT) before
            // the tracepoint, SIGNAL_UNKILLABLE with them: then its pid number says it.
            ns_init: btf.then_some(e.flags & FLAG_TARGET_UNKILLABLE != 0 || e.target_ns_pid == 1),
            // The fatal signal that begins a group exit sets the flag itself: only a signal
            // the kernel then dropped was dropped for it (5.17+: "signal: Drop signals
            // received after a fatal signal has been processed").
            exiting: btf.then_some(
                !keeps_signals_in_group_exit
                    && e.flags & FLAG_TARGET_GROUP_EXIT != 0
                    && e.result == TRACE_SIGNAL_IGNORED,
            ),
            resumed: (btf && e.sig == libc::SIGCONT).then_some(e.flags & FLAG_TARGET_RESUMED != 0),
            pgid: Some(e.target_pgid).filter(|&p| p != 0),
            traced_by: Some(e.target_tracer).filter(|&p| p != 0),
            unit: None,
            pidns: Some(e.target_pidns).filter(|&n| n != 0),
            memcg: Some(e.target_memcg).filter(|&n| n != 0),
            cgroup: Some(e.target_cgroup).filter(|&n| n != 0),
            container: None,
        },
        sender,
        interrupted,
        context,
        ancestry_source: if btf { AncestrySource::Kernel } else { AncestrySource::Proc },
        syscall_nr: (e.syscall_nr != SYSCALL_UNKNOWN).then_some(e.syscall_nr),
        syscall_arg0: (e.syscall_nr != SYSCALL_UNKNOWN).then_some(e.syscall_arg0),
        seq: e.seq,
        ..SignalRecord::new(BackendName::Ebpf, e.sig, e.code)
    }
}

/// include/trace/events/signal.h: the kernel dropped the signal (prepare_signal said no).
const TRACE_SIGNAL_IGNORED: i32 = 1;

/// Generated while the CPU served an interrupt: `current` was not the sender.
fn in_interrupt(e: &SignalEvent) -> bool {
    matches!(e.context, CONTEXT_SOFTIRQ | CONTEXT_HARDIRQ | CONTEXT_NMI)
}

/// An ancestor as the kernel captured it, with its executable's identity.
fn ancestor(a: &podsig_common::Ancestor) -> Ancestor {
    let f = a.exe_flags;
    let exe = (f & EXE_PRESENT != 0).then(|| {
        let tail = cstr(&a.exe_path);
        Exe {
            path: match tail.is_empty() {
                true => None,
                false if f & EXE_PATH_COMPLETE != 0 => Some(tail),
                false => Some(format!("…{tail}")),
            },
            ino: a.exe_ino,
            // The kernel's internal dev_t: 12 bits of major above 20 of minor.
            dev: format!("{}:{}", a.exe_dev >> 20, a.exe_dev & 0xf_ffff),
            fs: crate::proc::fs_name(a.exe_fs_magic),
            unlinked: f & EXE_UNLINKED != 0,
            internal_mount: f & EXE_INTERNAL_MOUNT != 0,
            other_mount_ns: f & EXE_OTHER_MNT_NS != 0,
        }
    });
    Ancestor { pid: a.pid, comm: cstr(&a.comm), start_ns: a.start_ns, exe, kthread: f & ANCESTOR_KTHREAD != 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable as _;
    use podsig_common::{ARGV_LEN, SignalFull};

    fn bytes<T: bytemuck::Pod>(v: &T) -> Vec<u8> {
        bytemuck::bytes_of(v).to_vec()
    }

    /// Changes the head of a record held in an unaligned byte buffer.
    fn edit_head(bytes: &mut [u8], edit: impl FnOnce(&mut SignalEvent)) {
        let n = size_of::<SignalEvent>();
        let mut h: SignalEvent = bytemuck::pod_read_unaligned(&bytes[..n]);
        edit(&mut h);
        bytes[..n].copy_from_slice(bytemuck::bytes_of(&h));
    }

    /// pkill(23549) sends `sig` to 7942 at `ns`, with its detail (`full`) or as a repeat.
    fn record(sig: i32, ns: u64, full: bool) -> Vec<u8> {
        let mut f = SignalFull::zeroed();
        let h = &mut f.head;
        (h.kind, h.sig, h.boot_ns, h.target_pid, h.sender_pid, h.sender_tid) =
            (EVENT_SIGNAL, sig, ns, 7942, 23549, 23549);
        h.sender_start_ns = 77;
        h.sender_comm[..5].copy_from_slice(b"pkill");
        if !full {
            h.flags = FLAG_SENDER_REPEAT;
            return bytes(&f.head);
        }
        let argv = b"pkill\0-9\0server\0";
        f.detail.argv[..argv.len()].copy_from_slice(argv);
        h.argv_len = argv.len() as u32;
        for (i, (pid, comm)) in [(23549u32, &b"pkill"[..]), (1, b"init"), (0, b"swapper/0")].into_iter().enumerate() {
            f.detail.ancestry[i].pid = pid;
            f.detail.ancestry[i].comm[..comm.len()].copy_from_slice(comm);
        }
        h.depth = 3;
        h.flags = FLAG_ANCESTRY_COMPLETE;
        assert!(argv.len() <= ARGV_LEN);
        bytes(&f)
    }

    fn signals(out: &[Record]) -> Vec<&SignalRecord> {
        out.iter().filter_map(|r| if let Record::Signal(s) = r { Some(s) } else { None }).collect()
    }

    #[test]
    fn a_storm_is_one_record_with_a_count_and_the_senders_detail() {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        d.decode(&record(10, 100, true), &mut out);
        for ns in 101..110 {
            d.decode(&record(10, ns, false), &mut out);
        }
        // Another signal from the same sender ends the run.
        d.decode(&record(15, 200, false), &mut out);
        d.flush(&mut out);
        let s = signals(&out);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].count, s[0].boot_ns, s[0].last_boot_ns), (10, Some(100), Some(109)));
        assert_eq!(s[0].sender.as_ref().unwrap().argv, ["pkill", "-9", "server"]);
        let chain: Vec<u32> = s[0].ancestry.iter().map(|a| a.pid).collect();
        assert_eq!(chain, [0, 1, 23549], "root first");
        assert!(s[0].ancestry_complete);
        // The repeat record of the other run takes the same detail.
        assert_eq!((s[1].signal.number, s[1].count), (15, 1));
        assert!(s[1].ancestry.shares(&s[0].ancestry));
        assert_eq!(s[1].sender.as_ref().unwrap().argv, s[0].sender.as_ref().unwrap().argv);
    }

    #[test]
    fn a_namespace_init_is_one_after_a_fatal_signal_too() {
        // SIGKILL's group exit has overwritten signal->flags (SIGNAL_UNKILLABLE with them) by
        // the time the tracepoint runs: its pid number in its namespace still says it.
        let from = |flags: u32, ns_pid: u32| {
            let mut e = SignalEvent::zeroed();
            (e.kind, e.sig, e.flags, e.target_ns_pid) = (EVENT_SIGNAL, 9, flags, ns_pid);
            signal_record(&e, false).target.ns_init
        };
        assert_eq!(from(FLAG_TARGET_UNKILLABLE, 1), Some(true));
        assert_eq!(from(0, 1), Some(true));
        assert_eq!(from(0, 7), Some(false));
        assert_eq!(from(FLAG_NO_BTF, 1), None, "no BTF: not captured");
    }

    #[test]
    fn a_repeat_without_its_detail_is_reported_bare_not_guessed() {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        d.decode(&record(10, 100, false), &mut out);
        d.flush(&mut out);
        let s = signals(&out);
        assert_eq!(s.len(), 1);
        assert!(s[0].ancestry.is_empty() && !s[0].ancestry_complete && s[0].sender.as_ref().unwrap().argv.is_empty());
    }

    #[test]
    fn other_records_keep_their_place_between_runs() {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        d.decode(&record(10, 100, true), &mut out);
        d.decode(&record(10, 101, false), &mut out);
        let mut exit = ExitEvent::zeroed();
        (exit.kind, exit.pid, exit.exit_code) = (EVENT_EXIT, 7942, 10);
        d.decode(&bytes(&exit), &mut out);
        d.decode(&record(10, 102, false), &mut out);
        d.flush(&mut out);
        let kinds: Vec<&str> = out
            .iter()
            .map(|r| match r {
                Record::Signal(_) => "signal",
                Record::Exit(_) => "exit",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["signal", "exit", "signal"]);
        assert_eq!(signals(&out)[0].count, 2);
    }

    #[test]
    fn a_run_folded_in_the_kernel_is_counted_exactly() {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        let mut first = record(10, 100, true);
        let seq = (1u64 << 48) | 7;
        edit_head(&mut first, |h| h.seq = seq);
        d.decode(&first, &mut out);
        let st = |count, last_ns, v| FoldState {
            v_start: v,
            v_end: v,
            active: 1,
            seq,
            count,
            last_ns,
            ..Default::default()
        };
        // Read on the tick while the first record is still pending: merged into it.
        d.poll_fold(1, &st(5, 150, 2), &mut out);
        d.flush(&mut out);
        // A torn read is skipped.
        d.poll_fold(1, &FoldState { v_end: 9, ..st(7, 170, 8) }, &mut out);
        d.poll_fold(1, &st(9, 190, 10), &mut out);
        // The run ends: the rest.
        let end = FoldEvent { kind: EVENT_FOLD, cpu: 1, seq, count: 12, last_ns: 220 };
        d.decode(&bytes(&end), &mut out);
        d.flush(&mut out);
        let s = signals(&out);
        let counts: Vec<(u64, Option<u64>, Option<u64>)> =
            s.iter().map(|r| (r.count, r.boot_ns, r.last_boot_ns)).collect();
        assert_eq!(counts, [(6, Some(100), Some(150)), (4, Some(150), Some(190)), (3, Some(190), Some(220))]);
        assert_eq!(s.iter().map(|r| r.count).sum::<u64>(), 13, "the first and the 12 folded");
    }

    /// What the property below once found, when the decoder lived in `backend::ebpf`: the
    /// end of a run the decoder never saw start (a zeroed fold record) is counted, not
    /// trusted.
    #[test]
    fn the_end_of_a_run_never_seen_is_malformed() {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        let mut fold = vec![0u8; 32];
        fold[..4].copy_from_slice(&EVENT_FOLD.to_ne_bytes());
        d.decode(&fold, &mut out);
        d.flush(&mut out);
        assert!(out.is_empty());
        assert_eq!(d.malformed.take(), 1);
    }

    mod arbitrary_bytes {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(crate::fuzz_config(400))]

            /// Whatever the ring buffer hands over — cut short, garbled, an unknown kind, a
            /// valid head with nonsense in it — the decoder neither panics nor grows without
            /// bound: each record is decoded or counted malformed.
            #[test]
            fn the_decoder_takes_any_bytes(
                records in prop::collection::vec(
                    prop_oneof![
                        prop::collection::vec(any::<u8>(), 0..512),
                        // A known kind in front, to get past the first test.
                        (1u32..=5, prop::collection::vec(any::<u8>(), 0..7000)).prop_map(|(k, mut v)| {
                            let mut b = k.to_ne_bytes().to_vec();
                            b.append(&mut v);
                            b
                        }),
                    ],
                    1..40,
                ),
            ) {
                let mut d = Decoder::default();
                let mut out = Vec::new();
                for r in &records {
                    // Ring records are 8-byte aligned; garbled ones need not be.
                    let mut aligned = vec![0u64; r.len().div_ceil(8)];
                    let buf = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut aligned)[..r.len()];
                    buf.copy_from_slice(r);
                    for bytes in [&*buf, r.as_slice()] {
                        // Decoded shows as a record out, the pending record taking it in (a
                        // new one, or one more in its count), or a run ended by it.
                        let seen = |d: &Decoder, out: &Vec<Record>| {
                            let pending = d.pending.as_ref().map(|p| (p.record.count, p.generation, p.identity));
                            (out.len(), pending, d.runs.len())
                        };
                        let before = seen(&d, &out);
                        d.decode(bytes, &mut out);
                        let malformed = d.malformed.take();
                        prop_assert!(malformed <= 1, "one record counted {} times", malformed);
                        prop_assert!(
                            malformed == 1 || seen(&d, &out) != before,
                            "a record of kind {:?} ({} bytes) neither decoded nor counted malformed",
                            read_pod::<u32>(bytes),
                            bytes.len()
                        );
                    }
                }
                d.flush(&mut out);
                prop_assert!(out.len() <= 2 * records.len() * 2);
                prop_assert!(d.senders.len() <= 1024 + 2 * records.len());
            }
        }
    }

    mod verdicts {
        use proptest::prelude::*;

        use super::*;
        use crate::{event::Cause, pipeline::cause};

        /// Syscalls the sender may be in: every number podsig names, none, and unknown.
        fn syscall_nrs() -> Vec<i32> {
            let mut v: Vec<i32> = (0..512).filter(|&n| cause::syscall_name(n).is_some()).collect();
            v.extend([-1, SYSCALL_UNKNOWN]);
            v
        }

        proptest! {
            #![proptest_config(crate::fuzz_config(4096))]

            /// Whatever the kernel hands over, the verdict never contradicts the record's own
            /// si_code: a syscall is named only if it can produce that code, a task in its exit
            /// path or an interrupt is never a process's sender, and interrupt records carry
            /// no sender, argv, ancestry.
            #[test]
            fn the_cause_never_contradicts_the_si_code(
                sig in 1i32..=64,
                code in prop_oneof![-7i32..=6, Just(0x80), any::<i32>()],
                nr in prop::sample::select(syscall_nrs()),
                to_itself in any::<bool>(),
                exiting in any::<bool>(),
                context in 0u32..=4,
                arg0 in any::<i64>(),
            ) {
                let mut bytes = record(sig, 100, true);
                edit_head(&mut bytes, |h| {
                    h.code = code;
                    h.syscall_nr = nr;
                    h.syscall_arg0 = arg0;
                    h.context = context;
                    if to_itself {
                        h.target_pid = h.sender_pid;
                    }
                    if exiting {
                        h.flags |= podsig_common::FLAG_SENDER_EXITING;
                    }
                });
                let mut d = Decoder::default();
                let mut out = Vec::new();
                d.decode(&bytes, &mut out);
                d.flush(&mut out);
                let mut r = signals(&out)[0].clone();
                cause::classify(&mut r);
                let interrupt = matches!(context, CONTEXT_SOFTIRQ | CONTEXT_HARDIRQ | CONTEXT_NMI);
                if interrupt {
                    prop_assert!(r.sender.is_none() && r.interrupted.is_some());
                    prop_assert!(r.ancestry.is_empty());
                }
                // PTRACE_ATTACH stops its tracee with the kernel's own SIGSTOP (SI_KERNEL): a
                // signal ptrace(2) is known to raise, though no sender picks its code, and the
                // tracer's doing.
                let attach_stop =
                    r.syscall.as_deref() == Some("ptrace") && sig == libc::SIGSTOP && code == 0x80 && !to_itself;
                if let Some(sc) = r.syscall.as_deref() {
                    prop_assert!(
                        attach_stop || cause::syscall_can_send(sc, code, to_itself),
                        "{sc} cannot send si_code {code}"
                    );
                    let named = format!("{sc}(2)");
                    prop_assert!(r.cause_detail.contains(&named), "{}", r.cause_detail);
                }
                if interrupt || exiting {
                    prop_assert_eq!(r.cause, Cause::Kernel, "{}", r.cause_detail);
                    prop_assert!(r.syscall.is_none());
                }
                if r.cause == Cause::Kernel {
                    prop_assert!(r.syscall.is_none());
                }
                // Codes only the kernel sets, to another process: never a process's doing
                // when the syscall evidence is there.
                if code > 0 && !to_itself && nr != SYSCALL_UNKNOWN && !attach_stop {
                    prop_assert_ne!(r.cause, Cause::Process, "{}", r.cause_detail);
                }
                for (name, value) in [("SI_TKILL", -6), ("SI_QUEUE", -1), ("SI_USER", 0)] {
                    if r.cause_detail.contains(name) {
                        prop_assert_eq!(code, value, "{}", r.cause_detail);
                    }
                }
            }
        }
    }
}
