//! A release's `Requires-Dist` (and the extras it defines), read from the METADATA of one of
//! its wheels (the pipx backend says which), as pip and uv read it:
//!
//! * when the index serves the METADATA on its own (PEP 658, [`File::metadata`]), from
//!   `<wheel URL>.metadata`, checked against the digest the index lists;
//! * from the whole wheel when it is no larger than [`WHOLE_WHEEL`], checked against the
//!   wheel's sha256 the index lists;
//! * otherwise out of the wheel itself
//!   ([`Fetch::wheel_metadata`](crate::resolve::Fetch::wheel_metadata): range requests where
//!   the server allows them, the whole file where it does not).

use sha2::{Digest, Sha256};

use super::project::File;
use crate::http::lazy_zip;
use crate::resolve::{FetchError, ResolveContext, ResolveError, WHEEL_METADATA};

/// Wheels up to this size are downloaded whole. The range reads of a wheel ask for its last
/// 128 KiB and first 64 KiB ([`lazy_zip::TAIL`], [`lazy_zip::HEAD`]) in two requests; a file
/// not much larger costs the same bytes in one request, is checked against its sha256, and is
/// what caching proxies keep (they pass range requests to the index until they hold the file).
pub const WHOLE_WHEEL: u64 = 256 * 1024;

/// The `Requires-Dist` lines of the METADATA of `wheel`.
pub async fn fetch_requires(ctx: &ResolveContext<'_>, wheel: &File) -> Result<Vec<String>, ResolveError> {
    let (url, body) = fetch_metadata(ctx, wheel).await?;
    headers(&url, &body, "Requires-Dist")
}

/// The extras the release of `wheel` defines, normalised as PEP 685 compares them: its
/// METADATA's `Provides-Extra`, and the extras its `Requires-Dist` markers name (METADATA
/// before 2.1 has no `Provides-Extra`).
pub async fn fetch_provided_extras(ctx: &ResolveContext<'_>, wheel: &File) -> Result<Vec<String>, ResolveError> {
    let (url, body) = fetch_metadata(ctx, wheel).await?;
    let mut extras = headers(&url, &body, "Provides-Extra")?;
    extras.extend(headers(&url, &body, "Requires-Dist")?.iter().flat_map(|line| marker_extras(line)));
    let mut seen = std::collections::BTreeSet::new();
    Ok(extras.iter().map(|e| super::project::normalize(e)).filter(|e| seen.insert(e.clone())).collect())
}

/// The names a requirement's marker compares `extra` with (`extra == "d"`, `extra=='d'`).
fn marker_extras(requirement: &str) -> Vec<String> {
    let Some((_, marker)) = requirement.split_once(';') else { return Vec::new() };
    marker
        .match_indices("extra")
        .filter_map(|(i, _)| {
            let rest = marker[i + "extra".len()..].trim_start().strip_prefix("==")?.trim_start();
            let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            rest[1..].split(quote).next().map(str::to_string)
        })
        .collect()
}

/// The METADATA file of `wheel` and the URL it came from. Every read is memoized by the HTTP
/// client, so asking again for another header costs no request.
async fn fetch_metadata(ctx: &ResolveContext<'_>, wheel: &File) -> Result<(String, bytes::Bytes), ResolveError> {
    if let Some(digests) = &wheel.metadata {
        let url = format!("{}.metadata", wheel.url);
        match ctx.fetch.get(&url).await {
            Ok(body) => {
                check_sha256(&url, &body, digests.sha256.as_deref())?;
                return Ok((url, body));
            }
            // Advertised but missing: the wheel still holds it.
            Err(FetchError::Status { status: 404, .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let url = &wheel.url;
    if wheel.size.is_some_and(|size| size <= WHOLE_WHEEL) {
        let body = ctx.fetch.get(url).await?;
        check_sha256(url, &body, wheel.digests.sha256.as_deref())?;
        let metadata = lazy_zip::member_in(&body, lazy_zip::is_wheel_metadata, WHEEL_METADATA)
            .map_err(|message| ResolveError::Malformed { url: url.clone(), message })?;
        return Ok((url.clone(), metadata.into()));
    }
    Ok((url.clone(), ctx.fetch.wheel_metadata(url).await?))
}

/// An error naming `url` when `body` is not the file whose sha256 the index lists.
fn check_sha256(url: &str, body: &[u8], expected: Option<&str>) -> Result<(), ResolveError> {
    match expected {
        Some(expected) if !hex::encode(Sha256::digest(body)).eq_ignore_ascii_case(expected) => {
            Err(ResolveError::Malformed {
                url: url.to_string(),
                message: format!(
                    "its sha256 is not the {expected} the index lists for it; the index or a proxy in between \
                     serves damaged files"
                ),
            })
        }
        _ => Ok(()),
    }
}

/// The values of the `name:` header lines of a METADATA file (headers only, before the body).
fn headers(url: &str, body: &[u8], name: &str) -> Result<Vec<String>, ResolveError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ResolveError::Malformed { url: url.to_string(), message: format!("{WHEEL_METADATA}: {e}") })?;
    Ok(header_values(text, name))
}

/// The values of the `name:` header lines of a METADATA text (before the body), any case.
fn header_values(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| {
            l.split_once(':').filter(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requires_dist_comes_from_the_headers_only() {
        let meta = "Metadata-Version: 2.1\nName: black\nRequires-Dist: click>=8.0.0\nRequires-Dist: tomli; python_version < \"3.11\"\n\nRequires-Dist: not-a-header\n";
        assert_eq!(header_values(meta, "Requires-Dist"), ["click>=8.0.0", "tomli; python_version < \"3.11\""]);
        let meta = "Name: x\nProvides-Extra: d\nprovides-extra: Jupyter\n\nProvides-Extra: body\n";
        assert_eq!(header_values(meta, "Provides-Extra"), ["d", "Jupyter"]);
        assert_eq!(marker_extras(r#"uvloop>=0.15.2; extra == "uvloop" or extra=='fast'"#), ["uvloop", "fast"]);
        assert!(marker_extras("click>=8; python_version < '3.11'").is_empty());
        assert!(marker_extras("extras-lib>=1").is_empty());
    }
}
