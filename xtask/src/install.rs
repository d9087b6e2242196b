//! `cargo xtask install`: build, then copy podsig to /usr/local/bin.

use anyhow::Result;

use crate::{
    prereqs::prereqs,
    system::{as_root, binary, build, sh},
};

pub(crate) fn install() -> Result<()> {
    prereqs()?;
    build(true)?;
    let dest = "/usr/local/bin/podsig";
    sh(as_root("install").args(["-m", "0755"]).arg(binary(true)).arg(dest))?;
    println!("xtask: installed {dest}; try: sudo podsig watch --pid <PID>");
    Ok(())
}
