//! What one pipx install runs on: a platform and a CPython version, as PEP 508 markers and as
//! the ranked list of wheel tags pip would accept (`packaging.tags.sys_tags`, reduced to
//! CPython on glibc Linux and macOS).

use std::collections::HashMap;

use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder};

use crate::Platform;
use crate::platform::{Arch, Os};

/// The Python a pipx tool runs on when python is not locked in the same run.
pub const DEFAULT_PYTHON: &str = "3.12";

/// The newest glibc a `manylinux_2_X` wheel may need: 2.31 (Debian 11, Ubuntu 20.04 and newer
/// base images have at least this).
pub const MAX_GLIBC_MINOR: u32 = 31;

/// The macOS version darwin wheels may target (`macosx_X_Y` with X.Y ≤ this).
pub const MACOS_TARGET: (u32, u32) = (14, 0);

/// A CPython on a platform.
#[derive(Clone, Debug)]
pub struct Target {
    /// The platform.
    pub platform: Platform,
    /// `3.12.7` or `3.12` as given.
    pub python: String,
    /// Major and minor.
    pub python_minor: (u64, u64),
    /// PEP 508 marker values.
    pub markers: MarkerEnvironment,
    ranks: HashMap<String, usize>,
}

/// The python version is not `X.Y` or `X.Y.Z` with X = 3.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot run pipx tools on python `{0}`: expected a CPython 3 version like 3.12 or 3.12.7")]
pub struct BadPython(pub String);

impl Target {
    /// The target for `platform` and a python version (`3.12`, `3.12.7`).
    pub fn new(platform: Platform, python: &str) -> Result<Self, BadPython> {
        let bad = || BadPython(python.to_string());
        let mut parts = python.split('.').map(|p| p.parse::<u64>());
        let (Some(Ok(3)), Some(Ok(minor))) = (parts.next(), parts.next()) else { return Err(bad()) };
        let patch = match parts.next() {
            Some(Ok(p)) => p,
            Some(Err(_)) => return Err(bad()),
            None => 0,
        };
        let full = format!("3.{minor}.{patch}");
        let (sys_platform, system) = match platform.os {
            Os::Linux => ("linux", "Linux"),
            Os::Macos => ("darwin", "Darwin"),
        };
        let machine = match (platform.os, platform.arch) {
            (_, Arch::Amd64) => "x86_64",
            (Os::Linux, Arch::Arm64) => "aarch64",
            (Os::Macos, Arch::Arm64) => "arm64",
        };
        let short = format!("3.{minor}");
        let markers = MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: &full,
            os_name: "posix",
            platform_machine: machine,
            platform_python_implementation: "CPython",
            platform_release: "",
            platform_system: system,
            platform_version: "",
            python_full_version: &full,
            python_version: &short,
            sys_platform,
        })
        .map_err(|_| bad())?;
        let ranks = tag_ranks(minor, &platform_tags(platform, machine));
        Ok(Self { platform, python: python.to_string(), python_minor: (3, minor), markers, ranks })
    }

    /// How good a wheel is for this target: lower is better, `None` when it cannot be installed.
    pub fn wheel_rank(&self, filename: &str) -> Option<usize> {
        let (py, abi, plat) = wheel_tags(filename)?;
        let mut best = None;
        for p in py.split('.') {
            for a in abi.split('.') {
                for pl in plat.split('.') {
                    if let Some(&r) = self.ranks.get(&format!("{p}-{a}-{pl}")) {
                        best = Some(best.map_or(r, |b: usize| b.min(r)));
                    }
                }
            }
        }
        best
    }

    /// The tags accepted, best first (for error messages).
    pub fn describe(&self) -> String {
        let mut tags: Vec<(&String, &usize)> = self.ranks.iter().collect();
        tags.sort_by_key(|(_, r)| **r);
        let first: Vec<&str> = tags.iter().take(3).map(|(t, _)| t.as_str()).collect();
        format!("wheel for CPython {} on {} (e.g. {}, …, py3-none-any)", self.python, self.platform, first.join(", "))
    }
}

/// `(python tags, abi tags, platform tags)` of a wheel file name, each possibly dotted.
pub fn wheel_tags(filename: &str) -> Option<(&str, &str, &str)> {
    let stem = filename.strip_suffix(".whl")?;
    let mut parts = stem.rsplitn(4, '-');
    let plat = parts.next()?;
    let abi = parts.next()?;
    let py = parts.next()?;
    parts.next()?;
    Some((py, abi, plat))
}

fn platform_tags(platform: Platform, machine: &str) -> Vec<String> {
    let mut tags = Vec::new();
    match platform.os {
        Os::Linux => {
            let lowest = if platform.arch == Arch::Amd64 { 5 } else { 17 };
            for minor in (lowest..=MAX_GLIBC_MINOR).rev() {
                tags.push(format!("manylinux_2_{minor}_{machine}"));
                let legacy = match minor {
                    17 => Some("manylinux2014"),
                    12 if platform.arch == Arch::Amd64 => Some("manylinux2010"),
                    5 if platform.arch == Arch::Amd64 => Some("manylinux1"),
                    _ => None,
                };
                if let Some(legacy) = legacy {
                    tags.push(format!("{legacy}_{machine}"));
                }
            }
        }
        Os::Macos => {
            let formats: &[&str] = match platform.arch {
                Arch::Amd64 => &["x86_64", "intel", "universal2", "universal"],
                Arch::Arm64 => &["arm64", "universal2"],
            };
            let mut versions: Vec<(u32, u32)> = (11..=MACOS_TARGET.0).rev().map(|major| (major, 0)).collect();
            if platform.arch == Arch::Amd64 {
                versions.extend((4..=15).rev().map(|minor| (10, minor)));
            }
            for (major, minor) in versions {
                for f in formats {
                    tags.push(format!("macosx_{major}_{minor}_{f}"));
                }
            }
        }
    }
    tags
}

/// packaging's order: cpXY-cpXY, cpXY-abi3, cpXY-none, older cp3Y-abi3, then pure-python tags
/// for the platform, then `-any`.
fn tag_ranks(minor: u64, platforms: &[String]) -> HashMap<String, usize> {
    let cp = format!("cp3{minor}");
    let mut interp: Vec<(String, String)> =
        vec![(cp.clone(), cp.clone()), (cp.clone(), "abi3".into()), (cp.clone(), "none".into())];
    interp.extend((2..minor).rev().map(|m| (format!("cp3{m}"), "abi3".to_string())));
    let mut py_versions = vec![format!("py3{minor}"), "py3".to_string()];
    py_versions.extend((0..minor).rev().map(|m| format!("py3{m}")));
    let mut ordered = Vec::new();
    for (i, a) in &interp {
        for p in platforms {
            ordered.push(format!("{i}-{a}-{p}"));
        }
    }
    for v in &py_versions {
        for p in platforms {
            ordered.push(format!("{v}-none-{p}"));
        }
    }
    ordered.push(format!("{cp}-none-any"));
    for v in &py_versions {
        ordered.push(format!("{v}-none-any"));
    }
    let mut ranks = HashMap::new();
    for (rank, tag) in ordered.into_iter().enumerate() {
        ranks.entry(tag).or_insert(rank);
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn best<'a>(t: &Target, files: &[&'a str]) -> Option<&'a str> {
        files.iter().filter_map(|f| Some((t.wheel_rank(f)?, *f))).min().map(|(_, f)| f)
    }

    #[test]
    fn picks_the_best_wheel_per_platform() {
        let files = [
            "ruff-0.6.9-py3-none-macosx_11_0_arm64.whl",
            "ruff-0.6.9-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
            "ruff-0.6.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "ruff-0.6.9-py3-none-musllinux_1_2_x86_64.whl",
            "ruff-0.6.9-py3-none-win_amd64.whl",
        ];
        let amd = Target::new(Platform::LINUX_AMD64, "3.12").unwrap();
        let arm = Target::new(Platform::LINUX_ARM64, "3.12.7").unwrap();
        let mac = Target::new("darwin/arm64".parse().unwrap(), "3.12").unwrap();
        assert_eq!(best(&amd, &files), Some(files[2]));
        assert_eq!(best(&arm, &files), Some(files[1]));
        assert_eq!(best(&mac, &files), Some(files[0]));
        assert_eq!(amd.wheel_rank(files[3]), None, "musllinux is not for glibc targets");
    }

    #[test]
    fn prefers_exact_cpython_then_abi3_then_pure() {
        let t = Target::new(Platform::LINUX_AMD64, "3.12").unwrap();
        let files = [
            "x-1-py3-none-any.whl",
            "x-1-cp38-abi3-manylinux_2_17_x86_64.whl",
            "x-1-cp312-cp312-manylinux_2_28_x86_64.whl",
            "x-1-cp311-cp311-manylinux_2_28_x86_64.whl",
            "x-1-cp312-cp312-manylinux_2_34_x86_64.whl",
        ];
        assert_eq!(best(&t, &files), Some(files[2]));
        assert_eq!(best(&t, &files[..2]), Some(files[1]));
        assert_eq!(best(&t, &files[..1]), Some(files[0]));
        assert_eq!(t.wheel_rank(files[3]), None, "other CPython ABI");
        assert_eq!(t.wheel_rank(files[4]), None, "needs a newer glibc than targeted");
        assert!(t.wheel_rank("x-1-py2.py3-none-any.whl").is_some());
        assert!(t.wheel_rank("x-1-cp312-cp312-linux_x86_64.whl").is_none());
    }

    #[test]
    fn markers_per_platform() {
        use std::str::FromStr;
        let req = |s: &str| pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(s).unwrap();
        let amd = Target::new(Platform::LINUX_AMD64, "3.10").unwrap();
        let mac = Target::new("darwin/arm64".parse().unwrap(), "3.12.1").unwrap();
        let r = req("tomli>=1.1; python_version < '3.11'");
        assert!(r.evaluate_markers(&amd.markers, &[]));
        assert!(!r.evaluate_markers(&mac.markers, &[]));
        let r = req("uvloop; sys_platform != 'win32' and platform_machine == 'aarch64'");
        assert!(!r.evaluate_markers(&amd.markers, &[]));
        let r = req("appnope; platform_system == 'Darwin' and python_full_version >= '3.12.1'");
        assert!(r.evaluate_markers(&mac.markers, &[]));
        let r = req("colorama; extra == 'color'");
        assert!(!r.evaluate_markers(&amd.markers, &[]));
        let color = pep508_rs::ExtraName::new("color".into()).unwrap();
        assert!(r.evaluate_markers(&amd.markers, &[color]));
        assert!(Target::new(Platform::LINUX_AMD64, "2.7").is_err());
    }
}
