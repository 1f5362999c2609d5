//! PyPI's JSON simple API, where sbx reads a project from: PEP 691, with PEP 700's sizes and
//! PEP 714's `core-metadata`.
//!
//! `GET <pypi>/simple/<name>/` with `Accept: application/vnd.pypi.simple.v1+json` lists every
//! file of a project: URL, sha256, size, `Requires-Python`, whether it is yanked and whether
//! the index serves its METADATA on its own (PEP 658). It is what pip and uv read. On the PyPI
//! mirror sbx's figures come from, it answers in a few milliseconds where the JSON API's project
//! document (`/pypi/<name>/json`, [`project::fetch_json_api`]) takes 60–200 ms, and PyPI
//! deprecates that document's `releases` key.
//!
//! It carries no `Requires-Dist`: each release's comes from the METADATA of one of its wheels
//! ([`super::metadata`]). An index that answers the simple URL with HTML only (PEP 503)
//! or not at all is read through the JSON API instead.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use pep508_rs::pep440_rs::Version;
use serde::Deserialize;

use super::project::{self, Digests, File, Project, normalize};
use crate::resolve::{FetchError, ResolveContext, ResolveError, documents};

/// The media type of PEP 691's JSON simple index, version 1.
pub const SIMPLE_JSON: &str = "application/vnd.pypi.simple.v1+json";

/// The simple index page of a project.
pub fn simple_url(pypi: &str, name: &str) -> String {
    format!("{}/simple/{}/", pypi.trim_end_matches('/'), normalize(name))
}

/// Fetches a project: from the JSON simple API, or from the JSON API when the index does not
/// answer the simple URL with PEP 691 JSON. `None` when the index has no such project.
/// Parsed once per run and shared ([`documents::parsed`]).
pub async fn fetch_project(ctx: &ResolveContext<'_>, name: &str) -> Result<Option<Arc<Project>>, ResolveError> {
    let url = simple_url(&ctx.upstreams.pypi, name);
    let body = match ctx.fetch.get_accepting(&url, SIMPLE_JSON).await {
        Ok(body) => body,
        Err(FetchError::Status { status: 404 | 406, .. }) => return project::fetch_json_api(ctx, name).await,
        Err(e) => return Err(e.into()),
    };
    let (source, project) = (url.clone(), name.to_string());
    let parsed = documents::parsed(ctx.fetch, &url, body, move |body| {
        parse(&source, &project, body).map(|page| page.map(Arc::new))
    });
    if let Some(project) = &*parsed.await? {
        return Ok(Some(project.clone()));
    }
    match project::fetch_json_api(ctx, name).await? {
        Some(project) => Ok(Some(project)),
        // The index knows the project (it answered its simple page), in a form sbx cannot read.
        None => Err(ResolveError::Unsupported(format!(
            "{url} answers with HTML only (PEP 503) and {} has no JSON API; sbx reads an index's PEP 691 JSON \
             (`Accept: {SIMPLE_JSON}`) or PyPI's JSON API: point the PyPI setting (SBX_PYPI_URL, [mirrors] pypi) \
             at an index that serves one",
            ctx.upstreams.pypi
        ))),
    }
}

/// A simple index page; the fields sbx does not use are ignored.
#[derive(Deserialize)]
struct Page {
    meta: Meta,
    files: Vec<SimpleFile>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "api-version")]
    api_version: String,
}

#[derive(Deserialize)]
struct SimpleFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: BTreeMap<String, String>,
    #[serde(default, rename = "requires-python")]
    requires_python: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    yanked: Flag,
    #[serde(default, rename = "core-metadata")]
    core_metadata: Flag,
    /// PEP 658's name for `core-metadata`, still sent beside it.
    #[serde(default, rename = "data-dist-info-metadata")]
    dist_info_metadata: Flag,
}

/// `false`, `true`, a digest table (metadata) or anything else that is set (a yank reason).
#[derive(Default, Deserialize)]
#[serde(untagged)]
enum Flag {
    #[default]
    Off,
    Bool(bool),
    Hashes(BTreeMap<String, String>),
    Other(serde::de::IgnoredAny),
}

impl Flag {
    fn is_set(&self) -> bool {
        !matches!(self, Flag::Off | Flag::Bool(false))
    }

    fn sha256(&self) -> Option<String> {
        match self {
            Flag::Hashes(h) => h.get("sha256").cloned(),
            _ => None,
        }
    }
}

/// A simple index page as a [`Project`]: releases keyed by the version each file name carries
/// (canonical PEP 440), file URLs absolute.
/// `Ok(None)`: not a PEP 691 answer (HTML, or JSON of another API).
fn parse(source: &str, name: &str, body: &[u8]) -> Result<Option<Project>, ResolveError> {
    let malformed = |message: String| ResolveError::Malformed { url: source.to_string(), message };
    let page: Page = match serde_json::from_slice(body) {
        Ok(page) => page,
        Err(_) if !looks_like_simple_json(body) => return Ok(None),
        Err(e) => return Err(malformed(format!("not a PEP 691 simple index page: {e}"))),
    };
    if page.meta.api_version.split('.').next() != Some("1") {
        return Err(malformed(format!(
            "simple API version {} is not one sbx reads (1.x); point the PyPI setting (SBX_PYPI_URL) at an index \
             that serves version 1",
            page.meta.api_version
        )));
    }
    let mut releases: BTreeMap<String, Vec<File>> = BTreeMap::new();
    for f in page.files {
        let Some(version) = version_of(&f.filename, name) else { continue };
        let metadata = (f.core_metadata.is_set() || f.dist_info_metadata.is_set())
            .then(|| Digests { sha256: f.core_metadata.sha256().or_else(|| f.dist_info_metadata.sha256()) });
        releases.entry(version).or_default().push(File {
            filename: f.filename,
            url: f.url,
            digests: Digests { sha256: f.hashes.get("sha256").cloned() },
            size: f.size,
            requires_python: f.requires_python,
            yanked: f.yanked.is_set(),
            metadata,
        });
    }
    project::absolute_urls(source, releases.values_mut().flatten())?;
    Ok(Some(Project { releases }))
}

/// Whether a body that is no simple index page was meant as one: a JSON object with `meta`.
fn looks_like_simple_json(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body).is_ok_and(|o| o.contains_key("meta"))
}

/// The canonical version a distribution file of project `name` carries in its name: wheels
/// and eggs (`name-1.0-py3-none-any.whl`), source archives (`Name_x-1.0.tar.gz`); `None` for
/// other files and unparsable versions.
fn version_of(filename: &str, name: &str) -> Option<String> {
    let raw = if let Some(stem) = filename.strip_suffix(".whl").or_else(|| filename.strip_suffix(".egg")) {
        stem.split('-').nth(1)?
    } else {
        let stem = [".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar"]
            .iter()
            .find_map(|ext| filename.strip_suffix(ext))?;
        let name = normalize(name);
        stem.char_indices()
            .filter(|&(_, c)| c == '-')
            .find_map(|(i, _)| (normalize(&stem[..i]) == name).then(|| &stem[i + 1..]))?
    };
    Some(Version::from_str(raw).ok()?.to_string())
}

#[cfg(test)]
#[path = "simple_tests.rs"]
mod tests;
