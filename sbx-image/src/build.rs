//! `build_image`: from a [`Lockfile`] to per-platform images and an index, all blobs in the
//! cache. Nothing here talks to a terminal; output writers live in [`crate::output`].
//!
//! Each platform image is: the base layers (reused as they are), one layer per locked tool
//! version (`installs/<tool-dir>/<version>/…`, cached by tool, version, artifact checksum,
//! builder version and layer settings), then one config layer (user, home, mise config, mise's
//! install metadata and fuzzy-version symlinks).

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures::stream::{self, StreamExt, TryStreamExt};
use sbx_mise::credentials::Credentials;
use sbx_mise::lockfile::model::{Artifact, LockedTool, Lockfile};
use sbx_mise::{BackendKind, Platform};

use crate::base::{BaseImage, read_oci_layout};
use crate::cache::Cache;
use crate::digest::sha256_digest;
use crate::error::{ImageError, Result};
use crate::fetch::Fetcher;
use crate::install::{MiseLayout, backend_of, tool_dir_name};
use crate::layer::{Compression, LayerBlob, LayerOptions, LayerTree, write_layer};
use crate::oci::{self, Descriptor, History, MEDIA_TYPE_CONFIG, MEDIA_TYPE_MANIFEST, RuntimeConfig, canonical_json};
use crate::progress::Progress;
use crate::tool_layer::{CacheEntry, Job, build_tool_layer, cached_entry, layer_key, python_runtime};

/// Changes whenever the bytes this builder writes for the same inputs change; part of every
/// layer cache key.
pub const BUILDER_VERSION: &str = concat!("sbx-image/", env!("CARGO_PKG_VERSION"), "/layers-2");

pub use crate::users::ImageUser;

/// Everything `build_image` needs besides the lockfile.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Download, blob and layer cache.
    pub cache: Cache,
    /// Platforms to build; empty means every Linux platform in the lockfile.
    pub platforms: Vec<Platform>,
    /// Where mise's data dir is inside the image.
    pub layout: MiseLayout,
    /// The name of the unprivileged user the image runs as: taken from the base's
    /// `/etc/passwd` when it has it, else added (uid 1000 unless taken); owns its home.
    pub user: String,
    /// `WorkingDir` (created in the config layer); empty means the user's home. Never a host
    /// path by default: the same lock must give the same image on any machine.
    pub working_dir: String,
    /// The mise config placed at `/etc/mise/config.toml` (mise's system config, which a
    /// mounted home cannot hide); `None` writes the locked tools' versions
    /// ([`crate::install::mise_config`]).
    pub mise_config: Option<String>,
    /// Layer compression.
    pub compression: Compression,
    /// mtime of every tar entry (`SOURCE_DATE_EPOCH`, default 0).
    pub source_date_epoch: u64,
    /// Downloads in flight.
    pub parallel_downloads: usize,
    /// Layers built at once.
    pub parallel_layers: usize,
    /// Extra image labels.
    pub labels: BTreeMap<String, String>,
    /// `sha256:` digest of the `sbx.lock` file; computed from the parsed lock when `None`.
    pub lockfile_digest: Option<String>,
    /// Directory relative `oci-layout:` base paths are resolved against (the project dir).
    pub project_dir: PathBuf,
    /// Sent with downloads from their origins (artifacts pinned from a private index).
    pub credentials: Credentials,
}

impl BuildOptions {
    /// Defaults: gzip, mtime from `SOURCE_DATE_EPOCH` (else 0), user `sbx`, working dir
    /// `/workspace`, data dir [`crate::install::DEFAULT_DATA_DIR`].
    pub fn new(cache: Cache) -> Self {
        let parallel = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Self {
            cache,
            platforms: Vec::new(),
            layout: MiseLayout::default(),
            user: "sbx".into(),
            working_dir: "/workspace".into(),
            mise_config: None,
            compression: Compression::default(),
            source_date_epoch: std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0),
            parallel_downloads: crate::fetch::DEFAULT_PARALLEL_DOWNLOADS,
            parallel_layers: parallel,
            labels: BTreeMap::new(),
            lockfile_digest: None,
            project_dir: PathBuf::from("."),
            credentials: Credentials::default(),
        }
    }

    /// Header settings of tool layers: everything owned by root (the toolchain is read-only
    /// for the agent).
    pub(crate) fn layer_options(&self) -> LayerOptions {
        LayerOptions { compression: self.compression, mtime: self.source_date_epoch, owner: (0, 0), user_home: None }
    }
}

/// What a layer is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// Reused from the base image.
    Base,
    /// One tool version.
    Tool {
        /// Tool name as in `sbx.lock`.
        tool: String,
        /// Locked version.
        version: String,
        /// Backend (`core:node`).
        backend: String,
    },
    /// The config layer.
    Config,
}

/// One layer of a built image.
#[derive(Clone, Debug)]
pub struct LayerInfo {
    /// Digests, size, media type and tree hash.
    pub blob: LayerBlob,
    /// The blob file.
    pub path: PathBuf,
    /// What the layer holds.
    pub kind: LayerKind,
    /// Whether it came from the layer cache (or the base) instead of being built now.
    pub cached: bool,
}

/// One platform's image.
#[derive(Clone, Debug)]
pub struct PlatformImage {
    /// The platform.
    pub platform: Platform,
    /// `sha256:` of `manifest_json`.
    pub manifest_digest: String,
    /// The manifest bytes (canonical JSON).
    pub manifest_json: Vec<u8>,
    /// `sha256:` of `config_json`.
    pub config_digest: String,
    /// The image config bytes (canonical JSON).
    pub config_json: Vec<u8>,
    /// Layers in order.
    pub layers: Vec<LayerInfo>,
}

/// The result of a build.
#[derive(Clone, Debug)]
pub struct BuildOutput {
    /// `sha256:` of `index_json`.
    pub index_digest: String,
    /// The image index over every platform manifest (canonical JSON).
    pub index_json: Vec<u8>,
    /// One image per platform, sorted by platform.
    pub images: Vec<PlatformImage>,
}

/// The platforms to build.
fn target_platforms(lock: &Lockfile, opts: &BuildOptions) -> Vec<Platform> {
    let mut p: Vec<Platform> = if opts.platforms.is_empty() {
        lock.platforms.iter().copied().filter(|p| p.oci_os() == "linux").collect()
    } else {
        opts.platforms.clone()
    };
    p.sort();
    p.dedup();
    p
}

fn lockfile_digest(lock: &Lockfile, opts: &BuildOptions) -> String {
    opts.lockfile_digest.clone().unwrap_or_else(|| {
        let value = serde_json::to_value(lock).unwrap_or(serde_json::Value::Null);
        sha256_digest(&canonical_json(&value))
    })
}

async fn load_base(lock: &Lockfile, opts: &BuildOptions, platform: Platform) -> Result<Option<BaseImage>> {
    let Some(base) = &lock.base else { return Ok(None) };
    if base.reference == "scratch" {
        return Ok(None);
    }
    let want = base.platforms.get(&platform).map(String::as_str);
    let Some(path) = base.reference.strip_prefix("oci-layout:") else {
        return crate::registry::pull_base(&base.reference, platform, &base.digest, want, &opts.cache).await.map(Some);
    };
    let dir = opts.project_dir.join(path);
    read_oci_layout(&dir, &base.reference, platform, want).map(Some)
}

/// Builds the image for every target platform of `lock`. Downloads what the cache lacks,
/// builds the tool layers the layer cache lacks (in parallel), and assembles configs,
/// manifests and the index. Blobs stay in the cache; see [`crate::output`] to write them out.
pub async fn build_image(lock: &Lockfile, opts: &BuildOptions, progress: &dyn Progress) -> Result<BuildOutput> {
    // Leftovers of killed runs (a day old, so never a concurrent run's work) are removed.
    opts.cache.remove_stale(std::time::Duration::from_secs(24 * 3600));
    crate::users::validate_name(&opts.user)?;
    let platforms = target_platforms(lock, opts);
    let mut jobs = Vec::new();
    for (tool, versions) in &lock.tools {
        for locked in versions {
            let kind = backend_of(tool, locked)?.kind;
            let closure = matches!(kind, BackendKind::Npm | BackendKind::Pipx);
            if !closure && !locked.packages.is_empty() {
                return Err(ImageError::Unsupported {
                    what: format!("installing the package closure of `{tool}@{}` ({})", locked.version, locked.backend),
                    help: "only npm and pipx tools carry package closures; run `sbx lock` again".into(),
                });
            }
            if kind == BackendKind::Pipx {
                python_runtime(tool, locked, opts)?;
            }
            for platform in &platforms {
                let sources = if closure {
                    locked
                        .packages
                        .iter()
                        .filter(|p| p.platforms.is_empty() || p.platforms.contains(platform))
                        .map(|p| (Some(p.clone()), p.artifact.clone()))
                        .collect()
                } else {
                    let artifact =
                        locked.platforms.get(platform).cloned().ok_or_else(|| ImageError::MissingPlatform {
                            tool: tool.clone(),
                            version: locked.version.clone(),
                            platform: platform.to_string(),
                        })?;
                    vec![(None, artifact)]
                };
                let mut job = Job {
                    tool: tool.clone(),
                    locked: locked.clone(),
                    platform: *platform,
                    sources,
                    key: String::new(),
                };
                job.key = layer_key(&job, opts);
                jobs.push(job);
            }
        }
    }

    // Download what the missing layers need, each artifact once.
    let hits: Vec<Option<CacheEntry>> = {
        let (cache, keys) = (opts.cache.clone(), jobs.iter().map(|j| j.key.clone()).collect::<Vec<_>>());
        tokio::task::spawn_blocking(move || keys.iter().map(|k| cached_entry(&cache, k)).collect())
            .await
            .map_err(|e| ImageError::Io { path: archive_path_hint(), source: std::io::Error::other(e) })?
    };
    let mut needed: BTreeMap<String, Artifact> = BTreeMap::new();
    for (job, hit) in jobs.iter().zip(&hits) {
        if hit.is_none() {
            for (_, artifact) in &job.sources {
                needed.entry(artifact.checksum.to_string()).or_insert_with(|| artifact.clone());
            }
        }
    }
    let fetcher = Fetcher::new(opts.cache.clone())
        .with_parallelism(opts.parallel_downloads)
        .with_credentials(opts.credentials.clone());
    let artifacts: Vec<Artifact> = needed.into_values().collect();
    fetcher.fetch_all(&artifacts, progress).await?;

    // Build the layers.
    let entries: Vec<(CacheEntry, bool)> = stream::iter(jobs.iter().zip(hits).map(|(job, hit)| {
        let name = format!("{} {} {}", job.tool, job.locked.version, job.platform);
        progress.layer_started(&name);
        let (job, opts) = (job.clone(), opts.clone());
        async move {
            let result = match hit {
                Some(entry) => Ok((entry, true)),
                None => tokio::task::spawn_blocking(move || build_tool_layer(&job, &opts).map(|e| (e, false)))
                    .await
                    .map_err(|e| ImageError::Io { path: archive_path_hint(), source: std::io::Error::other(e) })?,
            };
            result.map(|r| (name, r))
        }
    }))
    .buffered(opts.parallel_layers.max(1))
    .map_ok(|(name, (entry, cached))| {
        progress.layer_finished(&name, cached);
        (entry, cached)
    })
    .try_collect()
    .await?;

    let lock_digest = lockfile_digest(lock, opts);
    let mut images = Vec::new();
    for platform in &platforms {
        let base = load_base(lock, opts, *platform).await?;
        // The config layer: user (merged into the base's accounts), home, /tmp, mise config
        // and install metadata. Usually identical for every platform (then one blob).
        let (config_layer, user) = {
            let (opts, tools, base) = (opts.clone(), lock.tools.clone(), base.clone());
            tokio::task::spawn_blocking(move || build_config_layer(&tools, &opts, base.as_ref()))
                .await
                .map_err(|e| ImageError::Io { path: archive_path_hint(), source: std::io::Error::other(e) })??
        };
        let tool_layers: Vec<(&Job, &CacheEntry, bool)> =
            jobs.iter().zip(&entries).filter(|(j, _)| j.platform == *platform).map(|(j, (e, c))| (j, e, *c)).collect();
        images.push(assemble(*platform, base, &tool_layers, &config_layer, &user, opts, &lock_digest)?);
    }
    let manifests: Vec<Descriptor> = images
        .iter()
        .map(|i| {
            let mut d = Descriptor::for_bytes(MEDIA_TYPE_MANIFEST, &i.manifest_json);
            d.platform = Some(i.platform);
            d
        })
        .collect();
    let annotations = BTreeMap::from([("dev.sbx.lockfile.digest".to_string(), lock_digest)]);
    let index_json = canonical_json(&oci::index(&manifests, &annotations));
    Ok(BuildOutput { index_digest: sha256_digest(&index_json), index_json, images })
}

pub(crate) fn archive_path_hint() -> PathBuf {
    PathBuf::from("<layer build task>")
}

fn build_config_layer(
    tools: &BTreeMap<String, Vec<LockedTool>>,
    opts: &BuildOptions,
    base: Option<&BaseImage>,
) -> Result<(LayerInfo, ImageUser)> {
    let files = match base {
        Some(b) => crate::base::read_files(b, &["etc/passwd", "etc/group"])?,
        None => BTreeMap::new(),
    };
    let text = |p: &str| files.get(p).map(|b| String::from_utf8_lossy(b).into_owned());
    let (passwd, group) = (text("etc/passwd"), text("etc/group"));
    let accounts = crate::users::ensure_user(&opts.user, passwd.as_deref(), group.as_deref())?;
    let user = accounts.user.clone();
    let mut tree = LayerTree::new();
    if let Some(p) = accounts.passwd {
        tree.add_bytes("etc/passwd", p, false);
    }
    if let Some(g) = accounts.group {
        tree.add_bytes("etc/group", g, false);
    }
    tree.add_dir_with_mode("tmp", 0o1777);
    tree.add_dir(&user.home);
    if !opts.working_dir.is_empty() {
        tree.add_dir(&opts.working_dir);
    }
    let config = opts.mise_config.clone().unwrap_or_else(|| crate::install::mise_config(tools));
    tree.add_bytes("etc/mise/config.toml", config.into_bytes(), false);
    opts.layout.add_metadata(tools, &mut tree)?;
    let blobs = opts.cache.root().join("blobs").join("sha256");
    let layer_opts = LayerOptions {
        user_home: Some((user.home.trim_matches('/').to_string(), user.uid, user.gid)),
        ..opts.layer_options()
    };
    let blob = write_layer(&tree, &layer_opts, &blobs, None)?;
    let path = blobs.join(blob.digest.trim_start_matches("sha256:"));
    Ok((LayerInfo { blob, path, kind: LayerKind::Config, cached: false }, user))
}

fn assemble(
    platform: Platform,
    base: Option<BaseImage>,
    tool_layers: &[(&Job, &CacheEntry, bool)],
    config_layer: &LayerInfo,
    user: &ImageUser,
    opts: &BuildOptions,
    lock_digest: &str,
) -> Result<PlatformImage> {
    let mut layers = Vec::new();
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    let mut history: Vec<serde_json::Value> = Vec::new();
    let mut base_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string();
    let mut manifest_annotations = BTreeMap::from([("dev.sbx.lockfile.digest".to_string(), lock_digest.to_string())]);
    if let Some(base) = &base {
        if base.layers.len() != base.diff_ids.len() {
            return Err(ImageError::Base {
                reference: base.reference.clone(),
                message: "its config's diff_ids do not match its layers".into(),
                help: "the base image is malformed".into(),
            });
        }
        for (desc, diff_id) in base.layers.iter().zip(&base.diff_ids) {
            descriptors.push(desc.clone());
            diff_ids.push(diff_id.clone());
            layers.push(LayerInfo {
                blob: LayerBlob {
                    digest: desc.digest.clone(),
                    diff_id: diff_id.clone(),
                    size: desc.size,
                    media_type: desc.media_type.clone(),
                    tree_hash: None,
                },
                path: base.blob_path(&desc.digest),
                kind: LayerKind::Base,
                cached: true,
            });
        }
        history.extend(base.history.iter().cloned());
        if let Some(p) = base.env.iter().find_map(|e| e.strip_prefix("PATH=")) {
            base_path = p.to_string();
        }
        manifest_annotations.insert("org.opencontainers.image.base.name".into(), base.reference.clone());
        manifest_annotations.insert("org.opencontainers.image.base.digest".into(), base.manifest_digest.clone());
    }
    let mut path_dirs = Vec::new();
    for (job, entry, cached) in tool_layers {
        let backend = backend_of(&job.tool, &job.locked)?;
        let install = format!("/{}", opts.layout.install_dir(&tool_dir_name(&job.tool, &backend), &job.locked.version));
        path_dirs.push(if entry.bin.is_empty() { install.clone() } else { format!("{install}/{}", entry.bin) });
        let mut desc = Descriptor {
            media_type: entry.blob.media_type.clone(),
            digest: entry.blob.digest.clone(),
            size: entry.blob.size,
            platform: None,
            annotations: BTreeMap::new(),
        };
        desc.annotations.insert("dev.sbx.layer".into(), "tool".into());
        desc.annotations.insert("dev.sbx.tool".into(), job.tool.clone());
        desc.annotations.insert("dev.sbx.tool.backend".into(), job.locked.backend.clone());
        desc.annotations.insert("dev.sbx.tool.version".into(), job.locked.version.clone());
        desc.annotations.insert("dev.sbx.tool.install-dir".into(), install.clone());
        if let Some(t) = &entry.blob.tree_hash {
            desc.annotations.insert("dev.sbx.tree-hash".into(), t.clone());
        }
        descriptors.push(desc);
        diff_ids.push(entry.blob.diff_id.clone());
        history.push(
            History {
                created_by: format!("sbx build: {} {} ({})", job.tool, job.locked.version, job.locked.backend),
                comment: entry.blob.tree_hash.clone().map(|t| format!("tree {t}")),
                empty_layer: false,
            }
            .to_json(),
        );
        layers.push(LayerInfo {
            blob: entry.blob.clone(),
            path: opts.cache.blob_path(&entry.blob.digest),
            kind: LayerKind::Tool {
                tool: job.tool.clone(),
                version: job.locked.version.clone(),
                backend: job.locked.backend.clone(),
            },
            cached: *cached,
        });
    }
    let mut cdesc = Descriptor::for_bytes(&config_layer.blob.media_type, &[]);
    cdesc.digest = config_layer.blob.digest.clone();
    cdesc.size = config_layer.blob.size;
    cdesc.annotations.insert("dev.sbx.layer".into(), "config".into());
    descriptors.push(cdesc);
    diff_ids.push(config_layer.blob.diff_id.clone());
    history.push(
        History {
            created_by: format!("sbx build: user {}, home, /tmp, mise config and metadata", user.name),
            comment: None,
            empty_layer: false,
        }
        .to_json(),
    );
    layers.push(config_layer.clone());

    path_dirs.push(base_path);
    let mut labels = BTreeMap::from([
        ("org.opencontainers.image.title".to_string(), "sbx sandbox image".to_string()),
        ("org.opencontainers.image.description".to_string(), "Toolchain pinned by sbx.lock".to_string()),
        ("dev.sbx.lockfile.digest".to_string(), lock_digest.to_string()),
    ]);
    labels.extend(opts.labels.clone());
    let runtime = RuntimeConfig {
        env: vec![
            format!("PATH={}", path_dirs.join(":")),
            format!("MISE_DATA_DIR={}", opts.layout.data_dir),
            format!("HOME={}", user.home),
        ],
        user: format!("{}:{}", user.uid, user.gid),
        working_dir: if opts.working_dir.is_empty() { user.home.clone() } else { opts.working_dir.clone() },
        labels,
        cmd: Vec::new(),
    };
    let mut config = oci::image_config(platform, &runtime, &diff_ids, &[]);
    config["history"] = serde_json::Value::Array(history);
    let config_json = canonical_json(&config);
    let config_desc = Descriptor::for_bytes(MEDIA_TYPE_CONFIG, &config_json);
    let manifest_json = canonical_json(&oci::manifest(&config_desc, &descriptors, &manifest_annotations));
    Ok(PlatformImage {
        platform,
        manifest_digest: sha256_digest(&manifest_json),
        manifest_json,
        config_digest: config_desc.digest,
        config_json,
        layers,
    })
}
