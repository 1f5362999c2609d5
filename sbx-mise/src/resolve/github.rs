//! `github:owner/repo` (and `ubi:owner/repo`, treated the same): GitHub release assets.
//!
//! Releases come from the REST API (`<api>/repos/<owner>/<repo>/releases`, paged). A tag's
//! version is the tag without a leading `v` (or without the `version_prefix` option). For each
//! platform one asset is chosen by name ([`pick_asset`]); its checksum is the API's `digest`
//! field when GitHub publishes one, else its line in a checksum file of the release, else sbx
//! downloads the asset and hashes it — an artifact is never locked without a checksum.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Deserialize;

use super::{Backend, ResolveContext, ResolveError, matching};
use crate::lockfile::{Artifact, Checksum, LockedTool};
use crate::platform::{Arch, Os};
use crate::{BackendRef, Platform, VersionRequest};

/// The `github:` / `ubi:` backend.
pub struct GithubBackend;

/// Pages of 100 releases fetched at most (1000 releases).
const MAX_PAGES: u32 = 10;

/// A release as the GitHub API describes it (the fields sbx reads).
#[derive(Clone, Debug, Deserialize)]
pub struct Release {
    /// The git tag (`v2.62.0`, `14.1.1`, `20241016`).
    pub tag_name: String,
    /// Unpublished drafts are ignored.
    #[serde(default)]
    pub draft: bool,
    /// Marked as a prerelease by its author.
    #[serde(default)]
    pub prerelease: bool,
    /// Downloadable files.
    #[serde(default)]
    pub assets: Vec<Asset>,
}

/// A release asset.
#[derive(Clone, Debug, Deserialize)]
pub struct Asset {
    /// File name.
    pub name: String,
    /// Public download URL.
    pub browser_download_url: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// `sha256:<hex>` when GitHub computed it (assets uploaded or backfilled since mid-2025).
    #[serde(default)]
    pub digest: Option<String>,
}

impl Asset {
    /// The published sha256, if any.
    pub fn sha256(&self) -> Option<String> {
        let hex = self.digest.as_deref()?.strip_prefix("sha256:")?.to_ascii_lowercase();
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
    }
}

/// Every non-draft release of `owner/repo`, newest first as the API lists them.
pub async fn releases(ctx: &ResolveContext<'_>, repo: &str) -> Result<Vec<Release>, ResolveError> {
    releases_until(ctx, repo, 100, |_| false).await
}

/// Non-draft releases of `owner/repo`, newest first, fetched `per_page` at a time until
/// `done` is satisfied by what was fetched so far or the last page was read (at most
/// [`MAX_PAGES`] pages). For repositories whose releases are huge (python-build-standalone).
pub async fn releases_until(
    ctx: &ResolveContext<'_>,
    repo: &str,
    per_page: usize,
    done: impl Fn(&[Release]) -> bool,
) -> Result<Vec<Release>, ResolveError> {
    let valid = repo.split('/').count() == 2 && repo.split('/').all(|p| !p.is_empty() && !p.contains(['?', '#', ' ']));
    if !valid {
        return Err(ResolveError::Unsupported(format!(
            "`{repo}` is not a GitHub repository: write it as `github:owner/repo`"
        )));
    }
    let api = ctx.upstreams.github_api.trim_end_matches('/');
    let mut all = Vec::new();
    for page in 1..=MAX_PAGES {
        let url = format!("{api}/repos/{repo}/releases?per_page={per_page}&page={page}");
        let body = ctx.fetch.get(&url).await?;
        let releases: Vec<Release> = super::parse_json(&url, &body)?;
        let full = releases.len() >= per_page;
        all.extend(releases.into_iter().filter(|r| !r.draft));
        if !full || done(&all) {
            break;
        }
    }
    Ok(all)
}

/// The version a tag stands for: without `prefix` when given, else without a leading `v`.
pub fn tag_version(tag: &str, prefix: Option<&str>) -> String {
    if let Some(p) = prefix.filter(|p| !p.is_empty()) {
        return tag.strip_prefix(p).unwrap_or(tag).to_string();
    }
    match tag.strip_prefix('v') {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest.to_string(),
        _ => tag.to_string(),
    }
}

fn versions_of<'a>(releases: &'a [Release], tool: &BackendRef) -> Vec<(String, &'a Release)> {
    let prefix = tool.options.get("version_prefix").map(String::as_str);
    releases.iter().map(|r| (tag_version(&r.tag_name, prefix), r)).collect()
}

/// Files that are never the tool itself.
const SKIP_SUFFIXES: &[&str] = &[
    ".sha256",
    ".sha256sum",
    ".sha512",
    ".sha512sum",
    ".sha1",
    ".md5",
    ".sig",
    ".asc",
    ".pem",
    ".crt",
    ".cert",
    ".sbom",
    ".spdx",
    ".json",
    ".jsonl",
    ".txt",
    ".deb",
    ".rpm",
    ".apk",
    ".msi",
    ".pkg",
    ".dmg",
    ".snap",
    ".flatpak",
    ".yml",
    ".yaml",
    ".b3",
    ".pub",
    ".minisig",
    ".sum",
    ".vsix",
    ".msix",
    ".appx",
    ".exe",
    ".bundle",
];

const OTHER_OS: &[&str] =
    &["windows", "win32", "win64", "freebsd", "netbsd", "openbsd", "android", "illumos", "solaris", "dragonfly", "aix"];
const MAC: &[&str] = &["darwin", "macos", "apple", "osx", "mac"];
const OTHER_ARCH_SUB: &[&str] = &[
    "i386", "i686", "armv5", "armv6", "armv7", "armhf", "arm32", "s390x", "ppc64", "powerpc", "riscv", "mips", "loong",
    "sparc",
];
const OTHER_ARCH_TOKEN: &[&str] = &["386", "x86", "32bit", "arm", "armel", "ia32"];

fn tokens(name: &str) -> Vec<&str> {
    name.split(|c: char| !c.is_ascii_alphanumeric()).filter(|t| !t.is_empty()).collect()
}

/// Which platform an asset name is for, as far as its name tells.
fn arch_of(name: &str) -> Option<Option<Arch>> {
    let t = tokens(name);
    let has = |s: &str| name.contains(s);
    if has("aarch64") || has("arm64") || has("armv8") {
        return Some(Some(Arch::Arm64));
    }
    if has("x86_64") || has("x86-64") || has("amd64") || t.contains(&"x64") || t.contains(&"64bit") {
        return Some(Some(Arch::Amd64));
    }
    if OTHER_ARCH_SUB.iter().any(|s| has(s)) || OTHER_ARCH_TOKEN.iter().any(|s| t.contains(s)) {
        return None;
    }
    Some(None)
}

fn os_of(name: &str) -> Option<Option<Os>> {
    let t = tokens(name);
    if OTHER_OS.iter().any(|s| name.contains(s)) || t.contains(&"win") {
        return None;
    }
    let linux = name.contains("linux");
    let mac = MAC.iter().any(|m| if *m == "mac" { t.contains(m) } else { name.contains(m) });
    match (linux, mac) {
        (true, true) => None,
        (true, false) => Some(Some(Os::Linux)),
        (false, true) => Some(Some(Os::Macos)),
        (false, false) => Some(None),
    }
}

fn format_score(name: &str) -> i32 {
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") || name.ends_with(".tar.xz") {
        3
    } else if name.ends_with(".zip") || name.ends_with(".tar.zst") || name.ends_with(".tar.bz2") {
        2
    } else {
        1
    }
}

/// Chooses the asset for `platform`: right OS and architecture by name (`linux`, `darwin`/
/// `macos`/`apple`; `x86_64`/`amd64`/`x64`, `aarch64`/`arm64`), no checksums, signatures or
/// packages (`.deb`, `.rpm`, …), containing the `matching` option if set. Ties prefer an
/// explicit OS, musl over gnu on Linux, the `exe` name, and archives over bare files.
pub fn pick_asset<'a>(
    assets: &'a [Asset],
    platform: Platform,
    options: &BTreeMap<String, String>,
) -> Result<&'a Asset, String> {
    let matching = options.get("matching").map(|m| m.to_ascii_lowercase());
    let exe = options.get("exe").map(|m| m.to_ascii_lowercase());
    let mut best: Option<(i32, &Asset)> = None;
    for asset in assets {
        let name = asset.name.to_ascii_lowercase();
        let lower_tokens = tokens(&name);
        if SKIP_SUFFIXES.iter().any(|s| name.ends_with(s))
            || lower_tokens.iter().any(|t| t.contains("checksum") || *t == "sha256sums")
        {
            continue;
        }
        if matching.as_ref().is_some_and(|m| !name.contains(m.as_str())) {
            continue;
        }
        let Some(os) = os_of(&name) else { continue };
        let Some(arch) = arch_of(&name) else { continue };
        let mut score = format_score(&name);
        match os {
            Some(o) if o == platform.os => score += 8,
            Some(_) => continue,
            None => {}
        }
        match arch {
            Some(a) if a == platform.arch => score += 8,
            Some(_) => continue,
            // A mac asset without an arch is usually universal; elsewhere it means x86-64.
            None if platform.os == Os::Macos || platform.arch == Arch::Amd64 => {}
            None if name.contains("universal") => {}
            None => continue,
        }
        if platform.os == Os::Linux {
            if name.contains("musl") {
                score += 2;
            } else if name.contains("gnu") {
                score += 1;
            }
        }
        if exe.as_ref().is_some_and(|e| name.contains(e.as_str())) {
            score += 4;
        }
        let better = match best {
            None => true,
            Some((s, b)) => score > s || (score == s && asset.name.len() < b.name.len()),
        };
        if better {
            best = Some((score, asset));
        }
    }
    best.map(|(_, a)| a).ok_or_else(|| {
        let names: Vec<&str> = assets.iter().take(12).map(|a| a.name.as_str()).collect();
        format!(
            "no release asset looks like {platform} (assets: {}); add `matching=<part of the file name>` to the tool's options",
            names.join(", ")
        )
    })
}

/// The artifact for an asset. Its checksum is, in order: the API's published digest; the
/// asset's line in a checksum file of the same release (`<asset>.sha256`, `checksums.txt`,
/// `SHA256SUMS`, …); the sha256 of the downloaded bytes.
pub async fn artifact_of(
    ctx: &ResolveContext<'_>,
    siblings: &[Asset],
    asset: &Asset,
) -> Result<Artifact, ResolveError> {
    let artifact = |sha256: String, size: Option<u64>| Artifact {
        url: asset.browser_download_url.clone(),
        checksum: Checksum::Sha256(sha256),
        size,
    };
    if let Some(hex) = asset.sha256() {
        return Ok(artifact(hex, asset.size));
    }
    if let Some(hex) = published_checksum(ctx, siblings, asset).await? {
        return Ok(artifact(hex, asset.size));
    }
    let (hex, size) = ctx.fetch.sha256_of(&asset.browser_download_url).await?;
    Ok(artifact(hex, Some(size)))
}

/// Whether an asset is a sha256 checksum list or a per-file checksum.
fn is_checksum_file(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with(".sha256")
        || n.ends_with(".sha256sum")
        || n == "sha256sums"
        || n == "sha256sums.txt"
        || (n.contains("checksums") && (n.ends_with(".txt") || !n.contains('.')))
}

/// The asset's sha256 from a checksum file published in the same release, if one lists it.
async fn published_checksum(
    ctx: &ResolveContext<'_>,
    siblings: &[Asset],
    asset: &Asset,
) -> Result<Option<String>, ResolveError> {
    let own = format!("{}.sha256", asset.name);
    let mut candidates: Vec<&Asset> = siblings.iter().filter(|a| a.name == own).collect();
    candidates
        .extend(siblings.iter().filter(|a| a.name != own && is_checksum_file(&a.name) && !a.name.ends_with(".sha256")));
    for sums in candidates {
        let body = ctx.fetch.get(&sums.browser_download_url).await?;
        let text = String::from_utf8_lossy(&body);
        if sums.name == own {
            // `<hex>`, `<hex>  <name>` or `<hex> *<name>`.
            let first = text.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
            if first.len() == 64 && first.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(Some(first));
            }
            continue;
        }
        if let Some(hex) = super::parse_checksum_list(&text).get(&asset.name) {
            return Ok(Some(hex.clone()));
        }
    }
    Ok(None)
}

/// The version `request` means among `releases`.
fn pick_version(releases: &[Release], tool: &BackendRef, request: &VersionRequest) -> Result<String, ResolveError> {
    let versions = versions_of(releases, tool);
    if let VersionRequest::Version(v) = request
        && let Some((exact, _)) = versions.iter().find(|(version, r)| version == v || r.tag_name == *v)
    {
        return Ok(exact.clone());
    }
    // Releases their authors mark as prereleases are only taken when named exactly.
    let stable: Vec<String> = versions.iter().filter(|(_, r)| !r.prerelease).map(|(v, _)| v.clone()).collect();
    matching::select(&tool.to_string(), &stable, request)
}

#[async_trait]
impl Backend for GithubBackend {
    async fn list_versions(&self, ctx: &ResolveContext<'_>, tool: &BackendRef) -> Result<Vec<String>, ResolveError> {
        let releases = releases(ctx, &tool.name).await?;
        let mut versions: Vec<String> = versions_of(&releases, tool).into_iter().map(|(v, _)| v).collect();
        matching::sort_versions(&mut versions);
        Ok(versions)
    }

    async fn resolve(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
    ) -> Result<String, ResolveError> {
        // Newest first: the first pages that satisfy the request hold its newest match.
        let releases = releases_until(ctx, &tool.name, 100, |r| pick_version(r, tool, request).is_ok()).await?;
        pick_version(&releases, tool, request)
    }

    async fn lock(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
        version: &str,
    ) -> Result<LockedTool, ResolveError> {
        let is_it = |v: &str, r: &Release| v == version || r.tag_name == version;
        let releases =
            releases_until(ctx, &tool.name, 100, |r| versions_of(r, tool).iter().any(|(v, r)| is_it(v, r))).await?;
        let versions = versions_of(&releases, tool);
        let Some((_, release)) = versions.iter().find(|(v, r)| is_it(v, r)) else {
            let all: Vec<String> = versions.iter().map(|(v, _)| v.clone()).collect();
            return Err(ResolveError::NoMatch {
                tool: tool.to_string(),
                request: version.to_string(),
                nearest: matching::nearest(&all, version),
            });
        };
        let mut chosen = Vec::new();
        for &platform in ctx.platforms {
            let asset = pick_asset(&release.assets, platform, &tool.options).map_err(|detail| {
                ResolveError::NoArtifact { tool: tool.to_string(), version: version.to_string(), platform, detail }
            })?;
            chosen.push((platform, asset));
        }
        // Platforms are checksummed concurrently (downloads when nothing is published).
        let artifacts =
            futures::future::try_join_all(chosen.iter().map(|(_, asset)| artifact_of(ctx, &release.assets, asset)))
                .await?;
        let platforms: BTreeMap<_, _> = chosen.iter().map(|(p, _)| *p).zip(artifacts).collect();
        Ok(super::locked_artifacts(tool, request, version, platforms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assets(names: &[&str]) -> Vec<Asset> {
        names
            .iter()
            .map(|n| Asset {
                name: n.to_string(),
                browser_download_url: format!("https://x/{n}"),
                size: None,
                digest: None,
            })
            .collect()
    }

    fn pick(names: &[&str], platform: &str, opts: &[(&str, &str)]) -> Option<String> {
        let a = assets(names);
        let opts = opts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        pick_asset(&a, platform.parse().unwrap(), &opts).ok().map(|a| a.name.clone())
    }

    #[test]
    fn picks_by_os_and_arch() {
        let rg = [
            "ripgrep-14.1.1-aarch64-apple-darwin.tar.gz",
            "ripgrep-14.1.1-aarch64-apple-darwin.tar.gz.sha256",
            "ripgrep-14.1.1-aarch64-unknown-linux-gnu.tar.gz",
            "ripgrep-14.1.1-armv7-unknown-linux-gnueabihf.tar.gz",
            "ripgrep-14.1.1-i686-unknown-linux-gnu.tar.gz",
            "ripgrep-14.1.1-x86_64-apple-darwin.tar.gz",
            "ripgrep-14.1.1-x86_64-pc-windows-msvc.zip",
            "ripgrep-14.1.1-x86_64-unknown-linux-gnu.tar.gz",
            "ripgrep-14.1.1-x86_64-unknown-linux-musl.tar.gz",
            "ripgrep_14.1.1-1_amd64.deb",
        ];
        assert_eq!(pick(&rg, "linux/amd64", &[]).unwrap(), "ripgrep-14.1.1-x86_64-unknown-linux-musl.tar.gz");
        assert_eq!(pick(&rg, "linux/arm64", &[]).unwrap(), "ripgrep-14.1.1-aarch64-unknown-linux-gnu.tar.gz");
        assert_eq!(pick(&rg, "darwin/arm64", &[]).unwrap(), "ripgrep-14.1.1-aarch64-apple-darwin.tar.gz");
        assert_eq!(
            pick(&rg, "linux/amd64", &[("matching", "gnu")]).unwrap(),
            "ripgrep-14.1.1-x86_64-unknown-linux-gnu.tar.gz"
        );
        let gh = [
            "gh_2.62.0_checksums.txt",
            "gh_2.62.0_linux_386.tar.gz",
            "gh_2.62.0_linux_amd64.deb",
            "gh_2.62.0_linux_amd64.tar.gz",
            "gh_2.62.0_linux_arm64.tar.gz",
            "gh_2.62.0_linux_armv6.tar.gz",
            "gh_2.62.0_macOS_amd64.zip",
            "gh_2.62.0_macOS_arm64.zip",
            "gh_2.62.0_windows_amd64.zip",
        ];
        assert_eq!(pick(&gh, "linux/amd64", &[]).unwrap(), "gh_2.62.0_linux_amd64.tar.gz");
        assert_eq!(pick(&gh, "linux/arm64", &[]).unwrap(), "gh_2.62.0_linux_arm64.tar.gz");
        assert_eq!(pick(&gh, "darwin/amd64", &[]).unwrap(), "gh_2.62.0_macOS_amd64.zip");
    }

    #[test]
    fn bare_names_and_exe() {
        let v = ["jq-linux-amd64", "jq-linux-arm64", "jq-linux-i386", "jq-macos-arm64", "jq-windows-amd64.exe"];
        assert_eq!(pick(&v, "linux/arm64", &[]).unwrap(), "jq-linux-arm64");
        let multi = ["tool-a-linux-x86_64.tar.gz", "tool-b-linux-x86_64.tar.gz"];
        assert_eq!(pick(&multi, "linux/amd64", &[("exe", "tool-b")]).unwrap(), "tool-b-linux-x86_64.tar.gz");
        let universal = ["shfmt_darwin_universal", "shfmt_linux_amd64"];
        assert_eq!(pick(&universal, "darwin/arm64", &[]).unwrap(), "shfmt_darwin_universal");
        assert!(pick(&["tool-linux-amd64.deb", "SHA256SUMS"], "linux/amd64", &[]).is_none());
    }

    #[test]
    fn tag_versions() {
        assert_eq!(tag_version("v2.62.0", None), "2.62.0");
        assert_eq!(tag_version("14.1.1", None), "14.1.1");
        assert_eq!(tag_version("very-1.0", None), "very-1.0");
        assert_eq!(tag_version("jq-1.7.1", Some("jq-")), "1.7.1");
    }
}
