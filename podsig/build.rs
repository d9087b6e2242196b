use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

/// Builds `podsig-ebpf` for `bpfel-unknown-none` with the dated nightly pinned in
/// `podsig-ebpf/rust-toolchain.toml` and bpf-linker (`cargo xtask prereqs` installs both) and
/// leaves the object in OUT_DIR, where `backend::ebpf` embeds it.
fn main() -> anyhow::Result<()> {
    git_commit();
    let cargo_metadata::Metadata { packages, .. } =
        cargo_metadata::MetadataCommand::new().no_deps().exec().context("MetadataCommand::exec")?;
    let ebpf_package = packages
        .into_iter()
        .find(|p| p.name.as_str() == "podsig-ebpf")
        .ok_or_else(|| anyhow!("podsig-ebpf package not found"))?;
    let root_dir =
        ebpf_package.manifest_path.parent().ok_or_else(|| anyhow!("no parent for {}", ebpf_package.manifest_path))?;
    let package =
        aya_build::Package { name: ebpf_package.name.as_str(), root_dir: root_dir.as_str(), ..Default::default() };
    let workspace_root = root_dir.parent().ok_or_else(|| anyhow!("no workspace above {root_dir}"))?;
    println!("cargo:rerun-if-changed={}", workspace_root.join(podsig_toolchain::PIN_FILE));
    let pin = podsig_toolchain::pin(workspace_root.as_std_path())?;
    // AYA_BUILD_SKIP builds no object, so it needs neither the toolchain nor bpf-linker.
    if std::env::var_os("AYA_BUILD_SKIP").is_none() {
        // A mismatch would otherwise surface from inside LLVM as "Invalid record".
        podsig_toolchain::check_pair(&pin)?;
    }
    aya_build::build_ebpf([package], Toolchain::Custom(&pin))
}

/// PODSIG_GIT_COMMIT for `--version`: the short commit, `-dirty` when the tree has changes,
/// `unknown` outside a git checkout.
fn git_commit() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    println!("cargo:rustc-env=PODSIG_GIT_COMMIT={commit}{}", if dirty { "-dirty" } else { "" });
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/index");
    }
}
