//! The on-disk HTTP cache: one file per URL, written whole or not at all.
//!
//! An entry is a single file `<root>/<aa>/<sha256(key)>` holding a header line, one line of
//! JSON metadata (URL, validators, body length and sha256) and the body. It is written to a
//! temp file in the same directory and renamed, so a killed run leaves either the old entry or
//! the new one; a reader also checks the recorded length and sha256 and treats any mismatch
//! as a miss, so a damaged file is never served.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// First line of every entry; bump it when the layout changes (old entries become misses).
const MAGIC: &[u8] = b"sbx-http-cache 1\n";

/// What is stored next to a body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMeta {
    /// The URL (or key) the entry belongs to; checked on read against hash collisions.
    pub key: String,
    /// `ETag` of the response, sent back as `If-None-Match`.
    pub etag: Option<String>,
    /// `Last-Modified` of the response, sent back as `If-Modified-Since`.
    pub last_modified: Option<String>,
    /// Body length in bytes.
    pub len: u64,
    /// Body sha256, lowercase hex.
    pub sha256: String,
}

/// A cached response.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Validators and integrity data.
    pub meta: EntryMeta,
    /// The body.
    pub body: Bytes,
}

/// The cache directory.
#[derive(Clone, Debug)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// A cache rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The cache's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file an entry for `key` lives in.
    pub fn path_for(&self, key: &str) -> PathBuf {
        let hash = hex::encode(Sha256::digest(key.as_bytes()));
        self.root.join(&hash[..2]).join(hash)
    }

    /// The entry for `key`, if present and intact. A damaged entry reads as absent.
    pub fn read(&self, key: &str) -> Option<Entry> {
        let raw = std::fs::read(self.path_for(key)).ok()?;
        let rest = raw.strip_prefix(MAGIC)?;
        let newline = rest.iter().position(|b| *b == b'\n')?;
        let meta: EntryMeta = serde_json::from_slice(&rest[..newline]).ok()?;
        let body = &rest[newline + 1..];
        if meta.key != key || meta.len != body.len() as u64 || hex::encode(Sha256::digest(body)) != meta.sha256 {
            return None;
        }
        Some(Entry { meta, body: Bytes::copy_from_slice(body) })
    }

    /// Stores `body` for `key` atomically (temp file + rename in the entry's directory). Blocking;
    /// the client calls it from a blocking thread.
    pub fn write(
        &self,
        key: &str,
        etag: Option<String>,
        last_modified: Option<String>,
        body: &[u8],
    ) -> std::io::Result<()> {
        let path = self.path_for(key);
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir)?;
        let meta = EntryMeta {
            key: key.to_string(),
            etag,
            last_modified,
            len: body.len() as u64,
            sha256: hex::encode(Sha256::digest(body)),
        };
        let line = serde_json::to_vec(&meta).map_err(std::io::Error::other)?;
        let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
        tmp.write_all(MAGIC)?;
        tmp.write_all(&line)?;
        tmp.write_all(b"\n")?;
        tmp.write_all(body)?;
        // No fsync: an entry torn by a crash fails the reader's length and sha256 check and is
        // a miss, so durability would only cost time on every response.
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        assert!(cache.read("http://x/a").is_none());
        cache.write("http://x/a", Some("\"e1\"".into()), None, b"hello").unwrap();
        let e = cache.read("http://x/a").unwrap();
        assert_eq!(&e.body[..], b"hello");
        assert_eq!(e.meta.etag.as_deref(), Some("\"e1\""));

        // A truncated entry (as a torn write without rename would leave) is never served.
        let path = cache.path_for("http://x/a");
        let raw = std::fs::read(&path).unwrap();
        std::fs::write(&path, &raw[..raw.len() - 2]).unwrap();
        assert!(cache.read("http://x/a").is_none());
        // Same length, different bytes: the checksum catches it.
        let mut flipped = raw.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(cache.read("http://x/a").is_none());
    }

    #[test]
    fn leftover_temp_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        cache.write("k", None, None, b"old").unwrap();
        // A run killed mid-write leaves only a temp file next to the entry.
        let path = cache.path_for("k");
        std::fs::write(path.parent().unwrap().join(".tmp-killed"), b"partial").unwrap();
        assert_eq!(&cache.read("k").unwrap().body[..], b"old");
    }
}
