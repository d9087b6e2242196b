use std::{
    env,
    io::{BufReader, Read as _},
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{Context as _, anyhow, bail};
use cargo_metadata::{Message, diagnostic::DiagnosticLevel};

/// Builds `podsig-ebpf` for `bpfel-unknown-none` with the dated nightly pinned in
/// `podsig-ebpf/rust-toolchain.toml` and bpf-linker (`cargo xtask prereqs` installs both) and
/// leaves the object in OUT_DIR, where `source::ebpf` embeds it.
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
    let workspace_root = root_dir.parent().ok_or_else(|| anyhow!("no workspace above {root_dir}"))?;
    println!("cargo:rerun-if-changed={}", workspace_root.join(podsig_toolchain::PIN_FILE));
    println!("cargo:rerun-if-changed={root_dir}");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    // AYA_BUILD_SKIP builds no object, so it needs neither the toolchain nor bpf-linker.
    if env::var_os("AYA_BUILD_SKIP").is_some() {
        return Ok(());
    }
    let pin = podsig_toolchain::pin(workspace_root.as_std_path())?;
    // A mismatch would otherwise surface from inside LLVM as "Invalid record".
    podsig_toolchain::check_pair(&pin)?;
    build_ebpf(&pin)
}

/// The nested build aya-build 0.2 runs, with its output kept for when it matters: aya-build
/// echoes every line of the nested cargo's stderr as `cargo:warning`, which made a first
/// build print ~48 `warning: podsig@0.1.0: Compiling …` lines that were progress, not
/// warnings, and buried any real one. Here the compiler's own diagnostics come through as
/// warnings, and the nested cargo's stderr only when it fails; cargo's progress bar
/// (`podsig(build)`) is the progress.
fn build_ebpf(pin: &str) -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let target = match env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() {
        Ok("big") => "bpfeb-unknown-none",
        Ok("little") => "bpfel-unknown-none",
        other => bail!("unsupported target endianness {other:?}"),
    };
    let arch = env::var("CARGO_CFG_TARGET_ARCH").context("CARGO_CFG_TARGET_ARCH not set")?;
    let arch = if arch.starts_with("riscv64") { "riscv64".to_string() } else { arch };
    let mut cmd = Command::new("rustup");
    cmd.args(["run", pin, "cargo", "build", "--package", "podsig-ebpf", "--bins", "--release"])
        .args(["--message-format=json", "--target", target, "-Z", "build-std=core", "--target-dir"])
        // Its own target directory: the outer cargo holds the lock on ours.
        .arg(out_dir.join("aya-build/target/podsig-ebpf"))
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            format!("--cfg=bpf_target_arch=\"{arch}\"\x1f-Cdebuginfo=2\x1f-Clink-arg=--btf"),
        )
        // The pinned toolchain's own rustc, not the one running this build.
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut executables = Vec::new();
    for message in Message::parse_stream(BufReader::new(child.stdout.take().context("stdout")?)) {
        match message.context("the nested cargo's JSON messages")? {
            Message::CompilerArtifact(a) => {
                if let Some(exe) = a.executable {
                    executables.push((a.target.name, exe.into_std_path_buf()));
                }
            }
            Message::CompilerMessage(m)
                if matches!(m.message.level, DiagnosticLevel::Warning | DiagnosticLevel::Error) =>
            {
                for line in m.message.rendered.unwrap_or_default().lines() {
                    println!("cargo:warning={line}");
                }
            }
            _ => {}
        }
    }
    let status = child.wait().context("waiting for the nested cargo")?;
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        for line in stderr.lines() {
            println!("cargo:warning={line}");
        }
        bail!("building the eBPF programs failed ({status}): {cmd:?}");
    }
    for (name, exe) in executables {
        let dst = out_dir.join(name);
        std::fs::copy(&exe, &dst).with_context(|| format!("copying {} to {}", exe.display(), dst.display()))?;
    }
    Ok(())
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
