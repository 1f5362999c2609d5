//! Writing a built image: an OCI image layout directory, or a docker-archive tarball that
//! `docker load` accepts (it also carries the OCI layout files).

use std::io::Write;
use std::path::{Path, PathBuf};

use sbx_mise::Platform;
use serde_json::json;

use crate::build::{BuildOutput, PlatformImage};
use crate::error::{ImageError, IoContext, Result};
use crate::layout_gc::{Collected, collect_garbage, lock_layout};
use crate::oci::{Descriptor, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, canonical_json, index};

/// Every blob of one platform image: (digest, where its bytes come from).
fn image_blobs(image: &PlatformImage) -> Vec<(String, Blob)> {
    let mut blobs: Vec<(String, Blob)> =
        image.layers.iter().map(|l| (l.blob.digest.clone(), Blob::File(l.path.clone()))).collect();
    blobs.push((image.config_digest.clone(), Blob::Bytes(image.config_json.clone())));
    blobs.push((image.manifest_digest.clone(), Blob::Bytes(image.manifest_json.clone())));
    blobs
}

enum Blob {
    File(PathBuf),
    Bytes(Vec<u8>),
}

fn put_blob(blobs_dir: &Path, digest: &str, blob: &Blob) -> Result<()> {
    let dest = blobs_dir.join(digest.trim_start_matches("sha256:"));
    if dest.exists() {
        return Ok(());
    }
    match blob {
        Blob::Bytes(b) => crate::cache::write_atomic(&dest, b),
        Blob::File(src) => {
            let tmp = blobs_dir.join(format!(".tmp-{}", digest.trim_start_matches("sha256:")));
            let _ = std::fs::remove_file(&tmp);
            if std::fs::hard_link(src, &tmp).is_err() {
                std::fs::copy(src, &tmp).at(&tmp)?;
            }
            std::fs::rename(&tmp, &dest).at(&dest)
        }
    }
}

/// A machine-readable summary for `sbx build --json`: index digest, and per platform the
/// manifest digest, total compressed size and every layer (digest, size, tool, version, tree
/// hash, whether it was reused).
pub fn summary_json(output: &BuildOutput) -> serde_json::Value {
    use crate::build::LayerKind;
    let images: Vec<serde_json::Value> = output
        .images
        .iter()
        .map(|image| {
            let layers: Vec<serde_json::Value> = image
                .layers
                .iter()
                .map(|l| {
                    let (kind, tool, version) = match &l.kind {
                        LayerKind::Base => ("base", None, None),
                        LayerKind::Tool { tool, version, .. } => ("tool", Some(tool.clone()), Some(version.clone())),
                        LayerKind::Config => ("config", None, None),
                    };
                    json!({
                        "kind": kind,
                        "tool": tool,
                        "version": version,
                        "digest": l.blob.digest,
                        "diff_id": l.blob.diff_id,
                        "size": l.blob.size,
                        "media_type": l.blob.media_type,
                        "tree_hash": l.blob.tree_hash,
                        "cached": l.cached,
                    })
                })
                .collect();
            let size: u64 = image.layers.iter().map(|l| l.blob.size).sum::<u64>()
                + image.config_json.len() as u64
                + image.manifest_json.len() as u64;
            json!({
                "platform": image.platform.to_string(),
                "manifest_digest": image.manifest_digest,
                "config_digest": image.config_digest,
                "size": size,
                "layers": layers,
            })
        })
        .collect();
    json!({ "index_digest": output.index_digest, "images": images })
}

/// Writes an OCI image layout at `dir`: `oci-layout`, `blobs/sha256/…`, and `index.json`
/// pointing at the image index (tagged `tag` through `org.opencontainers.image.ref.name`).
/// Entries of other tags stay in `index.json`; the one tagged `tag` is replaced. Under the
/// layout's writer lock, blobs no entry reaches any more (earlier builds of the same tag) are
/// then removed ([`crate::layout_gc`]), so the layout does not grow with every build.
pub fn write_oci_layout(output: &BuildOutput, dir: &Path, tag: &str) -> Result<Collected> {
    let lock = lock_layout(dir)?;
    let blobs_dir = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs_dir).at(&blobs_dir)?;
    crate::cache::write_atomic(&dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    for image in &output.images {
        for (digest, blob) in image_blobs(image) {
            put_blob(&blobs_dir, &digest, &blob)?;
        }
    }
    put_blob(&blobs_dir, &output.index_digest, &Blob::Bytes(output.index_json.clone()))?;
    let mut desc = Descriptor::for_bytes(MEDIA_TYPE_INDEX, &output.index_json);
    desc.annotations.insert("org.opencontainers.image.ref.name".into(), tag.to_string());
    let others = crate::layout_gc::other_entries(dir, tag)?;
    let mut top = index(&[desc], &Default::default());
    if let (Some(others), Some(manifests)) = (&others, top["manifests"].as_array_mut()) {
        manifests.splice(0..0, others.iter().cloned());
    }
    crate::cache::write_atomic(&dir.join("index.json"), &canonical_json(&top))?;
    // An index that could not be read may have referenced blobs: keep them.
    if others.is_none() {
        return Ok(Collected::default());
    }
    collect_garbage(dir, &lock)
}

/// Writes a docker-archive tarball of the `platform` image, tagged `repo_tag`
/// (`name:tag`), loadable with `docker load`.
pub fn write_docker_archive(output: &BuildOutput, platform: Platform, file: &Path, repo_tag: &str) -> Result<()> {
    let image = output.images.iter().find(|i| i.platform == platform).ok_or_else(|| ImageError::Unsupported {
        what: format!("a docker archive for {platform}, which this build does not contain"),
        help: format!("build for {platform} or pick one of the built platforms"),
    })?;
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).at(dir)?;
    let tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir).at(dir)?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(tmp.reopen().at(tmp.path())?));
    let add = |tar: &mut tar::Builder<_>, name: &str, data: &mut dyn std::io::Read, size: u64| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(size);
        tar.append_data(&mut h, name, data)
    };
    let blob_name = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let manifest_json = json!([{
        "Config": blob_name(&image.config_digest),
        "RepoTags": [repo_tag],
        "Layers": image.layers.iter().map(|l| blob_name(&l.blob.digest)).collect::<Vec<_>>(),
    }]);
    let mut desc = Descriptor::for_bytes(MEDIA_TYPE_MANIFEST, &image.manifest_json);
    desc.annotations.insert("io.containerd.image.name".into(), repo_tag.to_string());
    desc.annotations
        .insert("org.opencontainers.image.ref.name".into(), repo_tag.rsplit(':').next().unwrap_or("latest").into());
    let files: Vec<(String, Vec<u8>)> = vec![
        ("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("index.json".into(), canonical_json(&index(&[desc], &Default::default()))),
        ("manifest.json".into(), canonical_json(&manifest_json)),
    ];
    let io = |e: std::io::Error| ImageError::Io { path: file.to_path_buf(), source: e };
    let mut seen = std::collections::BTreeSet::new();
    for (digest, blob) in image_blobs(image) {
        if !seen.insert(digest.clone()) {
            continue;
        }
        match blob {
            Blob::Bytes(b) => add(&mut tar, &blob_name(&digest), &mut b.as_slice(), b.len() as u64).map_err(io)?,
            Blob::File(p) => {
                let mut f = std::fs::File::open(&p).at(&p)?;
                let len = f.metadata().at(&p)?.len();
                add(&mut tar, &blob_name(&digest), &mut f, len).map_err(io)?
            }
        }
    }
    for (name, bytes) in files {
        add(&mut tar, &name, &mut bytes.as_slice(), bytes.len() as u64).map_err(io)?;
    }
    let mut w = tar.into_inner().map_err(io)?;
    w.flush().map_err(io)?;
    drop(w);
    tmp.persist(file).map_err(|e| ImageError::Io { path: file.to_path_buf(), source: e.error })?;
    Ok(())
}
