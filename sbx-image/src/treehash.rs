//! The parity tree hash: one NAR-like digest of an installed tree.
//!
//! Definition (version 1). Collect every entry below the root (the root itself excluded) as
//! `(relative path, record)`; sort by the path's bytes; the digest is
//! `sha256:` + SHA-256 over the string `sbx-tree-v1\0` followed by, for each entry in order:
//!
//! * directory: `d\0<path>\0`
//! * regular file: `f\0<path>\0<x or ->\0<sha256 hex of the content>\0` (`x` = any exec bit set)
//! * symlink: `l\0<path>\0<target bytes>\0`
//!
//! Paths use `/` separators and no leading `./`. Nothing else counts: no mtimes, owners, other
//! mode bits, or hard-link structure (a hard link is hashed as the file it links to).

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{IoContext, Result};

/// The kind of one tree entry, with what the hash covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeRecord {
    /// A directory.
    Dir,
    /// A regular file: exec bit and content SHA-256 (lowercase hex).
    File {
        /// Whether any exec bit is set.
        exec: bool,
        /// SHA-256 of the content, lowercase hex.
        sha256: String,
    },
    /// A symlink and its target, never followed.
    Symlink(Vec<u8>),
}

/// Accumulates records in any order and produces the tree hash.
#[derive(Debug, Default)]
pub struct TreeHasher {
    entries: Vec<(Vec<u8>, TreeRecord)>,
}

impl TreeHasher {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one entry at `path` (relative, `/`-separated).
    pub fn push(&mut self, path: &[u8], record: TreeRecord) {
        self.entries.push((path.to_vec(), record));
    }

    /// The entries sorted by path, as hashed.
    pub fn entries(&mut self) -> &[(Vec<u8>, TreeRecord)] {
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        &self.entries
    }

    /// The `sha256:<hex>` tree hash.
    pub fn finish(mut self) -> String {
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut h = Sha256::new();
        h.update(b"sbx-tree-v1\0");
        for (path, record) in &self.entries {
            match record {
                TreeRecord::Dir => {
                    h.update(b"d\0");
                    h.update(path);
                    h.update(b"\0");
                }
                TreeRecord::File { exec, sha256 } => {
                    h.update(b"f\0");
                    h.update(path);
                    h.update(if *exec { b"\0x\0" } else { b"\0-\0" });
                    h.update(sha256.as_bytes());
                    h.update(b"\0");
                }
                TreeRecord::Symlink(target) => {
                    h.update(b"l\0");
                    h.update(path);
                    h.update(b"\0");
                    h.update(target);
                    h.update(b"\0");
                }
            }
        }
        format!("sha256:{}", hex::encode(h.finalize()))
    }
}

/// Reads the tree under `root` from disk (symlinks not followed) into a [`TreeHasher`].
pub fn tree_records(root: &Path) -> Result<TreeHasher> {
    let mut hasher = TreeHasher::new();
    for entry in walkdir::WalkDir::new(root).follow_links(false).min_depth(1) {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            crate::error::ImageError::Io { path, source: std::io::Error::other(e.to_string()) }
        })?;
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap_or(path).as_os_str().as_bytes().to_vec();
        let meta = std::fs::symlink_metadata(path).at(path)?;
        let ft = meta.file_type();
        let record = if ft.is_symlink() {
            TreeRecord::Symlink(std::fs::read_link(path).at(path)?.as_os_str().as_bytes().to_vec())
        } else if ft.is_dir() {
            TreeRecord::Dir
        } else if ft.is_file() {
            TreeRecord::File { exec: meta.permissions().mode() & 0o111 != 0, sha256: file_sha256(path)? }
        } else {
            continue;
        };
        hasher.push(&rel, record);
    }
    Ok(hasher)
}

/// The tree hash of the directory `root` on disk.
pub fn tree_hash_dir(root: &Path) -> Result<String> {
    Ok(tree_records(root)?.finish())
}

/// SHA-256 (hex) of a file's content.
pub fn file_sha256(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).at(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).at(path)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree(dir: &Path, exec: u32, content: &[u8]) {
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/tool"), content).unwrap();
        std::fs::set_permissions(dir.join("bin/tool"), std::fs::Permissions::from_mode(exec)).unwrap();
        symlink("bin/tool", dir.join("link")).unwrap();
    }

    #[test]
    fn hash_covers_content_exec_and_links_only() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        tree(a.path(), 0o755, b"x");
        tree(b.path(), 0o700, b"x");
        // Different non-exec mode bits and mtimes do not matter.
        assert_eq!(tree_hash_dir(a.path()).unwrap(), tree_hash_dir(b.path()).unwrap());
        std::fs::set_permissions(b.path().join("bin/tool"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_ne!(tree_hash_dir(a.path()).unwrap(), tree_hash_dir(b.path()).unwrap());
        let c = tempfile::tempdir().unwrap();
        tree(c.path(), 0o755, b"y");
        assert_ne!(tree_hash_dir(a.path()).unwrap(), tree_hash_dir(c.path()).unwrap());
    }

    #[test]
    fn order_independent_and_stable() {
        let mut h1 = TreeHasher::new();
        h1.push(b"b", TreeRecord::Dir);
        h1.push(b"a", TreeRecord::Symlink(b"b".to_vec()));
        let mut h2 = TreeHasher::new();
        h2.push(b"a", TreeRecord::Symlink(b"b".to_vec()));
        h2.push(b"b", TreeRecord::Dir);
        let d = h1.finish();
        assert_eq!(d, h2.finish());
        assert_eq!(TreeHasher::new().finish(), crate::digest::sha256_digest(b"sbx-tree-v1\0"));
    }
}
