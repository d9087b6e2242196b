//! systemd units as targets: a unit watch covers every process in the unit's cgroup, and
//! follows it across restarts (a new main process is systemd's child, not a watched
//! process's, so the kernel's fork following alone would miss it).

use std::collections::BTreeSet;

use crate::proc::{procs_under, unit_cgroup_dirs};

/// The units a watch names (empty: none).
#[derive(Default)]
pub struct Units {
    names: Vec<String>,
}

impl Units {
    pub fn new(names: Vec<String>) -> Self {
        Self { names }
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The processes in the units now (none for a unit that is not running).
    pub fn pids(&self) -> BTreeSet<u32> {
        self.names.iter().flat_map(|u| unit_cgroup_dirs(u)).flat_map(|d| procs_under(&d)).collect()
    }
}
