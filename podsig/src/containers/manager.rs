//! What a container manager (containerd, Docker) is to the namer: something asked in rounds,
//! that announces task starts.

use std::sync::Arc;

use anyhow::Result;

use super::model::{ContainerInfo, Source, TaskStart};
use crate::event::Runtime;

/// Which manager a round of answers came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Containerd,
    Docker,
}

impl Kind {
    /// The manager that tells about a container from `source` (podman has no agent).
    pub fn of(source: &Source) -> Option<Self> {
        match source {
            Source::Containerd(_) => Some(Self::Containerd),
            Source::Docker => Some(Self::Docker),
            Source::Podman => None,
        }
    }
}

/// A running task: its container, runtime, its init's pid and pid namespace.
pub type Task = (String, Runtime, u32, Option<u32>);

/// One round of a manager's answers: every container with its names, every running task.
pub struct Round {
    pub containers: Vec<ContainerInfo>,
    pub tasks: Vec<Task>,
}

/// A container manager an [`Agent`] asks: containerd ([`ContainerdAt`]) or Docker
/// ([`DockerAt`]).
pub trait Manager: Send + Sync + 'static {
    type Client: Send + 'static;
    /// As podsig's lines on stderr name it.
    const NAME: &'static str;
    const KIND: Kind;
    fn connect(&self) -> impl Future<Output = Result<Self::Client>> + Send;
    /// One round of questions.
    fn ask(&self, client: &mut Self::Client) -> impl Future<Output = Result<Round>> + Send;
    /// Sends every task started from now on, as the manager announces it, connecting again
    /// whenever it goes away, until `tx` is closed.
    fn task_starts(
        self: Arc<Self>,
        tx: tokio::sync::mpsc::UnboundedSender<TaskStart>,
    ) -> impl Future<Output = ()> + Send;
    /// An error from asking, short, for one line on stderr.
    fn reason(e: &anyhow::Error) -> String;
}
