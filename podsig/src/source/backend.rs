//! What a backend is to the rest of podsig: the watch request it is given, the contract the
//! watch loop drives it through, and the count of records it could not decode.

use anyhow::Result;
use clap::ValueEnum;

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
    /// Pass tool output through (stap's compile log).
    pub verbose: bool,
    /// Watch what watched processes fork, and accept pids added while running (containers).
    pub follow: bool,
    /// A SystemTap module built ahead of time (`podsig stap-build`), loaded with staprun.
    pub stap_module: Option<std::path::PathBuf>,
    /// Manager sockets whose clients' requests are captured (node mode, unit and container
    /// watches); empty: none.
    pub requests: Vec<(std::path::PathBuf, crate::requests::wire::Socket)>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// eBPF when the kernel supports it, else SystemTap when usable.
    #[default]
    Auto,
    Ebpf,
    Stap,
}

/// Records a backend could not decode (cut short, garbled, of a kind it does not know):
/// each is skipped and counted here, never a panic and never a guess. A backend keeps one
/// and calls [`Malformed::note`] where a decoder gives up; the watch loop takes the count
/// through [`Backend::take_malformed`] and reports it as
/// `podsig_malformed_records_total{backend}` and on stderr.
#[derive(Debug, Default)]
pub struct Malformed {
    new: u64,
}

impl Malformed {
    /// One more record that could not be decoded.
    pub fn note(&mut self) {
        self.new += 1;
    }

    /// How many since the last call.
    pub fn take(&mut self) -> u64 {
        std::mem::take(&mut self.new)
    }
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
    /// Starts watching one more process of a container: its signals are reported, its exit
    /// only clears it from the filter.
    fn watch(&mut self, pid: u32) -> Result<()>;
    /// Starts watching a process whose exit is reported too (a container's new task).
    fn watch_root(&mut self, pid: u32) -> Result<()>;
    /// Records skipped as malformed since the last call (see [`Malformed`]).
    fn take_malformed(&mut self) -> u64 {
        0
    }
    /// Whether clients' requests to managers are captured (`Record::Request`), and whose.
    fn captures_requests(&self) -> RequestCapture {
        RequestCapture::Off
    }
}

/// How much of what clients ask the managers a backend captures: what a signal with no
/// matching request may claim depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestCapture {
    /// Nothing: a signal with no matching request says nothing of who asked.
    Off,
    /// Every request from now on, from clients that connect later and those connected already.
    Whole,
    /// Only from clients that connect from now on: those connected before could not be
    /// listed, and one of them may ask unseen.
    NewClientsOnly,
}
