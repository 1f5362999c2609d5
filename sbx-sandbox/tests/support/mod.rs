//! Test support: writes OCI image layouts (gzip or zstd layers) and the busybox test image,
//! compiles the static probe program.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// One entry of a test layer.
pub enum Entry {
    /// A regular file with mode.
    File(&'static str, Vec<u8>, u32),
    /// A directory.
    Dir(&'static str),
    /// A symlink (path, target).
    Symlink(&'static str, &'static str),
    /// An entry whose raw name is written as-is (for escape tests).
    RawFile(Vec<u8>, Vec<u8>),
    /// A hard link (path, target).
    Hardlink(&'static str, &'static str),
}

/// Layer compression.
#[derive(Clone, Copy)]
pub enum Compression {
    Gzip,
    Zstd,
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn set_raw_name(h: &mut tar::Header, name: &[u8]) {
    let gnu = h.as_gnu_mut().unwrap();
    gnu.name = [0; 100];
    gnu.name[..name.len()].copy_from_slice(name);
}

/// A tar stream of `entries`.
pub fn tar_bytes(entries: Vec<Entry>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            Entry::File(p, data, mode) => {
                let mut h = header(tar::EntryType::Regular, data.len() as u64, mode);
                b.append_data(&mut h, p, &data[..]).unwrap();
            }
            Entry::Dir(p) => {
                let mut h = header(tar::EntryType::Directory, 0, 0o755);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            Entry::Symlink(p, t) => {
                let mut h = header(tar::EntryType::Symlink, 0, 0o777);
                b.append_link(&mut h, p, t).unwrap();
            }
            Entry::Hardlink(p, t) => {
                let mut h = header(tar::EntryType::Link, 0, 0o644);
                b.append_link(&mut h, p, t).unwrap();
            }
            Entry::RawFile(name, data) => {
                let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o644);
                set_raw_name(&mut h, &name);
                h.set_cksum();
                b.append(&h, &data[..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn put_blob(layout: &Path, data: &[u8]) -> String {
    let hex = sha(data);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&hex), data).unwrap();
    format!("sha256:{hex}")
}

/// Writes an OCI layout with `layers` (each a tar stream) and `env` into `layout`.
pub fn write_layout(layout: &Path, layers: Vec<Vec<u8>>, env: &[&str], compression: Compression) -> String {
    std::fs::create_dir_all(layout).unwrap();
    std::fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    for tar in layers {
        diff_ids.push(format!("sha256:{}", sha(&tar)));
        let (data, media) = match compression {
            Compression::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(&tar).unwrap();
                (enc.finish().unwrap(), "application/vnd.oci.image.layer.v1.tar+gzip")
            }
            Compression::Zstd => {
                (zstd::encode_all(&tar[..], 1).unwrap(), "application/vnd.oci.image.layer.v1.tar+zstd")
            }
        };
        let digest = put_blob(layout, &data);
        layer_descs.push(serde_json::json!({"mediaType": media, "digest": digest, "size": data.len()}));
    }
    let config = serde_json::json!({
        "architecture": sbx_sandbox::oci::host_architecture(),
        "os": "linux",
        "config": {"Env": env, "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = put_blob(layout, &config_bytes);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_bytes.len()},
        "layers": layer_descs,
    });
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = put_blob(layout, &manifest_bytes);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_bytes.len(),
            "platform": {"architecture": sbx_sandbox::oci::host_architecture(), "os": "linux"},
        }],
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    manifest_digest
}

/// Directory for per-run test artifacts (cached across tests of one build).
pub fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sbx-sandbox-tests")
}

/// Compiles `tests/escape/probe.rs` into a static executable (once per source content).
pub fn probe_binary() -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/escape/probe.rs");
    let code = std::fs::read(&src).unwrap();
    let out = artifacts().join(format!("probe-{}", &sha(&code)[..12]));
    if out.exists() {
        return out;
    }
    std::fs::create_dir_all(artifacts()).unwrap();
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let status = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--edition", "2021", "-C", "opt-level=1", "-C", "target-feature=+crt-static", "-C", "panic=abort"])
        .arg(&src)
        .arg("-o")
        .arg(&tmp)
        .status()
        .unwrap();
    assert!(status.success(), "compiling the probe program failed");
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// The busybox-static test image (plus the probe program at /usr/local/bin/probe), as an OCI
/// layout built once per probe version. Fails loudly if busybox-static is missing.
pub fn busybox_layout() -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let busybox = Path::new("/bin/busybox");
    assert!(busybox.exists(), "busybox-static is not installed: run .ci/install-deps");
    let probe = probe_binary();
    let name = probe.file_name().unwrap().to_string_lossy().replace("probe-", "layout-");
    let layout = artifacts().join(name);
    if layout.join("index.json").exists() {
        return layout;
    }
    let tmp = artifacts().join(format!(".tmp-layout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let list = Command::new(busybox).arg("--list-full").output().unwrap();
    let applets: Vec<String> = String::from_utf8(list.stdout).unwrap().lines().map(str::to_string).collect();
    let mut b = tar::Builder::new(Vec::new());
    for d in ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "usr/local", "usr/local/bin", "etc", "tmp", "var", "var/tmp"]
        .iter()
        .chain(["root", "home", "proc", "sys", "dev"].iter())
    {
        let mut h = header(tar::EntryType::Directory, 0, if d.ends_with("tmp") { 0o1777 } else { 0o755 });
        b.append_data(&mut h, d, &[][..]).unwrap();
    }
    let bb = std::fs::read(busybox).unwrap();
    let mut h = header(tar::EntryType::Regular, bb.len() as u64, 0o755);
    b.append_data(&mut h, "bin/busybox", &bb[..]).unwrap();
    for applet in applets {
        if applet == "bin/busybox" {
            continue;
        }
        let mut h = header(tar::EntryType::Symlink, 0, 0o777);
        b.append_link(&mut h, &applet, "/bin/busybox").unwrap();
    }
    // A setuid-root copy: the unpacker must strip the bit.
    let mut h = header(tar::EntryType::Regular, bb.len() as u64, 0o4755);
    b.append_data(&mut h, "usr/bin/suid-busybox", &bb[..]).unwrap();
    let probe_bytes = std::fs::read(&probe).unwrap();
    let mut h = header(tar::EntryType::Regular, probe_bytes.len() as u64, 0o755);
    b.append_data(&mut h, "usr/local/bin/probe", &probe_bytes[..]).unwrap();
    for (path, data) in [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nsbx:x:1000:1000:sbx:/home/sbx:/bin/sh\n"),
        ("etc/group", "root:x:0:\nsbx:x:1000:\n"),
        ("etc/hosts", "127.0.0.1 localhost\n"),
    ] {
        let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o644);
        b.append_data(&mut h, path, data.as_bytes()).unwrap();
    }
    let tar = b.into_inner().unwrap();
    write_layout(
        &tmp,
        vec![tar],
        &["PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "IMAGE_VAR=1"],
        Compression::Gzip,
    );
    match std::fs::rename(&tmp, &layout) {
        Ok(()) => {}
        Err(_) if layout.join("index.json").exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Err(e) => panic!("publishing the test layout: {e}"),
    }
    layout
}
