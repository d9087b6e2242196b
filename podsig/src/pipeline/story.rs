//! Stories: every terminating signal linked to the one sent before it to the same target,
//! and a verdict for the stop they tell.
//!
//! After an exit code 137 the question is rarely "which process sent SIGKILL" but "why was
//! it killed": a runtime asked it to stop (SIGTERM), waited out the grace period, then sent
//! SIGKILL. Whether that SIGTERM was ever delivered, and what the target did with it, the
//! kernel said at signal time (`result`, `target.disposition`, `target.ns_init`); this stage
//! remembers it until the SIGKILL or the exit and names the story.
//!
//! One implementation for the live watch (`watch`, `record`: applied to each record before
//! it is printed, stored or counted) and for `podsig why`, which replays stored records.
//!
//! - A story is keyed by the target process (node, pid). A process in a container with no
//!   story of its own joins its container's init's (the runtime signals the init; a SIGKILL
//!   to every process of the container follows). Containers are keyed by ID: a restarted
//!   container is a new story, never linked to the last instance's signals.
//! - A story ends with the target's exit, or when its last signal is older than the window.
//! - Its verdict is given once: on the SIGKILL, on a signal certain to kill (delivered with
//!   its default action), or on the exit after a stop request.

use std::{
    collections::HashMap,
    time::{Duration, UNIX_EPOCH},
};

use crate::{
    event::{
        Cause, ContainerRef, Delivery, Disposition, ExitRecord, Party, PrecededBy, Record, SignalId, SignalRecord,
        Stop, Verdict,
    },
    pipeline::cause,
    signals::{self, DefaultAction},
};

/// How far back a terminating signal is linked to the next one to the same target.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(600);

/// The signals that ask a process to stop: catchable, so a handler can clean up first. What
/// runtimes send first (`docker stop`, kubelet, `ctr task kill`), STOPSIGNAL's usual
/// choices, and what a terminal's keys raise. A stop request whoever raised it: a kernel
/// worker's Ctrl-C asks as much as `kill -INT` does.
const STOP_REQUESTS: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT];

/// Beyond this many stories, the expired ones are dropped (and all, if none had expired).
const MAX_STORIES: usize = 16384;

/// The signals a story is made of: every one whose default action ends a process, so an
/// exit by SIGPIPE or SIGHUP is linked to the signal that caused it, as a SIGKILL's is.
pub fn in_story(sig: i32) -> bool {
    signals::terminates(sig)
}

/// The signals of `in_story`, for queries of the history.
pub fn story_signals() -> Vec<i32> {
    (1..=signals::SIGRTMAX).filter(|&s| in_story(s)).collect()
}

/// A terminating signal, as the story remembers it.
#[derive(Clone, Debug)]
struct Sent {
    /// Wall clock, ns since the epoch (the last one, for a record standing for several).
    at_ns: i128,
    time: String,
    signal: SignalId,
    result: Option<Delivery>,
    disposition: Option<Disposition>,
    blocked: Option<bool>,
    ns_init: Option<bool>,
    exiting: Option<bool>,
    target: Party,
    sender: Option<Party>,
    cause: Cause,
    /// A stop request (see [`STOP_REQUESTS`]).
    request: bool,
    /// Who asked the manager that sent it, in words (`SignalRecord::requested_by`).
    requested_by: Option<String>,
}

impl Sent {
    fn of(s: &SignalRecord, at_ns: i128) -> Self {
        let sender = s.sender.as_ref().map(|x| Party { pid: x.pid, comm: x.comm.clone() });
        let request = STOP_REQUESTS.contains(&s.signal.number);
        Sent {
            at_ns,
            time: s.last_time.clone().unwrap_or_else(|| s.time.clone()),
            signal: s.signal.clone(),
            result: s.result,
            disposition: s.target.disposition,
            blocked: s.target.blocked,
            ns_init: s.target.ns_init,
            exiting: s.target.exiting,
            target: Party { pid: s.target.pid, comm: s.target.comm.clone() },
            sender,
            cause: s.cause,
            request,
            requested_by: s.requested_by.as_ref().map(crate::sink::output::requested_by),
        }
    }

    fn self_sent(&self) -> bool {
        self.sender.as_ref().is_some_and(|x| x.pid == self.target.pid)
    }

    fn link(&self, now_ns: i128) -> PrecededBy {
        PrecededBy {
            signal: self.signal.clone(),
            time: self.time.clone(),
            elapsed_ms: ms(now_ns - self.at_ns),
            result: self.result,
            disposition: self.disposition,
            blocked: self.blocked,
            ns_init: self.ns_init,
            exiting: self.exiting,
            target: self.target.clone(),
            sender: self.sender.clone(),
            cause: self.cause,
        }
    }

    /// Dropped by the kernel, or ignored by the target: it did nothing.
    fn dropped(&self) -> bool {
        self.result == Some(Delivery::Ignored)
            || self.disposition == Some(Disposition::Ignore)
            || (self.ns_init == Some(true)
                && self.disposition == Some(Disposition::Default)
                && self.blocked != Some(true))
    }

    /// It reached a handler (or waits, blocked, for the target to take it).
    fn handled(&self) -> bool {
        !self.dropped() && (self.disposition == Some(Disposition::Handler) || self.blocked == Some(true))
    }
}

struct Entry {
    story: u64,
    container: Option<ContainerRef>,
    last: Sent,
    /// Per signal, the last one the kernel did not drop: an exit by a signal is linked to
    /// the one that caused it, not to a copy dropped while it was already exiting.
    effective: Vec<Sent>,
    /// The first stop request of the story: the grace period counts from it.
    request: Option<Sent>,
    /// The verdict was given.
    concluded: bool,
}

type PidKey = (Option<String>, u32);
type ContainerKey = (Option<String>, String);

/// The stage: feed it every record, in order.
pub struct Stories {
    window_ns: i128,
    next_story: u64,
    by_pid: HashMap<PidKey, Entry>,
    /// A container's init, by container: where its other processes' stories start.
    inits: HashMap<ContainerKey, u32>,
    /// systemd's stop of a unit, by unit: systemd stops a unit as a whole, so a process of
    /// it with no story of its own (a shell's `sleep`, started since the SIGTERM) joins the
    /// unit's, as a container's join its init's — and still after the process that got the
    /// SIGTERM exited.
    units: HashMap<ContainerKey, UnitStop>,
}

/// What systemd sent a unit's processes lately: the last signal, and the first stop request.
struct UnitStop {
    last: Sent,
    request: Option<Sent>,
    /// The process that got the stop request (systemd signals the main process first)
    /// exited since: the stop is over (a restart's new main process is killed later on its
    /// own account), but for the rest of the burst of signals systemd sends the unit's
    /// processes one after another. Another process's exit (a shell's short `sleep`) ends
    /// nothing.
    ended: bool,
}

/// Units whose stop is remembered before the expired ones are dropped.
const MAX_UNIT_STOPS: usize = 1024;

/// How long after systemd's last signal to a unit another of its signals still belongs to
/// the same pass over the unit's processes.
const UNIT_BURST_NS: i128 = 1_000_000_000;

impl Default for Stories {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW)
    }
}

impl Stories {
    pub fn new(window: Duration) -> Self {
        Self {
            window_ns: window.as_nanos() as i128,
            next_story: 1,
            by_pid: HashMap::new(),
            inits: HashMap::new(),
            units: HashMap::new(),
        }
    }

    /// Fills in the record's `preceded_by` and `stop` (and an exit's container); returns
    /// the story it belongs to, if any.
    pub fn apply(&mut self, record: &mut Record) -> Option<u64> {
        match record {
            Record::Signal(s) => self.signal(s),
            Record::Exit(e) => self.exit(e),
            Record::Lost(_) | Record::Oom(_) | Record::Request(_) => None,
        }
    }

    // Long: find the story (its own, or its container init's), link and judge the record, then
    // remember it; each step reads what the one before found.
    fn signal(&mut self, s: &mut SignalRecord) -> Option<u64> {
        if !in_story(s.signal.number) {
            return None;
        }
        let first_ns = wall_ns(&s.time)?;
        let last_ns = s.last_time.as_deref().and_then(wall_ns).unwrap_or(first_ns);
        self.prune(last_ns);
        let key = (s.node.clone(), s.target.pid);
        let window = self.window_ns;
        let fresh = |e: &Entry| first_ns - e.last.at_ns <= window;
        if self.by_pid.get(&key).is_some_and(|e| !fresh(e)) {
            // Its last signal is past the window: whatever that story was, it is over.
            self.by_pid.remove(&key);
        }
        let ckey = s.target.container.as_ref().map(|c| (s.node.clone(), c.id.clone()));
        let own = self.by_pid.get(&key);
        // A process of a container with no story of its own joins its init's.
        let via_init = match (own, s.target.ns_init, &ckey) {
            (None, Some(false) | None, Some(k)) => self
                .inits
                .get(k)
                .filter(|&&p| p != s.target.pid)
                .and_then(|&p| self.by_pid.get(&(s.node.clone(), p)))
                .filter(|e| fresh(e)),
            _ => None,
        };
        // A process of a unit with no story of its own joins the one of the unit's process
        // that got its stop request, when systemd is stopping the unit: only systemd signals
        // a unit as a whole (a user's kills in a session's scope are each their own story).
        let by_systemd = s.sender.as_ref().is_some_and(|x| x.is_host_systemd());
        let ukey = s
            .target
            .unit
            .as_ref()
            .filter(|_| s.target.container.is_none() && by_systemd)
            .map(|u| (s.node.clone(), u.clone()));
        let via_unit = match (own, &ukey) {
            (None, Some(k)) => self.units.get(k).filter(|u| {
                let since = first_ns - u.last.at_ns;
                since <= window && (!u.ended || since <= UNIT_BURST_NS)
            }),
            _ => None,
        };
        let base = own.or(via_init).map(|e| (&e.last, e.request.clone(), e.container.clone()));
        let base = base.or_else(|| via_unit.map(|u| (&u.last, u.request.clone(), None)));
        s.preceded_by = base.as_ref().map(|(last, _, _)| last.link(first_ns));
        let (request, container) = base.map_or((None, None), |(_, r, c)| (r, c));
        let concluded = own.is_some_and(|e| e.concluded);
        let now = Sent::of(s, last_ns);
        s.stop = if concluded || s.result == Some(Delivery::Ignored) {
            None
        } else {
            signal_stop(s, request.as_ref(), first_ns)
        };
        if let Some(stop) = s.stop.as_mut() {
            in_systemds_words(s.sender.as_ref(), &s.target, stop);
            // Who asked: for the record that ends the stop, the request of its first stop
            // request (systemd's SIGKILL after TimeoutStopSec is the same `systemctl stop`).
            let asked = s
                .requested_by
                .as_ref()
                .map(crate::sink::output::requested_by)
                .or(request.as_ref().and_then(|r| r.requested_by.clone()));
            match (asked, &s.no_request) {
                (Some(by), _) => stop.summary += &format!("; requested by {by}"),
                (None, Some(n)) => stop.summary += &format!("; {n}"),
                _ => {}
            }
        }
        let concludes = s.stop.is_some();
        if let Some(k) = ukey {
            let u = self.units.entry(k).or_insert_with(|| UnitStop { last: now.clone(), request: None, ended: false });
            if last_ns - u.last.at_ns > window || (u.ended && last_ns - u.last.at_ns > UNIT_BURST_NS) {
                (u.request, u.ended) = (None, false);
            }
            if u.request.is_none() && now.request {
                u.request = Some(now.clone());
            }
            u.last = now.clone();
        }
        let story = match self.by_pid.get_mut(&key) {
            Some(e) => {
                if e.request.is_none() && now.request {
                    e.request = Some(now.clone());
                }
                remember(&mut e.effective, &now);
                e.last = now;
                e.concluded |= concludes;
                if e.container.is_none() {
                    e.container.clone_from(&s.target.container);
                }
                e.story
            }
            None => {
                let story = self.next_story;
                self.next_story += 1;
                let request = request.or_else(|| now.request.then(|| now.clone()));
                let container = s.target.container.clone().or(container);
                let mut effective = Vec::new();
                remember(&mut effective, &now);
                self.by_pid
                    .insert(key, Entry { story, container, last: now, effective, request, concluded: concludes });
                story
            }
        };
        if s.target.ns_init == Some(true)
            && let Some(k) = ckey
        {
            self.inits.insert(k, s.target.pid);
        }
        Some(story)
    }

    fn exit(&mut self, e: &mut ExitRecord) -> Option<u64> {
        let at = wall_ns(&e.time)?;
        // Found by the process, not by the exit's unit: a unit read from /proc may be gone
        // by now, and the stop would stay open for the whole window.
        if let Some((_, u)) = self
            .units
            .iter_mut()
            .find(|((node, _), u)| *node == e.node && u.request.as_ref().is_some_and(|r| r.target.pid == e.pid))
        {
            u.ended = true;
        }
        let entry = self.by_pid.remove(&(e.node.clone(), e.pid))?;
        if let Some(c) = &entry.container {
            let k = (e.node.clone(), c.id.clone());
            if self.inits.get(&k) == Some(&e.pid) {
                self.inits.remove(&k);
            }
        }
        if at - entry.last.at_ns > self.window_ns {
            return None;
        }
        if e.container.is_none() {
            e.container.clone_from(&entry.container);
        }
        // Killed by a signal: the one of that signal the kernel acted on.
        let cause = e.signal.as_ref().and_then(|sig| entry.effective.iter().find(|x| x.signal.number == sig.number));
        e.preceded_by = Some(cause.unwrap_or(&entry.last).link(at));
        if !entry.concluded {
            e.stop = exit_stop(e, &entry, at);
        }
        Some(entry.story)
    }

    /// Drops expired stories when there are many.
    fn prune(&mut self, now_ns: i128) {
        // Units on their own count: every session scope systemd ever signalled would stay.
        if self.units.len() >= MAX_UNIT_STOPS {
            let window = self.window_ns;
            self.units.retain(|_, u| now_ns - u.last.at_ns <= window);
        }
        if self.by_pid.len() < MAX_STORIES {
            return;
        }
        let window = self.window_ns;
        self.by_pid.retain(|_, e| now_ns - e.last.at_ns <= window);
        if self.by_pid.len() >= MAX_STORIES {
            self.by_pid.clear();
        }
        let by_pid = &self.by_pid;
        self.inits.retain(|(node, _), pid| by_pid.contains_key(&(node.clone(), *pid)));
        self.units.retain(|_, u| now_ns - u.last.at_ns <= window);
    }
}

/// A systemd unit's stop, when systemd sent the signal, gets its fix in systemd's words:
/// the unit's settings that decide what happened.
fn in_systemds_words(sender: Option<&crate::event::Sender>, target: &crate::event::Target, stop: &mut Stop) {
    let (Some(unit), None) = (&target.unit, &target.container) else { return };
    if !sender.is_some_and(|x| x.is_host_systemd()) {
        return;
    }
    let fix = match stop.verdict {
        Some(Verdict::GraceExpiredTermIgnored) => format!(
            "make {unit} handle its stop signal, or stop it another way: KillSignal= sets the signal systemd sends \
             first (SIGTERM), ExecStop= a command that stops it; a longer TimeoutStopSec= only makes the wait \
             longer; KillMode= decides which of its processes get the signals"
        ),
        Some(Verdict::GraceExpiredTermHandled) => format!(
            "make {unit}'s handler finish and exit within TimeoutStopSec= (default 90 s), or raise TimeoutStopSec=; \
             an ExecStop= counts against the same timeout, and KillMode=mixed sends the SIGTERM to the main \
             process only"
        ),
        Some(Verdict::KilledWithoutTerm) => format!(
            "SIGKILL at once: `systemctl kill -s KILL` or KillSignal=SIGKILL on {unit}; if a graceful stop was \
             meant, `systemctl stop` (SIGTERM, then SIGKILL after TimeoutStopSec=)"
        ),
        Some(Verdict::EndedByDefaultAction) => format!(
            "nothing for the stop; {unit} has no handler for its KillSignal=, so it could not clean up: add one, \
             or an ExecStop=, if it holds state"
        ),
        _ => return,
    };
    stop.fix = fix;
}

/// Keeps `now` as its signal's effective one, unless the kernel dropped it.
fn remember(effective: &mut Vec<Sent>, now: &Sent) {
    if now.result == Some(Delivery::Ignored) {
        return;
    }
    effective.retain(|x| x.signal.number != now.signal.number);
    effective.push(now.clone());
}

/// RFC 3339 time as ns since the epoch.
fn wall_ns(t: &str) -> Option<i128> {
    let t = humantime::parse_rfc3339(t).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_nanos() as i128)
}

fn ms(ns: i128) -> u64 {
    (ns.max(0) / 1_000_000) as u64
}

/// `310 ms`, `2.0 s`, `4 min 10 s`.
pub fn duration(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms} ms"),
        1000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

fn name(p: &Party) -> String {
    format!("{}({})", p.comm, p.pid)
}

fn from(sender: &Option<Party>) -> String {
    sender.as_ref().map_or_else(|| "the kernel".to_string(), name)
}

/// What became of a signal, from what the kernel captured with it: `ignored (pid 1 of its
/// namespace, no handler)`, `delivered to its handler`, ….
pub fn outcome(p: &PrecededBy) -> String {
    let sig = &p.signal.name;
    match (p.result, p.disposition) {
        (Some(Delivery::Ignored), _) if p.exiting == Some(true) => {
            "dropped: its target was already exiting (a fatal signal had begun its exit)".into()
        }
        (Some(Delivery::Ignored), Some(Disposition::Ignore)) => format!("ignored (it ignores {sig}: SIG_IGN)"),
        (Some(Delivery::Ignored), Some(Disposition::Default)) if p.ns_init == Some(true) => {
            "ignored (pid 1 of its namespace, no handler)".into()
        }
        (Some(Delivery::Ignored), Some(Disposition::Default))
            if signals::default_action(p.signal.number) == DefaultAction::Ignore =>
        {
            "ignored (its default action is to ignore it)".into()
        }
        (Some(Delivery::Ignored), _) => "dropped by the kernel".into(),
        // Nothing catches these: what the target does with them says nothing.
        (Some(Delivery::Delivered), _) if matches!(p.signal.number, libc::SIGKILL | libc::SIGSTOP) => {
            "delivered".into()
        }
        (_, Some(Disposition::Handler)) if p.blocked == Some(true) => {
            "pending: blocked, with a handler (it waits until the target unblocks it)".into()
        }
        (_, Some(Disposition::Handler)) => "delivered to its handler".into(),
        (Some(Delivery::Delivered), Some(Disposition::Default)) if p.blocked == Some(true) => {
            "pending: blocked (it waits until the target unblocks it, then its default action applies)".into()
        }
        (Some(Delivery::Delivered), Some(Disposition::Default)) => "delivered (no handler: its default action)".into(),
        (Some(Delivery::AlreadyPending), _) => "already pending".into(),
        (Some(r), _) => r.as_str().replace('_', " "),
        (None, _) => "outcome not captured by this backend".into(),
    }
}

/// The text form's detail line for `preceded_by` (without its `after: ` label).
pub fn after(p: &PrecededBy, target_pid: u32) -> String {
    let to = if p.target.pid == target_pid {
        String::new()
    } else {
        format!(" to its container's init {}", name(&p.target))
    };
    format!("{}{to} from {} {} earlier, {}", p.signal.name, from(&p.sender), duration(p.elapsed_ms), outcome(p))
}

/// Why a dropped stop request did nothing, for a summary (which has named the target).
fn dropped_reason(r: &Sent) -> String {
    let sig = &r.signal.name;
    if r.exiting == Some(true) {
        "it was already exiting".into()
    } else if r.disposition == Some(Disposition::Ignore) {
        format!("it ignores {sig} (SIG_IGN, often inherited: `trap '' TERM`, nohup, a parent that ignored it)")
    } else if r.ns_init == Some(true) && r.disposition == Some(Disposition::Default) {
        format!(
            "it is pid 1 of its pid namespace (its container's init) with no {sig} handler, and the kernel never \
             delivers a signal with its default action to such an init"
        )
    } else {
        "the kernel dropped it".into()
    }
}

fn stop(verdict: Option<Verdict>, elapsed_ms: Option<u64>, container_init: bool, summary: String, fix: String) -> Stop {
    Stop { verdict, elapsed_ms, container_init, summary, fix }
}

const FIX_INIT: &str = "make the container's init handle SIGTERM: run the program in exec form (`CMD [\"app\"]`, or \
                        `exec app` at the end of a script) so it is pid 1 itself, or under an init that forwards \
                        signals (tini, `docker run --init`, dumb-init), or set a STOPSIGNAL it handles; a longer \
                        terminationGracePeriodSeconds only makes the wait longer";
const FIX_HANDLED: &str = "make the SIGTERM handler finish and exit within the grace period (stop taking work, drain, \
                           exit; a shell `trap` must end in `exit`), or give it more time: \
                           terminationGracePeriodSeconds, `docker stop -t`, `podman stop -t`; a preStop hook runs \
                           before the SIGTERM and counts against the same period";

/// The verdict a signal record gives, if it ends its target's story.
// Long: a decision table of verdicts, each branch with its own prose; split, the order of checks would hide.
fn signal_stop(s: &SignalRecord, request: Option<&Sent>, at_ns: i128) -> Option<Stop> {
    let target = Party { pid: s.target.pid, comm: s.target.comm.clone() };
    let init = s.target.ns_init == Some(true) && s.target.container.is_some();
    let sender = s.sender.as_ref().map(|x| Party { pid: x.pid, comm: x.comm.clone() });
    let sig = &s.signal.name;
    let by_runtime = s.runtime.is_some() || cause::runtime_of(s).is_some();
    if s.signal.number == libc::SIGKILL {
        if s.cause == Cause::OomKill {
            return Some(stop(
                Some(Verdict::OomKill),
                None,
                init,
                format!("{}; exit code 137 here means memory, not a stop", s.cause_detail),
                "raise its memory limit (resources.limits.memory, `docker run -m`) or make it use less".into(),
            ));
        }
        if s.cause == Cause::Kernel && !by_runtime {
            return Some(kernel_stop(s, &target, init));
        }
        let Some(r) = request else {
            let (how, fix) = if by_runtime {
                (
                    "through its runtime: `docker kill`, `ctr task kill -s KILL`, or a stop with a grace period of 0 \
                     (`kubectl delete --grace-period=0 --force`, `crictl stop -t 0`)",
                    "if a graceful stop was meant, stop it rather than kill it (`docker stop`, a SIGTERM first, a \
                     grace period above 0)",
                )
            } else {
                (
                    "`kill -9` or its like",
                    "if this kill was not meant, find who ran the sender (its argv and ancestry are in the record); to \
                     stop a process gracefully, send SIGTERM first and SIGKILL only after a grace period",
                )
            };
            // What came before, if anything, was not a stop request: say which, so the
            // verdict never reads as if the record had nothing before it.
            let before = s.preceded_by.as_ref().map_or(String::new(), |p| {
                format!(
                    " (the {} from {} {} earlier, {}, is not one)",
                    p.signal.name,
                    from(&p.sender),
                    duration(p.elapsed_ms),
                    outcome(p)
                )
            });
            return Some(stop(
                Some(Verdict::KilledWithoutTerm),
                None,
                init,
                format!(
                    "{} sent SIGKILL to {} with no SIGTERM or other stop request (SIGINT, SIGQUIT) before it{before}: a kill, \
                     not a stop, {how}",
                    from(&sender),
                    name(&target)
                ),
                fix.into(),
            ));
        };
        let elapsed = ms(at_ns - r.at_ns);
        let killed = format!(
            "{} later {} sent SIGKILL{} (exit code 137)",
            duration(elapsed),
            from(&sender),
            if r.target.pid == target.pid { String::new() } else { format!(" to {}", name(&target)) }
        );
        let rsig = &r.signal.name;
        if r.dropped() {
            let fix = if r.ns_init == Some(true) && r.disposition != Some(Disposition::Ignore) {
                FIX_INIT.replace("SIGTERM", rsig)
            } else {
                format!(
                    "stop ignoring {rsig} (look for `trap '' TERM` or signal({rsig}, SIG_IGN) in it or in what started \
                     it), or set a STOPSIGNAL it handles; a longer grace period only makes the wait longer"
                )
            };
            return Some(stop(
                Some(Verdict::GraceExpiredTermIgnored),
                Some(elapsed),
                init,
                format!(
                    "{rsig} from {} to {} was dropped: {}; nothing happened until the grace period ran out: {killed}",
                    from(&r.sender),
                    name(&r.target),
                    dropped_reason(r)
                ),
                fix,
            ));
        }
        let how = match (r.disposition, r.blocked) {
            (Some(Disposition::Handler), _) => Some("has a handler for it"),
            (_, Some(true)) => Some("blocks it (sigwait or signalfd handle it, or nothing does)"),
            (Some(Disposition::Default), _) => {
                Some("got it with its default action but was not ended by it (stuck in the kernel, or still exiting)")
            }
            _ => None,
        };
        let Some(how) = how else {
            return Some(stop(
                None,
                Some(elapsed),
                init,
                format!(
                    "{rsig} from {} to {}, then {killed}: the grace period ran out; whether {rsig} was dropped or \
                     handled, this backend did not capture",
                    from(&r.sender),
                    name(&r.target)
                ),
                format!("run podsig with the eBPF backend to tell; meanwhile either: {FIX_INIT}; or: {FIX_HANDLED}"),
            ));
        };
        return Some(stop(
            Some(Verdict::GraceExpiredTermHandled),
            Some(elapsed),
            init,
            format!(
                "{} got {rsig} from {} and {how}, but had not exited when the grace period ran out: {killed}",
                name(&r.target),
                from(&r.sender)
            ),
            FIX_HANDLED.replace("SIGTERM", rsig),
        ));
    }
    // Any other terminating signal ends the story only when it is certain to kill: the
    // kernel queued it, the target has no handler and does not block it.
    let certain = s.result == Some(Delivery::Delivered)
        && s.target.disposition == Some(Disposition::Default)
        && s.target.blocked != Some(true);
    if !certain {
        return None;
    }
    let now = Sent::of(s, at_ns);
    if now.request {
        if let Some(r) = request.filter(|r| r.handled() && now.self_sent()) {
            // A handler that cleans up, restores the default action and raises the signal
            // again, to end with the status a stop by it should have.
            let e = ms(at_ns - r.at_ns);
            return Some(stop(
                Some(Verdict::GracefulExit),
                Some(e),
                init,
                format!(
                    "{} got {} from {} and handled it; {} later it raised {sig} on itself with the default action, \
                     which ended it (exit code {}): the conventional end of a handler that cleaned up",
                    name(&target),
                    r.signal.name,
                    from(&r.sender),
                    duration(e),
                    128 + s.signal.number
                ),
                "nothing: it stopped as asked".into(),
            ));
        }
        let (elapsed, after) = match request {
            Some(r) => {
                let e = ms(at_ns - r.at_ns);
                (e, format!(", {} after the first {} from {}", duration(e), r.signal.name, from(&r.sender)))
            }
            None => (0, String::new()),
        };
        return Some(stop(
            Some(Verdict::EndedByDefaultAction),
            Some(elapsed),
            init,
            format!(
                "{sig} from {} ended {} at once{after}: it has no {sig} handler, so the signal's default action \
                 ended it (exit code {}); nothing in it ran to clean up",
                from(&sender),
                name(&target),
                128 + s.signal.number
            ),
            format!(
                "nothing, for the stop; but with no {sig} handler it cannot clean up (flush, close connections, stop \
                 children): add one if it holds state"
            ),
        ));
    }
    if s.cause == Cause::Kernel {
        return Some(kernel_stop(s, &target, init));
    }
    Some(process_stop(&now, &target, init, &format!("it dies of it (exit code {})", 128 + s.signal.number)))
}

fn kernel_stop(s: &SignalRecord, target: &Party, init: bool) -> Stop {
    let fix = if s.cause_detail.contains("pid 1 of this pid namespace") {
        "look at why its container's init exited (its own story: `podsig why` on the container, or its logs)"
    } else if matches!(s.signal.number, libc::SIGSEGV | libc::SIGBUS) {
        "a crash: read its logs and core dump (a bug, or memory corruption)"
    } else {
        "see the cause: the kernel raised it, no process asked for it"
    };
    stop(
        Some(Verdict::Kernel),
        None,
        init,
        format!("the kernel ended {} with {}: {}", name(target), s.signal.name, s.cause_detail),
        fix.into(),
    )
}

fn process_stop(last: &Sent, target: &Party, init: bool, end: &str) -> Stop {
    let sig = &last.signal.name;
    let own = last.sender.as_ref().is_some_and(|x| x.pid == target.pid);
    let (who, fix) = if own {
        (
            format!("{} sent {sig} to itself (abort(), raise() or kill(getpid()))", name(target)),
            "it ended itself: read its own logs (a failed assertion, a panic, an abort)".to_string(),
        )
    } else {
        (
            format!("{} sent {sig} to {}", from(&last.sender), name(target)),
            format!("find out why {} sent {sig} (its argv and ancestry are in the record)", from(&last.sender)),
        )
    };
    stop(Some(Verdict::Process), None, init, format!("{who}, and {end}"), fix)
}

/// The verdict an exit gives to a story not yet concluded.
// Long: a decision table of how an exit ends a stop, each branch with its own words; split, the
// order of the checks would hide.
fn exit_stop(e: &ExitRecord, entry: &Entry, at_ns: i128) -> Option<Stop> {
    let target = Party { pid: e.pid, comm: e.comm.clone() };
    let init = entry.last.ns_init == Some(true) && e.container.is_some();
    let how = match (&e.signal, e.status) {
        (Some(sig), _) => format!(" (killed by {}, exit code {})", sig.name, 128 + sig.number),
        (None, Some(st)) => format!(" with status {st}"),
        (None, None) => String::new(),
    };
    // After a stop request: how the exit relates to it, from what the kernel said of the
    // request and what the exit says of itself. An exit by another signal is that signal's.
    if let Some(r) = entry.request.as_ref().filter(|r| e.signal.as_ref().is_none_or(|s| s.number == r.signal.number)) {
        let elapsed = ms(at_ns - r.at_ns);
        let rsig = &r.signal.name;
        let after = format!("{} after {rsig} from {}", duration(elapsed), from(&r.sender));
        let (verdict, summary, fix) = if e.signal.is_some() && r.disposition == Some(Disposition::Handler) {
            (
                Verdict::GracefulExit,
                format!(
                    "{} exited{how}, {after}: it had a handler for {rsig}, and the signal ended it after that: a \
                     handler that cleaned up and raised it again",
                    name(&target)
                ),
                "nothing: it stopped as asked".to_string(),
            )
        } else if e.signal.is_some() {
            let waited = if r.blocked == Some(true) { " (it waited, blocked, until it was unblocked)" } else { "" };
            (
                Verdict::EndedByDefaultAction,
                format!(
                    "{} exited{how}, {after}: it had no {rsig} handler, so the signal's default action ended it{waited}; \
                     nothing in it ran to clean up",
                    name(&target)
                ),
                format!(
                    "nothing, for the stop; but with no {rsig} handler it cannot clean up: add one if it holds state"
                ),
            )
        } else if r.dropped() {
            (
                Verdict::ExitedOnItsOwn,
                format!(
                    "{rsig} from {} to {} was dropped: {}; {} exited{how} {} later without a SIGKILL, not because of \
                     that {rsig}",
                    from(&r.sender),
                    name(&r.target),
                    dropped_reason(r),
                    name(&target),
                    duration(elapsed)
                ),
                format!("nothing, for this exit; a stop by {rsig} would not have reached it: {FIX_INIT}")
                    .replace("SIGTERM", rsig),
            )
        } else if r.handled() {
            (
                Verdict::GracefulExit,
                format!("{} exited{how}, {after}, which it handled; no SIGKILL was needed", name(&target)),
                "nothing: it stopped as asked".to_string(),
            )
        } else {
            // Delivered with its default action, yet the process exited with a status: the
            // kernel's record and the exit disagree about how; say only what each says.
            (
                Verdict::ExitedOnItsOwn,
                format!(
                    "{} exited{how}, {after}, which reached it with its default action; it did not end by {rsig}",
                    name(&target)
                ),
                "nothing, for this exit".to_string(),
            )
        };
        let summary = match &r.requested_by {
            Some(by) => format!("{summary}; requested by {by}"),
            None => summary,
        };
        return Some(stop(Some(verdict), Some(elapsed), init, summary, fix));
    }
    // Another signal (or none) ended it: the signal that did, if the story has it.
    let last = match &e.signal {
        Some(sig) => entry.effective.iter().find(|x| x.signal.number == sig.number).unwrap_or(&entry.last),
        None => &entry.last,
    };
    let died_of_it = e.signal.as_ref().is_some_and(|s| s.number == last.signal.number);
    let handled_then_exited = e.status.is_some()
        && last.disposition == Some(Disposition::Handler)
        && last.result == Some(Delivery::Delivered);
    if !(died_of_it || handled_then_exited) || last.signal.number == libc::SIGKILL {
        return None;
    }
    let end = if died_of_it { format!("it died of it{how}") } else { format!("its handler ran and it exited{how}") };
    if last.cause == Cause::Kernel || last.sender.is_none() {
        return Some(stop(
            Some(Verdict::Kernel),
            None,
            init,
            format!("the kernel sent {} {} and {end}", name(&target), last.signal.name),
            if matches!(last.signal.number, libc::SIGSEGV | libc::SIGBUS) {
                "a crash: read its logs and core dump (a bug, or memory corruption)".into()
            } else {
                "see the cause in the signal's record: the kernel raised it".into()
            },
        ));
    }
    Some(process_stop(last, &target, init, &end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Sender, SignalRecord, sample_container, sample_signal};

    const T0: &str = "2026-11-24T20:17:30.000000000Z";

    /// `secs` after T0.
    fn at(secs: f64) -> String {
        let t = humantime::parse_rfc3339(T0).unwrap() + Duration::from_secs_f64(secs);
        humantime::format_rfc3339_nanos(t).to_string()
    }

    fn sig(secs: f64, signal: i32, from: (&str, u32), to: u32) -> SignalRecord {
        let mut s = sample_signal();
        s.time = at(secs);
        s.node = Some("n1".into());
        s.signal = SignalId::new(signal);
        s.target.pid = to;
        s.target.comm = "sh".into();
        s.target.disposition = Some(Disposition::Default);
        s.target.blocked = Some(false);
        s.target.ns_init = Some(false);
        s.sender = Some(Sender { pid: from.1, tid: from.1, comm: from.0.into(), ..Default::default() });
        s.cause = Cause::RuntimeStop;
        s.result = Some(Delivery::Delivered);
        s
    }

    /// A runc signal to a container's init.
    fn to_init(secs: f64, signal: i32, pid: u32, disposition: Disposition, id: &str) -> SignalRecord {
        let mut s = sig(secs, signal, ("runc", 900 + pid + secs as u32), pid);
        s.target.ns_init = Some(true);
        s.target.disposition = Some(disposition);
        s.target.container = Some(ContainerRef { id: id.into(), ..sample_container("web") });
        if signal != libc::SIGKILL && disposition == Disposition::Default {
            s.result = Some(Delivery::Ignored);
        }
        s
    }

    fn exit(secs: f64, pid: u32, status: Option<i32>, signal: Option<i32>) -> ExitRecord {
        let mut e = ExitRecord::new(crate::event::BackendName::Ebpf, pid, pid, "sh".into(), None);
        (e.time, e.node, e.status, e.signal) = (at(secs), Some("n1".into()), status, signal.map(SignalId::new));
        e
    }

    fn run(stories: &mut Stories, r: impl Into<Record>) -> Record {
        let mut r = r.into();
        stories.apply(&mut r);
        r
    }

    fn verdict(r: &Record) -> Option<Verdict> {
        r.stop().and_then(|s| s.verdict)
    }

    impl From<SignalRecord> for Record {
        fn from(s: SignalRecord) -> Self {
            Record::Signal(s)
        }
    }
    impl From<ExitRecord> for Record {
        fn from(e: ExitRecord) -> Self {
            Record::Exit(e)
        }
    }

    #[test]
    fn a_term_dropped_by_an_init_then_the_kill() {
        let mut st = Stories::default();
        let term = run(&mut st, to_init(0.0, libc::SIGTERM, 40, Disposition::Default, "c1"));
        assert_eq!(term.stop(), None, "a TERM alone says nothing yet");
        // runc kills every process of the container: a member first, then the init.
        let mut member = sig(2.0, libc::SIGKILL, ("runc", 990), 41);
        member.target.container = Some(ContainerRef { id: "c1".into(), ..sample_container("web") });
        let member = run(&mut st, member);
        let Record::Signal(m) = &member else { panic!() };
        let p = m.preceded_by.as_ref().expect("the member's KILL is linked to the init's TERM");
        assert_eq!((p.target.pid, p.signal.number, p.elapsed_ms), (40, libc::SIGTERM, 2000));
        assert_eq!(verdict(&member), Some(Verdict::GraceExpiredTermIgnored));
        assert!(!member.stop().unwrap().container_init, "a member's stop is not the container's");
        let kill = run(&mut st, to_init(2.0, libc::SIGKILL, 40, Disposition::Default, "c1"));
        let Record::Signal(k) = &kill else { panic!() };
        let p = k.preceded_by.as_ref().unwrap();
        assert_eq!((p.result, p.ns_init, p.elapsed_ms), (Some(Delivery::Ignored), Some(true), 2000));
        assert_eq!(after(p, 40), "SIGTERM from runc(940) 2.0 s earlier, ignored (pid 1 of its namespace, no handler)");
        let s = k.stop.as_ref().unwrap();
        assert_eq!(
            (s.verdict, s.elapsed_ms, s.container_init),
            (Some(Verdict::GraceExpiredTermIgnored), Some(2000), true)
        );
        assert!(s.summary.contains("pid 1 of its pid namespace") && s.fix.contains("exec form"), "{s:?}");
        // Its exit ends the story without a second verdict.
        let e = run(&mut st, exit(2.01, 40, None, Some(libc::SIGKILL)));
        let Record::Exit(e) = &e else { panic!() };
        assert_eq!(e.stop, None);
        assert_eq!(e.container.as_ref().map(|c| c.id.as_str()), Some("c1"), "placed from its story");
        assert_eq!(e.preceded_by.as_ref().unwrap().signal.number, libc::SIGKILL);
    }

    #[test]
    fn a_handled_term_then_an_exit_is_graceful_with_its_time() {
        let mut st = Stories::default();
        let mut t = to_init(0.0, libc::SIGTERM, 50, Disposition::Handler, "c2");
        t.result = Some(Delivery::Delivered);
        run(&mut st, t);
        let e = run(&mut st, exit(0.31, 50, Some(0), None));
        let s = e.stop().unwrap();
        assert_eq!((s.verdict, s.elapsed_ms, s.container_init), (Some(Verdict::GracefulExit), Some(310), true));
        assert!(
            s.summary.contains("exited with status 0, 310 ms after SIGTERM from runc(950), which it handled"),
            "{}",
            s.summary
        );
    }

    #[test]
    fn a_handled_term_then_the_kill_is_handled_but_too_slow() {
        let mut st = Stories::default();
        let mut t = to_init(0.0, libc::SIGTERM, 60, Disposition::Handler, "c3");
        t.result = Some(Delivery::Delivered);
        run(&mut st, t);
        let k = run(&mut st, to_init(30.0, libc::SIGKILL, 60, Disposition::Default, "c3"));
        let s = k.stop().unwrap();
        assert_eq!((s.verdict, s.elapsed_ms), (Some(Verdict::GraceExpiredTermHandled), Some(30_000)));
        assert!(s.fix.contains("terminationGracePeriodSeconds"), "{}", s.fix);
    }

    #[test]
    fn a_kill_alone_and_a_kill_past_the_window() {
        let mut st = Stories::new(Duration::from_secs(60));
        let k = run(&mut st, to_init(0.0, libc::SIGKILL, 70, Disposition::Default, "c4"));
        assert_eq!(verdict(&k), Some(Verdict::KilledWithoutTerm));
        assert!(k.stop().unwrap().summary.contains("docker kill"));
        run(&mut st, to_init(100.0, libc::SIGTERM, 71, Disposition::Default, "c5"));
        let k = run(&mut st, to_init(161.0, libc::SIGKILL, 71, Disposition::Default, "c5"));
        assert_eq!(verdict(&k), Some(Verdict::KilledWithoutTerm), "the TERM was 61 s before, past the window");
        let Record::Signal(k) = &k else { panic!() };
        assert_eq!(k.preceded_by, None);
    }

    #[test]
    fn a_restarted_container_is_a_new_story() {
        // CRI: a restart is a new container (new ID) of the same pod and name, with a new init.
        let mut st = Stories::default();
        run(&mut st, to_init(0.0, libc::SIGTERM, 80, Disposition::Default, "first"));
        run(&mut st, to_init(2.0, libc::SIGKILL, 80, Disposition::Default, "first"));
        run(&mut st, exit(2.01, 80, None, Some(libc::SIGKILL)));
        // The new instance is killed outright, and one of its processes with it.
        let k = run(&mut st, to_init(5.0, libc::SIGKILL, 90, Disposition::Default, "second"));
        assert_eq!(verdict(&k), Some(Verdict::KilledWithoutTerm));
        let Record::Signal(k) = &k else { panic!() };
        assert_eq!(k.preceded_by, None, "not linked to the last instance's signals");
        // Docker restarts keep the ID: the new init is still a new story.
        run(&mut st, to_init(10.0, libc::SIGTERM, 100, Disposition::Handler, "same"));
        run(&mut st, exit(10.2, 100, Some(0), None));
        let k = run(&mut st, to_init(12.0, libc::SIGKILL, 101, Disposition::Default, "same"));
        assert_eq!(verdict(&k), Some(Verdict::KilledWithoutTerm));
    }

    #[test]
    fn oom_kernel_and_process_endings() {
        let mut st = Stories::default();
        let mut oom = sig(0.0, libc::SIGKILL, ("stress", 5), 110);
        oom.cause = Cause::OomKill;
        oom.cause_detail = "the OOM killer chose sh(110)".into();
        assert_eq!(verdict(&run(&mut st, oom)), Some(Verdict::OomKill));
        // The kernel's SIGKILL to a namespace's other processes when its init exits.
        let mut k = sig(1.0, libc::SIGKILL, ("sh", 120), 121);
        k.cause = Cause::Kernel;
        k.cause_detail = "sh(120), pid 1 of this pid namespace (a container's init), exited: …".into();
        let k = run(&mut st, k);
        assert_eq!(verdict(&k), Some(Verdict::Kernel));
        assert!(k.stop().unwrap().fix.contains("why its container's init exited"));
        // abort(): SIGABRT to itself, default action: certain to kill.
        let mut a = sig(2.0, libc::SIGABRT, ("app", 130), 130);
        a.cause = Cause::Process;
        let a = run(&mut st, a);
        assert_eq!(verdict(&a), Some(Verdict::Process));
        assert!(a.stop().unwrap().summary.contains("to itself"));
        // A fault with a handler (Go's runtime): only the exit tells.
        let mut f = sig(3.0, libc::SIGSEGV, ("app", 140), 140);
        f.cause = Cause::Kernel;
        f.target.disposition = Some(Disposition::Handler);
        assert_eq!(verdict(&run(&mut st, f)), None);
        assert_eq!(verdict(&run(&mut st, exit(3.1, 140, Some(2), None))), Some(Verdict::Kernel));
    }

    #[test]
    fn a_term_without_a_handler_ends_it_at_once() {
        let mut st = Stories::default();
        let t = run(&mut st, sig(0.0, libc::SIGTERM, ("kill", 7), 150));
        let s = t.stop().unwrap();
        assert_eq!((s.verdict, s.elapsed_ms), (Some(Verdict::EndedByDefaultAction), Some(0)));
        assert!(s.summary.contains("exit code 143") && s.summary.contains("nothing in it ran"), "{}", s.summary);
        // Its exit adds no second verdict.
        assert_eq!(run(&mut st, exit(0.01, 150, None, Some(libc::SIGTERM))).stop(), None);
    }

    #[test]
    fn without_disposition_the_grace_verdict_is_left_open() {
        // SystemTap: no result, no disposition.
        let mut st = Stories::default();
        let mut t = sig(0.0, libc::SIGTERM, ("runc", 8), 160);
        (t.result, t.target.disposition, t.target.blocked, t.target.ns_init) = (None, None, None, None);
        run(&mut st, t);
        let mut k = sig(10.0, libc::SIGKILL, ("runc", 9), 160);
        (k.result, k.target.disposition, k.target.blocked, k.target.ns_init) = (None, None, None, None);
        let k = run(&mut st, k);
        let s = k.stop().unwrap();
        assert_eq!((s.verdict, s.elapsed_ms), (None, Some(10_000)));
        assert!(s.summary.contains("this backend did not capture"));
        let Record::Signal(k) = &k else { panic!() };
        assert_eq!(outcome(k.preceded_by.as_ref().unwrap()), "outcome not captured by this backend");
    }

    #[test]
    fn the_same_pid_on_two_nodes_is_two_stories() {
        let mut st = Stories::default();
        run(&mut st, to_init(0.0, libc::SIGTERM, 170, Disposition::Default, "c6"));
        let mut k = to_init(2.0, libc::SIGKILL, 170, Disposition::Default, "c6");
        k.node = Some("n2".into());
        assert_eq!(verdict(&run(&mut st, k)), Some(Verdict::KilledWithoutTerm));
    }

    #[test]
    fn a_storm_of_records_stays_bounded() {
        let mut st = Stories::new(Duration::from_secs(1));
        for i in 0..(MAX_STORIES as u32 * 2) {
            run(&mut st, sig(i as f64 * 0.01, libc::SIGINT, ("x", 1), 100_000 + i));
        }
        assert!(st.by_pid.len() <= MAX_STORIES);
    }

    /// A terminal's Ctrl-C comes from a kernel worker, not a process: still a stop request.
    #[test]
    fn a_stop_request_is_one_whoever_raised_it() {
        let mut st = Stories::default();
        let mut int = sig(0.0, libc::SIGINT, ("kworker/0:1", 12), 180);
        (int.cause, int.target.disposition) = (Cause::Kernel, Some(Disposition::Handler));
        run(&mut st, int);
        let k = run(&mut st, sig(3.0, libc::SIGKILL, ("bash", 20), 180));
        assert_eq!(verdict(&k), Some(Verdict::GraceExpiredTermHandled), "{:?}", k.stop());
        // And one the process sent itself.
        let mut term = sig(10.0, libc::SIGTERM, ("app", 181), 181);
        term.target.disposition = Some(Disposition::Handler);
        run(&mut st, term);
        let k = run(&mut st, sig(11.0, libc::SIGKILL, ("bash", 20), 181));
        assert_eq!(verdict(&k), Some(Verdict::GraceExpiredTermHandled));
    }

    /// A group kill's second SIGKILL, dropped because the process is already exiting: the
    /// exit is linked to the one delivered, and the dropped one says why.
    #[test]
    fn the_exit_is_linked_to_the_signal_that_killed_it() {
        let mut st = Stories::default();
        run(&mut st, sig(0.0, libc::SIGKILL, ("kill", 7), 190));
        let mut again = sig(0.001, libc::SIGKILL, ("kill", 8), 190);
        (again.result, again.target.exiting) = (Some(Delivery::Ignored), Some(true));
        let again = run(&mut st, again);
        let Record::Signal(a) = &again else { panic!() };
        let p = a.preceded_by.as_ref().unwrap();
        assert_eq!(outcome(p), "delivered");
        let e = run(&mut st, exit(0.002, 190, None, Some(libc::SIGKILL)));
        let Record::Exit(e) = &e else { panic!() };
        let p = e.preceded_by.as_ref().unwrap();
        assert_eq!((p.sender.as_ref().unwrap().pid, p.result), (7, Some(Delivery::Delivered)), "{p:?}");
        let dropped = PrecededBy { result: Some(Delivery::Ignored), exiting: Some(true), ..p.clone() };
        assert_eq!(outcome(&dropped), "dropped: its target was already exiting (a fatal signal had begun its exit)");
        // An exit by SIGPIPE is linked to the SIGPIPE, as one by SIGKILL is.
        let mut pipe = sig(5.0, libc::SIGPIPE, ("app", 191), 191);
        pipe.cause = Cause::Kernel;
        run(&mut st, pipe);
        let e = run(&mut st, exit(5.01, 191, None, Some(libc::SIGPIPE)));
        let Record::Exit(e) = &e else { panic!() };
        assert_eq!(e.preceded_by.as_ref().unwrap().signal.number, libc::SIGPIPE);
    }

    /// A SIGKILL after a stop and a restart, inside one stop window, is not the stop's end:
    /// the restart's new process was killed on its own.
    #[test]
    fn a_kill_after_a_stop_and_a_restart_in_a_short_window_is_its_own() {
        // The systemd guest's timeline with --stop-window 10s: stop, restart, kill.
        let mut st = Stories::new(Duration::from_secs(10));
        let unit = |mut s: SignalRecord| {
            s.target.unit = Some("term.service".into());
            s.target.disposition = Some(Disposition::Handler);
            s
        };
        let ex = |secs, pid| {
            let mut e = exit(secs, pid, Some(0), None);
            e.unit = Some("term.service".into());
            e
        };
        run(&mut st, unit(sig(0.0, libc::SIGTERM, ("systemd", 1), 310)));
        run(&mut st, unit(sig(0.0001, libc::SIGCONT, ("systemd", 1), 310)));
        run(&mut st, ex(0.12, 310));
        run(&mut st, unit(sig(6.5, libc::SIGTERM, ("systemd", 1), 499)));
        run(&mut st, unit(sig(6.5001, libc::SIGCONT, ("systemd", 1), 499)));
        run(&mut st, ex(6.56, 499));
        let kill = run(&mut st, unit(sig(9.2, libc::SIGKILL, ("systemd", 1), 532)));
        assert_eq!(verdict(&kill), Some(Verdict::KilledWithoutTerm), "{:?}", kill.stop());
    }

    /// systemd stops a unit as a whole: a process started after the SIGTERM (a shell's
    /// next `sleep`) and SIGKILLed at TimeoutStopSec joins the unit's stop. A user's own
    /// kills in a session's scope do not.
    #[test]
    fn a_units_processes_share_systemds_stop() {
        let mut st = Stories::default();
        let unit = |mut s: SignalRecord, u: &str| {
            s.target.unit = Some(u.into());
            s
        };
        let mut term = unit(sig(0.0, libc::SIGTERM, ("systemd", 1), 311), "noterm.service");
        (term.result, term.target.disposition) = (Some(Delivery::Ignored), Some(Disposition::Ignore));
        run(&mut st, term);
        // The shell's `sleep 1` of the moment, which ignores it too, ends on its own.
        let mut child = unit(sig(0.0001, libc::SIGTERM, ("systemd", 1), 400), "noterm.service");
        (child.result, child.target.disposition) = (Some(Delivery::Ignored), Some(Disposition::Ignore));
        run(&mut st, child);
        let mut e = exit(0.9, 400, Some(0), None);
        e.unit = Some("noterm.service".into());
        run(&mut st, e);
        // systemd's SIGKILL to the shell, whose exit may be read before the next SIGKILL's.
        run(&mut st, unit(sig(2.0, libc::SIGKILL, ("systemd", 1), 311), "noterm.service"));
        let mut e = exit(2.001, 311, None, Some(libc::SIGKILL));
        e.unit = Some("noterm.service".into());
        run(&mut st, e);
        let kill = run(&mut st, unit(sig(2.002, libc::SIGKILL, ("systemd", 1), 555), "noterm.service"));
        assert_eq!(verdict(&kill), Some(Verdict::GraceExpiredTermIgnored), "{:?}", kill.stop());
        // A restart: the old main handled its SIGTERM and exited; a later kill of the new
        // main is a stop of its own.
        let mut term = unit(sig(5.0, libc::SIGTERM, ("systemd", 1), 700), "term.service");
        term.target.disposition = Some(Disposition::Handler);
        run(&mut st, term);
        let mut e = exit(5.1, 700, Some(0), None);
        e.unit = Some("term.service".into());
        run(&mut st, e);
        let kill = run(&mut st, unit(sig(9.0, libc::SIGKILL, ("systemd", 1), 701), "term.service"));
        assert_eq!(verdict(&kill), Some(Verdict::KilledWithoutTerm), "{:?}", kill.stop());
        let mut int = unit(sig(10.0, libc::SIGINT, ("bash", 40), 600), "session-4.scope");
        int.target.disposition = Some(Disposition::Handler);
        run(&mut st, int);
        let other = run(&mut st, unit(sig(20.0, libc::SIGKILL, ("bash", 40), 601), "session-4.scope"));
        assert_eq!(verdict(&other), Some(Verdict::KilledWithoutTerm), "{:?}", other.stop());
    }

    #[test]
    fn graceful_means_it_handled_the_request() {
        let mut st = Stories::default();
        // Handled, cleaned up, re-raised with the default action.
        let mut t = sig(0.0, libc::SIGTERM, ("runc", 9), 200);
        t.target.disposition = Some(Disposition::Handler);
        run(&mut st, t);
        let again = run(&mut st, sig(0.2, libc::SIGTERM, ("app", 200), 200));
        assert_eq!(verdict(&again), Some(Verdict::GracefulExit), "{:?}", again.stop());
        // Ignored, then an exit of its own: neither graceful nor a kill, and no guess why.
        let mut t = sig(1.0, libc::SIGTERM, ("runc", 9), 201);
        (t.result, t.target.disposition) = (Some(Delivery::Ignored), Some(Disposition::Ignore));
        run(&mut st, t);
        let e = run(&mut st, exit(4.0, 201, Some(0), None));
        let s = e.stop().unwrap();
        assert_eq!(s.verdict, Some(Verdict::ExitedOnItsOwn));
        assert!(!s.summary.contains("such as") && s.summary.contains("not because of that SIGTERM"), "{}", s.summary);
        // Blocked (signalfd), then a clean exit: handled.
        let mut t = sig(10.0, libc::SIGTERM, ("runc", 9), 202);
        t.target.blocked = Some(true);
        run(&mut st, t);
        assert_eq!(verdict(&run(&mut st, exit(10.5, 202, Some(0), None))), Some(Verdict::GracefulExit));
    }

    /// What the story stage says never contradicts the record it says it of.
    mod agrees_with_its_evidence {
        use proptest::prelude::*;

        use super::*;

        #[derive(Clone, Debug)]
        enum Step {
            Signal { sig: i32, sender: u8, cause: u8, ignored: bool, disposition: u8, blocked: bool, init: bool },
            Exit { by: Option<i32> },
        }

        fn step() -> impl Strategy<Value = Step> {
            let sigs = prop::sample::select(vec![
                libc::SIGKILL,
                libc::SIGTERM,
                libc::SIGINT,
                libc::SIGQUIT,
                libc::SIGHUP,
                libc::SIGPIPE,
                libc::SIGSEGV,
            ]);
            prop_oneof![
                4 => (sigs.clone(), 0..3u8, 0..3u8, any::<bool>(), 0..3u8, any::<bool>(), any::<bool>()).prop_map(
                    |(sig, sender, cause, ignored, disposition, blocked, init)| Step::Signal {
                        sig, sender, cause, ignored, disposition, blocked, init
                    }
                ),
                1 => prop::option::of(sigs).prop_map(|by| Step::Exit { by }),
            ]
        }

        fn record(i: usize, step: &Step, exiting: bool) -> Record {
            let t = i as f64 * 0.5;
            match *step {
                Step::Signal { sig: n, sender, cause, ignored, disposition, blocked, init } => {
                    let from = [("runc", 9), ("app", 300), ("kworker/1:0", 13)][sender as usize];
                    let mut s = sig(t, n, from, 300);
                    s.cause = [Cause::Process, Cause::Kernel, Cause::RuntimeStop][cause as usize];
                    s.target.disposition =
                        Some([Disposition::Default, Disposition::Ignore, Disposition::Handler][disposition as usize]);
                    (s.target.blocked, s.target.ns_init) = (Some(blocked), Some(init));
                    // A process already exiting drops everything but a core dump's SIGKILL.
                    let dropped = ignored || exiting;
                    s.result = Some(if dropped { Delivery::Ignored } else { Delivery::Delivered });
                    s.target.exiting = Some(exiting);
                    Record::Signal(s)
                }
                Step::Exit { by } => Record::Exit(exit(t, 300, by.is_none().then_some(0), by)),
            }
        }

        proptest! {
            #![proptest_config(crate::fuzz_config(2000))]
            #[test]
            fn verdicts_and_summaries_agree_with_preceded_by(steps in prop::collection::vec(step(), 1..12)) {
                let mut st = Stories::default();
                // Per signal, whether the kernel acted on one since the last exit.
                let mut acted: Vec<i32> = Vec::new();
                let mut exiting = false;
                for (i, step) in steps.iter().enumerate() {
                    let mut r = record(i, step, exiting);
                    st.apply(&mut r);
                    match &r {
                        Record::Signal(s) => {
                            let p = s.preceded_by.as_ref();
                            let request = p.is_some_and(|p| STOP_REQUESTS.contains(&p.signal.number));
                            if let Some(stop) = &s.stop {
                                match stop.verdict {
                                    Some(Verdict::KilledWithoutTerm) => {
                                        prop_assert!(!request, "{stop:?} after a stop request {p:?}");
                                        if let Some(p) = p {
                                            prop_assert!(stop.summary.contains(&p.signal.name), "{stop:?} / {p:?}");
                                        }
                                    }
                                    Some(Verdict::GraceExpiredTermIgnored | Verdict::GraceExpiredTermHandled) => {
                                        prop_assert!(p.is_some(), "{stop:?} with nothing before it");
                                    }
                                    _ => {}
                                }
                            }
                            if s.result == Some(Delivery::Delivered) {
                                acted.push(s.signal.number);
                                // A delivered signal whose default action is fatal ends it.
                                exiting |= s.signal.number == libc::SIGKILL;
                            }
                        }
                        Record::Exit(e) => {
                            if let (Some(by), Some(p)) = (&e.signal, &e.preceded_by)
                                && acted.contains(&by.number)
                            {
                                prop_assert_eq!(p.signal.number, by.number, "{:?}", e);
                                prop_assert_ne!(p.result, Some(Delivery::Ignored), "linked to a dropped copy: {:?}", e);
                            }
                            acted.clear();
                            exiting = false;
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(310), "310 ms");
        assert_eq!(duration(30_000), "30.0 s");
        assert_eq!(duration(250_000), "4 min 10 s");
    }
}
