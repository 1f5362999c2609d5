//! The project model sbx resolves from: a project's releases with their files, as a simple
//! index page lists them ([`super::simple`]), and PEP 503 name normalisation.

use std::collections::BTreeMap;
use std::str::FromStr;

use pep508_rs::pep440_rs::Version;
use serde::Deserialize;

use crate::resolve::ResolveError;

/// PEP 503 normalised project name (`Foo_Bar.baz` → `foo-bar-baz`).
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// One project: its releases with their files. It reads from the shape of PyPI's JSON API
/// (`{"releases": {"1.0": [{"filename", "url", "digests": {"sha256"}, …}]}}`), which tests use
/// to write projects.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Project {
    /// Version → its files.
    #[serde(default)]
    pub releases: BTreeMap<String, Vec<File>>,
}

impl Project {
    /// The releases whose key is a PEP 440 version, newest first, with their keys and files.
    pub fn releases_newest_first(&self) -> Vec<(Version, &str, &[File])> {
        let mut releases: Vec<(Version, &str, &[File])> = self
            .releases
            .iter()
            .filter_map(|(key, files)| Some((Version::from_str(key).ok()?, key.as_str(), files.as_slice())))
            .collect();
        releases.sort_by(|a, b| (&b.0, b.1).cmp(&(&a.0, a.1)));
        releases
    }

    /// The files of release `version`, listed under that key or under the same PEP 440
    /// version written another way (`1.0.0.RC1` for `1.0.0rc1`).
    pub fn files_of(&self, version: &str) -> Option<&[File]> {
        if let Some(files) = self.releases.get(version) {
            return Some(files);
        }
        let wanted = Version::from_str(version).ok()?;
        self.releases
            .iter()
            .find(|(key, _)| Version::from_str(key).is_ok_and(|v| v == wanted))
            .map(|(_, files)| files.as_slice())
    }
}

/// One distribution file of a release.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct File {
    /// File name (`black-24.8.0-py3-none-any.whl`).
    pub filename: String,
    /// Download URL, absolute after [`super::simple::fetch_project`].
    pub url: String,
    /// Digests; sha256 is the one sbx records.
    #[serde(default)]
    pub digests: Digests,
    /// Size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// `Requires-Python` of the file.
    #[serde(default)]
    pub requires_python: Option<String>,
    /// Whether the file is yanked.
    #[serde(default)]
    pub yanked: bool,
    /// The index serves this wheel's METADATA on its own, at `<url>.metadata` (PEP 658), with
    /// its digest when the index gives one.
    #[serde(skip)]
    pub metadata: Option<Digests>,
}

/// File digests.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Digests {
    /// Lowercase hex sha256.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// Makes the URLs of `files`, listed in the document at `source`, absolute.
pub(super) fn absolute_urls<'f>(source: &str, files: impl Iterator<Item = &'f mut File>) -> Result<(), ResolveError> {
    let malformed = |message: String| ResolveError::Malformed { url: source.to_string(), message };
    let mut base = Joiner::new(source).map_err(|e| malformed(e.to_string()))?;
    for file in files {
        file.url = base.join(&file.url).map_err(|e| malformed(format!("bad file URL {}: {e}", file.url)))?;
    }
    Ok(())
}

/// Makes a page's file URLs absolute, as `url::Url::join` does. A project like ruff lists
/// 7000 files and a join costs over a microsecond, on the path of every lock. Two common forms
/// are written without the url crate, exactly as its join would write them:
///
/// * absolute `http(s)://` URLs in canonical form (PyPI writes
///   `https://files.pythonhosted.org/packages/<hash>/<file>`) are kept as they are;
/// * a run of `../` and then plain path characters (mirrors write
///   `../../packages/<hash>/<file>`) joins its `../` run once and appends the rest.
///
/// Every other URL is joined.
struct Joiner {
    base: url::Url,
    /// `../` run → its join with the base (ends with `/`).
    dirs: std::collections::HashMap<usize, String>,
}

impl Joiner {
    fn new(base: &str) -> Result<Self, url::ParseError> {
        Ok(Self { base: url::Url::parse(base)?, dirs: std::collections::HashMap::new() })
    }

    fn join(&mut self, reference: &str) -> Result<String, url::ParseError> {
        if is_canonical_http_url(reference) {
            return Ok(reference.to_string());
        }
        let ups = reference.len() - reference.trim_start_matches("../").len();
        let rest = &reference[ups..];
        if ups == 0 || !is_plain_path(rest) {
            return Ok(self.base.join(reference)?.to_string());
        }
        let dir = match self.dirs.get(&ups) {
            Some(dir) => dir,
            None => {
                let dir = self.base.join(&reference[..ups])?.to_string();
                if !dir.ends_with('/') {
                    return Ok(self.base.join(reference)?.to_string());
                }
                self.dirs.entry(ups).or_insert(dir)
            }
        };
        Ok(format!("{dir}{rest}"))
    }
}

/// Non-empty `/`-separated segments of plain characters, none of them `.` or `..`: a path the
/// url crate writes back unchanged.
fn is_plain_path(path: &str) -> bool {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '+');
    !path.is_empty()
        && path.chars().all(plain)
        && path.split('/').all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

/// `http(s)://host/path` that the url crate parses back to the same text: a lowercase DNS name
/// whose last label starts with a letter (so not an IP address), no port or user, a plain path
/// ([`is_plain_path`]), no query or fragment.
fn is_canonical_http_url(reference: &str) -> bool {
    let Some(rest) = reference.strip_prefix("https://").or_else(|| reference.strip_prefix("http://")) else {
        return false;
    };
    let Some((host, path)) = rest.split_once('/') else { return false };
    let label = |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    host.split('.').all(label)
        && host.rsplit('.').next().is_some_and(|last| last.starts_with(|c: char| c.is_ascii_lowercase()))
        && is_plain_path(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize() {
        assert_eq!(normalize("Typing_Extensions"), "typing-extensions");
        assert_eq!(normalize("zope.interface"), "zope-interface");
    }

    #[test]
    fn file_urls_join_like_the_url_crate() {
        let cases = [
            "../../packages/packages/41/17/9885e4/ruff-0.8.0-py3-none-macosx_11_0_arm64.whl",
            "../../packages/packages/41/17/9885e4/ruff-0.8.0.tar.gz",
            "../packages/a+b/x.whl",
            "../../../../../../too/far/up.whl",
            "https://files.pythonhosted.org/packages/aa/bb/black-24.10.0-py3-none-any.whl",
            "http://files.example/packages/x-1.0.tar.gz",
            "HTTPS://Files.Pythonhosted.org/a.whl",
            "https://files.example./a.whl",
            "https://a..b/x.whl",
            "https://1.2.3.4/x.whl",
            "https://0x7f.1/x.whl",
            "https://h.example:443/x.whl",
            "https://user@h.example/x.whl",
            "https://h.example/x/../y.whl",
            "https://h.example/x/./y.whl",
            "https://h.example//x.whl",
            "https://h.example/",
            "https://h.example",
            "https://h.example/a%2Fb.whl",
            "https://h.example/a b.whl",
            "https://h.example/x.whl?a=1",
            "https://xn--nxasmq6b.example/x.whl",
            "https://-h.example/x.whl",
            "../../a b/c%20d.whl",
            "../../a/./b.whl",
            "../../a/../b.whl",
            "../../a//b.whl",
            "../../a/b.whl?x=1#sha256=00",
            "../../",
            "packages/x.whl",
            "/abs/x.whl",
            "//other.host/x.whl",
            "../../ünï/x.whl",
        ];
        for base in
            ["https://pypi.org/pypi/ruff/json", "https://mirror.example/simple/pypi/ruff/json?x=1", "http://h/json"]
        {
            let mut joiner = Joiner::new(base).unwrap();
            let url = url::Url::parse(base).unwrap();
            for case in cases {
                assert_eq!(joiner.join(case).unwrap(), url.join(case).unwrap().to_string(), "{case} against {base}");
            }
        }
    }
}
