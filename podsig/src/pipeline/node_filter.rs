//! Node mode (`watch --all`, `record`): which events a node-wide watch keeps, and the
//! node's name on each of them.

use crate::event::Record;

/// What a node-wide watch reports unless told otherwise: the signals that end a process
/// (a pod restart's 137 or 143 among them). Everything else a node sees in bulk is
/// bookkeeping — SIGCHLD from every exit, SIGURG from every Go program's preemption,
/// SIGWINCH, SIGPIPE — and would drown the kills in a log pipeline or the history.
pub const TERMINATING: [i32; 7] =
    [libc::SIGKILL, libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGABRT, libc::SIGSEGV, libc::SIGBUS];

/// The signals a node-wide watch reports: those asked for, the terminating ones by default,
/// or every signal (empty) with `any`.
pub fn signals(asked: &[i32], any: bool) -> Vec<i32> {
    match (asked.is_empty(), any) {
        (_, true) => Vec::new(),
        (true, false) => TERMINATING.to_vec(),
        (false, false) => asked.to_vec(),
    }
}

/// `--node-name`, else `$NODE_NAME` (the DaemonSet sets it from the pod's spec.nodeName),
/// else the hostname.
pub fn name(given: Option<String>) -> Option<String> {
    given.filter(|n| !n.is_empty()).or_else(|| std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty())).or_else(
        || {
            let h = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
            Some(h.trim().to_string()).filter(|h| !h.is_empty())
        },
    )
}

/// Filters applied after enrichment, on what the kernel cannot see: container labels and
/// known noise.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// The target's Kubernetes namespace, pod and container name (CRI labels).
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container_name: Option<String>,
    /// Senders whose comm is one of these are noise (compared as the kernel truncates
    /// comm: 15 bytes).
    pub exclude_comm: Vec<String>,
}

impl Filter {
    /// Whether a filter on container labels is set: then names must be known before an
    /// event is judged.
    pub fn needs_labels(&self) -> bool {
        self.namespace.is_some() || self.pod.is_some() || self.container_name.is_some()
    }

    pub fn keeps(&self, record: &Record) -> bool {
        let (container, sender) = match record {
            Record::Signal(s) => (s.target.container.as_ref(), s.sender.as_ref()),
            // An exit is placed by the watch, or by the signals its process got.
            Record::Exit(e) => (e.container.as_ref(), None),
            Record::Lost(_) | Record::Oom(_) | Record::Request(_) => return true,
        };
        if let Some(sender) = sender
            && self.exclude_comm.iter().any(|c| comm_matches(c, &sender.comm))
        {
            return false;
        }
        if !self.needs_labels() {
            return true;
        }
        let Some(c) = container else { return false };
        let is = |want: &Option<String>, have: &Option<String>| want.as_ref().is_none_or(|w| Some(w) == have.as_ref());
        is(&self.namespace, &c.namespace) && is(&self.pod, &c.pod) && is(&self.container_name, &c.name)
    }
}

/// comm is cut to 15 bytes by the kernel: `--exclude-comm kube-controller-manager` must
/// still match `kube-controller`.
fn comm_matches(wanted: &str, comm: &str) -> bool {
    let cut = |s: &str| -> String {
        let mut end = s.len().min(15);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_string()
    };
    cut(wanted) == cut(comm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{sample_container, sample_signal};

    #[test]
    fn default_signals_for_a_node() {
        assert_eq!(signals(&[], false), TERMINATING.to_vec());
        assert_eq!(signals(&[10], false), vec![10]);
        assert!(signals(&[], true).is_empty());
    }

    #[test]
    fn labels_and_noise() {
        let mut s = sample_signal();
        let f = Filter { pod: Some("web".into()), ..Default::default() };
        assert!(!f.keeps(&Record::Signal(s.clone())), "a host process is in no pod");
        s.target.container = Some(sample_container("web"));
        assert!(f.keeps(&Record::Signal(s.clone())));
        let f = Filter { namespace: Some("prod".into()), container_name: Some("sidecar".into()), ..Default::default() };
        assert!(!f.keeps(&Record::Signal(s.clone())));
        let f = Filter { exclude_comm: vec!["pkill".into()], ..Default::default() };
        assert!(!f.keeps(&Record::Signal(s.clone())));
        s.sender.as_mut().unwrap().comm = "kube-controller".into();
        let f = Filter { exclude_comm: vec!["kube-controller-manager".into()], ..Default::default() };
        assert!(!f.keeps(&Record::Signal(s)));
    }
}
