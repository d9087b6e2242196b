//! `no-bpf COMMAND [ARGS…]`: runs COMMAND with bpf(2) refused (EPERM) by a seccomp filter,
//! as a container runtime's default profile refuses it. vm-test starts podsig this way in
//! its SystemTap guests: eBPF refused for real while modules still load.

use std::{
    os::unix::process::CommandExt as _,
    process::{Command, ExitCode},
};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("no-bpf: usage: no-bpf COMMAND [ARGS…]");
        return ExitCode::from(2);
    };
    let err = podsig_e2e::refuse_bpf(Command::new(&program).args(args)).exec();
    eprintln!("no-bpf: {}: {err}", program.to_string_lossy());
    ExitCode::from(127)
}
