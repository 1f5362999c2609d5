//! Small OCI image layouts for tests and the example: a busybox root filesystem, optionally with
//! the host's glibc, written as a one-layer image layout (tag `latest`, the host's platform).
//!
//! The layer is an uncompressed tar made by GNU tar with fixed owners and mtimes (umoci 0.4.7
//! truncates gzip layers of a few MB, so these layouts are written here, not with umoci).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use sha2::Digest;

/// The host's OCI architecture name (`amd64` or `arm64`).
pub fn host_arch() -> &'static str {
    if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" }
}

/// A busybox root filesystem at `root`: `/bin/busybox` (the static one from busybox-static)
/// with every applet linked next to it, `/usr/bin/env`, and the usual empty directories.
pub fn busybox_rootfs(root: &Path) -> Result<()> {
    let busybox = Path::new("/bin/busybox");
    ensure!(busybox.exists(), "busybox-static is not installed: run .ci/install-deps");
    for d in ["bin", "etc", "tmp", "home", "proc", "dev", "usr/bin"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy(busybox, root.join("bin/busybox"))?;
    let list = Command::new(busybox).arg("--list").output().context("busybox --list")?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
        }
    }
    std::os::unix::fs::symlink("../../bin/env", root.join("usr/bin/env"))?;
    Ok(())
}

/// Copies the host's C runtime (glibc, libgcc_s, libstdc++ when present, and the dynamic
/// loader) into `root`, so dynamically linked tools (node, Claude Code's native binary, mise)
/// run in an image built on it.
pub fn add_host_glibc(root: &Path) -> Result<()> {
    let (libdir, loader) = if cfg!(target_arch = "aarch64") {
        ("lib/aarch64-linux-gnu", "lib/ld-linux-aarch64.so.1")
    } else {
        ("lib/x86_64-linux-gnu", "lib64/ld-linux-x86-64.so.2")
    };
    let required = ["libc.so.6", "libdl.so.2", "librt.so.1", "libpthread.so.0", "libm.so.6", "libgcc_s.so.1"];
    let mut files: Vec<String> = required.iter().map(|l| format!("{libdir}/{l}")).collect();
    files.push(loader.to_string());
    for file in &files {
        let from = Path::new("/").join(file);
        std::fs::create_dir_all(root.join(file).parent().expect("a file under a dir"))?;
        std::fs::copy(&from, root.join(file)).with_context(|| format!("copying {}", from.display()))?;
    }
    let optional = Path::new("/").join(libdir).join("libstdc++.so.6");
    if optional.exists() {
        std::fs::copy(&optional, root.join(libdir).join("libstdc++.so.6"))?;
    }
    Ok(())
}

/// Writes `root` as a one-layer OCI image layout at `layout` (tag `latest`, the host's
/// platform) whose config has `env`. Returns the manifest digest.
pub fn write_layout(root: &Path, layout: &Path, env: &[&str]) -> Result<String> {
    std::fs::create_dir_all(layout)?;
    let tar = layout.with_extension("layer.tar");
    let status = Command::new("tar")
        .args(["--create", "--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "--file"])
        .arg(&tar)
        .arg("-C")
        .arg(root)
        .arg(".")
        .status()
        .context("running GNU tar")?;
    if !status.success() {
        bail!("tar of {} failed", root.display());
    }
    let layer = std::fs::read(&tar)?;
    std::fs::remove_file(&tar)?;
    let arch = host_arch();
    let layer_desc = descriptor(layout, &layer, "application/vnd.oci.image.layer.v1.tar")?;
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux", "config": {"Env": env},
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
    }))?;
    let config_desc = descriptor(layout, &config, "application/vnd.oci.image.config.v1+json")?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc, "layers": [layer_desc],
    }))?;
    let mut manifest_desc = descriptor(layout, &manifest, "application/vnd.oci.image.manifest.v1+json")?;
    manifest_desc["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
    manifest_desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "latest"});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [manifest_desc.clone()]});
    std::fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;
    Ok(manifest_desc["digest"].as_str().unwrap_or_default().to_string())
}

/// A layout at `layout` with busybox and the host's glibc (`PATH=/usr/bin:/bin`): the smallest
/// base on which the example project's tools run. Its root filesystem is staged next to it
/// (`<layout>.rootfs`) and removed afterwards.
pub fn glibc_busybox_layout(layout: &Path) -> Result<()> {
    let root = staging_dir(layout)?;
    busybox_rootfs(&root)?;
    add_host_glibc(&root)?;
    write_layout(&root, layout, &["PATH=/usr/bin:/bin"])?;
    std::fs::remove_dir_all(&root)?;
    Ok(())
}

fn staging_dir(layout: &Path) -> Result<PathBuf> {
    let root = layout.with_extension("rootfs");
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    std::fs::create_dir_all(&root)?;
    Ok(root)
}

/// Stores `bytes` as a blob of `layout` → its descriptor (mediaType, digest, size).
fn descriptor(layout: &Path, bytes: &[u8], media_type: &str) -> Result<serde_json::Value> {
    let hex = hex::encode(sha2::Sha256::digest(bytes));
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(&hex), bytes)?;
    Ok(serde_json::json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": bytes.len()}))
}
