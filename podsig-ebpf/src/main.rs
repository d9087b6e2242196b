//! podsig's eBPF programs, reporting through a BPF ring buffer (5.8+). `perf.rs` builds the
//! same programs over a perf event array for older kernels: the two differ only in the
//! `transport` module they take.
//!
//! Kernel side of podsig: who sent a signal to a watched process, captured at signal time.
//! `probes/` holds one module per hook (`signal` for `signal_generate`, `fork`, `exit`,
//! `oom` for `mark_victim`), `kernel/` the reads of kernel structs (through the offsets
//! userspace found in the running kernel's BTF, `globals::OFFSETS`), `filter` which processes
//! are watched, `emit` how a record leaves.
#![no_std]
#![no_main]
// Code as the verifier has checked it on every kernel: map keys by reference and nested
// `if`s are kept as written, since clippy's rewrites change the instructions LLVM emits.
#![allow(clippy::needless_borrows_for_generic_args, clippy::collapsible_if)]

#[macro_use]
#[path = "transport/ring.rs"]
mod transport;

mod emit;
mod filter;
mod globals;
mod kernel;
mod probes;
mod rt;
