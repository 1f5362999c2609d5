//! `sbx verify`: an image against `sbx.lock`, and the host's mise installs against the image.
//!
//! [`verify_image`] checks, for every platform image: that its tool layers are exactly the
//! lockfile's tools (names, backends, versions; every locked Linux platform present, those
//! added with `sbx lock --platform` optional), that
//! each layer's blob hashes to its digest, its tar to the config's diff_id, and its install
//! tree to the `dev.sbx.tree-hash` annotation (recomputed from the layer's bytes, see
//! [`crate::treehash`]), that a tool layer holds nothing outside its install directory, and
//! that the base image is the one the lock pins. [`host::verify_host`] then compares the
//! host's installs of the locked tools with the image's layers, file by file.
//!
//! Nothing here prints; the reports serialise to JSON for `sbx verify --json`.

pub mod host;
pub mod image;
pub mod layer;
pub mod view;

use std::collections::{BTreeMap, BTreeSet};

use sbx_mise::Platform;
use sbx_mise::lockfile::model::Lockfile;
use serde::Serialize;

use crate::digest::sha256_digest;
use crate::oci::canonical_json;
pub use host::{FileDiff, FileReason, HostReport, HostStatus, HostTool, verify_host};
pub use image::{ImageArg, ImageManifest, OciImage, keys, parse_image_arg, read_oci_layout, read_registry};
pub use layer::{LayerScan, scan_layer};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// The image does not match; `sbx verify` fails.
    Error,
    /// Worth knowing; does not fail verification.
    Note,
}

/// What kind of mismatch a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A layer blob's bytes do not hash to the digest the manifest names (tampered or damaged).
    BlobDigest,
    /// The layer's tar does not hash to the config's diff_id.
    DiffId,
    /// The tree recomputed from the layer differs from its `dev.sbx.tree-hash` annotation.
    TreeHash,
    /// A tool layer has no tree-hash annotation.
    TreeHashMissing,
    /// A tool layer holds entries outside its install directory.
    OutsideInstallDir,
    /// A layer blob is missing or unreadable.
    LayerUnreadable,
    /// An index, manifest or config does not hash to the digest that references it.
    Document,
    /// A locked tool version has no layer.
    ToolMissing,
    /// A tool layer that the lockfile does not list.
    ToolUnexpected,
    /// The tool is there in another version.
    VersionMismatch,
    /// The tool is there from another backend.
    BackendMismatch,
    /// A locked tool has no artifact for an image platform.
    NotLockedForPlatform,
    /// A platform of the lockfile has no image.
    PlatformMissing,
    /// An image for a platform the lockfile does not list.
    PlatformUnexpected,
    /// The base image digest differs from the lock's pin.
    BaseMismatch,
    /// The lock pins a base, the image has none.
    BaseMissing,
    /// The image has a base (or layers not built by sbx) the lock does not pin.
    BaseUnexpected,
    /// The image was built from another `sbx.lock` (its digest differs).
    LockfileDigest,
}

/// One thing verification found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Error or note.
    pub severity: Severity,
    /// What kind of finding.
    pub kind: FindingKind,
    /// The platform image it concerns, if one.
    pub platform: Option<Platform>,
    /// The tool it concerns, if one.
    pub tool: Option<String>,
    /// A sentence saying what is wrong.
    pub message: String,
}

/// One tool layer as checked.
#[derive(Clone, Debug, Serialize)]
pub struct LayerCheck {
    /// The platform image.
    pub platform: Platform,
    /// Tool name (annotation).
    pub tool: String,
    /// Version (annotation).
    pub version: String,
    /// Backend (annotation).
    pub backend: String,
    /// Layer digest (descriptor).
    pub digest: String,
    /// Install directory in the image.
    pub install_dir: String,
    /// The tree hash annotation.
    pub tree_hash: Option<String>,
    /// The tree hash recomputed from the layer's bytes, if it could be read.
    pub computed_tree_hash: Option<String>,
    /// Whether this layer passed every check.
    pub ok: bool,
    /// The scan, kept for the host comparison.
    #[serde(skip)]
    pub scan: Option<LayerScan>,
    /// The layer's media type.
    #[serde(skip)]
    pub media_type: String,
    /// The layer blob file.
    #[serde(skip)]
    pub blob_path: Option<std::path::PathBuf>,
}

/// The result of [`verify_image`].
#[derive(Clone, Debug, Serialize)]
pub struct ImageReport {
    /// The image as named.
    pub image: String,
    /// Its index digest, if it has an index.
    pub index_digest: Option<String>,
    /// The lockfile digest the image records.
    pub lockfile_digest: Option<String>,
    /// Every tool layer checked.
    pub layers: Vec<LayerCheck>,
    /// Everything found, errors first.
    pub findings: Vec<Finding>,
}

impl ImageReport {
    /// Whether the image matches (no error-level finding).
    pub fn ok(&self) -> bool {
        self.findings.iter().all(|f| f.severity != Severity::Error)
    }
}

/// The digests an image may record for `lock`: of the file's bytes (what `sbx build` records)
/// and of the parsed lock as canonical JSON (what the library computes without the bytes).
pub fn lockfile_digests(lock: &Lockfile, file_bytes: Option<&[u8]>) -> Vec<String> {
    let mut out: Vec<String> = file_bytes.map(sha256_digest).into_iter().collect();
    if let Ok(value) = serde_json::to_value(lock) {
        out.push(sha256_digest(&canonical_json(&value)));
    }
    out
}

struct Collector(Vec<Finding>);

impl Collector {
    fn error(&mut self, kind: FindingKind, platform: Option<Platform>, tool: Option<&str>, message: String) {
        self.0.push(Finding { severity: Severity::Error, kind, platform, tool: tool.map(str::to_string), message });
    }
}

/// Checks `image` against `lock` (see the module docs). `lock_digests` are the digests the
/// image may record for this lock ([`lockfile_digests`]); a different one is a note.
pub fn verify_image(image: &OciImage, lock: &Lockfile, lock_digests: &[String]) -> ImageReport {
    let mut found = Collector(Vec::new());
    for problem in &image.integrity {
        found.error(FindingKind::Document, None, None, problem.clone());
    }
    // Platforms added with `sbx lock --platform` (the host's) may be built, need not be.
    let required: BTreeSet<Platform> =
        lock.platforms.iter().copied().filter(|p| p.oci_os() == "linux" && !lock.extra_platforms.contains(p)).collect();
    let locked_platforms: BTreeSet<Platform> = lock.platforms.iter().copied().collect();
    let image_platforms: BTreeSet<Platform> = image.manifests.iter().map(|m| m.platform).collect();
    for p in required.difference(&image_platforms) {
        found.error(
            FindingKind::PlatformMissing,
            Some(*p),
            None,
            format!("sbx.lock locks {p}, the image has no {p} image"),
        );
    }
    for p in image_platforms.difference(&locked_platforms) {
        found.error(
            FindingKind::PlatformUnexpected,
            Some(*p),
            None,
            format!("the image has a {p} image sbx.lock does not lock"),
        );
    }
    if let Some(recorded) = image.lockfile_digest()
        && !lock_digests.iter().any(|d| d == recorded)
    {
        found.0.push(Finding {
            severity: Severity::Note,
            kind: FindingKind::LockfileDigest,
            platform: None,
            tool: None,
            message: format!(
                "the image was built from another sbx.lock ({recorded}); its tools are checked one by one"
            ),
        });
    }
    let mut layers = Vec::new();
    for manifest in &image.manifests {
        check_base(manifest, lock, &mut found);
        layers.extend(check_tools(image, manifest, lock, &mut found));
    }
    found.0.sort_by(|a, b| (a.severity, a.platform, &a.tool, a.kind).cmp(&(b.severity, b.platform, &b.tool, b.kind)));
    ImageReport {
        image: image.reference.clone(),
        index_digest: image.index_digest.clone(),
        lockfile_digest: image.lockfile_digest().map(str::to_string),
        layers,
        findings: found.0,
    }
}

fn check_base(manifest: &ImageManifest, lock: &Lockfile, found: &mut Collector) {
    let p = manifest.platform;
    let pinned = lock.base.as_ref().filter(|b| b.reference != "scratch");
    let want = pinned.map(|b| b.platforms.get(&p).cloned().unwrap_or_else(|| b.digest.clone()));
    let have = manifest.annotations.get(keys::BASE_DIGEST);
    let foreign = manifest.layers.iter().filter(|l| !l.annotations.contains_key(keys::LAYER)).count();
    match (&want, have) {
        (None, None) if foreign > 0 => found.error(
            FindingKind::BaseUnexpected,
            Some(p),
            None,
            format!("{foreign} layer(s) were not built by sbx, but sbx.lock pins no base image"),
        ),
        (None, Some(h)) => found.error(
            FindingKind::BaseUnexpected,
            Some(p),
            None,
            format!("the image is built on {h}, sbx.lock pins no base image"),
        ),
        (Some(w), None) => found.error(
            FindingKind::BaseMissing,
            Some(p),
            None,
            format!("sbx.lock pins base {w}, the image records none"),
        ),
        (Some(w), Some(h)) if w != h => found.error(
            FindingKind::BaseMismatch,
            Some(p),
            None,
            format!("base image digest {h} differs from sbx.lock's {w}"),
        ),
        _ => {}
    }
}

fn check_tools(image: &OciImage, manifest: &ImageManifest, lock: &Lockfile, found: &mut Collector) -> Vec<LayerCheck> {
    let p = Some(manifest.platform);
    // (tool, version) → backend, from the lock.
    let mut expected: BTreeMap<(String, String), String> = BTreeMap::new();
    for (tool, versions) in &lock.tools {
        for locked in versions {
            let closure = !locked.packages.is_empty()
                || locked.backend.starts_with("npm:")
                || locked.backend.starts_with("pipx:");
            if !closure && !locked.platforms.contains_key(&manifest.platform) {
                found.error(
                    FindingKind::NotLockedForPlatform,
                    p,
                    Some(tool),
                    format!("{tool} {} is not locked for {}", locked.version, manifest.platform),
                );
            }
            expected.insert((tool.clone(), locked.version.clone()), locked.backend.clone());
        }
    }
    let mut checks = Vec::new();
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (index, desc) in manifest.layers.iter().enumerate() {
        let a = &desc.annotations;
        let path = image.blob_path(&desc.digest);
        let is_tool = a.get(keys::LAYER).map(String::as_str) == Some("tool");
        let tool = a.get(keys::TOOL).cloned().unwrap_or_default();
        let version = a.get(keys::VERSION).cloned().unwrap_or_default();
        if is_tool {
            seen.entry(tool.clone()).or_default().push(version.clone());
        }
        if !path.is_file() {
            found.error(
                FindingKind::LayerUnreadable,
                p,
                is_tool.then_some(tool.as_str()),
                format!("layer {} is missing from {}", desc.digest, image.blobs_dir.display()),
            );
            continue;
        }
        if !is_tool {
            // Base and config layers: digests only.
            check_digests(&path, desc, manifest.diff_ids.get(index), None, found, p, None);
            continue;
        }
        let backend = a.get(keys::BACKEND).cloned().unwrap_or_default();
        let install_dir = a.get(keys::INSTALL_DIR).cloned().unwrap_or_default();
        let label = format!("{tool} {version}");
        let before = found.0.len();
        match expected.get(&(tool.clone(), version.clone())) {
            None => {}
            Some(b) if *b != backend => found.error(
                FindingKind::BackendMismatch,
                p,
                Some(&tool),
                format!("layer {label} comes from {backend}, sbx.lock locks it from {b}"),
            ),
            Some(_) => {}
        }
        let scan = check_digests(&path, desc, manifest.diff_ids.get(index), Some(&install_dir), found, p, Some(&tool));
        let annotated = a.get(keys::TREE_HASH).cloned();
        if let Some(scan) = &scan {
            match &annotated {
                None => found.error(
                    FindingKind::TreeHashMissing,
                    p,
                    Some(&tool),
                    format!("layer {label} has no {} annotation", keys::TREE_HASH),
                ),
                Some(t) if *t != scan.tree_hash => found.error(
                    FindingKind::TreeHash,
                    p,
                    Some(&tool),
                    format!(
                        "layer {label} ({}): its files hash to {}, its annotation says {t}",
                        desc.digest, scan.tree_hash
                    ),
                ),
                Some(_) => {}
            }
            if !scan.outside.is_empty() {
                found.error(
                    FindingKind::OutsideInstallDir,
                    p,
                    Some(&tool),
                    format!("layer {label} writes outside {install_dir}: {}", scan.outside.join(", ")),
                );
            }
        }
        let ok = found.0.len() == before && scan.is_some();
        checks.push(LayerCheck {
            platform: manifest.platform,
            tool,
            version,
            backend,
            digest: desc.digest.clone(),
            install_dir,
            tree_hash: annotated,
            computed_tree_hash: scan.as_ref().map(|s| s.tree_hash.clone()),
            ok,
            scan,
            media_type: desc.media_type.clone(),
            blob_path: Some(path),
        });
    }
    for (tool, version) in expected.keys() {
        let present = seen.get(tool);
        if present.is_some_and(|v| v.contains(version)) {
            continue;
        }
        let others: Vec<&String> =
            present.into_iter().flatten().filter(|v| !expected.contains_key(&(tool.clone(), (*v).clone()))).collect();
        if others.is_empty() {
            found.error(
                FindingKind::ToolMissing,
                p,
                Some(tool),
                format!("{tool} {version} is locked but has no layer"),
            );
        } else {
            let list: Vec<&str> = others.iter().map(|s| s.as_str()).collect();
            found.error(
                FindingKind::VersionMismatch,
                p,
                Some(tool),
                format!("{tool}: sbx.lock locks {version}, the image has {}", list.join(", ")),
            );
        }
    }
    for (tool, versions) in &seen {
        for version in versions {
            if expected.contains_key(&(tool.clone(), version.clone())) {
                continue;
            }
            if expected.keys().any(|(t, _)| t == tool) {
                continue; // reported as a version mismatch
            }
            found.error(
                FindingKind::ToolUnexpected,
                p,
                Some(tool),
                format!("layer {tool} {version} is not in sbx.lock"),
            );
        }
    }
    checks
}

/// Checks blob digest and diff_id (and scans the tree when `install_dir` is given).
fn check_digests(
    path: &std::path::Path,
    desc: &crate::oci::Descriptor,
    diff_id: Option<&String>,
    install_dir: Option<&str>,
    found: &mut Collector,
    platform: Option<Platform>,
    tool: Option<&str>,
) -> Option<LayerScan> {
    let what = tool.map(|t| format!("layer of {t}")).unwrap_or_else(|| "layer".into());
    // The blob digest first: a damaged blob may not even decompress.
    match crate::treehash::file_sha256(path) {
        Ok(hex) if format!("sha256:{hex}") != desc.digest => found.error(
            FindingKind::BlobDigest,
            platform,
            tool,
            format!("{what} {}: its bytes hash to sha256:{hex} (tampered or damaged)", desc.digest),
        ),
        _ => {}
    }
    let scan = match scan_layer(path, &desc.media_type, install_dir.unwrap_or("")) {
        Ok(s) => s,
        Err(e) => {
            found.error(
                FindingKind::LayerUnreadable,
                platform,
                tool,
                format!("{what} {} cannot be read: {e}", desc.digest),
            );
            return None;
        }
    };
    match diff_id {
        Some(d) if *d != scan.diff_id => found.error(
            FindingKind::DiffId,
            platform,
            tool,
            format!("{what} {}: its tar hashes to {}, the config says {d}", desc.digest, scan.diff_id),
        ),
        None => found.error(
            FindingKind::DiffId,
            platform,
            tool,
            format!("{what} {} has no diff_id in the config", desc.digest),
        ),
        _ => {}
    }
    install_dir.map(|_| scan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Descriptor;
    use sbx_mise::lockfile::model::{Artifact, Checksum, LockedBase, LockedTool};

    fn locked(version: &str) -> LockedTool {
        let artifact =
            Artifact { url: "https://x/n.tgz".into(), checksum: Checksum::Sha256("a".repeat(64)), size: None };
        LockedTool {
            backend: "core:node".into(),
            request: "22".into(),
            version: version.into(),
            runtime: None,
            options: BTreeMap::new(),
            platforms: BTreeMap::from([(Platform::LINUX_AMD64, artifact)]),
            packages: Vec::new(),
        }
    }

    fn tool_layer(tool: &str, version: &str) -> Descriptor {
        let mut d = Descriptor::for_bytes("application/vnd.oci.image.layer.v1.tar+gzip", tool.as_bytes());
        for (k, v) in
            [(keys::LAYER, "tool"), (keys::TOOL, tool), (keys::VERSION, version), (keys::BACKEND, "core:node")]
        {
            d.annotations.insert(k.into(), v.into());
        }
        d
    }

    fn image(layers: Vec<Descriptor>, base: Option<&str>) -> OciImage {
        let annotations =
            base.map(|b| BTreeMap::from([(keys::BASE_DIGEST.to_string(), b.to_string())])).unwrap_or_default();
        OciImage {
            reference: "oci:test".into(),
            index_digest: None,
            annotations: BTreeMap::new(),
            manifests: vec![ImageManifest {
                platform: Platform::LINUX_AMD64,
                digest: "sha256:m".into(),
                annotations,
                layers,
                diff_ids: Vec::new(),
                env: Vec::new(),
            }],
            blobs_dir: "/nonexistent".into(),
            read_lock: None,
            integrity: Vec::new(),
        }
    }

    fn kinds(report: &ImageReport) -> Vec<(FindingKind, Option<String>)> {
        report
            .findings
            .iter()
            .filter(|f| f.kind != FindingKind::LayerUnreadable)
            .map(|f| (f.kind, f.tool.clone()))
            .collect()
    }

    #[test]
    fn tools_versions_platforms_and_base_against_the_lock() {
        let mut lock = Lockfile {
            platforms: vec![Platform::LINUX_AMD64, Platform::LINUX_ARM64],
            tools: BTreeMap::from([
                ("node".to_string(), vec![locked("22.12.0")]),
                ("go".to_string(), vec![locked("1.23.1")]),
            ]),
            ..Lockfile::default()
        };
        lock.base = Some(LockedBase {
            reference: "debian".into(),
            digest: "sha256:index".into(),
            platforms: BTreeMap::from([(Platform::LINUX_AMD64, "sha256:base1".to_string())]),
        });
        let img = image(vec![tool_layer("node", "22.11.0"), tool_layer("zig", "0.13.0")], Some("sha256:base2"));
        let report = verify_image(&img, &lock, &[]);
        assert!(!report.ok());
        let mut got = kinds(&report);
        got.sort();
        let mut want = vec![
            (FindingKind::PlatformMissing, None),
            (FindingKind::BaseMismatch, None),
            (FindingKind::ToolMissing, Some("go".into())),
            (FindingKind::ToolUnexpected, Some("zig".into())),
            (FindingKind::VersionMismatch, Some("node".into())),
        ];
        want.sort();
        assert_eq!(got, want, "{:#?}", report.findings);

        // The extra platform (sbx lock --platform) need not be built; no base pinned but one
        // recorded is reported.
        lock.extra_platforms = vec![Platform::LINUX_ARM64];
        lock.base = None;
        let report = verify_image(&image(vec![tool_layer("node", "22.12.0")], Some("sha256:b")), &lock, &[]);
        let got = kinds(&report);
        assert!(got.contains(&(FindingKind::BaseUnexpected, None)), "{got:?}");
        assert!(!got.iter().any(|k| k.0 == FindingKind::PlatformMissing), "{got:?}");
    }
}
