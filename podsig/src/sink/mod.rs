//! Where finished records go: `output` (text or JSON lines), `history` (the flight
//! recorder's SQLite store), `metrics` (Prometheus counters).

pub mod history;
pub mod metrics;
pub mod output;
