//! Harness for the end-to-end tests: runs the real `podsig` binary (PODSIG_BIN, set by
//! `cargo xtask test`) against the real kernel, with real processes sending real signals.
//! One module per concern; the tests use them all through this root.

mod containerd;
mod containers;
mod json;
mod process;
mod suite;
mod witness;

pub use serde_json::Value;

pub use self::{containerd::Containerd, containers::*, json::*, process::*, suite::*, witness::*};
