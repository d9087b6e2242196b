//! The builds of the signal hook: which one the running kernel should take, which one it
//! took, and what a weaker one leaves out of the records. A weaker build is never silent:
//! `Hook::degraded` is the line podsig prints, `doctor` shows, and the records' `lacks`
//! carry.

use serde::Serialize;

use crate::event::Lack;

/// The builds of the signal hook, from the one that captures most to the one that
/// captures least.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Build {
    /// BTF-typed tracepoint, ancestry walked with bpf_loop (5.17+).
    TypedLoop,
    /// Raw tracepoint, ancestry walked with bpf_loop: a 5.17+ kernel without (or refusing)
    /// the typed tracepoint.
    RawLoop,
    /// BTF-typed tracepoint, ancestry walked with a bounded loop (5.5 to 5.16).
    TypedBounded,
    /// Raw tracepoint, ancestry walked with a bounded loop.
    RawBounded,
    /// Classic tracepoint with its layout from tracefs: kernels without BTF.
    Tracepoint,
}

/// The BTF builds, best first: the order a refused build falls back in.
const BTF_BUILDS: [Build; 4] = [Build::TypedLoop, Build::RawLoop, Build::TypedBounded, Build::RawBounded];

impl Build {
    /// The program in the eBPF object.
    pub fn program(self) -> &'static str {
        match self {
            Build::TypedLoop => "signal_generate",
            Build::RawLoop => "signal_generate_raw_loop",
            Build::TypedBounded => "signal_generate_bounded",
            Build::RawBounded => "signal_generate_raw",
            Build::Tracepoint => "signal_generate_tp",
        }
    }

    pub fn typed(self) -> bool {
        matches!(self, Build::TypedLoop | Build::TypedBounded)
    }

    pub fn walks_with_loop(self) -> bool {
        matches!(self, Build::TypedLoop | Build::RawLoop)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Build::TypedLoop => "typed_loop",
            Build::RawLoop => "raw_loop",
            Build::TypedBounded => "typed_bounded",
            Build::RawBounded => "raw_bounded",
            Build::Tracepoint => "tracepoint",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Build::TypedLoop => "BTF-typed tracepoint, ancestry walked with bpf_loop",
            Build::RawLoop => "raw tracepoint, ancestry walked with bpf_loop",
            Build::TypedBounded => "BTF-typed tracepoint, ancestry walked with a bounded loop",
            Build::RawBounded => "raw tracepoint, ancestry walked with a bounded loop",
            Build::Tracepoint => "classic tracepoint, sender details from /proc",
        }
    }

    /// What its records leave out. The bounded walk has no room for each ancestor's
    /// executable (unrolled 40 times it is more than 5.10's verifier takes).
    pub fn lacks(self) -> &'static [Lack] {
        match self {
            Build::TypedLoop | Build::RawLoop => &[],
            Build::TypedBounded | Build::RawBounded => &[Lack::ExecutableIdentity],
            Build::Tracepoint => {
                &[Lack::KernelAncestry, Lack::ExecutableIdentity, Lack::TargetDisposition, Lack::Context]
            }
        }
    }

    /// The best build a kernel with these features takes.
    pub fn best(btf: bool, typed: bool, has_loop: bool) -> Build {
        match (btf, typed, has_loop) {
            (false, _, _) => Build::Tracepoint,
            (true, true, true) => Build::TypedLoop,
            (true, false, true) => Build::RawLoop,
            (true, true, false) => Build::TypedBounded,
            (true, false, false) => Build::RawBounded,
        }
    }

    /// The BTF builds to try, in order, on a kernel whose best is `self`, minus the typed
    /// or the bpf_loop builds when those are not to be used.
    pub fn candidates(self, typed: bool, with_loop: bool) -> Vec<Build> {
        let start = BTF_BUILDS.iter().position(|&b| b == self).unwrap_or(BTF_BUILDS.len());
        BTF_BUILDS[start..]
            .iter()
            .copied()
            .filter(|b| (typed || !b.typed()) && (with_loop || !b.walks_with_loop()))
            .collect()
    }
}

/// The build that runs, the one the kernel should take, and why they differ.
#[derive(Clone, Debug, Serialize)]
pub struct Hook {
    pub build: Build,
    /// The best build this kernel's features allow; null when a forced fallback skipped
    /// reading them.
    pub expected: Option<Build>,
    /// Why `build` is not `expected`: a forced fallback, or what refused the better build
    /// (the verifier's first refusing line); null when they are the same.
    pub reason: Option<String>,
    /// What the records of `build` leave out.
    pub lacks: &'static [Lack],
}

impl Hook {
    pub fn new(build: Build, expected: Option<Build>, reason: Option<String>) -> Self {
        Hook { build, expected, reason, lacks: build.lacks() }
    }

    /// One line when the build that runs is weaker than the best build there is: what runs,
    /// why, and what its records leave out. None for the best build.
    pub fn degraded(&self) -> Option<String> {
        if self.build == Build::TypedLoop {
            return None;
        }
        let why = match (&self.reason, self.expected) {
            (Some(r), Some(best)) => format!("not the {} build this kernel should take: {r}", best.as_str()),
            (Some(r), None) => r.clone(),
            (None, _) => format!("the best this kernel has ({})", kernel_limit(self.build)),
        };
        let lost = if self.lacks.is_empty() {
            "records lose nothing; each signal nobody watches costs one kernel read more".to_string()
        } else {
            format!("records lack {}", self.lacks.iter().map(|l| l.words()).collect::<Vec<_>>().join(", "))
        };
        Some(format!("signal hook: {} build ({}), {why}; {lost}", self.build.as_str(), self.build.describe()))
    }
}

/// Why a kernel's best build is this one.
fn kernel_limit(build: Build) -> &'static str {
    match build {
        Build::TypedLoop => "every capability",
        Build::RawLoop => "no BTF-typed signal_generate tracepoint",
        Build::TypedBounded => "no bpf_loop, which came in 5.17",
        Build::RawBounded => "no BTF-typed tracepoint and no bpf_loop",
        Build::Tracepoint => "no kernel BTF",
    }
}

/// The line of a verifier log that says why it refused a program: the last that is not an
/// instruction, a register state or the closing statistics. The whole log is at `-v`.
pub fn refusing_line(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .find(|l| {
            let first = l.split(':').next().unwrap_or("");
            let instruction = !first.is_empty() && first.chars().all(|c| c.is_ascii_digit());
            let stats = ["processed ", "verification time", "stack depth", "-- END", "mark_precise", "last_idx"]
                .iter()
                .any(|p| l.starts_with(p));
            let state = l.starts_with("R") && l.contains('=') && !l.contains(' ');
            !instruction && !stats && !state
        })
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusing_line_of_a_real_log() {
        // What 6.18.44's verifier printed for the typed build that loaded from `info`.
        let log = "func 'signal_generate' arg1 has btf_id 446 type STRUCT 'kernel_siginfo'\n\
                   marking pointer arg1 as scalar as it may encode error\n\
                   0: R1=ctx() R10=fp0\n\
                   130: (61) r2 = *(u32 *)(r2 +0)\n\
                   R2 invalid mem access 'scalar'\n\
                   processed 131 insns (limit 1000000) max_states_per_insn 0 total_states 9 peak_states 9 mark_read 4\n";
        assert_eq!(refusing_line(log).as_deref(), Some("R2 invalid mem access 'scalar'"));
    }

    #[test]
    fn a_refused_typed_build_falls_back_to_the_same_walk_first() {
        assert_eq!(
            Build::TypedLoop.candidates(true, true),
            [Build::TypedLoop, Build::RawLoop, Build::TypedBounded, Build::RawBounded]
        );
        assert_eq!(Build::TypedLoop.candidates(false, true), [Build::RawLoop, Build::RawBounded]);
        assert_eq!(Build::TypedLoop.candidates(true, false), [Build::TypedBounded, Build::RawBounded]);
        assert_eq!(Build::TypedBounded.candidates(true, true), [Build::TypedBounded, Build::RawBounded]);
        assert_eq!(Build::best(true, false, true), Build::RawLoop);
    }

    #[test]
    fn only_the_best_build_is_silent() {
        assert_eq!(Hook::new(Build::TypedLoop, Some(Build::TypedLoop), None).degraded(), None);
        let refused = Hook::new(Build::RawLoop, Some(Build::TypedLoop), Some("the verifier refused it: R2".into()));
        let line = refused.degraded().unwrap();
        assert!(line.contains("raw_loop") && line.contains("typed_loop") && line.contains("lose nothing"), "{line}");
        let old = Hook::new(Build::TypedBounded, Some(Build::TypedBounded), None).degraded().unwrap();
        assert!(old.contains("5.17") && old.contains("executable identity"), "{old}");
    }
}
