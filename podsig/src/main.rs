use std::process::ExitCode;

use clap::{Parser, error::ErrorKind};
use podsig::cli::Cli;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_env("PODSIG_LOG").unwrap_or_else(|_| EnvFilter::new(format!("podsig={level}"))),
        )
        .without_time()
        .with_target(false)
        // Colour for a person at a terminal, plain text for a log file or a collector.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    // One thread: the work is draining one ring buffer, and it keeps memory small.
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("podsig: cannot start the event loop: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(podsig::run(cli));
    // Status lines land before the process exits.
    let _ = std::io::Write::flush(&mut std::io::stderr());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("podsig: {}", podsig::error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// clap's errors span several lines (message, usage, hint); users get one.
fn usage_error(e: clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(2)
        }
        _ => {
            let rendered = e.render().to_string();
            let msg: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.starts_with("Usage:"))
                .map(str::trim)
                // podsig says where help is, once, below.
                .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
                .collect();
            let msg = msg.join(" ");
            let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
            eprintln!("podsig: {msg} (see `podsig --help`)");
            ExitCode::from(2)
        }
    }
}
