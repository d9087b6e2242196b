//! What happens to a record between the source and the sinks, in order: `correlate` (OOM
//! marks onto their SIGKILL), `enrich` (/proc facts, wall time, containers, `findings`),
//! `cause` (the verdict), `story` (signals grouped into a stop), `node_filter` (what a
//! node-wide watch keeps), `redact` (secrets out of argv).

pub mod cause;
pub mod correlate;
pub mod enrich;
pub mod findings;
pub mod node_filter;
pub mod redact;
pub mod script;
pub mod story;
