//! The end-to-end tests, one test binary: each file beside this one is a module (as ripgrep
//! keeps its tests), its tests in order by name, one file's tests at a time (`suite`).

mod cause;
mod cli;
mod containers;
mod cri;
mod deploy;
mod fallback;
mod faults;
mod findings;
mod node;
mod runtimes;
mod secrets;
mod stap;
mod verdicts;
mod watch;
