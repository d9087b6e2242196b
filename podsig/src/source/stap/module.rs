//! SystemTap modules built once for a node's kernel (`podsig stap-build`) and loaded there
//! with `staprun` alone: no compiler, headers or debuginfo on the node.

use std::{fs, path::Path};

use anyhow::{Context as _, Result, bail};
use object::{Object as _, ObjectSection as _};

use super::{
    script,
    staging::{NO_PREFLIGHT_ENV, PrivateDir, stap_failure, write_private},
};

/// What a module's `.modinfo` says about it.
#[derive(Debug, PartialEq, Eq)]
pub struct ModInfo {
    /// The module's name (`podsig_<version>_<script fingerprint>` for podsig's).
    pub name: Option<String>,
    /// The kernel release it was built for (first word of `vermagic`).
    pub release: Option<String>,
}

pub fn modinfo(path: &Path) -> Result<ModInfo> {
    let data = fs::read(path).with_context(|| format!("reading the module {}", path.display()))?;
    let file =
        object::File::parse(&*data).map_err(|e| anyhow::anyhow!("{} is not a kernel module ({e})", path.display()))?;
    let section = file
        .section_by_name(".modinfo")
        .with_context(|| format!("{} is not a kernel module (no .modinfo section)", path.display()))?;
    let bytes = section.data().with_context(|| format!("reading .modinfo of {}", path.display()))?;
    let mut info = ModInfo { name: None, release: None };
    for entry in bytes.split(|&b| b == 0) {
        let entry = String::from_utf8_lossy(entry);
        if let Some(v) = entry.strip_prefix("vermagic=") {
            info.release = v.split_whitespace().next().map(str::to_string);
        } else if let Some(v) = entry.strip_prefix("name=") {
            info.name = Some(v.to_string());
        }
    }
    Ok(info)
}

/// Refuses, in one line, a module this kernel or this podsig cannot use.
pub fn check(path: &Path, running: &str) -> Result<ModInfo> {
    let info = modinfo(path)?;
    let name = info.name.clone().or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()));
    match &info.release {
        Some(r) if r == running => {}
        Some(r) => bail!(
            "{} was built for kernel {r}, but this kernel is {running}: build one for it with \
             `podsig stap-build --kernel-release {running}`",
            path.display()
        ),
        None => bail!("{} names no kernel release (no vermagic): not a module stap built", path.display()),
    }
    let want = script::fingerprint();
    match name {
        Some(n) if n.starts_with("podsig_") && n.ends_with(&want) => Ok(info),
        Some(n) if n.starts_with("podsig_") => bail!(
            "{} ({n}) was built by a podsig with another script; this podsig's modules are named \
             …_{want}: rebuild it with this podsig's `stap-build`",
            path.display()
        ),
        _ => bail!("{} is not a podsig module (build one with `podsig stap-build`)", path.display()),
    }
}

/// staprun finds a module's control channel by the file's name, which must be the
/// module's own: a renamed file (`podsig-6.12.ko`) is loaded from a private copy named
/// right.
pub(super) fn staged(path: &Path, info: &ModInfo) -> Result<(std::path::PathBuf, Option<PrivateDir>)> {
    let Some(name) = &info.name else { return Ok((path.to_path_buf(), None)) };
    if path.file_stem().is_some_and(|s| s.to_string_lossy() == *name) {
        return Ok((path.to_path_buf(), None));
    }
    let dir = PrivateDir::new()?;
    let copy = dir.0.join(format!("{name}.ko"));
    fs::copy(path, &copy).with_context(|| format!("copying {} to {}", path.display(), copy.display()))?;
    Ok((copy, Some(dir)))
}

/// `podsig stap-build`: the module for `release`, written to `out`.
pub async fn build(release: &str, out: &Path, verbose: bool) -> Result<()> {
    let (checks, _, _) = crate::source::features::stap_checks(release);
    let skip = std::env::var_os(NO_PREFLIGHT_ENV).is_some();
    // Loading is the node's business, not the build host's.
    let missing: Vec<String> = checks
        .iter()
        .filter(|c| c.status == crate::source::features::Status::Missing && c.name != "kernel module loading")
        .map(|c| format!("{} ({}; fix: {})", c.name, c.detail, c.fix.as_deref().unwrap_or("-")))
        .collect();
    if !missing.is_empty() && !skip {
        bail!("cannot build a SystemTap module for kernel {release} here: {}", missing.join("; "));
    }
    let dir = PrivateDir::new()?;
    let script_path = dir.0.join("podsig.stp");
    write_private(&script_path, &script::generate())?;
    let name = script::module_name();
    eprintln!("podsig: building {name}.ko for kernel {release} (stap -p4)…");
    let output = tokio::process::Command::new("stap")
        .args(["-p4", "-r", release, "-m", &name])
        .arg(&script_path)
        .current_dir(&dir.0)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("starting stap (install systemtap)")?;
    let log: Vec<String> = String::from_utf8_lossy(&output.stderr).lines().map(str::to_string).collect();
    let built = dir.0.join(format!("{name}.ko"));
    if !output.status.success() || !built.exists() {
        return Err(stap_failure("build", release, &log, Some(output.status), verbose));
    }
    if verbose {
        for l in &log {
            eprintln!("podsig: stap: {l}");
        }
    }
    fs::copy(&built, out).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "podsig: wrote {} ({name}, for kernel {release}); on a node running {release}, with only \
         systemtap-runtime installed: podsig watch --backend stap --stap-module {} --pid PID",
        out.display(),
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in module: an ELF object whose .modinfo reads as kbuild writes it.
    fn fake_module(dir: &Path, name: &str, release: &str) -> std::path::PathBuf {
        let obj = dir.join(format!("{name}.ko"));
        let info = dir.join(format!("{name}.modinfo"));
        fs::write(&info, format!("license=GPL\0name={name}\0vermagic={release} SMP preempt mod_unload \0")).unwrap();
        let st = std::process::Command::new("objcopy")
            .args(["-I", "binary", "-O", "elf64-x86-64", "-B", "i386:x86-64", "--rename-section", ".data=.modinfo"])
            .arg(&info)
            .arg(&obj)
            .status()
            .unwrap();
        assert!(st.success());
        obj
    }

    #[test]
    fn release_and_script_checks() {
        let dir = std::env::temp_dir().join(format!("podsig-modinfo-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let ours = fake_module(&dir, &script::module_name(), "6.12.117+deb13-amd64");
        assert_eq!(modinfo(&ours).unwrap().release.as_deref(), Some("6.12.117+deb13-amd64"));
        assert!(check(&ours, "6.12.117+deb13-amd64").is_ok());
        let e = check(&ours, "6.1.0-50-amd64").unwrap_err().to_string();
        assert!(e.contains("built for kernel 6.12.117+deb13-amd64, but this kernel is 6.1.0-50-amd64"), "{e}");
        assert!(e.contains("podsig stap-build --kernel-release 6.1.0-50-amd64"), "{e}");
        let older = fake_module(&dir, "podsig_0_0_9_000000000000", "6.1.0-50-amd64");
        assert!(check(&older, "6.1.0-50-amd64").unwrap_err().to_string().contains("another script"));
        let stranger = fake_module(&dir, "nfs", "6.1.0-50-amd64");
        assert!(check(&stranger, "6.1.0-50-amd64").unwrap_err().to_string().contains("not a podsig module"));
        let e = modinfo(&dir.join(format!("{}.modinfo", script::module_name()))).unwrap_err().to_string();
        assert!(e.contains("is not a kernel module"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
