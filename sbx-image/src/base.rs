//! Reading a base image from an OCI image layout (`oci-layout:PATH`), reusing its layers as
//! they are (never recompressed).

use std::path::{Path, PathBuf};

use sbx_mise::Platform;
use serde_json::Value;

use crate::error::{ImageError, IoContext, Result};
use crate::oci::{Descriptor, MEDIA_TYPE_INDEX};

/// One platform's base image, ready to be built upon.
#[derive(Clone, Debug)]
pub struct BaseImage {
    /// The reference as configured.
    pub reference: String,
    /// The manifest digest used.
    pub manifest_digest: String,
    /// Its layers, as they appear in the base manifest.
    pub layers: Vec<Descriptor>,
    /// The base config's `rootfs.diff_ids`.
    pub diff_ids: Vec<String>,
    /// The base config's history entries, kept verbatim.
    pub history: Vec<Value>,
    /// The base config's `Env`.
    pub env: Vec<String>,
    /// The directory holding the base blobs (`blobs/sha256`).
    pub blobs_dir: PathBuf,
}

impl BaseImage {
    /// The file holding blob `digest`.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.blobs_dir.join(digest.trim_start_matches("sha256:"))
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).at(path)?;
    serde_json::from_slice(&bytes).map_err(|source| ImageError::Json { path: path.to_path_buf(), source })
}

/// Reads the image for `platform` from the OCI layout at `dir`. When `want` is set, the
/// manifest must have that digest (the lockfile's pin).
pub fn read_oci_layout(dir: &Path, reference: &str, platform: Platform, want: Option<&str>) -> Result<BaseImage> {
    let base_err = |message: String, help: &str| ImageError::Base {
        reference: reference.to_string(),
        message,
        help: help.to_string(),
    };
    let blobs_dir = dir.join("blobs").join("sha256");
    let index = read_json(&dir.join("index.json"))?;
    let mut queue: Vec<Descriptor> = index
        .get("manifests")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Descriptor::from_json).collect())
        .unwrap_or_default();
    let mut found = None;
    while let Some(desc) = queue.pop() {
        let path = blobs_dir.join(desc.digest.trim_start_matches("sha256:"));
        if desc.media_type == MEDIA_TYPE_INDEX || desc.media_type.ends_with("manifest.list.v2+json") {
            let nested = read_json(&path)?;
            if let Some(items) = nested.get("manifests").and_then(Value::as_array) {
                queue.extend(items.iter().filter_map(Descriptor::from_json));
            }
            continue;
        }
        if want.is_some_and(|w| w != desc.digest) {
            continue;
        }
        let manifest = read_json(&path)?;
        let config_desc = manifest
            .get("config")
            .and_then(Descriptor::from_json)
            .ok_or_else(|| base_err(format!("manifest {} has no config", desc.digest), "the layout is damaged"))?;
        let config = read_json(&blobs_dir.join(config_desc.digest.trim_start_matches("sha256:")))?;
        let os = config.get("os").and_then(Value::as_str).unwrap_or_default();
        let arch = config.get("architecture").and_then(Value::as_str).unwrap_or_default();
        if want.is_none() && (os != platform.oci_os() || arch != platform.oci_arch()) {
            continue;
        }
        found = Some((desc.digest, manifest, config));
        break;
    }
    let Some((manifest_digest, manifest, config)) = found else {
        return Err(base_err(
            format!(
                "{} has no image for {platform}{}",
                dir.display(),
                want.map(|w| format!(" with digest {w}")).unwrap_or_default()
            ),
            "run `sbx lock` again after changing the base, or add that platform to the base layout",
        ));
    };
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let layers: Vec<Descriptor> = manifest
        .get("layers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Descriptor::from_json).collect())
        .unwrap_or_default();
    for l in &layers {
        let p = blobs_dir.join(l.digest.trim_start_matches("sha256:"));
        if !p.is_file() {
            return Err(base_err(
                format!("layer blob {} is missing", p.display()),
                "the layout is incomplete; copy it again",
            ));
        }
    }
    Ok(BaseImage {
        reference: reference.to_string(),
        manifest_digest,
        layers,
        diff_ids: strings(config.pointer("/rootfs/diff_ids")),
        history: config.get("history").and_then(Value::as_array).cloned().unwrap_or_default(),
        env: strings(config.pointer("/config/Env")),
        blobs_dir,
    })
}
