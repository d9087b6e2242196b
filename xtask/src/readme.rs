//! README's "How it works" lists podsig's modules folder by folder, for a newcomer to find
//! their way; a list that drifts from the tree misleads more than none. Each bullet that
//! starts with a folder (`` `source/`: ``), and the one that starts "At the root", must name
//! every module directly in that folder, and nothing that is not somewhere under it.

use std::{collections::BTreeSet, fs, path::Path};

use anyhow::{Context as _, Result, bail};

/// Where the list sits: the bullets after this line, up to the first blank line.
const LIST_INTRO: &str = "The userspace crate's folders follow that path (`podsig/src/`):";

pub(crate) fn check(root: &Path) -> Result<()> {
    let readme = fs::read_to_string(root.join("README.md")).context("reading README.md")?;
    let src = root.join("podsig/src");
    let differences = differences(&readme, &src)?;
    if !differences.is_empty() {
        bail!("README.md's module list (How it works) differs from podsig/src: {}", differences.join("; "));
    }
    println!("xtask: README's module list matches podsig/src");
    Ok(())
}

/// What README's list says that the tree does not, and the reverse, in words.
fn differences(readme: &str, src: &Path) -> Result<Vec<String>> {
    let Some((_, after)) = readme.split_once(LIST_INTRO) else {
        bail!("README.md has no module list (the line `{LIST_INTRO}`)");
    };
    let bullets = after.trim_start_matches('\n').split("\n\n").next().unwrap_or("");
    let mut listed_folders = BTreeSet::new();
    let mut out = Vec::new();
    for bullet in bullets.lines().filter_map(|l| l.strip_prefix("- ")) {
        let (folder, named) = match bullet.split_once("`: ") {
            Some((head, rest)) if head.starts_with('`') && head.ends_with('/') => {
                (head.trim_start_matches('`').to_string(), rest)
            }
            _ if bullet.starts_with("At the root:") => (String::new(), bullet),
            _ => continue,
        };
        let dir = src.join(&folder);
        let mut here = children(&dir)?;
        if folder.is_empty() {
            // The root's folders have bullets of their own.
            here.retain(|m| !dir.join(m).is_dir());
        }
        let below = if folder.is_empty() { here.clone() } else { descendants(&dir)? };
        let named: BTreeSet<String> = names(named);
        let shown = if folder.is_empty() { "the root".to_string() } else { format!("`{folder}`") };
        let missing: Vec<&String> = here.iter().filter(|m| !named.contains(*m)).collect();
        let stale: Vec<&String> = named.iter().filter(|m| !below.contains(*m)).collect();
        if !missing.is_empty() {
            out.push(format!("{shown} leaves out {}", join(&missing)));
        }
        if !stale.is_empty() {
            out.push(format!("{shown} names {}, not in the tree", join(&stale)));
        }
        listed_folders.insert(folder);
    }
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() && !listed_folders.contains(&format!("{name}/")) {
            out.push(format!("no bullet for `{name}/`"));
        }
    }
    if !listed_folders.contains("") {
        out.push("no bullet for the root (`At the root:`)".into());
    }
    Ok(out)
}

/// The modules a bullet names: its backquoted words that look like a module (`enrich`,
/// `cli.rs`, `ebpf/`), without `.rs` or the trailing slash.
fn names(bullet: &str) -> BTreeSet<String> {
    bullet
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| {
            !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_./".contains(c))
        })
        .map(module)
        .collect()
}

fn module(name: &str) -> String {
    name.trim_end_matches('/').trim_end_matches(".rs").to_string()
}

/// The modules directly in `dir`: its `.rs` files but `mod.rs`, and its folders of Rust.
fn children(dir: &Path) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rust_folder = entry.file_type()?.is_dir() && entry.path().join("mod.rs").exists();
        if rust_folder || (name.ends_with(".rs") && name != "mod.rs") {
            out.insert(module(&name));
        }
    }
    Ok(out)
}

/// Every module under `dir`, at any depth, `mod` included (a bullet may name a file inside
/// one of its folders, or the folder's `mod.rs`).
fn descendants(dir: &Path) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::from(["mod".to_string()]);
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() {
            if entry.path().join("mod.rs").exists() {
                out.insert(name);
                out.extend(descendants(&entry.path())?);
            }
        } else if name.ends_with(".rs") {
            out.insert(module(&name));
        }
    }
    Ok(out)
}

fn join(names: &[&String]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_matches_the_tree() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        check(root).unwrap();
    }

    #[test]
    fn a_drift_is_named() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let readme = fs::read_to_string(root.join("README.md")).unwrap().replace("`units.rs`", "`gone.rs`");
        let found = differences(&readme, &root.join("podsig/src")).unwrap();
        assert_eq!(found, ["the root leaves out `units`", "the root names `gone`, not in the tree"]);
    }
}
