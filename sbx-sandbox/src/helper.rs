//! The embedded in-sandbox helper (`src/helper/main.rs`, built statically by `build.rs`):
//! written once per content hash into the cache and bind-mounted read-only at
//! [`crate::spec::INIT_PATH`].

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The helper executable's bytes.
pub static INIT_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sbx-init"));

/// Returns the path of the helper under `cache_dir/bin`, writing it if missing.
pub fn materialize(cache_dir: &Path) -> Result<PathBuf> {
    let hash = hex::encode(Sha256::digest(INIT_BINARY));
    let dir = cache_dir.join("bin");
    let path = dir.join(format!("sbx-init-{}", &hash[..16]));
    if let Ok(m) = fs::metadata(&path)
        && m.len() == INIT_BINARY.len() as u64
    {
        return Ok(path);
    }
    fs::create_dir_all(&dir).map_err(Error::io("creating the helper directory", &dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(Error::io("writing the sandbox helper", &dir))?;
    tmp.write_all(INIT_BINARY).map_err(Error::io("writing the sandbox helper", &dir))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o755))
        .map_err(Error::io("writing the sandbox helper", &dir))?;
    tmp.persist(&path).map_err(|e| Error::io("writing the sandbox helper", &path)(e.error))?;
    Ok(path)
}
