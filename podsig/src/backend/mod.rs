//! Backends turn a watch request into kernel hooks and hand back raw events.
//!
//! Each backend produces the same `event::Record`s; enrichment and output never know which
//! backend ran.

pub mod ebpf;

use anyhow::Result;

use crate::event::Record;

/// What to watch, already validated.
#[derive(Clone, Debug, Default)]
pub struct WatchSpec {
    /// Process ids (tgids) to watch.
    pub pids: Vec<u32>,
    /// Watch every process on the host.
    pub all: bool,
    /// Signals to report; empty means all.
    pub signals: Vec<i32>,
    /// Ring buffer size in bytes (eBPF backend).
    pub ring_bytes: u32,
}

/// The contract between the watch loop and a backend.
#[allow(async_fn_in_trait)]
pub trait Backend {
    fn name(&self) -> &'static str;
    /// Waits until records may be available (or a short poll interval passed).
    async fn ready(&mut self) -> Result<()>;
    /// Moves every record available now into `out`, in arrival order.
    fn drain(&mut self, out: &mut Vec<Record>) -> Result<()>;
    /// Stops watching a process (it exited; its pid may be reused).
    fn unwatch(&mut self, pid: u32) -> Result<()>;
}
