//! `podsig stap-build`: a SystemTap module for another kernel release, to copy to hosts
//! that run it without a compiler.

use anyhow::{Result, bail};

use crate::{cli::StapBuildArgs, source};

pub async fn run(args: StapBuildArgs, verbose: bool) -> Result<()> {
    let release = args.kernel_release.trim();
    if release.is_empty() || release.contains('/') || release.starts_with('-') {
        bail!("'{release}' is not a kernel release (as `uname -r` prints it, e.g. 6.12.117+deb13-amd64)");
    }
    let out = args.output.unwrap_or_else(|| format!("podsig-{release}.ko").into());
    source::stap::module::build(release, &out, verbose).await
}
