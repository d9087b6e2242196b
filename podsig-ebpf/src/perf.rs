//! podsig's eBPF programs over a perf event array, for kernels without BPF ring buffers
//! (before 5.8), where the ring-buffer object cannot even be loaded (its map type is
//! unknown there). Records are built in a per-CPU scratch slot, then copied out. The
//! programs are `main.rs`'s; only the `transport` module differs.
#![no_std]
#![no_main]
// Code as the verifier has checked it on every kernel: map keys by reference and nested
// `if`s are kept as written, since clippy's rewrites change the instructions LLVM emits.
#![allow(clippy::needless_borrows_for_generic_args, clippy::collapsible_if)]

#[macro_use]
#[path = "transport/perf.rs"]
mod transport;

mod emit;
mod filter;
mod globals;
mod kernel;
mod probes;
mod rt;
