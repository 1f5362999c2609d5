//! What the configuration asks `sbx lock` to pin, and the digest of it.
//!
//! The digest covers exactly what decides the lock's content — tools, backends, requests,
//! options, platforms, base and upstream URLs — so `sbx lock --check` knows whether the lock
//! is current without touching the network, and edits elsewhere (comments, `[env]`, tasks)
//! never make it stale.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::config::{MiseConfig, ToolOptions};
use crate::resolve::Upstreams;
use crate::{Origin, Platform, ToolId, VersionRequest};

/// One requested version of one tool.
#[derive(Clone, Debug)]
pub struct WantedVersion {
    /// The request.
    pub request: VersionRequest,
    /// Where it is written.
    pub origin: Origin,
    /// Backend options that change what is installed, as text.
    pub options: BTreeMap<String, String>,
}

/// A tool the lock must contain.
#[derive(Clone, Debug)]
pub struct WantedTool {
    /// Name in the lockfile (`node`, `npm:prettier`).
    pub name: String,
    /// Its backends.
    pub id: ToolId,
    /// Where the tool's key is written.
    pub origin: Origin,
    /// Versions in config order.
    pub versions: Vec<WantedVersion>,
}

/// Everything that decides the lock's content.
#[derive(Clone, Debug)]
pub struct LockInputs {
    /// Tools, sorted by name.
    pub tools: Vec<WantedTool>,
    /// Target platforms, sorted: the configured ones plus [`LockInputs::extra_platforms`].
    pub platforms: Vec<Platform>,
    /// Platforms beyond the configured ones (`sbx lock --platform`, kept from the previous
    /// lock), sorted. Locked like the others but left out of [`LockInputs::digest`].
    pub extra_platforms: Vec<Platform>,
    /// `[image] base` as configured (`scratch` when unset).
    pub base: String,
    /// Upstream base URLs.
    pub upstreams: Upstreams,
}

impl LockInputs {
    /// Collects the tools of `config` that apply to at least one of `platforms` (by `os`).
    pub fn from_config(config: &MiseConfig, platforms: &[Platform], base: &str, upstreams: Upstreams) -> Self {
        let mut platforms = platforms.to_vec();
        platforms.sort();
        platforms.dedup();
        let oses: Vec<&str> = platforms.iter().map(|p| mise_os(*p)).collect();
        let tools = config
            .tools
            .iter()
            .filter_map(|(name, tool)| {
                let versions: Vec<WantedVersion> = tool
                    .entry
                    .versions
                    .iter()
                    .filter(|v| oses.iter().any(|os| v.options.applies_to_os(os)))
                    .map(|v| WantedVersion {
                        request: v.request.clone(),
                        origin: v.origin.clone(),
                        options: options_text(&v.options),
                    })
                    .collect();
                (!versions.is_empty()).then(|| WantedTool {
                    name: name.clone(),
                    id: tool.entry.id.clone(),
                    origin: tool.entry.origin.clone(),
                    versions,
                })
            })
            .collect();
        Self { tools, platforms, extra_platforms: Vec::new(), base: base.to_string(), upstreams }
    }

    /// Adds platforms beyond the configured ones (ignoring those already configured). Tools
    /// are selected by the configured platforms' OSes only.
    pub fn with_extra_platforms(mut self, extra: &[Platform]) -> Self {
        for p in extra {
            if !self.platforms.contains(p) {
                self.platforms.push(*p);
                self.extra_platforms.push(*p);
            }
        }
        self.platforms.sort();
        self.extra_platforms.sort();
        self.extra_platforms.dedup();
        self
    }

    /// `sha256:<hex>` of the upstream base URLs alone: a lock made against other mirrors has
    /// artifact URLs of those mirrors, so its pins are re-described (same versions) rather than
    /// kept as they are.
    pub fn upstreams_digest(&self) -> String {
        let mut text = String::from("sbx-lock-upstreams-v1\n");
        text += &self.upstream_lines();
        format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
    }

    fn upstream_lines(&self) -> String {
        let u = &self.upstreams;
        let mut text = String::new();
        for (k, v) in [
            ("node", &u.node),
            ("go", &u.go),
            ("github_api", &u.github_api),
            ("npm", &u.npm),
            ("pypi", &u.pypi),
            ("crates_index", &u.crates_index),
            ("crates_download", &u.crates_download),
        ] {
            text += &format!("upstream.{k}={v}\n");
        }
        text
    }

    /// `sha256:<hex>` over a canonical text of the inputs.
    pub fn digest(&self) -> String {
        let mut text = String::from("sbx-lock-inputs-v1\n");
        let configured = self.platforms.iter().filter(|p| !self.extra_platforms.contains(p));
        text += &format!("platforms={}\n", configured.map(|p| p.to_string()).collect::<Vec<_>>().join(","));
        text += &format!("base={}\n", self.base);
        text += &self.upstream_lines();
        for tool in &self.tools {
            let backends: Vec<String> = tool.id.backends.iter().map(|b| b.to_string()).collect();
            text += &format!("tool={}|{}\n", tool.name, backends.join(","));
            for v in &tool.versions {
                let opts: Vec<String> = v.options.iter().map(|(k, x)| format!("{k}={x}")).collect();
                text += &format!("  version={}|{}\n", v.request, opts.join(","));
            }
        }
        format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
    }
}

/// mise's OS name for a platform (what `os = [...]` filters use).
pub fn mise_os(p: Platform) -> &'static str {
    match p.os {
        crate::platform::Os::Linux => "linux",
        crate::platform::Os::Macos => "macos",
    }
}

/// The options that change what gets installed. `install_env` and `postinstall` are build
/// steps of mise's source installs and are not part of a pinned artifact.
fn options_text(options: &ToolOptions) -> BTreeMap<String, String> {
    options.backend.iter().map(|(k, v)| (k.clone(), v.value.clone())).collect()
}
