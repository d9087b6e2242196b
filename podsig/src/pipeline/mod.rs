//! What happens to a record between the source and the sinks. [`Pipeline`] runs the stages,
//! and this is the one order they run in:
//!
//! 1. `correlate`: the OOM killer's mark onto the SIGKILL it follows (a kernel SIGKILL waits
//!    a moment for it).
//! 2. `enrich`: wall time, what only /proc has, the container from the [`ContainerIndex`],
//!    `findings` (shells, scripts, interpreters in the sender's ancestry).
//! 3. name containers (`containers::namer`): containerd's, Docker's and podman's names and
//!    labels, asked without the loop ever waiting long on a manager.
//! 4. `cause`: why it was sent, as a verdict.
//! 5. link requests (`requests`): which client asked the manager that sent it; requests
//!    themselves are kept here (after redaction) and go no further.
//! 6. `redact`: secrets out of argv, before the stories, any sink or the history see them.
//! 7. `story`: signals linked into a stop (`preceded_by`), and the stop's verdict.
//! 8. `node_filter`: what a watch keeps of it all (labels, noisy senders); last, so no
//!    story depends on what is shown.
//!
//! `watch` and `record` push the source's records in and take finished ones out for the
//! sinks; `why` replays stored records through the stages that depend on more than one
//! record ([`Pipeline::replay`]).

pub mod cause;
pub mod correlate;
pub mod enrich;
pub mod findings;
pub mod node_filter;
pub mod redact;
pub mod script;
pub mod story;

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    containers::{
        ContainerIndex,
        follow::Membership,
        namer::{Namer, Snapshot},
    },
    event::Record,
    requests::Requests,
    source::RequestCapture,
};

/// What a watch configures the stages with.
pub struct Config {
    /// The node name put on every record.
    pub node: Option<String>,
    pub filter: node_filter::Filter,
    pub redact: redact::Redactor,
    /// How far back a terminating signal is linked to the next one to the same target.
    pub stop_window: Duration,
}

pub struct Pipeline {
    correlator: correlate::Correlator,
    enricher: enrich::Enricher,
    /// Which container a process is in, and the containers' names. The pipeline is its one
    /// owner: enrichment's lookups, the namer's answers and a container watch's membership
    /// all reach it through here.
    containers: ContainerIndex,
    namer: Namer,
    requests: Requests,
    redactor: redact::Redactor,
    stories: story::Stories,
    filter: node_filter::Filter,
    /// Through the stages that take a batch (1–3), waiting for the ones that take a record
    /// at a time (4–8).
    ready: VecDeque<Record>,
}

impl Pipeline {
    /// `namer`: started by the watch, which knows which managers to ask and how often.
    pub fn new(config: Config, namer: Namer) -> Self {
        let mut enricher = enrich::Enricher::new();
        enricher.node = config.node;
        Self {
            correlator: correlate::Correlator::default(),
            enricher,
            containers: ContainerIndex::new(),
            namer,
            // Until the source says it captures requests.
            requests: Requests::new(config.stop_window, RequestCapture::Off),
            redactor: config.redact,
            stories: story::Stories::new(config.stop_window),
            filter: config.filter,
            ready: VecDeque::new(),
        }
    }

    /// Once attached: whether the source captures requests to managers (without them, a
    /// signal with no matching request says nothing of who asked).
    pub fn capturing_requests(&mut self, capturing: RequestCapture) {
        self.requests.set_capturing(capturing);
    }

    /// Before attaching: what the managers say now, if they answer within `bound`.
    pub async fn name_first(&mut self, bound: Duration) {
        self.namer.first(&mut self.containers, bound).await;
    }

    /// On the watch's periodic tick: what the managers said meanwhile; the rounds new since
    /// the last tick, for a container watch's follower.
    pub fn tick(&mut self) -> Vec<Arc<Snapshot>> {
        self.namer.tick(&mut self.containers)
    }

    /// On the follow tick of a watch that names units: which cgroup is which unit now, so a
    /// process gone before its /proc was read is still named for its unit.
    pub fn refresh_units(&mut self) {
        self.enricher.refresh_units();
    }

    /// What a container watch knows of its processes.
    pub fn learn_membership(&mut self, membership: Membership) {
        self.containers.learn_membership(membership);
    }

    /// A record from the source, read at `now`.
    pub fn push(&mut self, record: Record, now: Instant) {
        // The reader counts a loss after the batch it happened in: the requests stage hears of
        // it now, before any signal of that batch is linked, or one could be said to have
        // gone unasked while its request was among the records lost.
        if matches!(record, Record::Lost(_)) {
            self.requests.lost();
        }
        self.correlator.push(record, now);
    }

    /// Nothing is held back waiting for an OOM mark.
    pub fn is_empty(&self) -> bool {
        self.correlator.is_empty()
    }

    /// Stages 1–3, on what the source gave: what may leave the correlator at `now` (all of
    /// it when `flush`: the watch is ending), enriched, its containers named.
    pub async fn prepare(&mut self, now: Instant, flush: bool) {
        if flush {
            self.correlator.flush(&mut self.ready);
        } else {
            self.correlator.ready(now, &mut self.ready);
        }
        for record in self.ready.iter_mut() {
            self.enricher.enrich(record, &mut self.containers);
        }
        self.namer.name(&mut self.containers, self.ready.make_contiguous()).await;
    }

    /// Stages 4–8, one record at a time: the next record for the sinks, None when the batch
    /// is done. One at a time so that a watch that stops midway (`--count`) leaves the rest
    /// unread, as if it had stopped before them.
    pub fn next_out(&mut self) -> Option<Record> {
        while let Some(mut record) = self.ready.pop_front() {
            match &mut record {
                Record::Signal(s) => {
                    cause::classify(s);
                    self.requests.link(s);
                }
                // Whatever the filter keeps: a loss may have hidden any target's signals.
                Record::Lost(l) => {
                    eprintln!("podsig: lost {} events: the ring buffer was full (raise --ring-size)", l.count)
                }
                _ => {}
            }
            self.redactor.record(&mut record);
            if let Record::Request(r) = record {
                self.requests.remember(*r);
                continue;
            }
            self.stories.apply(&mut record);
            if self.filter.keeps(&record) {
                return Some(record);
            }
        }
        None
    }

    /// Drops what is left of the batch: the watch stopped.
    pub fn discard(&mut self) {
        self.ready.clear();
    }

    /// Stored records (oldest first) through the stages that need more than the record:
    /// the stories, so rows recorded before stories existed get a verdict too. A link or
    /// verdict the replay cannot make (its other half lies outside what was selected) is
    /// kept as it was recorded. Each record with its story.
    pub fn replay(records: Vec<Record>, window: Duration) -> Vec<(Record, Option<u64>)> {
        let mut stories = story::Stories::new(window);
        records
            .into_iter()
            .map(|mut r| {
                let kept = match &mut r {
                    Record::Signal(s) => (s.preceded_by.take(), s.stop.take()),
                    Record::Exit(e) => (e.preceded_by.take(), e.stop.take()),
                    _ => (None, None),
                };
                let story = stories.apply(&mut r);
                match &mut r {
                    Record::Signal(s) => {
                        s.preceded_by = s.preceded_by.take().or(kept.0);
                        s.stop = s.stop.take().or(kept.1);
                    }
                    Record::Exit(e) => {
                        e.preceded_by = e.preceded_by.take().or(kept.0);
                        e.stop = e.stop.take().or(kept.1);
                    }
                    _ => {}
                }
                (r, story)
            })
            .collect()
    }
}
