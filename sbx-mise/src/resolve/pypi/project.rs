//! PyPI's JSON API: a project's releases with their files, and a release's `Requires-Dist`.
//!
//! `GET <pypi>/pypi/<name>/json` lists every release's files (URL, sha256, size,
//! `requires_python`, yanked) and the newest release's metadata. Metadata of other releases
//! comes from `GET <pypi>/pypi/<name>/<version>/json`; mirrors that do not serve that endpoint
//! are handled by reading `*.dist-info/METADATA` out of one of the release's wheels
//! ([`Fetch::wheel_metadata`](crate::resolve::Fetch::wheel_metadata): range requests where the
//! server allows them). Both are requested at once, so a mirror without release documents costs
//! no extra round trip; the release document wins whenever it exists.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use futures::future::{Either, select};
use serde::Deserialize;

use crate::http::lazy_zip;
use crate::resolve::{FetchError, ResolveContext, ResolveError, WHEEL_METADATA, documents};

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

/// One project as the JSON API describes it.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Project {
    /// The newest release's metadata.
    pub info: Info,
    /// Version → its files.
    #[serde(default)]
    pub releases: BTreeMap<String, Vec<File>>,
}

impl Project {
    /// Whether `version` is the release `info` describes (the newest), compared as PEP 440
    /// versions, so its `Requires-Dist` is at hand.
    pub fn describes(&self, version: &str) -> bool {
        pep508_rs::pep440_rs::Version::from_str(&self.info.version).is_ok_and(|v| v.to_string() == version)
    }
}

/// `info` of a project or release document.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Info {
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// The release this metadata belongs to.
    #[serde(default)]
    pub version: String,
    /// Its dependencies (PEP 508 strings); `None` when it has none.
    #[serde(default)]
    pub requires_dist: Option<Vec<String>>,
}

/// One distribution file of a release.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct File {
    /// File name (`black-24.8.0-py3-none-any.whl`).
    pub filename: String,
    /// Download URL, absolute after [`fetch_project`].
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
}

/// File digests.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Digests {
    /// Lowercase hex sha256.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// The project document URL.
pub fn project_url(pypi: &str, name: &str) -> String {
    format!("{}/pypi/{}/json", pypi.trim_end_matches('/'), normalize(name))
}

/// Fetches a project; `None` when PyPI has no such project (404). File URLs are made absolute.
/// Parsed once per run and shared ([`documents::parsed`]).
pub async fn fetch_project(ctx: &ResolveContext<'_>, name: &str) -> Result<Option<Arc<Project>>, ResolveError> {
    let url = project_url(&ctx.upstreams.pypi, name);
    let body = match ctx.fetch.get(&url).await {
        Ok(b) => b,
        Err(FetchError::Status { status: 404, .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let source = url.clone();
    let project = documents::parsed(ctx.fetch, &url, body, move |body| {
        let mut project: Project = serde_json::from_slice(body).map_err(|e| ResolveError::Malformed {
            url: source.clone(),
            message: format!("not a PyPI project document: {e}"),
        })?;
        absolute_urls(&source, project.releases.values_mut().flatten())?;
        Ok::<_, ResolveError>(project)
    });
    Ok(Some(project.await?))
}

/// The release page of `name==version` (`/pypi/<name>/<version>/json`: that version's `info`
/// and files, a few kilobytes) as a [`Project`] holding only this release, when the index
/// serves one whose version is exactly `version` and has a file that is not yanked; `None`
/// otherwise (many mirrors serve no release pages). Since 2022 PyPI's release pages list no
/// other releases, so this is all an exact version needs: ruff's whole project document is
/// 5.9 MB.
pub async fn fetch_release(ctx: &ResolveContext<'_>, name: &str, version: &str) -> Option<Arc<Project>> {
    #[derive(Deserialize)]
    struct Page {
        info: Info,
        #[serde(default)]
        urls: Vec<File>,
    }
    let url = release_url(&ctx.upstreams.pypi, name, version);
    let body = ctx.fetch.get(&url).await.ok()?;
    let source = url.clone();
    let project = documents::parsed(ctx.fetch, &url, body, move |body| {
        let mut page: Page = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        absolute_urls(&source, page.urls.iter_mut()).map_err(|e| e.to_string())?;
        let releases = BTreeMap::from([(page.info.version.clone(), page.urls)]);
        Ok::<_, String>(Project { info: page.info, releases })
    });
    let project = project.await.ok()?;
    let files = project.releases.get(version)?;
    files.iter().any(|f| !f.yanked).then_some(project)
}

/// The release page URL of `name==version`.
fn release_url(pypi: &str, name: &str, version: &str) -> String {
    format!("{}/pypi/{}/{version}/json", pypi.trim_end_matches('/'), normalize(name))
}

/// Makes the URLs of `files`, listed in the document at `source`, absolute.
fn absolute_urls<'f>(source: &str, files: impl Iterator<Item = &'f mut File>) -> Result<(), ResolveError> {
    let malformed = |message: String| ResolveError::Malformed { url: source.to_string(), message };
    let mut base = Joiner::new(source).map_err(|e| malformed(e.to_string()))?;
    for file in files {
        file.url = base.join(&file.url).map_err(|e| malformed(format!("bad file URL {}: {e}", file.url)))?;
    }
    Ok(())
}

/// Makes a project document's file URLs absolute, as `url::Url::join` does. A project like
/// ruff lists 7000 files and a join costs over a microsecond, on the path of every lock: URLs
/// that are a run of `../` and then plain path characters (mirrors write
/// `../../packages/<hash>/<file>`) join their `../` run once and append the rest, which is
/// exactly what the join would produce; every other URL is joined.
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
        let ups = reference.len() - reference.trim_start_matches("../").len();
        let rest = &reference[ups..];
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '+');
        let simple = ups > 0
            && !rest.is_empty()
            && rest.chars().all(plain)
            && rest.split('/').all(|segment| !segment.is_empty() && segment != "." && segment != "..");
        if !simple {
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

/// `Requires-Dist` of `name==version`: the release document, or else (it is missing, or
/// `--offline` has only the wheel's) the METADATA inside `wheel_url` (one of the release's
/// wheels). Both are fetched at once; an error of the release document other than 404 is the
/// answer when the METADATA cannot stand in.
pub async fn fetch_requires(
    ctx: &ResolveContext<'_>,
    name: &str,
    version: &str,
    wheel_url: &str,
) -> Result<Vec<String>, ResolveError> {
    let url = release_url(&ctx.upstreams.pypi, name, version);
    let release = std::pin::pin!(ctx.fetch.get(&url));
    let metadata = std::pin::pin!(ctx.fetch.wheel_metadata(wheel_url));
    let (release, metadata) = match select(release, metadata).await {
        Either::Left((Ok(body), _)) => return requires_from_release(&url, &body),
        Either::Left((release, metadata)) => (release, metadata.await),
        Either::Right((metadata, release)) => (release.await, metadata),
    };
    match (release, metadata) {
        (Ok(body), _) => requires_from_release(&url, &body),
        (Err(FetchError::Status { status: 404, .. } | FetchError::Offline { .. }), Ok(metadata)) => {
            let text = std::str::from_utf8(&metadata).map_err(|e| ResolveError::Malformed {
                url: wheel_url.to_string(),
                message: format!("{WHEEL_METADATA}: {e}"),
            })?;
            Ok(requires_from_metadata(text))
        }
        (Err(FetchError::Status { status: 404, .. }), Err(FetchError::Malformed { url, message })) => {
            Err(ResolveError::Malformed { url, message })
        }
        (Err(FetchError::Status { status: 404, .. }), Err(e)) => Err(e.into()),
        (Err(e), _) => Err(e.into()),
    }
}

fn requires_from_release(url: &str, body: &[u8]) -> Result<Vec<String>, ResolveError> {
    #[derive(Deserialize)]
    struct Release {
        info: Info,
    }
    let release: Release = serde_json::from_slice(body).map_err(|e| ResolveError::Malformed {
        url: url.to_string(),
        message: format!("not a PyPI release document: {e}"),
    })?;
    Ok(release.info.requires_dist.unwrap_or_default())
}

/// The `Requires-Dist` lines of a whole wheel's `*.dist-info/METADATA`.
pub fn requires_from_wheel(wheel: &[u8]) -> Result<Vec<String>, String> {
    let metadata = lazy_zip::member_in(wheel, lazy_zip::is_wheel_metadata, WHEEL_METADATA)?;
    let text = String::from_utf8(metadata).map_err(|e| format!("{WHEEL_METADATA}: {e}"))?;
    Ok(requires_from_metadata(&text))
}

/// The `Requires-Dist` values of a METADATA file (headers only, before the body).
pub fn requires_from_metadata(text: &str) -> Vec<String> {
    text.lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.strip_prefix("Requires-Dist:"))
        .map(|v| v.trim().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_metadata() {
        assert_eq!(normalize("Typing_Extensions"), "typing-extensions");
        assert_eq!(normalize("zope.interface"), "zope-interface");
        let meta = "Metadata-Version: 2.1\nName: black\nRequires-Dist: click>=8.0.0\nRequires-Dist: tomli; python_version < \"3.11\"\n\nRequires-Dist: not-a-header\n";
        assert_eq!(requires_from_metadata(meta), ["click>=8.0.0", "tomli; python_version < \"3.11\""]);
    }

    #[test]
    fn file_urls_join_like_the_url_crate() {
        let cases = [
            "../../packages/packages/41/17/9885e4/ruff-0.8.0-py3-none-macosx_11_0_arm64.whl",
            "../../packages/packages/41/17/9885e4/ruff-0.8.0.tar.gz",
            "../packages/a+b/x.whl",
            "../../../../../../too/far/up.whl",
            "https://files.pythonhosted.org/packages/aa/bb/black-24.10.0-py3-none-any.whl",
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

    #[test]
    fn reads_metadata_from_a_wheel() {
        use std::io::Write;
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default();
        w.start_file("x/__init__.py", opts).unwrap();
        w.start_file("x-1.0.dist-info/METADATA", opts).unwrap();
        w.write_all(b"Name: x\nRequires-Dist: y>=1\n\nbody").unwrap();
        w.finish().unwrap();
        assert_eq!(requires_from_wheel(buf.get_ref()).unwrap(), ["y>=1"]);
    }
}
