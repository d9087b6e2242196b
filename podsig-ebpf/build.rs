use which::which;

/// The crate is linked by `bpf-linker`, a dependency cargo cannot see; rebuild when it changes.
fn main() {
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(err) => println!("cargo:warning=bpf-linker not found ({err}); run `cargo xtask prereqs`"),
    }
}
