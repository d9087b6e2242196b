//! The reader: waits on the ring buffer (woken by the kernel, or by the poll tick) or polls
//! the perf buffers, drains records through the decoder, and counts what the kernel dropped.

use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use aya::maps::{
    Map, MapData, PerCpuArray, RingBuf,
    perf::{PerfEvent, PerfEventArray, PerfEventArrayBuffer},
};
use podsig_common::FoldState;
use tokio::io::unix::AsyncFd;

use super::decode::Decoder;
use crate::event::{BackendName, LostRecord, Record};

/// How often the ring buffer is drained when the kernel did not wake us: the program only
/// forces a wakeup once the buffer passes a fill level, so this bounds report latency.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Records drained at most per call: a storm is handled in slices that keep memory flat.
const DRAIN_BATCH: usize = 1024;

/// How records come from the kernel.
enum Transport {
    /// BPF ring buffer (5.8+): one buffer, ordered across CPUs, woken in batches.
    Ring { fd: AsyncFd<RawFdWrapper>, buf: RingBuf<MapData> },
    /// Perf event array: a buffer per CPU, polled on the tick; drops counted by the kernel.
    Perf { bufs: Vec<PerfEventArrayBuffer<MapData>>, lost: u64 },
}

/// `AsyncFd` wants to own its fd source; the ring buffer stays with us for reading.
struct RawFdWrapper(RawFd);
impl AsRawFd for RawFdWrapper {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

pub(super) struct Reader {
    transport: Transport,
    decoder: Decoder,
    lost: PerCpuArray<MapData, u64>,
    /// The runs of identical signals the kernel is counting, per CPU.
    fold: PerCpuArray<MapData, FoldState>,
    lost_seen: u64,
    tick: tokio::time::Interval,
    /// The last drain stopped at DRAIN_BATCH with records left.
    more: bool,
}

impl Reader {
    /// Opens the EVENTS map as a ring buffer or, without one, as a perf event array whose
    /// `ring_bytes` are shared out among the CPUs in `page`-sized pages.
    pub(super) fn open(
        events: Map,
        ringbuf: bool,
        ring_bytes: u32,
        page: u32,
        lost: PerCpuArray<MapData, u64>,
        fold: PerCpuArray<MapData, FoldState>,
    ) -> Result<Self> {
        let transport = if ringbuf {
            let buf = RingBuf::try_from(events)?;
            #[allow(deprecated)] // AsyncFd::register is not in every tokio 1.x we may resolve to.
            let fd = AsyncFd::new(RawFdWrapper(buf.as_raw_fd()))
                .context("registering the ring buffer with the event loop")?;
            Transport::Ring { fd, buf }
        } else {
            let mut array = PerfEventArray::try_from(events)?;
            let cpus = aya::util::online_cpus().map_err(|(what, e)| anyhow!("{what}: {e}"))?;
            // The ring size is shared out among the CPUs, in pages, a power of two each.
            let pages = ((ring_bytes / page) as usize / cpus.len().max(1)).max(1).next_power_of_two();
            let bufs = cpus
                .iter()
                .map(|&cpu| {
                    array.open(cpu, Some(pages)).with_context(|| format!("opening the perf buffer of CPU {cpu}"))
                })
                .collect::<Result<Vec<_>>>()?;
            Transport::Perf { bufs, lost: 0 }
        };
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut decoder = Decoder::default();
        decoder.keeps_signals_in_group_exit = !crate::source::features::kernel_at_least(5, 17);
        Ok(Self { transport, decoder, lost, fold, lost_seen: 0, tick, more: false })
    }

    /// What the records of the build that runs leave out (each signal record says so).
    pub(super) fn set_lacks(&mut self, lacks: &'static [crate::event::Lack]) {
        self.decoder.lacks = lacks;
    }

    /// "ring buffer" or "perf event array".
    pub(super) fn transport(&self) -> &'static str {
        match self.transport {
            Transport::Ring { .. } => "ring buffer",
            Transport::Perf { .. } => "perf event array",
        }
    }

    pub(super) fn take_malformed(&mut self) -> u64 {
        self.decoder.malformed.take()
    }

    pub(super) async fn ready(&mut self) -> Result<()> {
        if self.more {
            return Ok(());
        }
        match &mut self.transport {
            Transport::Ring { fd, .. } => tokio::select! {
                guard = fd.readable() => {
                    guard.context("waiting on the ring buffer")?.clear_ready();
                }
                _ = self.tick.tick() => {}
            },
            Transport::Perf { .. } => {
                self.tick.tick().await;
            }
        }
        Ok(())
    }

    pub(super) fn drain(&mut self, out: &mut Vec<Record>) -> Result<()> {
        // Bounded, so a storm is handled in slices that keep memory flat; `ready` returns at
        // once while the buffer still holds records.
        self.more = false;
        let decoder = &mut self.decoder;
        match &mut self.transport {
            Transport::Ring { buf, .. } => {
                let mut n = 0;
                while let Some(item) = buf.next() {
                    decoder.decode(&item, out);
                    n += 1;
                    if n == DRAIN_BATCH {
                        self.more = true;
                        break;
                    }
                }
            }
            Transport::Perf { bufs, lost } => {
                let mut joined = Vec::new();
                for b in bufs.iter_mut() {
                    b.for_each(|ev| match ev {
                        PerfEvent::Sample { head, tail } => {
                            let bytes = if tail.is_empty() {
                                head
                            } else {
                                joined.clear();
                                joined.extend_from_slice(head);
                                joined.extend_from_slice(tail);
                                &joined[..]
                            };
                            decoder.decode(bytes, out);
                        }
                        PerfEvent::Lost { count } => *lost += count,
                    });
                }
                decoder.flush(out);
                // Per-CPU buffers interleave: restore kernel order by timestamp.
                out.sort_by_key(record_time);
            }
        }
        // What the kernel counted since, in runs still going: read now, so a storm that
        // stopped is fully accounted within one tick.
        if let Ok(states) = self.fold.get(&0, 0) {
            for (cpu, st) in states.iter().enumerate() {
                self.decoder.poll_fold(cpu as u32, st, out);
            }
        }
        self.decoder.flush(out);
        let total = self.lost_total();
        if total > self.lost_seen {
            out.push(Record::Lost(LostRecord {
                time: String::new(),
                node: None,
                backend: BackendName::Ebpf,
                count: total - self.lost_seen,
            }));
            self.lost_seen = total;
        }
        Ok(())
    }

    fn lost_total(&self) -> u64 {
        let in_kernel: u64 = self.lost.get(&0, 0).map(|v| v.iter().sum()).unwrap_or(0);
        let perf = match &self.transport {
            Transport::Perf { lost, .. } => *lost,
            Transport::Ring { .. } => 0,
        };
        (in_kernel + perf).max(self.lost_seen)
    }
}

fn record_time(r: &Record) -> u64 {
    match r {
        Record::Signal(s) => s.boot_ns.unwrap_or(0),
        Record::Exit(e) => e.boot_ns.unwrap_or(0),
        Record::Oom(o) => o.boot_ns,
        Record::Request(r) => r.boot_ns,
        Record::Lost(_) => u64::MAX,
    }
}
