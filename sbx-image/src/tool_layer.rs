//! One tool layer: its layer-cache key, the cache lookup (blob re-hashed on use), and building
//! it (read the artifact into the layer tree, or lay out the npm/pipx closure on disk, then
//! write the deterministic layer).

use std::path::PathBuf;

use sbx_mise::lockfile::model::{Artifact, LockedPackage, LockedTool};
use sbx_mise::{BackendKind, Platform};
use serde_json::json;

use crate::build::{BUILDER_VERSION, BuildOptions};
use crate::cache::{Cache, write_atomic};
use crate::digest::sha256_digest;
use crate::error::{ImageError, Result};
use crate::install::{add_artifact, backend_of, bin_subdir, tool_dir_name};
use crate::layer::{LayerBlob, LayerTree, write_layer};
use crate::npm::install_npm;
use crate::oci::canonical_json;
use crate::pipx::{PythonRuntime, install_pipx};

/// A tool layer to produce.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) tool: String,
    pub(crate) locked: LockedTool,
    pub(crate) platform: Platform,
    /// What to download: the single artifact, or each npm package of the closure.
    pub(crate) sources: Vec<(Option<LockedPackage>, Artifact)>,
    pub(crate) key: String,
}

/// A layer cache entry.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct CacheEntry {
    pub(crate) blob: LayerBlob,
    /// Directory relative to the install dir that goes on PATH (`bin` or empty).
    pub(crate) bin: String,
}

pub(crate) fn layer_key(job: &Job, opts: &BuildOptions) -> String {
    let material = json!({
        "builder": BUILDER_VERSION,
        "tool": job.tool,
        "backend": job.locked.backend,
        "version": job.locked.version,
        "options": job.locked.options,
        "platform": job.platform.to_string(),
        "sources": job.sources.iter().map(|(p, a)| {
            json!([p.as_ref().and_then(|p| p.location.clone()), a.checksum.to_string()])
        }).collect::<Vec<_>>(),
        "compression": opts.compression.cache_key(),
        "mtime": opts.source_date_epoch,
        "data_dir": opts.layout.data_dir,
    });
    sha256_digest(&canonical_json(&material)).trim_start_matches("sha256:").to_string()
}

pub(crate) fn cached_entry(cache: &Cache, key: &str) -> Option<CacheEntry> {
    let bytes = std::fs::read(cache.layer_entry_path(key)).ok()?;
    let entry: CacheEntry = serde_json::from_slice(&bytes).ok()?;
    // Blobs are renamed into place without fsync; re-hashing on use catches a damaged or
    // tampered blob (it is then rebuilt).
    let path = cache.blob_path(&entry.blob.digest);
    let meta = std::fs::metadata(&path).ok()?;
    let hex = crate::treehash::file_sha256(&path).ok()?;
    (meta.len() == entry.blob.size && entry.blob.digest == format!("sha256:{hex}")).then_some(entry)
}

pub(crate) fn build_tool_layer(job: &Job, opts: &BuildOptions) -> Result<CacheEntry> {
    let cache = &opts.cache;
    let _lock = cache.lock(&format!("layer-{}", job.key))?;
    if let Some(entry) = cached_entry(cache, &job.key) {
        return Ok(entry);
    }
    let work = cache.temp_dir()?;
    let dest = work.path().join("install");
    let backend = backend_of(&job.tool, &job.locked)?;
    let install_rel = opts.layout.install_dir(&tool_dir_name(&job.tool, &backend), &job.locked.version);
    let mut tree = LayerTree::new();
    if backend.kind == BackendKind::Pipx {
        let runtime = python_runtime(&job.tool, &job.locked, opts)?;
        let wheels: Vec<(LockedPackage, PathBuf)> =
            job.sources.iter().filter_map(|(p, a)| Some((p.clone()?, cache.download_path(&a.checksum)))).collect();
        install_pipx(&backend.name, &wheels, &runtime, &dest, &format!("/{install_rel}"))?;
        tree.add_tree(&install_rel, &dest)?;
    } else if backend.kind == BackendKind::Npm {
        let packages: Vec<(LockedPackage, PathBuf)> =
            job.sources.iter().filter_map(|(p, a)| Some((p.clone()?, cache.download_path(&a.checksum)))).collect();
        install_npm(&backend.name, &packages, &dest)?;
        tree.add_tree(&install_rel, &dest)?;
    } else {
        for (_, artifact) in &job.sources {
            let archive = cache.download_path(&artifact.checksum);
            add_artifact(&mut tree, &install_rel, (&job.tool, &job.locked), &artifact.url, &archive, work.path())?;
        }
    }
    let blob =
        write_layer(&tree, &opts.layer_options(), &cache.root().join("blobs").join("sha256"), Some(&install_rel))?;
    let entry = CacheEntry { blob, bin: bin_subdir(&tree, &install_rel).to_string() };
    let bytes = serde_json::to_vec(&entry)
        .map_err(|e| ImageError::Io { path: cache.layer_entry_path(&job.key), source: std::io::Error::other(e) })?;
    write_atomic(&cache.layer_entry_path(&job.key), &bytes)?;
    Ok(entry)
}

/// The Python a pipx tool's venv runs on, from its `runtime = "python@<version>"`.
pub(crate) fn python_runtime(tool: &str, locked: &LockedTool, opts: &BuildOptions) -> Result<PythonRuntime> {
    let version =
        locked.runtime.as_deref().and_then(|r| r.strip_prefix("python@")).ok_or_else(|| ImageError::Unsupported {
            what: format!("the pipx tool `{tool}` without a locked Python runtime"),
            help: "add python to [tools] and run `sbx lock` again so the lock records `runtime = \"python@…\"`".into(),
        })?;
    Ok(PythonRuntime {
        install_dir: format!("/{}", opts.layout.install_dir("python", version)),
        version: version.into(),
    })
}
