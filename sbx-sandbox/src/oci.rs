//! Reading an OCI image layout: `index.json` → the manifest for this platform → config + layers.

use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};

use crate::error::{Error, Result};

/// One layer blob of an image, in application order.
#[derive(Debug, Clone)]
pub struct LayerBlob {
    /// `sha256:…` digest of the (compressed) blob.
    pub digest: String,
    /// Path of the blob inside the layout.
    pub path: PathBuf,
}

/// The runtime-relevant parts of the image config.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ImageSettings {
    /// `KEY=VALUE` entries of the config's `Env`.
    pub env: Vec<String>,
    /// The config's `User`, if any.
    pub user: Option<String>,
    /// The config's `WorkingDir`, if any.
    pub working_dir: Option<String>,
    /// Entrypoint + Cmd, the default command.
    pub default_command: Vec<String>,
}

/// A resolved image: its manifest digest (the cache key), its layers and its settings.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// `sha256:…` digest of the manifest for this platform.
    pub manifest_digest: String,
    /// Layers, lowest first.
    pub layers: Vec<LayerBlob>,
    /// Settings from the image config.
    pub settings: ImageSettings,
}

/// The OCI architecture name of the machine sbx runs on.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

/// Path of a blob in a layout, refusing digests that are not `alg:hex`.
pub fn blob_path(layout: &Path, digest: &str) -> Result<PathBuf> {
    let (alg, hex) = digest.split_once(':').ok_or_else(|| Error::image(layout, format!("bad digest `{digest}`")))?;
    let ok_alg = !alg.is_empty() && alg.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok_hex = hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    if !ok_alg || !ok_hex {
        return Err(Error::image(layout, format!("bad digest `{digest}`")));
    }
    Ok(layout.join("blobs").join(alg).join(hex))
}

fn read_blob(layout: &Path, desc: &Descriptor) -> Result<Vec<u8>> {
    let path = blob_path(layout, desc.digest().as_ref())?;
    std::fs::read(&path).map_err(Error::io("reading image blob", path))
}

fn platform_matches(desc: &Descriptor) -> bool {
    match desc.platform() {
        None => true,
        Some(p) => p.os().to_string() == "linux" && p.architecture().to_string() == host_architecture(),
    }
}

/// Resolves the manifest for the host platform in the layout at `layout`.
pub fn resolve(layout: &Path) -> Result<ResolvedImage> {
    let index_path = layout.join("index.json");
    let index_bytes = std::fs::read(&index_path).map_err(Error::io("reading the image index", &index_path))?;
    let index: ImageIndex = serde_json::from_slice(&index_bytes)
        .map_err(|e| Error::image(&index_path, format!("index.json is not an OCI index: {e}")))?;
    let manifest_desc = pick_manifest(layout, index, 0)?;
    let manifest_bytes = read_blob(layout, &manifest_desc)?;
    let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes).map_err(|e| {
        Error::image(layout, format!("manifest {} is not an OCI manifest: {e}", manifest_desc.digest()))
    })?;
    let config_bytes = read_blob(layout, manifest.config())?;
    let config: ImageConfiguration = serde_json::from_slice(&config_bytes)
        .map_err(|e| Error::image(layout, format!("config {} is unreadable: {e}", manifest.config().digest())))?;
    let mut layers = Vec::new();
    for l in manifest.layers() {
        let digest = l.digest().to_string();
        layers.push(LayerBlob { path: blob_path(layout, &digest)?, digest });
    }
    let mut settings = ImageSettings::default();
    if let Some(c) = config.config() {
        settings.env = c.env().clone().unwrap_or_default();
        settings.user = c.user().clone().filter(|u| !u.is_empty());
        settings.working_dir = c.working_dir().clone().filter(|w| !w.is_empty());
        settings.default_command =
            c.entrypoint().iter().flatten().chain(c.cmd().iter().flatten()).cloned().collect::<Vec<_>>();
    }
    Ok(ResolvedImage { manifest_digest: manifest_desc.digest().to_string(), layers, settings })
}

fn pick_manifest(layout: &Path, index: ImageIndex, depth: u8) -> Result<Descriptor> {
    let arch = host_architecture();
    let candidates: Vec<Descriptor> = index.manifests().iter().filter(|d| platform_matches(d)).cloned().collect();
    let Some(desc) = candidates.into_iter().next() else {
        return Err(Error::image(
            layout,
            format!("no manifest for linux/{arch} in index.json; build the image for it"),
        ));
    };
    match desc.media_type() {
        MediaType::ImageIndex if depth < 2 => {
            let bytes = read_blob(layout, &desc)?;
            let nested: ImageIndex = serde_json::from_slice(&bytes)
                .map_err(|e| Error::image(layout, format!("nested index {} is unreadable: {e}", desc.digest())))?;
            pick_manifest(layout, nested, depth + 1)
        }
        MediaType::ImageManifest | MediaType::Other(_) => Ok(desc),
        other => Err(Error::image(layout, format!("unexpected media type {other} in the index"))),
    }
}
