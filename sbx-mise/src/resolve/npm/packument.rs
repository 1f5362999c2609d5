//! The npm registry's package documents ("packuments"), read leniently, and the choices npm
//! makes from them: which version a range picks, whether a version installs on a platform, and
//! what its tarball's checksum is.

use std::collections::BTreeMap;

use base64::Engine as _;
use nodejs_semver::{Range, Version};
use serde::Deserialize;

use super::lenient::{bundled, peer_meta, string_list, string_map, truthy};

use crate::Platform;
use crate::lockfile::Checksum;
use crate::platform::{Arch, Os};

/// One package's document from the registry: every version's manifest and the dist-tags.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Packument {
    /// The package name.
    #[serde(default)]
    pub name: String,
    /// `latest`, `next`, … → version.
    #[serde(rename = "dist-tags", default, deserialize_with = "string_map")]
    pub dist_tags: BTreeMap<String, String>,
    /// Version → its manifest.
    #[serde(default)]
    pub versions: BTreeMap<String, Manifest>,
}

/// The part of one published version's `package.json` that decides installation.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The exact version.
    #[serde(default)]
    pub version: String,
    /// Regular dependencies: name → range.
    #[serde(default, deserialize_with = "string_map")]
    pub dependencies: BTreeMap<String, String>,
    /// Optional dependencies (skipped where they do not install).
    #[serde(default, deserialize_with = "string_map")]
    pub optional_dependencies: BTreeMap<String, String>,
    /// Peer dependencies; npm 7+ installs the non-optional ones.
    #[serde(default, deserialize_with = "string_map")]
    pub peer_dependencies: BTreeMap<String, String>,
    /// Marks peers optional.
    #[serde(default, deserialize_with = "peer_meta")]
    pub peer_dependencies_meta: BTreeMap<String, bool>,
    /// Dependencies shipped inside the tarball (`true` = all of them).
    #[serde(default, alias = "bundledDependencies", deserialize_with = "bundled")]
    pub bundle_dependencies: Bundled,
    /// Operating systems it installs on (`linux`, `!win32`); empty = any.
    #[serde(default, deserialize_with = "string_list")]
    pub os: Vec<String>,
    /// CPUs it installs on (`x64`, `arm64`); empty = any.
    #[serde(default, deserialize_with = "string_list")]
    pub cpu: Vec<String>,
    /// C libraries it installs with (`glibc`, `musl`); empty = any.
    #[serde(default, deserialize_with = "string_list")]
    pub libc: Vec<String>,
    /// Where the tarball is and its checksums.
    #[serde(default)]
    pub dist: Dist,
    /// A deprecation message (npm avoids deprecated versions when it can).
    #[serde(default, deserialize_with = "truthy")]
    pub deprecated: bool,
}

/// Which dependencies a package bundles in its own tarball.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Bundled {
    /// None.
    #[default]
    None,
    /// Every regular dependency.
    All,
    /// These names.
    Some(Vec<String>),
}

impl Bundled {
    /// Whether `name` comes inside the tarball.
    pub fn contains(&self, name: &str) -> bool {
        match self {
            Self::None => false,
            Self::All => true,
            Self::Some(names) => names.iter().any(|n| n == name),
        }
    }
}

/// `dist` of a manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Dist {
    /// The tarball URL.
    #[serde(default)]
    pub tarball: String,
    /// Subresource integrity string(s), e.g. `sha512-<base64>`.
    #[serde(default)]
    pub integrity: Option<String>,
    /// Legacy sha1 hex.
    #[serde(default)]
    pub shasum: Option<String>,
}

impl Dist {
    /// The sha512 from `integrity` as a lockfile checksum, if the registry published one.
    pub fn sha512(&self) -> Option<Checksum> {
        let integrity = self.integrity.as_deref()?;
        integrity.split_whitespace().find_map(|part| {
            let b64 = part.strip_prefix("sha512-")?;
            let b64 = b64.split('?').next().unwrap_or(b64);
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            (bytes.len() == 64).then(|| Checksum::Sha512(hex::encode(bytes)))
        })
    }
}

/// Wrappers whose install script (`preinstall: npm install <wrapper>-<os>-<arch>@<version>`),
/// not `optionalDependencies`, fetches the per-platform package holding the native binary:
/// wrapper → platform packages. sbx runs no scripts, so each of their versions gets these as
/// optional dependencies at the same exact version; the platform packages' own `os`/`cpu`
/// decide where they install, as with Claude Code's real optional dependencies.
const SCRIPT_INSTALLED_PLATFORM_PACKAGES: &[(&str, &[&str])] = &[(
    "@jdxcode/mise",
    &["@jdxcode/mise-linux-x64", "@jdxcode/mise-linux-arm64", "@jdxcode/mise-darwin-x64", "@jdxcode/mise-darwin-arm64"],
)];

/// Adds the platform packages a known wrapper's install script would fetch as optional
/// dependencies of each of its versions (see [`SCRIPT_INSTALLED_PLATFORM_PACKAGES`]).
pub fn add_script_installed_platform_packages(doc: &mut Packument) {
    let Some((_, platform_packages)) = SCRIPT_INSTALLED_PLATFORM_PACKAGES.iter().find(|(w, _)| *w == doc.name) else {
        return;
    };
    for (version, manifest) in &mut doc.versions {
        for package in *platform_packages {
            manifest.optional_dependencies.entry((*package).to_string()).or_insert_with(|| version.clone());
        }
    }
}

/// Whether a version's `os`/`cpu`/`libc` allow it on `platform` (linux targets are glibc),
/// following npm-install-checks: `!name` excludes, any positive entry must match.
pub fn installs_on(manifest: &Manifest, platform: Platform) -> bool {
    let os = match platform.os {
        Os::Linux => "linux",
        Os::Macos => "darwin",
    };
    let cpu = match platform.arch {
        Arch::Amd64 => "x64",
        Arch::Arm64 => "arm64",
    };
    let libc = (platform.os == Os::Linux).then_some("glibc");
    let libc_ok = match libc {
        _ if manifest.libc.is_empty() => true,
        Some(libc) => list_allows(&manifest.libc, libc),
        None => false,
    };
    list_allows(&manifest.os, os) && list_allows(&manifest.cpu, cpu) && libc_ok
}

fn list_allows(list: &[String], value: &str) -> bool {
    if list.is_empty() || list.iter().any(|e| e == "any") {
        return true;
    }
    let mut positive = false;
    let mut matched = false;
    for entry in list {
        match entry.strip_prefix('!') {
            Some(neg) if neg == value => return false,
            Some(_) => {}
            None => {
                positive = true;
                matched |= entry == value;
            }
        }
    }
    !positive || matched
}

/// What a dependency spec asks for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Spec {
    /// A semver range (`^1.2.0`, `*`, `1.x`, ``).
    Range(String),
    /// A dist-tag (`latest`, `next`).
    Tag(String),
}

/// A dependency spec that sbx cannot lock from the registry (git, file, URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedSpec(pub String);

/// Reads `spec` as written in a `dependencies` map, following `npm:` aliases: returns the real
/// package name (`alias` when not aliased) and what it asks for.
pub fn parse_spec(alias: &str, spec: &str) -> Result<(String, Spec), UnsupportedSpec> {
    let spec = spec.trim();
    if let Some(rest) = spec.strip_prefix("npm:") {
        let at = rest.get(1..).and_then(|r| r.find('@')).map(|i| i + 1);
        return match at {
            Some(i) => Ok((rest[..i].to_string(), classify(&rest[i + 1..])?)),
            None => Ok((rest.to_string(), Spec::Range("*".into()))),
        };
    }
    Ok((alias.to_string(), classify(spec)?))
}

fn classify(spec: &str) -> Result<Spec, UnsupportedSpec> {
    let spec = spec.trim();
    let remote =
        ["git+", "git:", "github:", "gitlab:", "bitbucket:", "file:", "link:", "http:", "https:", "workspace:"];
    if remote.iter().any(|p| spec.starts_with(p)) || (spec.contains('/') && !spec.contains(' ')) {
        return Err(UnsupportedSpec(spec.to_string()));
    }
    if spec.is_empty() {
        return Ok(Spec::Range("*".into()));
    }
    match Range::parse(spec) {
        Ok(_) => Ok(Spec::Range(spec.to_string())),
        Err(_) if spec.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) => Ok(Spec::Tag(spec.into())),
        Err(_) => Err(UnsupportedSpec(spec.to_string())),
    }
}

/// Whether `version` satisfies `spec` the way npm checks an existing node against an edge.
pub fn satisfies(packument: &Packument, spec: &Spec, version: &str) -> bool {
    match spec {
        Spec::Tag(tag) => packument.dist_tags.get(tag).is_some_and(|v| v == version),
        Spec::Range(range) => match (Range::parse(range), Version::parse(version)) {
            (Ok(r), Ok(v)) => r.satisfies(&v),
            _ => false,
        },
    }
}

/// The version npm installs for `spec` (npm-pick-manifest): the `latest` tag when it satisfies
/// the range, else the highest satisfying version, preferring non-deprecated ones.
pub fn pick<'p>(packument: &'p Packument, spec: &Spec) -> Option<&'p Manifest> {
    let range = match spec {
        Spec::Tag(tag) => return packument.dist_tags.get(tag).and_then(|v| packument.versions.get(v)),
        Spec::Range(r) => Range::parse(r).ok()?,
    };
    let ok = |v: &str| Version::parse(v).is_ok_and(|v| range.satisfies(&v));
    if let Some(latest) = packument.dist_tags.get("latest")
        && let Some(m) = packument.versions.get(latest)
        && ok(latest)
        && !m.deprecated
    {
        return Some(m);
    }
    packument
        .versions
        .iter()
        .filter_map(|(v, m)| Some((Version::parse(v).ok()?, m)))
        .filter(|(v, _)| range.satisfies(v))
        .max_by(|(va, ma), (vb, mb)| mb.deprecated.cmp(&ma.deprecated).then(va.cmp(vb)))
        .map(|(_, m)| m)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn manifest(json: Value) -> Manifest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn platform_checks_follow_npm() {
        let linux_x64 = manifest(serde_json::json!({"os": ["linux"], "cpu": ["x64"], "libc": ["glibc"]}));
        assert!(installs_on(&linux_x64, Platform::LINUX_AMD64));
        assert!(!installs_on(&linux_x64, Platform::LINUX_ARM64));
        let musl = manifest(serde_json::json!({"os": ["linux"], "cpu": ["x64"], "libc": ["musl"]}));
        assert!(!installs_on(&musl, Platform::LINUX_AMD64));
        let not_win = manifest(serde_json::json!({"os": ["!win32"], "cpu": "arm64"}));
        assert!(installs_on(&not_win, Platform::LINUX_ARM64));
        let darwin = manifest(serde_json::json!({"os": ["darwin"]}));
        assert!(!installs_on(&darwin, Platform::LINUX_ARM64));
        assert!(installs_on(&darwin, "darwin/arm64".parse().unwrap()));
    }

    #[test]
    fn mise_wrapper_gets_its_script_installed_platform_packages() {
        let doc = |name: &str| -> Packument {
            serde_json::from_value(
                serde_json::json!({"name": name, "versions": {"2026.9.15": {"version": "2026.9.15"}}}),
            )
            .unwrap()
        };
        let mut mise = doc("@jdxcode/mise");
        add_script_installed_platform_packages(&mut mise);
        let optional = &mise.versions["2026.9.15"].optional_dependencies;
        assert_eq!(optional.get("@jdxcode/mise-linux-x64").map(String::as_str), Some("2026.9.15"));
        assert_eq!(optional.get("@jdxcode/mise-linux-arm64").map(String::as_str), Some("2026.9.15"));
        let mut other = doc("prettier");
        add_script_installed_platform_packages(&mut other);
        assert!(other.versions["2026.9.15"].optional_dependencies.is_empty());
    }

    #[test]
    fn specs_and_aliases() {
        assert_eq!(parse_spec("a", "^1.0.0").unwrap(), ("a".into(), Spec::Range("^1.0.0".into())));
        assert_eq!(parse_spec("a", "").unwrap(), ("a".into(), Spec::Range("*".into())));
        assert_eq!(parse_spec("a", "next").unwrap(), ("a".into(), Spec::Tag("next".into())));
        assert_eq!(parse_spec("a", "npm:@s/b@^2").unwrap(), ("@s/b".into(), Spec::Range("^2".into())));
        assert!(parse_spec("a", "github:x/y").is_err());
        assert!(parse_spec("a", "file:../x").is_err());
    }

    #[test]
    fn picks_like_npm() {
        let p: Packument = serde_json::from_value(serde_json::json!({
            "name": "a",
            "dist-tags": {"latest": "1.2.0"},
            "versions": {
                "1.2.0": {"version": "1.2.0"},
                "1.3.0-beta.1": {"version": "1.3.0-beta.1"},
                "1.1.0": {"version": "1.1.0"},
                "2.0.0": {"version": "2.0.0", "deprecated": "do not use"},
                "2.0.1": {"version": "2.0.1", "deprecated": "do not use"},
                "1.9.0": {"version": "1.9.0"}
            }
        }))
        .unwrap();
        let pick = |s: &str| pick(&p, &Spec::Range(s.into())).map(|m| m.version.clone());
        assert_eq!(pick("^1.0.0").as_deref(), Some("1.2.0"), "latest tag wins when it satisfies");
        assert_eq!(pick("^1.3.0").as_deref(), Some("1.9.0"));
        assert_eq!(pick(">=1.0.0").as_deref(), Some("1.2.0"));
        assert_eq!(pick("^2").as_deref(), Some("2.0.1"));
        assert_eq!(pick("^3"), None);
    }

    #[test]
    fn integrity_to_hex() {
        let d = Dist {
            tarball: String::new(),
            integrity: Some(format!("sha1-abc sha512-{}", base64::engine::general_purpose::STANDARD.encode([7u8; 64]))),
            shasum: None,
        };
        assert_eq!(d.sha512(), Some(Checksum::Sha512("07".repeat(64))));
    }
}
