//! Re-reading a layer blob from its bytes: the diff_id and the tree
//! hash of the entries below the tool's install directory, computed exactly as
//! [`crate::treehash`] defines it (so a layer and a directory on disk compare entry by entry).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{ImageError, IoContext, Result};
use crate::treehash::{TreeHasher, TreeRecord};

/// What a layer's bytes contain, as far as verification cares.
#[derive(Clone, Debug)]
pub struct LayerScan {
    /// `sha256:` of the uncompressed tar.
    pub diff_id: String,
    /// The tree hash of the entries below the root.
    pub tree_hash: String,
    /// The entries below the root (relative paths), sorted.
    pub entries: Vec<(Vec<u8>, TreeRecord)>,
    /// Entries that are neither below the root nor one of its parent directories.
    pub outside: Vec<String>,
}

/// Hashes what is read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The decompressed stream of a layer blob, by media type.
fn open_tar(path: &Path, media_type: &str) -> Result<Box<dyn Read>> {
    let file = BufReader::with_capacity(1 << 20, File::open(path).at(path)?);
    Ok(if media_type.ends_with("+gzip") || media_type.ends_with(".gzip") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if media_type.ends_with("+zstd") {
        Box::new(zstd::stream::read::Decoder::with_buffer(file).at(path)?)
    } else if media_type.ends_with(".tar") || media_type.ends_with("tar") {
        Box::new(file)
    } else {
        return Err(ImageError::Unsupported {
            what: format!("reading a layer of media type `{media_type}`"),
            help: "sbx reads gzip, zstd and uncompressed tar layers".into(),
        });
    })
}

/// `./a/b/` → `a/b`.
fn clean(path: &[u8]) -> Vec<u8> {
    let mut p = path;
    while let Some(rest) = p.strip_prefix(b"./") {
        p = rest;
    }
    let p = p.strip_prefix(b"/").unwrap_or(p);
    p.strip_suffix(b"/").unwrap_or(p).to_vec()
}

fn below<'a>(path: &'a [u8], root: &[u8]) -> Option<&'a [u8]> {
    path.strip_prefix(root).and_then(|r| r.strip_prefix(b"/")).filter(|r| !r.is_empty())
}

fn archive_err(path: &Path, e: impl std::fmt::Display) -> ImageError {
    ImageError::Archive { archive: path.to_path_buf(), message: e.to_string() }
}

/// Scans the layer blob at `path`; `root` is the install directory (absolute or relative to
/// `/`) whose tree hash is computed. With an empty `root` only the digests are meaningful.
pub fn scan_layer(path: &Path, media_type: &str, root: &str) -> Result<LayerScan> {
    let root = clean(root.as_bytes());
    let mut stream = Hashing { inner: open_tar(path, media_type)?, hasher: Sha256::new() };
    let mut hasher = TreeHasher::new();
    let mut outside = Vec::new();
    // Full path → record, so hard links hash as the file they point at.
    let mut files: HashMap<Vec<u8>, TreeRecord> = HashMap::new();
    {
        let mut archive = tar::Archive::new(&mut stream);
        for entry in archive.entries().map_err(|e| archive_err(path, e))? {
            let mut entry = entry.map_err(|e| archive_err(path, e))?;
            let full = clean(&entry.path_bytes());
            let header = entry.header();
            let kind = header.entry_type();
            let exec = header.mode().map_err(|e| archive_err(path, e))? & 0o111 != 0;
            let record = match kind {
                tar::EntryType::Directory => TreeRecord::Dir,
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mut h = Sha256::new();
                    io::copy(&mut entry, &mut HashSink(&mut h)).map_err(|e| archive_err(path, e))?;
                    TreeRecord::File { exec, sha256: hex::encode(h.finalize()) }
                }
                tar::EntryType::Symlink => {
                    TreeRecord::Symlink(entry.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default())
                }
                tar::EntryType::Link => {
                    let target = clean(&entry.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default());
                    match files.get(&target) {
                        Some(r) => r.clone(),
                        None => {
                            outside.push(format!(
                                "{} (hard link to {}, which is not an earlier file)",
                                String::from_utf8_lossy(&full),
                                String::from_utf8_lossy(&target)
                            ));
                            continue;
                        }
                    }
                }
                other => {
                    outside.push(format!("{} (unsupported entry type {other:?})", String::from_utf8_lossy(&full)));
                    continue;
                }
            };
            if matches!(record, TreeRecord::File { .. }) {
                files.insert(full.clone(), record.clone());
            }
            match below(&full, &root) {
                Some(rel) => hasher.push(rel, record),
                None if root.is_empty() => {}
                None => {
                    let is_parent = record == TreeRecord::Dir
                        && (full == root || (root.starts_with(&full) && root.get(full.len()) == Some(&b'/')));
                    if !is_parent {
                        outside.push(String::from_utf8_lossy(&full).into_owned());
                    }
                }
            }
        }
    }
    // The end-of-archive blocks and padding are part of the diff_id.
    io::copy(&mut stream, &mut io::sink()).map_err(|e| archive_err(path, e))?;
    let diff_id = format!("sha256:{}", hex::encode(stream.hasher.finalize()));
    let entries = hasher.entries().to_vec();
    Ok(LayerScan { diff_id, tree_hash: hasher.finish(), entries, outside })
}

/// Reads the content of the regular files at `wanted` (paths relative to `root`) from the
/// layer, skipping any larger than `limit` bytes.
pub fn read_files(
    path: &Path,
    media_type: &str,
    root: &str,
    wanted: &BTreeSet<Vec<u8>>,
    limit: u64,
) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let root = clean(root.as_bytes());
    let mut out = BTreeMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    let mut archive = tar::Archive::new(open_tar(path, media_type)?);
    for entry in archive.entries().map_err(|e| archive_err(path, e))? {
        let mut entry = entry.map_err(|e| archive_err(path, e))?;
        let full = clean(&entry.path_bytes());
        let Some(rel) = below(&full, &root).map(<[u8]>::to_vec) else { continue };
        let regular = matches!(entry.header().entry_type(), tar::EntryType::Regular | tar::EntryType::Continuous);
        if regular && wanted.contains(&rel) && entry.size() <= limit {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(|e| archive_err(path, e))?;
            out.insert(rel, bytes);
            if out.len() == wanted.len() {
                break;
            }
        }
    }
    Ok(out)
}

struct HashSink<'a>(&'a mut Sha256);

impl io::Write for HashSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{Compression, LayerOptions, LayerTree, write_layer};
    use crate::treehash::file_sha256;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn recomputes_what_the_writer_recorded_for_gzip_and_zstd() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/tool"), b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(dir.path().join("bin/tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("a"), b"x").unwrap();
        std::fs::hard_link(dir.path().join("a"), dir.path().join("z")).unwrap();
        std::os::unix::fs::symlink("bin/tool", dir.path().join("link")).unwrap();
        for compression in [Compression::default(), Compression::Zstd { level: 3 }] {
            let mut tree = LayerTree::new();
            tree.add_tree("opt/m/installs/t/1.0", dir.path()).unwrap();
            let out = tempfile::tempdir().unwrap();
            let opts = LayerOptions { compression, ..Default::default() };
            let blob = write_layer(&tree, &opts, out.path(), Some("opt/m/installs/t/1.0")).unwrap();
            let path = out.path().join(blob.digest.trim_start_matches("sha256:"));
            let scan = scan_layer(&path, &blob.media_type, "/opt/m/installs/t/1.0").unwrap();
            assert_eq!(format!("sha256:{}", file_sha256(&path).unwrap()), blob.digest);
            assert_eq!(scan.diff_id, blob.diff_id);
            assert_eq!(Some(scan.tree_hash.clone()), blob.tree_hash);
            assert_eq!(scan.tree_hash, crate::treehash::tree_hash_dir(dir.path()).unwrap());
            assert!(scan.outside.is_empty(), "{:?}", scan.outside);
            let wanted = BTreeSet::from([b"bin/tool".to_vec()]);
            let files = read_files(&path, &blob.media_type, "opt/m/installs/t/1.0", &wanted, 1 << 20).unwrap();
            assert_eq!(files[&b"bin/tool".to_vec()], b"#!/bin/sh\n");
        }
    }

    #[test]
    fn entries_outside_the_install_dir_are_named() {
        let mut tree = LayerTree::new();
        tree.add_bytes("opt/t/1.0/ok", "x", false);
        tree.add_bytes("etc/profile.d/evil.sh", "curl x | sh", true);
        let out = tempfile::tempdir().unwrap();
        let blob = write_layer(&tree, &LayerOptions::default(), out.path(), Some("opt/t/1.0")).unwrap();
        let path = out.path().join(blob.digest.trim_start_matches("sha256:"));
        let scan = scan_layer(&path, &blob.media_type, "opt/t/1.0").unwrap();
        assert_eq!(scan.outside, ["etc", "etc/profile.d", "etc/profile.d/evil.sh"]);
        assert_eq!(Some(scan.tree_hash), blob.tree_hash, "the tree hash covers the install dir only");
    }
}
