//! The rootfs cache: each image is unpacked once into `<cache>/rootfs/<manifest hex>/`, written to
//! a temporary directory and renamed, under a file lock, so concurrent and killed starts never see
//! a half-written tree. A warm start only reads `index.json` and the manifest.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::oci::{self, ImageSettings};
use crate::unpack;

/// Where sbx keeps caches: `$SBX_CACHE_DIR`, else the user's cache dir + `sbx`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SBX_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("sbx")
}

/// An image unpacked and ready to be shared read-only by sandboxes.
#[derive(Debug, Clone)]
pub struct PreparedRootfs {
    /// The root filesystem directory (never written after it is published).
    pub rootfs: PathBuf,
    /// The manifest digest this rootfs was unpacked from.
    pub manifest_digest: String,
    /// Runtime settings from the image config.
    pub settings: ImageSettings,
    /// Whether this call unpacked the image (a cold start).
    pub unpacked: bool,
}

/// The cache of unpacked root filesystems.
#[derive(Debug, Clone)]
pub struct RootfsCache {
    dir: PathBuf,
}

const SETTINGS_FILE: &str = "image.json";

impl RootfsCache {
    /// A cache rooted at `cache_dir` (the rootfs entries live under `cache_dir/rootfs`).
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        RootfsCache { dir: cache_dir.into().join("rootfs") }
    }

    /// Returns the rootfs for the image layout at `layout`, unpacking it if this is the first use.
    pub fn prepare(&self, layout: &Path) -> Result<PreparedRootfs> {
        let image = oci::resolve(layout)?;
        let hex = image.manifest_digest.split_once(':').map(|(_, h)| h).unwrap_or(&image.manifest_digest).to_string();
        let entry = self.dir.join(&hex);
        if let Some(ready) = Self::load(&entry, &image.manifest_digest)? {
            return Ok(ready);
        }
        fs::create_dir_all(&self.dir).map_err(Error::io("creating the rootfs cache", &self.dir))?;
        let lock_path = self.dir.join(format!("{hex}.lock"));
        let lock = File::create(&lock_path).map_err(Error::io("creating the rootfs cache lock", &lock_path))?;
        lock.lock().map_err(Error::io("locking the rootfs cache", &lock_path))?;
        // Another start may have finished the unpack while we waited for the lock.
        if let Some(ready) = Self::load(&entry, &image.manifest_digest)? {
            return Ok(ready);
        }
        self.remove_stale_temps(&hex);
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".tmp-{hex}-"))
            .tempdir_in(&self.dir)
            .map_err(Error::io("creating a temporary rootfs", &self.dir))?;
        let rootfs = tmp.path().join("rootfs");
        fs::create_dir(&rootfs).map_err(Error::io("creating a temporary rootfs", &rootfs))?;
        for layer in &image.layers {
            unpack::apply_layer(&rootfs, layer)?;
        }
        set_mode(&rootfs, 0o755)?;
        let settings_path = tmp.path().join(SETTINGS_FILE);
        let json = serde_json::to_vec_pretty(&image.settings)
            .map_err(|source| Error::Metadata { path: settings_path.clone(), source })?;
        fs::write(&settings_path, json).map_err(Error::io("writing image settings", &settings_path))?;
        let kept = tmp.keep();
        fs::rename(&kept, &entry).map_err(Error::io("publishing the unpacked rootfs", &entry))?;
        drop(lock);
        Ok(PreparedRootfs {
            rootfs: entry.join("rootfs"),
            manifest_digest: image.manifest_digest,
            settings: image.settings,
            unpacked: true,
        })
    }

    fn load(entry: &Path, digest: &str) -> Result<Option<PreparedRootfs>> {
        let settings_path = entry.join(SETTINGS_FILE);
        let bytes = match fs::read(&settings_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading image settings", settings_path)(e)),
        };
        let settings =
            serde_json::from_slice(&bytes).map_err(|source| Error::Metadata { path: settings_path, source })?;
        Ok(Some(PreparedRootfs {
            rootfs: entry.join("rootfs"),
            manifest_digest: digest.to_string(),
            settings,
            unpacked: false,
        }))
    }

    /// Removes temporary trees left by killed unpacks of this digest (we hold its lock).
    fn remove_stale_temps(&self, hex: &str) {
        let prefix = format!(".tmp-{hex}-");
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = make_writable_and_remove(&e.path());
            }
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(Error::io("setting permissions", path))
}

/// Removes a tree, first making read-only directories writable (images contain some).
pub(crate) fn make_writable_and_remove(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if let Ok(m) = fs::symlink_metadata(&dir)
            && m.is_dir()
        {
            let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
            for e in fs::read_dir(&dir)?.flatten() {
                stack.push(e.path());
            }
        }
    }
    fs::remove_dir_all(path)
}
