//! Extraction: formats, stripping, and refusing entries that escape the target.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sbx_image::ImageError;
use sbx_image::extract::{ArchiveKind, Strip, extract};

/// A raw tar entry whose name is written byte for byte (the tar crate refuses `..`).
fn raw_entry(name: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn raw_tar(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = entries.concat();
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn refused(tar: Vec<u8>, entry: &str) {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.tar");
    std::fs::write(&archive, tar).unwrap();
    let dest = dir.path().join("out");
    let err = extract(&archive, ArchiveKind::Tar, &dest, Strip::None, "x").unwrap_err();
    match &err {
        ImageError::UnsafeEntry { entry: e, .. } => assert_eq!(e, entry, "{err}"),
        other => panic!("expected an unsafe-entry error for {entry}, got {other}"),
    }
    assert!(!dir.path().join("evil").exists() && !Path::new("/tmp/sbx-evil").exists());
}

#[test]
fn refuses_parent_dir_entries() {
    refused(
        raw_tar(&[
            raw_entry("ok", tar::EntryType::Regular, "", b"x"),
            raw_entry("../evil", tar::EntryType::Regular, "", b"x"),
        ]),
        "../evil",
    );
    refused(raw_tar(&[raw_entry("a/../../evil", tar::EntryType::Regular, "", b"x")]), "a/../../evil");
}

#[test]
fn refuses_absolute_paths() {
    refused(raw_tar(&[raw_entry("/tmp/sbx-evil", tar::EntryType::Regular, "", b"x")]), "/tmp/sbx-evil");
}

#[test]
fn refuses_escaping_symlinks() {
    refused(raw_tar(&[raw_entry("link", tar::EntryType::Symlink, "/etc/passwd", b"")]), "link");
    refused(raw_tar(&[raw_entry("d/link", tar::EntryType::Symlink, "../../evil", b"")]), "d/link");
    // A symlink to a directory inside, then a second one climbing out of it.
    refused(
        raw_tar(&[
            raw_entry("d/", tar::EntryType::Directory, "", b""),
            raw_entry("d/l2", tar::EntryType::Symlink, "..", b""),
            raw_entry("d/l3", tar::EntryType::Symlink, "l2/..", b""),
        ]),
        "d/l3",
    );
    // Writing through a symlink that stays inside is refused too.
    refused(
        raw_tar(&[
            raw_entry("l", tar::EntryType::Symlink, ".", b""),
            raw_entry("l/f", tar::EntryType::Regular, "", b"x"),
        ]),
        "l/f",
    );
}

#[test]
fn refuses_escaping_hardlinks() {
    refused(raw_tar(&[raw_entry("h", tar::EntryType::Link, "../evil", b"")]), "h");
    refused(raw_tar(&[raw_entry("h", tar::EntryType::Link, "/etc/passwd", b"")]), "h");
    refused(raw_tar(&[raw_entry("h", tar::EntryType::Link, "missing", b"")]), "h");
}

#[test]
fn refuses_zip_slip() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&archive).unwrap());
    zip.start_file("../evil", zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(b"x").unwrap();
    zip.finish().unwrap();
    let err = extract(&archive, ArchiveKind::Zip, &dir.path().join("out"), Strip::None, "x").unwrap_err();
    assert!(matches!(&err, ImageError::UnsafeEntry { entry, .. } if entry == "../evil"), "{err}");
}

#[test]
fn extracts_every_format_with_stripping() {
    let dir = tempfile::tempdir().unwrap();
    let gz = common::targz(
        &[
            ("top/", "", 0o755, false),
            ("top/bin/tool", "#!/bin/sh\n", 0o755, false),
            ("top/link", "bin/tool", 0o777, true),
        ],
        5,
    );
    let tar_bytes = {
        let mut d = flate2::read::GzDecoder::new(gz.as_slice());
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut v).unwrap();
        v
    };
    let xz = {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(&tar_bytes).unwrap();
        e.finish().unwrap()
    };
    let zst = zstd::encode_all(tar_bytes.as_slice(), 3).unwrap();
    for (name, bytes, kind, strip) in [
        ("a.tar.gz", gz.clone(), ArchiveKind::TarGz, Strip::One),
        ("a.tar.xz", xz, ArchiveKind::TarXz, Strip::Auto),
        ("a.tar.zst", zst, ArchiveKind::TarZst, Strip::Auto),
    ] {
        let archive = dir.path().join(name);
        std::fs::write(&archive, bytes).unwrap();
        let dest = dir.path().join(format!("out-{name}"));
        extract(&archive, kind, &dest, strip, "x").unwrap();
        let tool = dest.join("bin/tool");
        assert_eq!(std::fs::metadata(&tool).unwrap().permissions().mode() & 0o111, 0o111, "{name}");
        assert_eq!(std::fs::read_link(dest.join("link")).unwrap(), Path::new("bin/tool"));
    }
    // No stripping keeps the top directory.
    let archive = dir.path().join("keep.tar.gz");
    std::fs::write(&archive, &gz).unwrap();
    extract(&archive, ArchiveKind::TarGz, &dir.path().join("keep"), Strip::None, "x").unwrap();
    assert!(dir.path().join("keep/top/bin/tool").is_file());

    // zip with a single top-level directory, auto-stripped.
    let archive = dir.path().join("a.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&archive).unwrap());
    zip.start_file("rg-14/rg", zip::write::SimpleFileOptions::default().unix_permissions(0o755)).unwrap();
    zip.write_all(b"bin").unwrap();
    zip.finish().unwrap();
    extract(&archive, ArchiveKind::Zip, &dir.path().join("zip"), Strip::Auto, "x").unwrap();
    assert_eq!(std::fs::read(dir.path().join("zip/rg")).unwrap(), b"bin");

    // A single binary goes to bin/<name>, executable.
    let archive = dir.path().join("jq-linux-amd64");
    std::fs::write(&archive, b"\x7fELF").unwrap();
    extract(&archive, ArchiveKind::Binary, &dir.path().join("bin"), Strip::Auto, "jq").unwrap();
    let jq = dir.path().join("bin/bin/jq");
    assert_eq!(std::fs::metadata(&jq).unwrap().permissions().mode() & 0o777, 0o755);
}
