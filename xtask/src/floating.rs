//! Inputs vm-test takes newest on purpose (Debian's kernel packages, sid's SystemTap and the
//! trixie kernel it builds for), remembered from the last passing run, so a failure can say
//! what moved under it instead of leaving "was it us or Debian?" to the reader.

use std::{collections::BTreeMap, fs, path::PathBuf};

use crate::vm;

#[derive(Default)]
pub struct Inputs {
    last_pass: BTreeMap<String, String>,
    now: BTreeMap<String, String>,
}

fn ledger() -> PathBuf {
    vm::cache_dir().join("floating-inputs.json")
}

impl Inputs {
    pub fn load() -> Self {
        let last_pass = fs::read(ledger()).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Self { last_pass, now: BTreeMap::new() }
    }

    /// What this run resolved a floating input to (`name`: what it is, `value`: the version).
    pub fn note(&mut self, name: &str, value: &str) {
        self.now.insert(name.to_string(), value.to_string());
    }

    /// One clause naming each input that differs from the last passing run.
    pub fn changes(&self) -> String {
        if self.last_pass.is_empty() {
            return "no earlier passing run recorded to compare the floating inputs with".into();
        }
        let moved: Vec<String> = self
            .now
            .iter()
            .filter_map(|(k, v)| match self.last_pass.get(k) {
                Some(old) if old != v => Some(format!("{k}: {old} → {v}")),
                None => Some(format!("{k}: new, {v}")),
                _ => None,
            })
            .collect();
        if moved.is_empty() {
            "no floating input changed since the last passing run".into()
        } else {
            format!("changed since the last passing run: {}", moved.join("; "))
        }
    }

    pub fn record_pass(&self) {
        let mut all = self.last_pass.clone();
        all.extend(self.now.clone());
        if let Ok(j) = serde_json::to_vec_pretty(&all) {
            let _ = fs::write(ledger(), j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_moved() {
        let mut i = Inputs::default();
        i.note("bookworm 6.1 kernel", "6.1.0-57-amd64");
        assert!(i.changes().contains("no earlier passing run"));
        i.last_pass.insert("bookworm 6.1 kernel".into(), "6.1.0-56-amd64".into());
        assert_eq!(
            i.changes(),
            "changed since the last passing run: bookworm 6.1 kernel: 6.1.0-56-amd64 → 6.1.0-57-amd64"
        );
        i.note("bookworm 6.1 kernel", "6.1.0-56-amd64");
        assert_eq!(i.changes(), "no floating input changed since the last passing run");
    }
}
