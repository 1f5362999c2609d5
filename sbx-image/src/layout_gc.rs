//! Keeping an OCI image layout from growing with every build: one writer at a time, the
//! top-level `index.json` updated per tag, and blobs nothing references any more removed.
//!
//! * **Lock.** Writers take an exclusive `flock` on the layout directory itself (no extra file
//!   in the layout), held while blobs and `index.json` are written and garbage is collected, so
//!   a collection never runs while another `sbx build` is writing into the same layout.
//! * **Reachability.** A blob is kept when `index.json` references it, directly or through the
//!   image indexes and manifests it references (configs, layers, nested manifests). Manifests
//!   are recognised by their descriptor's media type (OCI and Docker schema 2).
//! * **Safety.** When a referenced index or manifest is missing or unreadable, nothing is
//!   removed: the reachable set would be incomplete. Only files directly under
//!   `blobs/<algorithm>/` are candidates; `.tmp-` leftovers of killed writers go too (no writer
//!   can be running while the lock is held).
//!
//! Readers (`sbx start`, `sbx verify`) take a shared lock ([`lock_layout_shared`]) for as long
//! as they read blobs: a rebuild waits for them before it collects, and they wait for a rebuild
//! in progress, so a reader never finds a blob of the image it read gone.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;

use serde_json::Value;

use crate::error::{ImageError, IoContext, Result};

/// Media types whose blobs reference other blobs.
const CONTAINER_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// How deep indexes may nest before the layout is considered malformed.
const MAX_DEPTH: usize = 8;

/// An exclusive lock on a layout directory; released when dropped.
#[derive(Debug)]
pub struct LayoutLock {
    _dir: File,
}

/// Takes the exclusive writer lock of the layout at `dir` (created if missing), waiting for
/// another writer to finish.
pub fn lock_layout(dir: &Path) -> Result<LayoutLock> {
    std::fs::create_dir_all(dir).at(dir)?;
    let handle = File::open(dir).at(dir)?;
    fs4::FileExt::lock(&handle).at(dir)?;
    Ok(LayoutLock { _dir: handle })
}

/// A shared (reader) lock on a layout directory; writers wait until every reader's is dropped.
#[derive(Clone, Debug)]
pub struct LayoutReadLock {
    _dir: std::sync::Arc<File>,
}

/// Takes a reader's lock on the existing layout at `dir`, waiting for a writer to finish.
pub fn lock_layout_shared(dir: &Path) -> Result<LayoutReadLock> {
    let handle = File::open(dir).at(dir)?;
    fs4::FileExt::lock_shared(&handle).at(dir)?;
    Ok(LayoutReadLock { _dir: std::sync::Arc::new(handle) })
}

/// What a collection did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Collected {
    /// Unreferenced blobs removed.
    pub blobs: usize,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// Removes the blobs of the layout at `dir` that its `index.json` no longer reaches. The caller
/// holds [`lock_layout`]. A layout whose references cannot all be read is left untouched
/// (`Ok` with nothing collected).
pub fn collect_garbage(dir: &Path, _lock: &LayoutLock) -> Result<Collected> {
    let Some(reachable) = reachable_blobs(dir)? else { return Ok(Collected::default()) };
    let blobs = dir.join("blobs");
    let mut done = Collected::default();
    let Ok(algorithms) = std::fs::read_dir(&blobs) else { return Ok(done) };
    for algorithm in algorithms.flatten() {
        let alg_name = algorithm.file_name().to_string_lossy().into_owned();
        if !algorithm.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let alg_dir = algorithm.path();
        for entry in std::fs::read_dir(&alg_dir).at(&alg_dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() || reachable.contains(&format!("{alg_name}:{name}")) {
                continue;
            }
            let path = entry.path();
            std::fs::remove_file(&path).at(&path)?;
            if !name.starts_with(".tmp-") {
                done.blobs += 1;
                done.bytes += meta.len();
            }
        }
    }
    Ok(done)
}

/// Every digest `index.json` reaches, or `None` when some referenced index or manifest cannot
/// be read (then nothing may be collected).
fn reachable_blobs(dir: &Path) -> Result<Option<BTreeSet<String>>> {
    let index_path = dir.join("index.json");
    let Ok(bytes) = std::fs::read(&index_path) else { return Ok(None) };
    let Ok(top) = serde_json::from_slice::<Value>(&bytes) else { return Ok(None) };
    let mut reachable = BTreeSet::new();
    let complete = walk(dir, &top, &mut reachable, 0);
    Ok(complete.then_some(reachable))
}

/// Adds the descriptors of `doc` (an index or manifest) and what they reference; `false` when
/// something referenced cannot be read.
fn walk(dir: &Path, doc: &Value, reachable: &mut BTreeSet<String>, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    let config = doc.get("config").into_iter();
    let lists = ["manifests", "layers", "blobs"].into_iter().filter_map(|k| doc.get(k)?.as_array()).flatten();
    let subject = doc.get("subject").into_iter();
    for desc in config.chain(lists).chain(subject) {
        let Some(digest) = desc.get("digest").and_then(Value::as_str) else { return false };
        let Some(path) = blob_path(dir, digest) else { return false };
        if !reachable.insert(digest.to_string()) {
            continue;
        }
        let media_type = desc.get("mediaType").and_then(Value::as_str).unwrap_or_default();
        if !CONTAINER_TYPES.contains(&media_type) {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else { return false };
        let Ok(child) = serde_json::from_slice::<Value>(&bytes) else { return false };
        if !walk(dir, &child, reachable, depth + 1) {
            return false;
        }
    }
    true
}

/// `blobs/<algorithm>/<hex>` for a digest made of safe characters.
fn blob_path(dir: &Path, digest: &str) -> Option<std::path::PathBuf> {
    let (algorithm, encoded) = digest.split_once(':')?;
    let safe =
        |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '_' | '-'));
    (safe(algorithm) && safe(encoded) && !encoded.starts_with('.'))
        .then(|| dir.join("blobs").join(algorithm).join(encoded))
}

/// The entries of the existing top-level `index.json` at `dir` to keep next to a new entry
/// tagged `tag`: every entry but the one with that tag. `None` when there is no readable index
/// (then only the new entry is written and nothing is collected from the old one).
pub(crate) fn other_entries(dir: &Path, tag: &str) -> Result<Option<Vec<Value>>> {
    let path = dir.join("index.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(Vec::new())),
        Err(source) => return Err(ImageError::Io { path, source }),
    };
    let Ok(top) = serde_json::from_slice::<Value>(&bytes) else { return Ok(None) };
    let Some(entries) = top.get("manifests").and_then(Value::as_array) else { return Ok(None) };
    let tagged =
        |e: &Value| e.pointer("/annotations/org.opencontainers.image.ref.name").and_then(Value::as_str) == Some(tag);
    Ok(Some(entries.iter().filter(|e| !tagged(e)).cloned().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(dir: &Path, bytes: &[u8]) -> String {
        let digest = crate::digest::sha256_digest(bytes);
        let path = blob_path(dir, &digest).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
        digest
    }

    fn desc(media_type: &str, digest: &str) -> Value {
        serde_json::json!({"mediaType": media_type, "digest": digest, "size": 1})
    }

    #[test]
    fn keeps_what_the_index_reaches_and_removes_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let layer = put(dir, b"layer");
        let config = put(dir, b"{}");
        let old_layer = put(dir, b"old layer");
        let manifest = serde_json::json!({"config": desc("application/vnd.oci.image.config.v1+json", &config),
            "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", &layer)]});
        let manifest = put(dir, manifest.to_string().as_bytes());
        let nested = serde_json::json!({"manifests": [desc(CONTAINER_TYPES[1], &manifest)]});
        let nested = put(dir, nested.to_string().as_bytes());
        std::fs::write(dir.join("blobs/sha256/.tmp-killed"), b"partial").unwrap();
        let top = serde_json::json!({"manifests": [desc(CONTAINER_TYPES[0], &nested)]});
        std::fs::write(dir.join("index.json"), top.to_string()).unwrap();

        let lock = lock_layout(dir).unwrap();
        let done = collect_garbage(dir, &lock).unwrap();
        assert_eq!(done, Collected { blobs: 1, bytes: 9 });
        for kept in [&layer, &config, &manifest, &nested] {
            assert!(blob_path(dir, kept).unwrap().is_file(), "{kept} kept");
        }
        assert!(!blob_path(dir, &old_layer).unwrap().exists());
        assert!(!dir.join("blobs/sha256/.tmp-killed").exists());
    }

    #[test]
    fn an_unreadable_manifest_means_nothing_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let stray = put(dir, b"stray");
        let missing = crate::digest::sha256_digest(b"not written");
        let top = serde_json::json!({"manifests": [desc(CONTAINER_TYPES[1], &missing)]});
        std::fs::write(dir.join("index.json"), top.to_string()).unwrap();
        let lock = lock_layout(dir).unwrap();
        assert_eq!(collect_garbage(dir, &lock).unwrap(), Collected::default());
        assert!(blob_path(dir, &stray).unwrap().is_file());
        std::fs::write(dir.join("index.json"), "not json").unwrap();
        assert_eq!(collect_garbage(dir, &lock).unwrap(), Collected::default());
        assert!(blob_path(dir, &stray).unwrap().is_file());
        assert!(blob_path(dir, "sha256:../x").is_none());
    }

    #[test]
    fn a_second_writer_waits_for_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let lock = lock_layout(tmp.path()).unwrap();
        let other = File::open(tmp.path()).unwrap();
        assert!(fs4::FileExt::try_lock(&other).is_err(), "the layout is locked");
        drop(lock);
        assert!(fs4::FileExt::try_lock(&other).is_ok(), "released on drop");
    }

    #[test]
    fn readers_share_and_a_writer_waits_for_every_reader() {
        let tmp = tempfile::tempdir().unwrap();
        let first = lock_layout_shared(tmp.path()).unwrap();
        let second = lock_layout_shared(tmp.path()).unwrap();
        let writer = File::open(tmp.path()).unwrap();
        assert!(fs4::FileExt::try_lock(&writer).is_err(), "readers hold the layout");
        drop(first);
        let clone = second.clone();
        drop(second);
        assert!(fs4::FileExt::try_lock(&writer).is_err(), "a clone keeps the reader's lock");
        drop(clone);
        assert!(fs4::FileExt::try_lock(&writer).is_ok(), "released with the last reader");
    }
}
