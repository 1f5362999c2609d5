//! The content-addressed cache: downloads by checksum, built layers by key, a file lock.
//!
//! Layout under the root (`$SBX_CACHE_DIR`, else the user's cache dir + `/sbx`):
//! `downloads/<algo>/<hex>` (verified artifacts), `blobs/sha256/<hex>` (layer and image blobs),
//! `layers/<key>.json` (layer cache entries), `tmp/` (work dirs, same filesystem for renames),
//! `locks/` (one lock file per entry being produced).

use std::fs::File;
use std::path::{Path, PathBuf};

use sbx_mise::lockfile::model::Checksum;

use crate::error::{ImageError, IoContext, Result};

/// Environment variable that overrides the cache root.
pub const CACHE_DIR_ENV: &str = "SBX_CACHE_DIR";

/// The cache root and its sub-directories.
#[derive(Clone, Debug)]
pub struct Cache {
    root: PathBuf,
}

/// An exclusive lock on one cache entry; released on drop.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

impl Cache {
    /// A cache rooted at `root` (created on demand).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The default cache: `$SBX_CACHE_DIR`, else `<user cache dir>/sbx`.
    pub fn from_env() -> Result<Self> {
        if let Some(dir) = std::env::var_os(CACHE_DIR_ENV).filter(|d| !d.is_empty()) {
            return Ok(Self::new(PathBuf::from(dir)));
        }
        let base = dirs::cache_dir().ok_or_else(|| ImageError::Io {
            path: PathBuf::from("~/.cache"),
            source: std::io::Error::other(format!("no user cache directory; set {CACHE_DIR_ENV}")),
        })?;
        Ok(Self::new(base.join("sbx")))
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the artifact with `checksum` is (or will be) stored.
    pub fn download_path(&self, checksum: &Checksum) -> PathBuf {
        self.root.join("downloads").join(checksum.algorithm()).join(checksum.hex())
    }

    /// Where the blob with OCI digest `sha256:<hex>` is stored.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.root.join("blobs").join("sha256").join(hex)
    }

    /// The layer cache entry file for `key`.
    pub fn layer_entry_path(&self, key: &str) -> PathBuf {
        self.root.join("layers").join(format!("{key}.json"))
    }

    /// A fresh temporary directory inside the cache (same filesystem as the entries).
    pub fn temp_dir(&self) -> Result<tempfile::TempDir> {
        let dir = self.root.join("tmp");
        std::fs::create_dir_all(&dir).at(&dir)?;
        tempfile::Builder::new().prefix("work-").tempdir_in(&dir).at(&dir)
    }

    /// Removes leftovers of runs that were killed (work dirs in `tmp/`, `.part-*` downloads,
    /// `.layer-*` blobs) older than `age`; younger ones may belong to a run in progress.
    /// Returns how many entries were removed. Errors are ignored: this is housekeeping.
    pub fn remove_stale(&self, age: std::time::Duration) -> usize {
        let now = std::time::SystemTime::now();
        let old = |p: &Path| {
            std::fs::symlink_metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).is_ok_and(|d| d > age))
        };
        let mut removed = 0;
        let dirs = [
            (self.root.join("tmp"), "work-"),
            (self.root.join("blobs").join("sha256"), ".layer-"),
            (self.root.join("downloads").join("sha256"), ".part-"),
            (self.root.join("downloads").join("sha512"), ".part-"),
        ];
        for (dir, prefix) in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                let stale = entry.file_name().to_string_lossy().starts_with(prefix) && old(&path);
                if stale && (std::fs::remove_dir_all(&path).is_ok() || std::fs::remove_file(&path).is_ok()) {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Takes the exclusive lock named `name` (blocking until other runs release it).
    pub fn lock(&self, name: &str) -> Result<CacheLock> {
        let dir = self.root.join("locks");
        std::fs::create_dir_all(&dir).at(&dir)?;
        let path = dir.join(format!("{name}.lock"));
        let file = File::options().create(true).truncate(false).write(true).open(&path).at(&path)?;
        fs4::FileExt::lock(&file).at(&path)?;
        Ok(CacheLock { _file: file })
    }
}

/// Writes `bytes` to `path` through a temp file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).at(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir).at(dir)?;
    tmp.write_all(bytes).at(tmp.path())?;
    tmp.persist(path).map_err(|e| ImageError::Io { path: path.to_path_buf(), source: e.error })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_lock() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let c = Checksum::Sha256("ab".repeat(32));
        assert!(cache.download_path(&c).ends_with(format!("downloads/sha256/{}", "ab".repeat(32))));
        assert!(cache.blob_path("sha256:00").ends_with("blobs/sha256/00"));
        let _l = cache.lock("x").unwrap();
        write_atomic(&dir.path().join("a/b"), b"hi").unwrap();

        // Leftovers of a killed run: old ones go, fresh ones (a run in progress) stay.
        let work = cache.temp_dir().unwrap().keep();
        let part = cache.download_path(&c).with_file_name(".part-x");
        write_atomic(&part, b"partial").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        std::fs::File::options().write(true).open(&part).unwrap().set_modified(old).unwrap();
        assert_eq!(cache.remove_stale(std::time::Duration::from_secs(3600)), 1);
        assert!(!part.exists() && work.exists());
        assert_eq!(cache.remove_stale(std::time::Duration::ZERO), 1);
        assert!(!work.exists());
        assert_eq!(std::fs::read(dir.path().join("a/b")).unwrap(), b"hi");
    }
}
