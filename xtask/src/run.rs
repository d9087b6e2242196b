//! `cargo xtask run [-- ARGS…]`: build podsig, run it as root (no ARGS: `podsig demo`).

use anyhow::{Context as _, Result, bail};

use crate::{
    prereqs::prereqs,
    system::{as_root, binary, build},
};

pub(crate) fn run(args: &[String]) -> Result<()> {
    prereqs()?;
    build(true)?;
    let args: Vec<String> = match args {
        [] => vec!["demo".into()],
        [sep, rest @ ..] if sep == "--" => {
            if rest.is_empty() {
                vec!["demo".into()]
            } else {
                rest.to_vec()
            }
        }
        rest => rest.to_vec(),
    };
    let bin = binary(true);
    println!("xtask: running {} {}", bin.display(), args.join(" "));
    let status =
        as_root(&bin.to_string_lossy()).args(&args).status().with_context(|| format!("starting {}", bin.display()))?;
    if !status.success() {
        bail!("podsig exited with {status}");
    }
    Ok(())
}
