//! `cargo xtask image`: podsig's container image, without a Docker daemon. A static (musl)
//! podsig is the only file; the image is written as an OCI image layout in a tar archive
//! (`ctr image import`, `skopeo copy oci-archive:…`, `podman load` all take it).
//!
//! The layer is built with fixed timestamps and owners, so the same binary gives the same
//! digests.

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{
    prereqs::prereqs,
    system::{apt_ensure, cargo, sh, target_dir},
};

pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";
/// The name the image is imported under, and what deploy/kubernetes runs.
pub fn reference() -> String {
    format!("localhost/podsig:{}", env!("CARGO_PKG_VERSION"))
}

/// One file in the image's single layer.
pub struct File {
    pub path: String,
    pub contents: Vec<u8>,
    pub mode: u32,
}

/// Image config: what runs.
pub struct Config {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

/// Writes an OCI image layout archive holding `files` as one layer.
pub fn write_oci_archive(out: &Path, reference: &str, files: &[File], config: &Config) -> Result<()> {
    let layer = layer_tar(files)?;
    let layer_digest = sha256(&layer);
    let config_json = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": config.entrypoint,
            "Cmd": config.cmd,
            "Env": ["PATH=/"],
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": "cargo xtask image"}],
    }))?;
    let config_digest = sha256(&config_json);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_json.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    }))?;
    let manifest_digest = sha256(&manifest);
    let tag = reference.rsplit_once(':').map_or("latest", |(_, t)| t);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {
                "org.opencontainers.image.ref.name": tag,
                "io.containerd.image.name": reference,
            },
        }],
    }))?;
    let blob = |digest: &str| format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    let entries: Vec<(String, &[u8])> = vec![
        ("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#.as_slice()),
        ("index.json".into(), &index),
        (blob(&manifest_digest), &manifest),
        (blob(&config_digest), &config_json),
        (blob(&layer_digest), &layer),
    ];
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = out.with_extension("tmp");
    let mut archive = tar::Builder::new(fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?);
    for (name, data) in entries {
        append(&mut archive, &name, data, 0o644)?;
    }
    archive.into_inner()?.flush()?;
    fs::rename(&tmp, out)?;
    Ok(())
}

fn layer_tar(files: &[File]) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for f in files {
        append(&mut b, &f.path, &f.contents, f.mode)?;
    }
    Ok(b.into_inner()?)
}

fn append<W: std::io::Write>(b: &mut tar::Builder<W>, path: &str, data: &[u8], mode: u32) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, data).with_context(|| format!("adding {path} to the archive"))?;
    Ok(())
}

fn sha256(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    format!("sha256:{}", d.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Builds the static podsig and its image; returns the archive's path.
pub fn build(target_dir: &Path) -> Result<PathBuf> {
    let bin = target_dir.join(MUSL_TARGET).join("release/podsig");
    let mut contents = fs::read(&bin).with_context(|| format!("reading {}", bin.display()))?;
    // Symbols are for debugging on the build host; the node gets the smaller binary.
    let stripped = target_dir.join("image/podsig.stripped");
    fs::create_dir_all(stripped.parent().unwrap())?;
    if Command::new("strip").arg("-o").arg(&stripped).arg(&bin).status().is_ok_and(|s| s.success()) {
        contents = fs::read(&stripped)?;
    }
    let out = target_dir.join("image").join(format!("podsig-{}.oci.tar", env!("CARGO_PKG_VERSION")));
    write_oci_archive(
        &out,
        &reference(),
        &[File { path: "podsig".into(), contents, mode: 0o755 }],
        &Config { entrypoint: vec!["/podsig".into()], cmd: vec!["record".into()] },
    )?;
    Ok(out)
}

/// The static build the image holds: Rust's musl target, and musl-gcc for the C that
/// SQLite is.
pub fn task() -> Result<PathBuf> {
    build_static(&["--package", "podsig"])?;
    build(&target_dir())
}

/// `cargo build --release --target` musl with `args`, the target and musl-gcc installed
/// first: binaries that run on any Linux, whatever its C library (vm-test's older roots).
pub fn build_static(args: &[&str]) -> Result<()> {
    prereqs()?;
    let musl_std = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l == MUSL_TARGET));
    println!(
        "xtask: image: Rust target {}: {}",
        MUSL_TARGET,
        if musl_std { "present, skipped" } else { "missing, installing" }
    );
    if !musl_std {
        sh(Command::new("rustup").args(["target", "add", MUSL_TARGET]))?;
    }
    apt_ensure("image: C toolchain for musl", &[("musl-tools", "/usr/bin/musl-gcc")])?;
    sh(cargo().args(["build", "--release", "--target", MUSL_TARGET]).args(args))
}

/// Where `build_static` puts a binary.
pub fn static_binary(name: &str) -> PathBuf {
    target_dir().join(MUSL_TARGET).join("release").join(name)
}
