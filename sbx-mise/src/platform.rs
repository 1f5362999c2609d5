//! Target platforms: an operating system and a CPU architecture.
//!
//! sbx writes platforms the OCI way (`linux/amd64`) in `.sbx.toml` and `sbx.lock`, and converts
//! to the names each upstream uses (`linux-x64` for node and mise, `x86_64-unknown-linux-gnu`
//! for python-build-standalone, `linux_amd64` for Go …) inside the backends.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An operating system sbx can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Os {
    /// Linux (the only OS images run on).
    Linux,
    /// macOS, for locking the host platform of a developer's Mac.
    Macos,
}

/// A CPU architecture sbx can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    /// x86-64, called `amd64` by OCI and `x64` by node and mise.
    Amd64,
    /// 64-bit ARM, called `arm64` by OCI and node, `aarch64` by Rust and Python.
    Arm64,
}

/// One target platform, e.g. `linux/amd64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    /// Operating system.
    pub os: Os,
    /// CPU architecture.
    pub arch: Arch,
}

impl Platform {
    /// `linux/amd64`.
    pub const LINUX_AMD64: Platform = Platform { os: Os::Linux, arch: Arch::Amd64 };
    /// `linux/arm64`.
    pub const LINUX_ARM64: Platform = Platform { os: Os::Linux, arch: Arch::Arm64 };

    /// The platforms an image targets when `[image] platforms` is not set.
    pub fn default_image_platforms() -> Vec<Platform> {
        vec![Self::LINUX_AMD64, Self::LINUX_ARM64]
    }

    /// The platform this program runs on, if sbx knows it.
    pub fn host() -> Option<Platform> {
        let os = match std::env::consts::OS {
            "linux" => Os::Linux,
            "macos" => Os::Macos,
            _ => return None,
        };
        let arch = match std::env::consts::ARCH {
            "x86_64" => Arch::Amd64,
            "aarch64" => Arch::Arm64,
            _ => return None,
        };
        Some(Platform { os, arch })
    }

    /// OCI / Go name of the OS: `linux`, `darwin`.
    pub fn oci_os(&self) -> &'static str {
        match self.os {
            Os::Linux => "linux",
            Os::Macos => "darwin",
        }
    }

    /// OCI / Go name of the architecture: `amd64`, `arm64`.
    pub fn oci_arch(&self) -> &'static str {
        match self.arch {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// mise's platform key as used in `mise.lock` and by node: `linux-x64`, `macos-arm64`.
    pub fn mise_key(&self) -> String {
        let os = match self.os {
            Os::Linux => "linux",
            Os::Macos => "macos",
        };
        let arch = match self.arch {
            Arch::Amd64 => "x64",
            Arch::Arm64 => "arm64",
        };
        format!("{os}-{arch}")
    }

    /// GNU / Rust name of the architecture: `x86_64`, `aarch64`.
    pub fn gnu_arch(&self) -> &'static str {
        match self.arch {
            Arch::Amd64 => "x86_64",
            Arch::Arm64 => "aarch64",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.oci_os(), self.oci_arch())
    }
}

/// The reason a platform string could not be read.
#[derive(Debug, thiserror::Error)]
#[error("unknown platform `{0}`: expected one of linux/amd64, linux/arm64, darwin/amd64, darwin/arm64")]
pub struct PlatformParseError(pub String);

impl FromStr for Platform {
    type Err = PlatformParseError;

    /// Accepts the OCI form (`linux/amd64`) and mise's form (`linux-x64`), plus common aliases.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PlatformParseError(s.to_string());
        let (os, arch) = s.split_once(['/', '-']).ok_or_else(err)?;
        let os = match os {
            "linux" => Os::Linux,
            "darwin" | "macos" => Os::Macos,
            _ => return Err(err()),
        };
        let arch = match arch {
            "amd64" | "x64" | "x86_64" => Arch::Amd64,
            "arm64" | "aarch64" | "arm64/v8" => Arch::Arm64,
            _ => return Err(err()),
        };
        Ok(Platform { os, arch })
    }
}

impl Serialize for Platform {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_oci_and_mise_forms() {
        assert_eq!("linux/amd64".parse::<Platform>().unwrap(), Platform::LINUX_AMD64);
        assert_eq!("linux-x64".parse::<Platform>().unwrap(), Platform::LINUX_AMD64);
        assert_eq!("linux/arm64".parse::<Platform>().unwrap(), Platform::LINUX_ARM64);
        assert_eq!("macos-arm64".parse::<Platform>().unwrap().to_string(), "darwin/arm64");
        assert!("windows/amd64".parse::<Platform>().is_err());
        assert!("linux".parse::<Platform>().is_err());
    }

    #[test]
    fn names_per_upstream() {
        let p = Platform::LINUX_ARM64;
        assert_eq!(p.mise_key(), "linux-arm64");
        assert_eq!(p.gnu_arch(), "aarch64");
        assert_eq!(Platform::LINUX_AMD64.mise_key(), "linux-x64");
    }
}
