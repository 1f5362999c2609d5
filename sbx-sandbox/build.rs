//! Compiles the in-sandbox helper (`src/helper/main.rs`: init wrapper + proxy relay) as a small
//! statically linked executable, so it runs in any image whatever its libc. The library embeds it.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=src/helper");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("sbx-init");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut cmd = Command::new(rustc);
    cmd.args(["--edition", "2021", "--crate-name", "sbx_init", "-C", "opt-level=s", "-C", "panic=abort"]).args([
        "-C",
        "strip=symbols",
        "-C",
        "target-feature=+crt-static",
        "-C",
        "debuginfo=0",
    ]);
    if let Ok(target) = std::env::var("TARGET") {
        cmd.args(["--target", &target]);
    }
    cmd.arg("src/helper/main.rs").arg("-o").arg(&out);
    // The outer build's flags (e.g. coverage) must not leak into this standalone compile.
    cmd.env_remove("CARGO_ENCODED_RUSTFLAGS");
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("compiling the sandbox helper failed ({s}); is the static C library (libc6-dev) installed?"),
        Err(e) => panic!("could not run rustc to compile the sandbox helper: {e}"),
    }
}
