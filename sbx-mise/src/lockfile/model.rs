//! The typed content of `sbx.lock`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Platform;

/// Current lockfile format version, written as `version = 1`.
pub const FORMAT_VERSION: u32 = 1;

/// Everything `sbx build` needs, nothing it would have to resolve.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lockfile {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// `sha256:` digest of the inputs that decide the lock's content (tools and their requests,
    /// platforms, base, mirrors). `sbx lock --check` compares it without touching the network.
    pub inputs: String,
    /// The platforms every tool is locked for, sorted: `[image] platforms` plus
    /// [`Lockfile::extra_platforms`].
    pub platforms: Vec<Platform>,
    /// Platforms added with `sbx lock --platform` (e.g. the host's) beyond `[image] platforms`,
    /// sorted. Kept by later runs; not part of [`Lockfile::inputs`], so `--check` stays calm.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_platforms: Vec<Platform>,
    /// `sha256:` digest of the upstream base URLs the artifacts were resolved from (mirrors).
    /// When it differs from the current one, `sbx lock` re-describes the pinned versions so the
    /// URLs point at the new mirrors. `None` in lockfiles written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstreams: Option<String>,
    /// The pinned base image, if `[image] base` is set and is not `scratch`.
    pub base: Option<LockedBase>,
    /// Tool name (short name or `backend:name`) → its locked versions, in config order
    /// (the first one wins on PATH). Sorted by tool name when written.
    pub tools: BTreeMap<String, Vec<LockedTool>>,
}

/// `[image] base` pinned to a manifest digest per platform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedBase {
    /// The reference as configured (`debian:bookworm-slim`, `oci-layout:./base`).
    pub reference: String,
    /// The index (or single manifest) digest the reference pointed at when locked.
    pub digest: String,
    /// Platform → manifest digest.
    pub platforms: BTreeMap<Platform, String>,
}

/// One locked version of one tool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedTool {
    /// The backend that provides it (`core:node`, `npm:prettier`, `ubi:cli/cli[exe=gh]`).
    pub backend: String,
    /// The request as written in config (`22`, `latest`, `lts`).
    pub request: String,
    /// The exact version it resolved to.
    pub version: String,
    /// For npm/pipx tools: the runtime the tool runs on, as `tool@version` (`python@3.12.7`).
    pub runtime: Option<String>,
    /// Backend options that change what gets installed (`exe`, `matching`, …), sorted.
    pub options: BTreeMap<String, String>,
    /// The single artifact per platform (node tarball, go archive, release asset, `.crate`).
    /// Empty for npm/pipx tools, whose content is [`LockedTool::packages`].
    pub platforms: BTreeMap<Platform, Artifact>,
    /// The dependency closure of npm/pipx tools, sorted by location then name.
    pub packages: Vec<LockedPackage>,
}

/// One downloadable file, pinned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Where to download it.
    pub url: String,
    /// Its checksum; always present.
    pub checksum: Checksum,
    /// Its size in bytes, when the upstream publishes it or it was downloaded.
    pub size: Option<u64>,
}

/// One package of an npm or pipx closure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedPackage {
    /// Package name (`@scope/name` for npm, normalised project name for PyPI).
    pub name: String,
    /// Exact version.
    pub version: String,
    /// npm only: where it sits in the installed tree, as in package-lock v3
    /// (`node_modules/a/node_modules/b`). `None` for pipx (a flat site-packages).
    pub location: Option<String>,
    /// The tarball or wheel.
    pub artifact: Artifact,
    /// The platforms that install this exact artifact; empty means every locked platform.
    pub platforms: Vec<Platform>,
}

/// A content checksum, written `sha256:<hex>` or `sha512:<hex>`.
///
/// npm publishes sha512 `integrity` strings (SRI base64); they are stored as hex so every
/// checksum in the lockfile has one form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Checksum {
    /// SHA-256, lowercase hex.
    Sha256(String),
    /// SHA-512, lowercase hex.
    Sha512(String),
}

/// Why a checksum string could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid checksum `{0}`: expected `sha256:<64 hex digits>` or `sha512:<128 hex digits>`")]
pub struct ChecksumParseError(pub String);

impl Checksum {
    /// The algorithm name (`sha256`, `sha512`).
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Sha256(_) => "sha256",
            Self::Sha512(_) => "sha512",
        }
    }

    /// The lowercase hex digest.
    pub fn hex(&self) -> &str {
        match self {
            Self::Sha256(h) | Self::Sha512(h) => h,
        }
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm(), self.hex())
    }
}

impl FromStr for Checksum {
    type Err = ChecksumParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ChecksumParseError(s.to_string());
        let (algo, hex) = s.split_once(':').ok_or_else(err)?;
        let hex_ok =
            |len: usize| hex.len() == len && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        match algo {
            "sha256" if hex_ok(64) => Ok(Self::Sha256(hex.to_string())),
            "sha512" if hex_ok(128) => Ok(Self::Sha512(hex.to_string())),
            _ => Err(err()),
        }
    }
}

impl Serialize for Checksum {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Checksum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_round_trip_and_validation() {
        let s = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(s.parse::<Checksum>().unwrap().to_string(), s);
        assert!(format!("sha256:{}", "AB".repeat(32)).parse::<Checksum>().is_err());
        assert!("sha256:abc".parse::<Checksum>().is_err());
        assert!(format!("md5:{}", "ab".repeat(16)).parse::<Checksum>().is_err());
        assert!(format!("sha512:{}", "0f".repeat(64)).parse::<Checksum>().is_ok());
    }
}
