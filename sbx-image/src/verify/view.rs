//! What an image says about its toolchain, as a [`Lockfile`], so `sbx diff` can put an image
//! on either side.
//!
//! Read from the annotations `sbx build` writes: platforms from the manifests, tools from the
//! tool layers (`dev.sbx.tool`, `.backend`, `.version`), the base from
//! `org.opencontainers.image.base.*`. An image records no requests, artifact URLs or
//! closures; each tool's per-platform "artifact" is its install directory with the layer's
//! tree hash as checksum, so two images compare by installed content, and an image against a
//! lockfile compares by versions only (see `sbx_mise::lockfile::diff::DiffOptions`).

use std::collections::BTreeMap;

use sbx_mise::lockfile::model::{Artifact, Checksum, FORMAT_VERSION, LockedBase, LockedTool, Lockfile};

use super::image::{OciImage, keys};

/// The lockfile-equivalent content of `image`.
pub fn lock_view(image: &OciImage) -> Lockfile {
    let mut lock = Lockfile {
        version: FORMAT_VERSION,
        inputs: image.lockfile_digest().unwrap_or_default().to_string(),
        ..Lockfile::default()
    };
    let mut base_platforms = BTreeMap::new();
    let mut base_name = None;
    for m in &image.manifests {
        lock.platforms.push(m.platform);
        if let Some(d) = m.annotations.get(keys::BASE_DIGEST) {
            base_platforms.insert(m.platform, d.clone());
            base_name = base_name.or_else(|| m.annotations.get(keys::BASE_NAME).cloned());
        }
        for layer in m.layers.iter().filter(|l| l.annotations.get(keys::LAYER).map(String::as_str) == Some("tool")) {
            let a = &layer.annotations;
            let (Some(tool), Some(version)) = (a.get(keys::TOOL), a.get(keys::VERSION)) else { continue };
            let checksum = a
                .get(keys::TREE_HASH)
                .and_then(|t| t.parse::<Checksum>().ok())
                .or_else(|| layer.digest.parse::<Checksum>().ok());
            let Some(checksum) = checksum else { continue };
            let artifact = Artifact {
                url: a.get(keys::INSTALL_DIR).cloned().unwrap_or_default(),
                checksum,
                size: Some(layer.size),
            };
            let versions = lock.tools.entry(tool.clone()).or_default();
            match versions.iter_mut().find(|t| t.version == *version) {
                Some(t) => {
                    t.platforms.insert(m.platform, artifact);
                }
                None => versions.push(LockedTool {
                    backend: a.get(keys::BACKEND).cloned().unwrap_or_default(),
                    request: version.clone(),
                    version: version.clone(),
                    runtime: None,
                    options: BTreeMap::new(),
                    platforms: BTreeMap::from([(m.platform, artifact)]),
                    packages: Vec::new(),
                }),
            }
        }
    }
    lock.platforms.sort();
    lock.platforms.dedup();
    if let Some(reference) = base_name {
        let digest = base_platforms.values().next().cloned().unwrap_or_default();
        lock.base = Some(LockedBase { reference, digest, platforms: base_platforms });
    }
    lock
}
