//! The test containerd: run by `cargo xtask test` for the container tests, and by the bench.
//! How one is run lives in the test harness ([`podsig_e2e::Containerd`]), once for both.

use std::env;

use anyhow::{Context as _, Result};
pub(crate) use podsig_e2e::Containerd;

/// The sandbox image containerd's CRI plugin runs for every pod. No registry is reachable:
/// the CRI test builds one from busybox and imports it under this name.
pub(crate) const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.6";

/// The shared test containerd (CRI on, pods made the way kubelet makes them), stopped on
/// drop. PODSIG_TEST_CONTAINERD_NAME lets two checkouts test side by side on one machine.
pub(crate) fn start() -> Result<Containerd> {
    named(&env::var("PODSIG_TEST_CONTAINERD_NAME").unwrap_or_else(|_| "podsig-test-containerd".into()))
}

/// One whose socket, root and state are named `name` (/run/NAME, /var/lib/NAME).
pub(crate) fn named(name: &str) -> Result<Containerd> {
    let c = Containerd::shared(name, PAUSE_IMAGE).with_context(|| format!("starting the test containerd {name}"))?;
    println!("xtask: test containerd on {}", c.socket);
    Ok(c)
}
