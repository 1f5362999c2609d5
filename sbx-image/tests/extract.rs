//! Extraction to disk and into a layer tree: formats, stripping, refusing entries that escape
//! the target, and the same layer from both.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sbx_image::ImageError;
use sbx_image::extract::{ArchiveKind, Strip, add_archive, extract};
use sbx_image::layer::{LayerBlob, LayerOptions, LayerTree, write_layer};

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
    // The same rules when the archive goes straight into a layer tree.
    let mut tree = LayerTree::new();
    let err = add_archive(&mut tree, "opt/t", &archive, ArchiveKind::Tar, Strip::None, "x", dir.path()).unwrap_err();
    match &err {
        ImageError::UnsafeEntry { entry: e, .. } => assert_eq!(e, entry, "{err}"),
        other => panic!("expected an unsafe-entry error for {entry} in the tree, got {other}"),
    }
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
    let mut tree = LayerTree::new();
    let err = add_archive(&mut tree, "opt/t", &archive, ArchiveKind::Zip, Strip::None, "x", dir.path()).unwrap_err();
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

/// A release-like tar: one top directory, an executable, a symlink, a hard link whose path
/// sorts before its target, an empty directory, and a file replaced by a later entry.
fn release_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, mode: u32, link: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        if kind == tar::EntryType::Symlink || kind == tar::EntryType::Link {
            h.set_link_name(link).unwrap();
        }
        b.append_data(&mut h, name, data).unwrap();
    };
    use tar::EntryType as T;
    add("tool-1.0/", T::Directory, 0o755, "", b"");
    add("tool-1.0/bin/", T::Directory, 0o700, "", b"");
    add("tool-1.0/bin/tool", T::Regular, 0o775, "", b"#!/bin/sh\necho 1.0\n");
    add("tool-1.0/bin/a-tool", T::Link, 0o775, "tool-1.0/bin/tool", b"");
    add("tool-1.0/lib/libx.so.1", T::Regular, 0o644, "", &vec![7u8; 100_000]);
    add("tool-1.0/lib/libx.so", T::Symlink, 0o777, "libx.so.1", b"");
    add("tool-1.0/share/empty/", T::Directory, 0o755, "", b"");
    add("tool-1.0/README", T::Regular, 0o644, "", b"old");
    add("tool-1.0/README", T::Regular, 0o600, "", b"new readme");
    b.into_inner().unwrap()
}

fn layer_from_disk(archive: &Path, kind: ArchiveKind, strip: Strip, work: &Path) -> LayerBlob {
    let dest = work.join(format!("disk-{}", archive.file_name().unwrap().to_string_lossy()));
    extract(archive, kind, &dest, strip, "tool").unwrap();
    let mut tree = LayerTree::new();
    tree.add_tree("opt/tool/1.0", &dest).unwrap();
    write_layer(&tree, &LayerOptions::default(), &work.join("blobs"), Some("opt/tool/1.0")).unwrap()
}

fn layer_from_tree(archive: &Path, kind: ArchiveKind, strip: Strip, work: &Path) -> (LayerTree, LayerBlob) {
    let mut tree = LayerTree::new();
    add_archive(&mut tree, "opt/tool/1.0", archive, kind, strip, "tool", work).unwrap();
    let blob = write_layer(&tree, &LayerOptions::default(), &work.join("blobs"), Some("opt/tool/1.0")).unwrap();
    (tree, blob)
}

#[test]
fn a_layer_read_from_the_archive_equals_the_layer_of_the_extracted_tree() {
    let dir = tempfile::tempdir().unwrap();
    let tar_bytes = release_tar();
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(&tar_bytes).unwrap();
        e.finish().unwrap()
    };
    let xz = {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(&tar_bytes).unwrap();
        e.finish().unwrap()
    };
    let zst = zstd::encode_all(tar_bytes.as_slice(), 3).unwrap();
    let mut digests = Vec::new();
    for (name, bytes, kind, strip) in [
        ("t.tar", tar_bytes.clone(), ArchiveKind::Tar, Strip::Auto),
        ("t.tar.gz", gz, ArchiveKind::TarGz, Strip::One),
        ("t.tar.xz", xz, ArchiveKind::TarXz, Strip::Auto),
        ("t.tar.zst", zst, ArchiveKind::TarZst, Strip::Auto),
    ] {
        let archive = dir.path().join(name);
        std::fs::write(&archive, bytes).unwrap();
        let disk = layer_from_disk(&archive, kind, strip, dir.path());
        let (tree, streamed) = layer_from_tree(&archive, kind, strip, dir.path());
        assert_eq!(streamed, disk, "{name}: the same layer either way");
        assert!(streamed.tree_hash.is_some());
        assert!(tree.is_dir("opt/tool/1.0/bin") && tree.is_dir("opt/tool/1.0/share/empty"), "{name}");
        digests.push(streamed.digest);
    }
    digests.dedup();
    assert_eq!(digests.len(), 1, "every compression of the same tar gives the same layer");

    // The hard link is written once, as a link to the first path of the pair.
    let blob = dir.path().join("blobs").join(digests[0].trim_start_matches("sha256:"));
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(blob).unwrap()));
    let mut seen = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = String::from_utf8(e.path_bytes().to_vec()).unwrap();
        let kind = e.header().entry_type();
        let link = e.link_name_bytes().map(|l| String::from_utf8(l.to_vec()).unwrap());
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        seen.push((path, kind, link, data, e.header().mode().unwrap()));
    }
    let find = |p: &str| seen.iter().find(|s| s.0 == p).unwrap_or_else(|| panic!("{p} in {seen:?}"));
    assert_eq!(find("opt/tool/1.0/bin/a-tool").1, tar::EntryType::Regular);
    assert_eq!(find("opt/tool/1.0/bin/a-tool").3, b"#!/bin/sh\necho 1.0\n");
    assert_eq!(find("opt/tool/1.0/bin/a-tool").4, 0o755);
    assert_eq!(find("opt/tool/1.0/bin/tool").1, tar::EntryType::Link);
    assert_eq!(find("opt/tool/1.0/bin/tool").2.as_deref(), Some("opt/tool/1.0/bin/a-tool"));
    assert_eq!(find("opt/tool/1.0/README").3, b"new readme");
    assert_eq!(find("opt/tool/1.0/lib/libx.so").2.as_deref(), Some("libx.so.1"));
    assert_eq!(find("opt/tool/1.0/lib/libx.so.1").3.len(), 100_000);

    // zip (entries spooled) and a single binary (read in place) agree with disk too.
    let zip_path = dir.path().join("t.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    zip.start_file("rg-14/rg", zip::write::SimpleFileOptions::default().unix_permissions(0o755)).unwrap();
    zip.write_all(&vec![1u8; 50_000]).unwrap();
    zip.start_file("rg-14/doc/rg.1", zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(b"manual").unwrap();
    zip.finish().unwrap();
    let binary = dir.path().join("jq-linux-amd64");
    std::fs::write(&binary, b"\x7fELF binary").unwrap();
    for (archive, kind) in [(&zip_path, ArchiveKind::Zip), (&binary, ArchiveKind::Binary)] {
        let disk = layer_from_disk(archive, kind, Strip::Auto, dir.path());
        let (_, streamed) = layer_from_tree(archive, kind, Strip::Auto, dir.path());
        assert_eq!(streamed, disk, "{kind:?}");
    }
    // A single binary of a core tool (stripped archives) still lands at bin/<name>.
    let (tree, _) = layer_from_tree(&binary, ArchiveKind::Binary, Strip::One, dir.path());
    assert!(tree.is_dir("opt/tool/1.0/bin"), "{:?}", tree.entries().keys().collect::<Vec<_>>());
    let one_dir = dir.path().join("binary-strip-one");
    extract(&binary, ArchiveKind::Binary, &one_dir, Strip::One, "tool").unwrap();
    assert!(one_dir.join("bin/tool").is_file());
}

#[test]
fn a_truncated_tar_is_an_archive_error_not_a_short_layer() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = release_tar();
    // Cut inside the 100 kB library's data.
    let at = bytes.windows(9).position(|w| w == b"libx.so.1").unwrap() + 512 + 50_000;
    bytes.truncate(at);
    let archive = dir.path().join("cut.tar");
    std::fs::write(&archive, bytes).unwrap();
    for strip in [Strip::Auto, Strip::None] {
        let mut tree = LayerTree::new();
        let err = add_archive(&mut tree, "opt/t", &archive, ArchiveKind::Tar, strip, "x", dir.path()).unwrap_err();
        assert!(
            matches!(&err, ImageError::Archive { message, .. } if message.contains("EOF") || message.contains("truncated")),
            "{err}"
        );
    }
}
