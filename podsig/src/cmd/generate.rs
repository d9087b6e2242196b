//! `podsig completions` and `podsig man`: generated from the CLI's own definition, so they
//! never drift from it.

use anyhow::{Context as _, Result};
use clap::CommandFactory;

use crate::{cli::Cli, sink::output};

pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "podsig", &mut out);
    output::print(&out)
}

pub fn man() -> Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out).context("rendering the man page")?;
    output::print(&out)
}
