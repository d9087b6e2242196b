use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

/// Builds `podsig-ebpf` for `bpfel-unknown-none` (nightly + bpf-linker; `cargo xtask prereqs`
/// installs both) and leaves the object in OUT_DIR, where `backend::ebpf` embeds it.
fn main() -> anyhow::Result<()> {
    let cargo_metadata::Metadata { packages, .. } = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("MetadataCommand::exec")?;
    let ebpf_package = packages
        .into_iter()
        .find(|p| p.name.as_str() == "podsig-ebpf")
        .ok_or_else(|| anyhow!("podsig-ebpf package not found"))?;
    let root_dir = ebpf_package
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf_package.manifest_path))?;
    let package = aya_build::Package {
        name: ebpf_package.name.as_str(),
        root_dir: root_dir.as_str(),
        ..Default::default()
    };
    aya_build::build_ebpf([package], Toolchain::default())
}
