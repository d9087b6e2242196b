//! The eBPF build's toolchain, in one place: the dated nightly pinned in
//! `podsig-ebpf/rust-toolchain.toml`, the bpf-linker release that links its output, and the
//! check that the two speak the same LLVM.
//!
//! bpf-linker reads the LLVM bitcode rustc emits with the LLVM it was built against. When the
//! majors differ the link fails deep inside LLVM with `Invalid record`, which names neither;
//! [`check_pair`] says which versions disagree and the command that fixes it, before anything
//! is built. `podsig/build.rs` and `cargo xtask prereqs` both read the pin and run the check
//! from here.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, anyhow, bail};

/// Where the pin lives, relative to the workspace root. rustup reads it too, so `cargo build`
/// run inside `podsig-ebpf/` gets the same toolchain.
pub const PIN_FILE: &str = "podsig-ebpf/rust-toolchain.toml";

/// The bpf-linker release `cargo xtask prereqs` installs (`--locked`): its newest release, the
/// first with an `llvm-22` feature.
pub const BPF_LINKER_VERSION: &str = "0.13.0";

/// The command that installs the pinned toolchain and a matching bpf-linker.
pub const FIX: &str = "cargo xtask prereqs";

/// The dated nightly that builds the eBPF crate, from [`PIN_FILE`] under `workspace_root`.
pub fn pin(workspace_root: &Path) -> Result<String> {
    let path = workspace_root.join(PIN_FILE);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let channel = channel_of(&text).with_context(|| format!("in {}", path.display()))?;
    Ok(channel)
}

/// The `[toolchain] channel` of a rust-toolchain.toml, refused unless it is a dated nightly.
pub fn channel_of(toml_text: &str) -> Result<String> {
    let table: toml::Table = toml::from_str(toml_text).context("not valid TOML")?;
    let channel = table
        .get("toolchain")
        .and_then(|t| t.get("channel"))
        .and_then(|c| c.as_str())
        .ok_or_else(|| anyhow!("no [toolchain] channel"))?;
    if !is_dated_nightly(channel) {
        bail!(
            "channel '{channel}' is not a dated nightly: a floating name changes its LLVM under the build; \
             pin one such as nightly-2026-07-01 whose LLVM major Debian ships as llvm-N-dev"
        );
    }
    Ok(channel.to_string())
}

/// `nightly-YYYY-MM-DD`: a toolchain that is the same compiler every day.
pub fn is_dated_nightly(channel: &str) -> bool {
    let Some(date) = channel.strip_prefix("nightly-") else { return false };
    let parts: Vec<&str> = date.split('-').collect();
    matches!(parts.as_slice(), [y, m, d]
        if y.len() == 4 && m.len() == 2 && d.len() == 2
            && [y, m, d].iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())))
}

/// The LLVM major of a `rustc -vV` report (`LLVM version: 22.1.8`).
pub fn llvm_major_of_rustc_vv(vv: &str) -> Option<u32> {
    vv.lines().find_map(|l| l.strip_prefix("LLVM version:")).and_then(|v| v.trim().split('.').next()?.parse().ok())
}

/// The LLVM major the given rustup toolchain's rustc is built on.
pub fn rustc_llvm_major(toolchain: &str) -> Result<u32> {
    let out = Command::new("rustup").args(["run", toolchain, "rustc", "-vV"]).output().context("running rustup")?;
    if !out.status.success() {
        bail!(
            "toolchain {toolchain} is not installed ({}); run `{FIX}`",
            String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or("").trim()
        );
    }
    let vv = String::from_utf8_lossy(&out.stdout);
    llvm_major_of_rustc_vv(&vv).ok_or_else(|| anyhow!("`rustup run {toolchain} rustc -vV` names no LLVM version"))
}

/// Where a bpf-linker would be run from: cargo's bin directory first (where `cargo install`
/// puts it and where xtask puts it on PATH), then PATH.
pub fn find_bpf_linker() -> Option<PathBuf> {
    let cargo_bin = cargo_home().map(|h| h.join("bin/bpf-linker"));
    let path = std::env::var_os("PATH").into_iter().flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    cargo_bin.into_iter().chain(path.map(|d| d.join("bpf-linker"))).find(|p| p.is_file())
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
}

/// What a bpf-linker binary was built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linker {
    pub path: PathBuf,
    /// Its release, when cargo installed it.
    pub version: Option<String>,
    /// The LLVM major it links bitcode with: from the shared libLLVM it loads (Debian's
    /// llvm-N-dev links it dynamically), else the `llvm-N` feature cargo installed it with.
    pub llvm_major: Option<u32>,
}

/// Reads what `path` was built with, from `ldd` and from cargo's install records.
pub fn inspect_bpf_linker(path: &Path) -> Linker {
    let ldd = Command::new("ldd").arg(path).output().ok().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let from_ldd = ldd.as_deref().and_then(llvm_major_of_ldd);
    let installed = cargo_home()
        .and_then(|h| fs::read_to_string(h.join(".crates2.json")).ok())
        .and_then(|j| cargo_install_record(&j));
    let (version, from_features) = installed.map_or((None, None), |(v, m)| (Some(v), m));
    Linker { path: path.to_path_buf(), version, llvm_major: from_ldd.or(from_features) }
}

/// `libLLVM.so.22.1` or `libLLVM-22.so` in an `ldd` listing.
pub fn llvm_major_of_ldd(ldd: &str) -> Option<u32> {
    ldd.lines().find_map(|l| {
        let name = l.split_whitespace().next()?;
        let rest = name.strip_prefix("libLLVM")?;
        let digits = rest.trim_start_matches(['.', '-']).trim_start_matches("so.");
        digits.split(['.', '-']).next()?.parse().ok()
    })
}

/// bpf-linker's release and `llvm-N` feature from cargo's `.crates2.json`.
pub fn cargo_install_record(crates2_json: &str) -> Option<(String, Option<u32>)> {
    let v: serde_json::Value = serde_json::from_str(crates2_json).ok()?;
    let (key, entry) = v.get("installs")?.as_object()?.iter().find(|(k, _)| k.starts_with("bpf-linker "))?;
    let version = key.split_whitespace().nth(1)?.to_string();
    let llvm = entry
        .get("features")
        .and_then(|f| f.as_array())
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str()?.strip_prefix("llvm-")?.parse().ok())
        .next()
        .or_else(|| {
            // Installed with its default features: bpf-linker 0.13's default is llvm-23.
            let defaults = entry.get("no_default_features").and_then(|d| d.as_bool()) == Some(false);
            (defaults && version == "0.13.0").then_some(23)
        });
    Some((version, llvm))
}

/// The pinned toolchain and bpf-linker agree on LLVM, or one line saying which versions
/// disagree and what fixes it.
pub fn check_pair(pin: &str) -> Result<()> {
    let rustc = rustc_llvm_major(pin)?;
    let Some(path) = find_bpf_linker() else {
        bail!("bpf-linker is not installed (the eBPF build needs one built against LLVM {rustc}); run `{FIX}`");
    };
    let linker = inspect_bpf_linker(&path);
    match linker.llvm_major {
        Some(l) if l == rustc => Ok(()),
        Some(l) => bail!(
            "{pin} emits LLVM {rustc} bitcode but {} is built against LLVM {l} (it would fail with \
             `Invalid record`); run `{FIX}` to rebuild it against llvm-{rustc}-dev",
            path.display()
        ),
        None => bail!(
            "cannot tell which LLVM {} is built against ({pin} needs LLVM {rustc}); run `{FIX}` to \
             install bpf-linker {BPF_LINKER_VERSION} against llvm-{rustc}-dev",
            path.display()
        ),
    }
}

/// `rustc -V` of a toolchain: `rustc 1.98.0-nightly (f46ec5218 2026-06-30)`.
pub fn rustc_version_line(toolchain: &str) -> Result<String> {
    let out = Command::new("rustup").args(["run", toolchain, "rustc", "-V"]).output().context("running rustup")?;
    if !out.status.success() {
        bail!("toolchain {toolchain} is not installed; run `{FIX}`");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The compilers named in an object's debug info (`rustc version 1.98.0-nightly (… 2026-06-30)`,
/// from DW_AT_producer), each once: which rustc built the code a binary embeds.
pub fn producers(object: &[u8]) -> Vec<String> {
    const MARK: &[u8] = b"rustc version ";
    let mut found = Vec::new();
    let mut rest = object;
    while let Some(i) = rest.windows(MARK.len()).position(|w| w == MARK) {
        let tail = &rest[i + MARK.len()..];
        let end = tail.iter().position(|&b| b == b')').map_or(tail.len(), |e| e + 1);
        let v = String::from_utf8_lossy(&tail[..end]).into_owned();
        if !found.contains(&v) {
            found.push(v);
        }
        rest = &tail[end..];
    }
    found
}

/// The binary's eBPF code was built by the pinned nightly and by no other nightly: the
/// userspace side is stable, so any nightly producer in it is the embedded eBPF object.
pub fn check_producers(binary: &Path, pin: &str) -> Result<()> {
    let want = rustc_version_line(pin)?;
    let want = want.strip_prefix("rustc ").unwrap_or(&want);
    let bytes = fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    let nightlies: Vec<String> = producers(&bytes).into_iter().filter(|p| p.contains("-nightly")).collect();
    if !nightlies.iter().any(|p| p == want) {
        bail!("{} embeds no eBPF code built by {pin} ({want}); nightlies found: {nightlies:?}", binary.display());
    }
    if let Some(other) = nightlies.iter().find(|p| *p != want) {
        bail!("{} embeds code built by {other}, not by the pinned {pin} ({want})", binary.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_pin_is_a_dated_nightly() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let pin = pin(root).unwrap();
        assert!(is_dated_nightly(&pin), "{pin}");
    }

    #[test]
    fn floating_channels_are_refused() {
        for ch in ["nightly", "stable", "beta", "nightly-2026-7-1", "1.95.0", "nightly-x86_64-unknown-linux-gnu"] {
            let toml = format!("[toolchain]\nchannel = \"{ch}\"\n");
            let err = channel_of(&toml).unwrap_err().to_string();
            assert!(err.contains("not a dated nightly"), "{ch}: {err}");
        }
        assert_eq!(channel_of("[toolchain]\nchannel = \"nightly-2026-07-01\"\n").unwrap(), "nightly-2026-07-01");
    }

    #[test]
    fn llvm_major_from_rustc() {
        let vv = "rustc 1.98.0-nightly (f46ec5218 2026-06-30)\nbinary: rustc\nrelease: 1.98.0-nightly\nLLVM version: 22.1.8\n";
        assert_eq!(llvm_major_of_rustc_vv(vv), Some(22));
        assert_eq!(llvm_major_of_rustc_vv("rustc 1.0\n"), None);
    }

    #[test]
    fn llvm_major_from_ldd() {
        let ldd = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibLLVM.so.22.1 => /usr/lib/llvm-22/lib/libLLVM.so.22.1 (0x0)\n";
        assert_eq!(llvm_major_of_ldd(ldd), Some(22));
        assert_eq!(llvm_major_of_ldd("\tlibLLVM-23.so => /x (0x0)\n"), Some(23));
        assert_eq!(llvm_major_of_ldd("\tlibc.so.6 => /lib/libc.so.6\n"), None);
    }

    #[test]
    fn producers_from_debug_strings() {
        let obj = b"\0clang LLVM (rustc version 1.98.0-nightly (f46ec5218 2026-06-30))\0x\0clang LLVM (rustc version 1.95.0 (59807616e 2026-04-14))\0clang LLVM (rustc version 1.98.0-nightly (f46ec5218 2026-06-30))\0";
        assert_eq!(
            producers(obj),
            vec!["1.98.0-nightly (f46ec5218 2026-06-30)".to_string(), "1.95.0 (59807616e 2026-04-14)".to_string()]
        );
    }

    #[test]
    fn bpf_linker_from_cargo_records() {
        let j = r#"{"installs":{"bpf-linker 0.13.0 (registry+https://github.com/rust-lang/crates.io-index)":
            {"version_req":"=0.13.0","bins":["bpf-linker"],"features":["llvm-22"],"all_features":false,
             "no_default_features":true,"profile":"release","target":"x86_64-unknown-linux-gnu","rustc":"x"}}}"#;
        assert_eq!(cargo_install_record(j), Some(("0.13.0".into(), Some(22))));
        let j = j
            .replace(r#"["llvm-22"]"#, "[]")
            .replace(r#""no_default_features":true"#, r#""no_default_features":false"#);
        assert_eq!(cargo_install_record(&j), Some(("0.13.0".into(), Some(23))));
        assert_eq!(cargo_install_record(r#"{"installs":{}}"#), None);
    }
}
