//! Base images: pinning `[image] base` for `sbx lock` ([`pin`]), reading a pinned base from an
//! OCI image layout (`oci-layout:PATH`) with its layers reused as they are (never
//! recompressed), and reading files (`/etc/passwd`) out of its layers.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sbx_mise::Platform;
use sbx_mise::lockfile::model::LockedBase;
use serde_json::Value;

use crate::error::{ImageError, IoContext, Result};
use crate::oci::{Descriptor, MEDIA_TYPE_INDEX};
use crate::registry::{Reference, Registry};

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

/// Reads the files at `paths` (image paths without the leading `/`, e.g. `etc/passwd`) as the
/// base's layers leave them: a later layer replaces a file, a whiteout (`.wh.<name>`, or an
/// opaque `.wh..wh..opq` of a parent) removes it. Files that end up absent (or are not regular
/// files) are missing from the result.
pub fn read_files(base: &BaseImage, paths: &[&str]) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut found: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for layer in &base.layers {
        let path = base.blob_path(&layer.digest);
        let file = std::fs::File::open(&path).at(&path)?;
        let reader = std::io::BufReader::with_capacity(1 << 20, file);
        let reader: Box<dyn Read> = if layer.media_type.contains("zstd") {
            Box::new(zstd::stream::read::Decoder::with_buffer(reader).at(&path)?)
        } else if layer.media_type.contains("gzip") {
            Box::new(flate2::read::MultiGzDecoder::new(reader))
        } else {
            Box::new(reader)
        };
        let bad = |e: std::io::Error| ImageError::Archive { archive: path.clone(), message: e.to_string() };
        let mut ar = tar::Archive::new(reader);
        for entry in ar.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let raw = entry.path_bytes().into_owned();
            let name = String::from_utf8_lossy(&raw);
            let name = name.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/');
            let (dir, file) = name.rsplit_once('/').unwrap_or(("", name));
            if file == ".wh..wh..opq" {
                found.retain(|p, _| !p.starts_with(&format!("{dir}/")));
                continue;
            }
            if let Some(gone) = file.strip_prefix(".wh.") {
                let gone = if dir.is_empty() { gone.to_string() } else { format!("{dir}/{gone}") };
                found.retain(|p, _| *p != gone && !p.starts_with(&format!("{gone}/")));
                continue;
            }
            if !paths.contains(&name) {
                continue;
            }
            let name = name.to_string();
            if entry.header().entry_type().is_file() {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).map_err(bad)?;
                found.insert(name, bytes);
            } else {
                found.remove(&name);
            }
        }
    }
    Ok(found)
}

/// Pins `[image] base` for `platforms` (Linux ones; others are ignored): `scratch` (or empty)
/// pins nothing; `oci-layout:PATH` (relative to `project_dir`) and registry references
/// (`host[:port]/repo[:tag]`, `…@sha256:…`) resolve to the digest they point at now and,
/// for every platform, the manifest digest `sbx build` will use. A base without an image for
/// one of the platforms is an error naming it.
pub async fn pin(reference: &str, platforms: &[Platform], project_dir: &Path) -> Result<Option<LockedBase>> {
    let reference = reference.trim();
    if reference.is_empty() || reference == "scratch" {
        return Ok(None);
    }
    let mut platforms: Vec<Platform> = platforms.iter().copied().filter(|p| p.oci_os() == "linux").collect();
    platforms.sort();
    platforms.dedup();
    let (digest, docs) = match reference.strip_prefix("oci-layout:") {
        Some(path) => layout_top(reference, &project_dir.join(path))?,
        None => registry_top(reference).await?,
    };
    let mut pinned = BTreeMap::new();
    for platform in platforms {
        let manifest = docs.manifest_for(platform).await?.ok_or_else(|| ImageError::Base {
            reference: reference.to_string(),
            message: format!("has no image for {platform}"),
            help: "use a base published for every platform in [image] platforms, or remove that platform".into(),
        })?;
        pinned.insert(platform, manifest);
    }
    Ok(Some(LockedBase { reference: reference.to_string(), digest, platforms: pinned }))
}

/// What `sbx lock` does with `[image] base`: keeps `previous` when it pins the same
/// reference for every platform and `refresh` is false, else pins anew ([`pin`]). With
/// `offline`, a registry base that needs pinning is an error.
pub async fn pin_or_keep(
    reference: &str,
    previous: Option<&LockedBase>,
    platforms: &[Platform],
    refresh: bool,
    offline: bool,
    project_dir: &Path,
) -> Result<Option<LockedBase>> {
    let reference = reference.trim();
    if reference.is_empty() || reference == "scratch" {
        return Ok(None);
    }
    if let Some(prev) = previous
        && !refresh
        && prev.reference == reference
        && platforms.iter().filter(|p| p.oci_os() == "linux").all(|p| prev.platforms.contains_key(p))
    {
        return Ok(Some(prev.clone()));
    }
    if offline && !reference.starts_with("oci-layout:") {
        return Err(ImageError::Base {
            reference: reference.to_string(),
            message: "needs the registry to be pinned, and --offline is set".into(),
            help: "run `sbx lock` without --offline once to pin the base image".into(),
        });
    }
    pin(reference, platforms, project_dir).await
}

/// Checks that `lock` pins the base that `.sbx.toml` configures (`sbx build` refuses to
/// build on another one).
pub fn check_pinned(configured: &str, lock: Option<&LockedBase>) -> Result<()> {
    let configured = configured.trim();
    let wanted = !(configured.is_empty() || configured == "scratch");
    match lock {
        Some(b) if wanted && b.reference == configured => Ok(()),
        None if !wanted => Ok(()),
        _ => Err(ImageError::Base {
            reference: configured.to_string(),
            message: format!(
                "sbx.lock pins {}",
                lock.map_or_else(|| "no base image".to_string(), |b| format!("`{}`", b.reference))
            ),
            help: "run `sbx lock` to pin the configured base, then build again".into(),
        }),
    }
}

/// The document a base reference points at, and how to find a platform's manifest in it.
enum TopDocs {
    /// An OCI layout's blobs directory and its top document.
    Layout { blobs: PathBuf, top: Descriptor },
    /// A registry and its top document.
    Registry { registry: Box<Registry>, top: Value, digest: String },
}

fn layout_top(reference: &str, dir: &Path) -> Result<(String, TopDocs)> {
    let index = read_json(&dir.join("index.json")).map_err(|e| ImageError::Base {
        reference: reference.to_string(),
        message: format!("cannot read {}: {e}", dir.join("index.json").display()),
        help: "point oci-layout: at an OCI image layout directory (skopeo copy … oci:DIR:TAG makes one)".into(),
    })?;
    let items: Vec<Descriptor> = index
        .get("manifests")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Descriptor::from_json).collect())
        .unwrap_or_default();
    let ref_name = |d: &Descriptor| d.annotations.get("org.opencontainers.image.ref.name").cloned();
    let top = match items.as_slice() {
        [one] => one.clone(),
        many => {
            many.iter().find(|d| ref_name(d).as_deref() == Some("latest")).cloned().ok_or_else(|| ImageError::Base {
                reference: reference.to_string(),
                message: format!("{} holds {} images and none is tagged `latest`", dir.display(), many.len()),
                help: "keep one image in the layout, or tag the one to use `latest`".into(),
            })?
        }
    };
    let digest = top.digest.clone();
    Ok((digest, TopDocs::Layout { blobs: dir.join("blobs").join("sha256"), top }))
}

async fn registry_top(reference: &str) -> Result<(String, TopDocs)> {
    let (name, pinned) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let parsed = Reference::parse(name).ok_or_else(|| ImageError::Base {
        reference: reference.to_string(),
        message: "is not a valid image reference".into(),
        help: "set [image] base to HOST[:PORT]/REPOSITORY[:TAG], `oci-layout:PATH` or `scratch`".into(),
    })?;
    let tag = parsed.tag.clone().unwrap_or_else(|| "latest".into());
    let registry = Registry::new(parsed);
    let (bytes, digest) = match pinned {
        Some(d) => (registry.fetch_verified("manifests", d).await?, d.to_string()),
        None => registry.fetch_tagged(&tag).await?,
    };
    let top: Value = serde_json::from_slice(&bytes).map_err(|e| ImageError::Base {
        reference: reference.to_string(),
        message: format!("the registry's manifest is not JSON: {e}"),
        help: "check the reference; the registry served something that is not an image".into(),
    })?;
    Ok((digest.clone(), TopDocs::Registry { registry: Box::new(registry), top, digest }))
}

impl TopDocs {
    /// The digest of the manifest for `platform`, if the base has one.
    async fn manifest_for(&self, platform: Platform) -> Result<Option<String>> {
        match self {
            TopDocs::Layout { blobs, top } => {
                let blob = |d: &str| blobs.join(d.trim_start_matches("sha256:"));
                let is_index = |d: &Descriptor| {
                    d.media_type == MEDIA_TYPE_INDEX || d.media_type.ends_with("manifest.list.v2+json")
                };
                let candidates = if is_index(top) {
                    let nested = read_json(&blob(&top.digest))?;
                    nested
                        .get("manifests")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Descriptor::from_json).collect())
                        .unwrap_or_default()
                } else {
                    vec![top.clone()]
                };
                for d in candidates {
                    if let Some(p) = d.platform {
                        if p == platform {
                            return Ok(Some(d.digest));
                        }
                        continue;
                    }
                    let manifest = read_json(&blob(&d.digest))?;
                    let Some(config) = manifest.get("config").and_then(Descriptor::from_json) else { continue };
                    if config_platform(&read_json(&blob(&config.digest))?) == Some(platform) {
                        return Ok(Some(d.digest));
                    }
                }
                Ok(None)
            }
            TopDocs::Registry { registry, top, digest } => {
                if let Some(items) = top.get("manifests").and_then(Value::as_array) {
                    return Ok(items
                        .iter()
                        .filter_map(Descriptor::from_json)
                        .find(|d| d.platform == Some(platform))
                        .map(|d| d.digest));
                }
                let Some(config) = top.get("config").and_then(Descriptor::from_json) else { return Ok(None) };
                let bytes = registry.fetch_verified("blobs", &config.digest).await?;
                let config: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                Ok((config_platform(&config) == Some(platform)).then(|| digest.clone()))
            }
        }
    }
}

/// `os/architecture` of an image config.
fn config_platform(config: &Value) -> Option<Platform> {
    let os = config.get("os")?.as_str()?;
    let arch = config.get("architecture")?.as_str()?;
    format!("{os}/{arch}").parse().ok()
}
