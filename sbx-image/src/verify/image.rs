//! Reading a built image for verification: its index, per-platform manifests and configs, and
//! where each layer blob is, from an OCI image layout directory or a registry.
//!
//! Every JSON document read is checked against the digest that references it; a mismatch is
//! not an error here but an entry of [`OciImage::integrity`], so `sbx verify` can name it
//! next to everything else it finds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sbx_mise::Platform;
use serde_json::Value;

use crate::digest::sha256_digest;
use crate::error::{ImageError, IoContext, Result};
use crate::oci::{Descriptor, MEDIA_TYPE_INDEX};

/// Annotation keys `sbx build` writes (on tool layer descriptors, manifests and the index).
pub mod keys {
    /// `tool` or `config` on the layers sbx built.
    pub const LAYER: &str = "dev.sbx.layer";
    /// The tool name as in `sbx.lock`.
    pub const TOOL: &str = "dev.sbx.tool";
    /// The tool's backend (`core:node`).
    pub const BACKEND: &str = "dev.sbx.tool.backend";
    /// The locked version.
    pub const VERSION: &str = "dev.sbx.tool.version";
    /// The absolute install directory inside the image.
    pub const INSTALL_DIR: &str = "dev.sbx.tool.install-dir";
    /// The tree hash of the install directory (see [`crate::treehash`]).
    pub const TREE_HASH: &str = "dev.sbx.tree-hash";
    /// The digest of the `sbx.lock` the image was built from.
    pub const LOCKFILE_DIGEST: &str = "dev.sbx.lockfile.digest";
    /// The base image reference.
    pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
    /// The base image's manifest digest for this platform.
    pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
}

/// One platform's image.
#[derive(Clone, Debug)]
pub struct ImageManifest {
    /// The platform (from the index entry, else the config).
    pub platform: Platform,
    /// The manifest's digest.
    pub digest: String,
    /// Manifest annotations (base name and digest, lockfile digest).
    pub annotations: BTreeMap<String, String>,
    /// Layer descriptors in order.
    pub layers: Vec<Descriptor>,
    /// The config's `rootfs.diff_ids`, in layer order.
    pub diff_ids: Vec<String>,
    /// The config's `Env`.
    pub env: Vec<String>,
}

/// An image read for verification.
#[derive(Clone, Debug)]
pub struct OciImage {
    /// How the user named it (`oci:.sbx/image`, `127.0.0.1:5000/p:latest`).
    pub reference: String,
    /// The digest of the image index, when the image has one.
    pub index_digest: Option<String>,
    /// The image index's annotations.
    pub annotations: BTreeMap<String, String>,
    /// One entry per platform, sorted by platform.
    pub manifests: Vec<ImageManifest>,
    /// Where the blobs are (`blobs/sha256` of the layout, or the cache's for a registry).
    pub blobs_dir: PathBuf,
    /// Documents whose bytes do not hash to the digest that references them.
    pub integrity: Vec<String>,
    /// For a layout: the reader's lock, held as long as this value (a rebuild into the same
    /// layout waits instead of removing blobs being verified).
    pub read_lock: Option<crate::layout_gc::LayoutReadLock>,
}

impl OciImage {
    /// The file holding blob `digest`.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.blobs_dir.join(digest.trim_start_matches("sha256:"))
    }

    /// The digest of the `sbx.lock` the image says it was built from.
    pub fn lockfile_digest(&self) -> Option<&str> {
        self.annotations
            .get(keys::LOCKFILE_DIGEST)
            .or_else(|| self.manifests.iter().find_map(|m| m.annotations.get(keys::LOCKFILE_DIGEST)))
            .map(String::as_str)
    }
}

fn not_an_image(reference: &str, message: String, help: &str) -> ImageError {
    ImageError::Base { reference: reference.to_string(), message, help: help.to_string() }
}

fn parse_json(bytes: &[u8], path: &Path) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|source| ImageError::Json { path: path.to_path_buf(), source })
}

fn descriptors(v: &Value, key: &str) -> Vec<Descriptor> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Descriptor::from_json).collect())
        .unwrap_or_default()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn annotations(v: &Value) -> BTreeMap<String, String> {
    v.get("annotations")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

/// Where documents come from while walking an image.
trait Documents {
    /// The bytes of the document `digest`.
    fn get(&mut self, digest: &str) -> Result<(Vec<u8>, PathBuf)>;
}

struct LayoutDocs {
    blobs_dir: PathBuf,
}

impl Documents for LayoutDocs {
    fn get(&mut self, digest: &str) -> Result<(Vec<u8>, PathBuf)> {
        let path = self.blobs_dir.join(digest.trim_start_matches("sha256:"));
        Ok((std::fs::read(&path).at(&path)?, path))
    }
}

/// Reads the image at `dir` (an OCI image layout). `tag` picks among several top-level
/// entries by `org.opencontainers.image.ref.name`; without it the layout must hold one image.
pub fn read_oci_layout(dir: &Path, tag: Option<&str>) -> Result<OciImage> {
    let reference = format!("oci:{}", dir.display());
    let index_path = dir.join("index.json");
    if !index_path.is_file() {
        return Err(not_an_image(
            &reference,
            format!("{} is not an OCI image layout (no index.json)", dir.display()),
            "run `sbx build`, or pass `oci:DIR` of a layout it wrote, or a registry reference",
        ));
    }
    let read_lock = crate::layout_gc::lock_layout_shared(dir)?;
    let top = parse_json(&std::fs::read(&index_path).at(&index_path)?, &index_path)?;
    let mut entries = descriptors(&top, "manifests");
    let ref_name = |d: &Descriptor| d.annotations.get("org.opencontainers.image.ref.name").cloned();
    if let Some(tag) = tag {
        entries.retain(|d| ref_name(d).as_deref() == Some(tag));
    }
    let entry = match entries.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(not_an_image(
                &reference,
                format!(
                    "{} holds no image{}",
                    dir.display(),
                    tag.map(|t| format!(" tagged `{t}`")).unwrap_or_default()
                ),
                "build the image first (`sbx build`) or name a tag the layout has",
            ));
        }
        many => {
            let names: Vec<String> = many.iter().filter_map(ref_name).collect();
            return Err(not_an_image(
                &reference,
                format!("{} holds {} images ({})", dir.display(), many.len(), names.join(", ")),
                "pick one with `oci:DIR:TAG`",
            ));
        }
    };
    let blobs_dir = dir.join("blobs").join("sha256");
    let mut docs = LayoutDocs { blobs_dir: blobs_dir.clone() };
    let image = walk(&reference, entry, &mut docs, blobs_dir)?;
    Ok(OciImage { read_lock: Some(read_lock), ..image })
}

/// Walks from the top-level descriptor (an index or a single manifest) to every platform image.
fn walk(reference: &str, entry: Descriptor, docs: &mut dyn Documents, blobs_dir: PathBuf) -> Result<OciImage> {
    let mut image = OciImage {
        reference: reference.to_string(),
        index_digest: None,
        annotations: BTreeMap::new(),
        manifests: Vec::new(),
        blobs_dir,
        integrity: Vec::new(),
        read_lock: None,
    };
    let mut queue = vec![(entry, true)];
    while let Some((desc, top)) = queue.pop() {
        let (bytes, path) = docs.get(&desc.digest)?;
        let actual = sha256_digest(&bytes);
        if actual != desc.digest {
            image.integrity.push(format!("{} hashes to {actual}, not {} as referenced", path.display(), desc.digest));
        }
        let doc = parse_json(&bytes, &path)?;
        let media = doc.get("mediaType").and_then(Value::as_str).unwrap_or(&desc.media_type).to_string();
        if media == MEDIA_TYPE_INDEX || media.ends_with("manifest.list.v2+json") || doc.get("manifests").is_some() {
            if top {
                image.index_digest = Some(desc.digest.clone());
                image.annotations = annotations(&doc);
            }
            queue.extend(descriptors(&doc, "manifests").into_iter().map(|d| (d, false)));
            continue;
        }
        let config_desc = doc.get("config").and_then(Descriptor::from_json).ok_or_else(|| {
            not_an_image(reference, format!("manifest {} has no config", desc.digest), "the image is damaged")
        })?;
        let (config_bytes, config_path) = docs.get(&config_desc.digest)?;
        let actual = sha256_digest(&config_bytes);
        if actual != config_desc.digest {
            image.integrity.push(format!(
                "config {} hashes to {actual}, not {} as the manifest says",
                config_path.display(),
                config_desc.digest
            ));
        }
        let config = parse_json(&config_bytes, &config_path)?;
        let platform = desc.platform.or_else(|| {
            let os = config.get("os")?.as_str()?;
            let arch = config.get("architecture")?.as_str()?;
            format!("{os}/{arch}").parse().ok()
        });
        let Some(platform) = platform else {
            image.integrity.push(format!("manifest {} names no platform sbx knows", desc.digest));
            continue;
        };
        image.manifests.push(ImageManifest {
            platform,
            digest: desc.digest.clone(),
            annotations: annotations(&doc),
            layers: descriptors(&doc, "layers"),
            diff_ids: strings(config.pointer("/rootfs/diff_ids")),
            env: strings(config.pointer("/config/Env")),
        });
    }
    image.manifests.sort_by_key(|m| m.platform);
    Ok(image)
}

/// Splits an image argument: `oci:DIR[:TAG]` or an existing directory → a layout; anything
/// else is a registry reference.
pub fn parse_image_arg(arg: &str, base_dir: &Path) -> ImageArg {
    if let Some(rest) = arg.strip_prefix("oci:").or_else(|| arg.strip_prefix("oci-layout:")) {
        let whole = base_dir.join(rest);
        if whole.is_dir() {
            return ImageArg::Layout { dir: whole, tag: None };
        }
        if let Some((dir, tag)) = rest.rsplit_once(':') {
            return ImageArg::Layout { dir: base_dir.join(dir), tag: Some(tag.to_string()) };
        }
        return ImageArg::Layout { dir: whole, tag: None };
    }
    let as_dir = base_dir.join(arg);
    if as_dir.join("index.json").is_file() {
        return ImageArg::Layout { dir: as_dir, tag: None };
    }
    ImageArg::Registry(arg.to_string())
}

/// Where an image is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageArg {
    /// An OCI image layout directory, optionally one tag of it.
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// `org.opencontainers.image.ref.name` to pick.
        tag: Option<String>,
    },
    /// A registry reference (`host[:port]/repo[:tag]`).
    Registry(String),
}

/// Reads a registry image: manifests and configs over HTTP (verified by digest where the
/// reference allows), layer blobs into `cache` (verified by digest) so they can be scanned.
pub async fn read_registry(reference: &str, cache: &crate::cache::Cache) -> Result<OciImage> {
    use crate::registry::{Reference, Registry};
    let parsed = Reference::parse(reference).ok_or_else(|| {
        not_an_image(reference, "not a valid image reference".into(), "use HOST[:PORT]/REPOSITORY[:TAG] or oci:DIR")
    })?;
    let pinned = reference.split_once('@').map(|(_, d)| d.to_string());
    let tag = parsed.tag.clone().unwrap_or_else(|| "latest".into());
    let registry = Registry::new(parsed);
    let (top_bytes, top_digest) = match &pinned {
        Some(d) => (registry.fetch_verified("manifests", d).await?, d.clone()),
        None => registry.fetch_tagged(&tag).await?,
    };
    let mut fetched: BTreeMap<String, Vec<u8>> = BTreeMap::from([(top_digest.clone(), top_bytes)]);
    // Fetch every document the walk needs (index → manifests → configs), verified by digest.
    let mut pending = vec![top_digest.clone()];
    while let Some(digest) = pending.pop() {
        let Some(bytes) = fetched.get(&digest) else { continue };
        let doc: Value = serde_json::from_slice(bytes)
            .map_err(|source| ImageError::Json { path: PathBuf::from(format!("{reference}@{digest}")), source })?;
        for d in descriptors(&doc, "manifests") {
            if !fetched.contains_key(&d.digest) {
                fetched.insert(d.digest.clone(), registry.fetch_verified("manifests", &d.digest).await?);
                pending.push(d.digest);
            }
        }
        if let Some(c) = doc.get("config").and_then(Descriptor::from_json) {
            fetched.insert(c.digest.clone(), registry.fetch_verified("blobs", &c.digest).await?);
        }
        for l in descriptors(&doc, "layers") {
            let path = cache.blob_path(&l.digest);
            if !path.is_file() {
                let bytes = registry.fetch_verified("blobs", &l.digest).await?;
                crate::cache::write_atomic(&path, &bytes)?;
            }
        }
    }
    struct Fetched(BTreeMap<String, Vec<u8>>, String);
    impl Documents for Fetched {
        fn get(&mut self, digest: &str) -> Result<(Vec<u8>, PathBuf)> {
            let path = PathBuf::from(format!("{}@{digest}", self.1));
            self.0.get(digest).cloned().map(|b| (b, path.clone())).ok_or_else(|| ImageError::Io {
                path,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not fetched"),
            })
        }
    }
    let media = fetched
        .get(&top_digest)
        .and_then(|b| serde_json::from_slice::<Value>(b).ok())
        .and_then(|v| v.get("mediaType").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    let entry =
        Descriptor { media_type: media, digest: top_digest, size: 0, platform: None, annotations: BTreeMap::new() };
    let blobs_dir = cache.root().join("blobs").join("sha256");
    walk(reference, entry, &mut Fetched(fetched, reference.to_string()), blobs_dir)
}
