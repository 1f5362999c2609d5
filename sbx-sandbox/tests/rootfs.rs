//! Rootfs cache: layer application (whiteouts, opaque dirs, hard links, gzip and zstd), path
//! escape refusal, digest checks, warm starts, concurrent starts.

mod support;

use std::path::Path;

use sbx_sandbox::{Error, RootfsCache};
use support::{Compression, Entry, tar_bytes, write_layout};

fn file(p: &'static str, s: &str) -> Entry {
    Entry::File(p, s.as_bytes().to_vec(), 0o644)
}

fn two_layers(layout: &Path, compression: Compression) {
    let lower = tar_bytes(vec![
        Entry::Dir("etc"),
        file("etc/keep", "keep"),
        file("etc/gone", "gone"),
        Entry::Dir("opt"),
        Entry::Dir("opt/old"),
        file("opt/old/a", "a"),
        file("opt/b", "b"),
        Entry::Dir("var"),
        file("var/x", "x"),
        Entry::Symlink("link", "etc/keep"),
        Entry::File("usr-suid", b"#!".to_vec(), 0o4755),
    ]);
    let upper = tar_bytes(vec![
        file("etc/.wh.gone", ""),
        file("opt/new", "new"),
        file("opt/.wh..wh..opq", ""),
        Entry::Dir("var"),
        file("var/x", "replaced"),
        Entry::Hardlink("etc/keep2", "etc/keep"),
        file(".wh.link", ""),
    ]);
    write_layout(layout, vec![lower, upper], &["A=1", "PATH=/bin"], compression);
}

fn check_tree(root: &Path) {
    assert_eq!(std::fs::read_to_string(root.join("etc/keep")).unwrap(), "keep");
    assert_eq!(std::fs::read_to_string(root.join("etc/keep2")).unwrap(), "keep");
    assert!(!root.join("etc/gone").exists(), "whiteout not applied");
    assert!(!root.join("etc/.wh.gone").exists());
    assert!(root.join("opt/new").exists(), "opaque dir lost this layer's file");
    assert!(!root.join("opt/old").exists(), "opaque whiteout not applied");
    assert!(!root.join("opt/b").exists(), "opaque whiteout not applied");
    assert_eq!(std::fs::read_to_string(root.join("var/x")).unwrap(), "replaced");
    assert!(std::fs::symlink_metadata(root.join("link")).is_err(), "whiteout of a symlink");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.join("usr-suid")).unwrap().permissions().mode();
    assert_eq!(mode & 0o6000, 0, "setuid bit must be stripped");
}

#[test]
fn gzip_layers_with_whiteouts_then_warm() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    two_layers(&layout, Compression::Gzip);
    let cache = RootfsCache::new(tmp.path().join("cache"));
    let cold = cache.prepare(&layout).unwrap();
    assert!(cold.unpacked);
    check_tree(&cold.rootfs);
    assert_eq!(cold.settings.env, vec!["A=1".to_string(), "PATH=/bin".to_string()]);
    assert_eq!(cold.settings.default_command, vec!["/bin/sh".to_string()]);
    let warm = cache.prepare(&layout).unwrap();
    assert!(!warm.unpacked, "a warm start must not unpack again");
    assert_eq!(warm.rootfs, cold.rootfs);
    assert_eq!(warm.settings, cold.settings);
}

#[test]
fn zstd_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    two_layers(&layout, Compression::Zstd);
    let prepared = RootfsCache::new(tmp.path().join("cache")).prepare(&layout).unwrap();
    check_tree(&prepared.rootfs);
}

#[test]
fn concurrent_starts_unpack_once() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    two_layers(&layout, Compression::Gzip);
    let cache_dir = tmp.path().join("cache");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (layout, cache_dir) = (layout.clone(), cache_dir.clone());
            std::thread::spawn(move || RootfsCache::new(cache_dir).prepare(&layout).unwrap())
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.unpacked).count(), 1);
    for r in &results {
        check_tree(&r.rootfs);
    }
    let leftovers: Vec<_> = std::fs::read_dir(cache_dir.join("rootfs"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

fn expect_escape(entries: Vec<Entry>) {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_layout(&layout, vec![tar_bytes(entries)], &[], Compression::Gzip);
    let err = RootfsCache::new(tmp.path().join("cache")).prepare(&layout).unwrap_err();
    assert!(matches!(err, Error::PathEscape { .. }), "expected a path escape error, got {err:?}");
    assert!(!tmp.path().join("escaped").exists());
    // A failed unpack leaves no published entry and no temp tree.
    let dir = tmp.path().join("cache/rootfs");
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| n.ends_with(".lock")), "left behind: {names:?}");
}

#[test]
fn refuses_dotdot() {
    expect_escape(vec![Entry::RawFile(b"../../escaped".to_vec(), b"x".to_vec())]);
}

#[test]
fn refuses_writing_through_a_symlink() {
    expect_escape(vec![Entry::Symlink("sub", "/"), Entry::RawFile(b"sub/tmp/escaped".to_vec(), b"x".to_vec())]);
}

#[test]
fn refuses_hardlink_out() {
    expect_escape(vec![Entry::Hardlink("passwd", "../../../etc/passwd")]);
}

#[test]
fn corrupt_blob_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_layout(&layout, vec![tar_bytes(vec![file("a", "a")])], &[], Compression::Gzip);
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(manifest_digest)).unwrap()).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    // A valid layer with other content under the old digest.
    let other = tmp.path().join("other");
    write_layout(&other, vec![tar_bytes(vec![file("b", "tampered")])], &[], Compression::Gzip);
    let blobs: Vec<_> = std::fs::read_dir(other.join("blobs/sha256")).unwrap().flatten().collect();
    let gz = blobs.iter().map(|e| std::fs::read(e.path()).unwrap()).find(|d| d.starts_with(&[0x1f, 0x8b])).unwrap();
    std::fs::write(layout.join("blobs/sha256").join(&layer), gz).unwrap();
    let err = RootfsCache::new(tmp.path().join("cache")).prepare(&layout).unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
}

#[test]
fn missing_layout_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let err = RootfsCache::new(tmp.path().join("cache")).prepare(&tmp.path().join("nope")).unwrap_err();
    assert!(err.to_string().contains("image index"), "{err}");
}
