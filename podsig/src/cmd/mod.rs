//! The subcommands: each turns its options into a run of the pipeline, or a report.

pub mod demo;
pub mod doctor;
pub mod explain;
pub mod watch;
pub mod why;
