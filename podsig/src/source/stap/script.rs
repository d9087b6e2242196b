//! The SystemTap script: the classic recipe's `probe signal.send`, made to print one
//! machine-parseable line per event with what the event model needs.
//!
//! The script text never changes with the watch: pids and signals are load-time
//! parameters, and only numbers, so no argument can inject script code. Strings a process controls (comm, argv) are printed through `text_str`, which
//! escapes them (a tab among them), so fields are tab-separated. argv's elements are joined
//! with \001, escaped the same way, so their boundaries survive.

/// Start of every line the script prints for podsig (anything else is stap's own output).
pub const MARK: &str = "PODSIG";
pub const MAX_ANCESTRY: usize = podsig_common::MAX_ANCESTRY;

#[derive(Clone, Debug, Default)]
pub struct ScriptSpec {
    pub pids: Vec<u32>,
    pub all: bool,
    pub signals: Vec<i32>,
}

impl ScriptSpec {
    /// The script's load-time parameters for this watch (numbers only).
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let list = |v: Vec<String>| v.join(",");
        let mut p = vec![("watch_all", (self.all as u8).to_string())];
        if !self.pids.is_empty() {
            p.push(("target_pids", list(self.pids.iter().map(u32::to_string).collect())));
        }
        if !self.signals.is_empty() {
            p.push(("signal_list", list(self.signals.iter().map(i32::to_string).collect())));
        }
        p
    }
}

/// A stable name for the script's content (FNV-1a): a module built from another script
/// prints lines this podsig may not parse.
pub fn fingerprint() -> String {
    let h =
        generate().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3));
    format!("{h:016x}")[..12].to_string()
}

/// The module name `stap-build` gives: podsig's version and the script's fingerprint,
/// so `modinfo` (and podsig) can tell what built it.
pub fn module_name() -> String {
    format!("podsig_{}_{}", env!("CARGO_PKG_VERSION").replace(['.', '-'], "_"), fingerprint())
}

/// The script, checked in as `golden/podsig.stp`: a change to it is a reviewed change.
const SCRIPT: &str = include_str!("golden/podsig.stp");

/// The script is the same for every watch: what to watch comes in as load-time parameters
/// (`stap -G name=value`, or `staprun MODULE name=value`), so one module built ahead of
/// time serves any pid on the node it was built for.
pub fn generate() -> String {
    SCRIPT.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script prints what the parser reads: its mark on every line, and an ancestry no
    /// deeper than the parser takes.
    #[test]
    fn the_script_speaks_the_parsers_terms() {
        let script = generate();
        for kind in ["READY", "SIG", "EXIT"] {
            assert!(script.contains(&format!("printf(\"{MARK}\\t{kind}")), "{kind}");
        }
        assert!(script.contains(&format!("depth < {MAX_ANCESTRY} &&")));
        assert!(!script.contains('\r'));
    }

    #[test]
    fn parameters_carry_the_watch() {
        let spec = ScriptSpec { pids: vec![7942, 8001], all: false, signals: vec![9, 15] };
        assert_eq!(
            spec.params(),
            vec![("watch_all", "0".into()), ("target_pids", "7942,8001".into()), ("signal_list", "9,15".into())]
        );
        let every = ScriptSpec { pids: vec![], all: true, signals: vec![] };
        assert_eq!(every.params(), vec![("watch_all", "1".into())]);
    }

    #[test]
    fn module_name_fits_the_kernel() {
        let n = module_name();
        assert!(n.starts_with("podsig_") && n.ends_with(&fingerprint()), "{n}");
        // MODULE_NAME_LEN is 56 with its NUL; names are C identifiers.
        assert!(n.len() < 56 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{n}");
    }
}
