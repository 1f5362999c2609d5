//! A release's `Requires-Dist`, read from the METADATA of one of its wheels (the pipx backend
//! says which), as pip and uv read it:
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
    if let Some(digests) = &wheel.metadata {
        let url = format!("{}.metadata", wheel.url);
        match ctx.fetch.get(&url).await {
            Ok(body) => {
                check_sha256(&url, &body, digests.sha256.as_deref())?;
                return parse(&url, &body);
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
        return parse(url, &metadata);
    }
    let body = ctx.fetch.wheel_metadata(url).await?;
    parse(url, &body)
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

fn parse(url: &str, body: &[u8]) -> Result<Vec<String>, ResolveError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ResolveError::Malformed { url: url.to_string(), message: format!("{WHEEL_METADATA}: {e}") })?;
    Ok(requires_from_metadata(text))
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
    fn requires_dist_comes_from_the_headers_only() {
        let meta = "Metadata-Version: 2.1\nName: black\nRequires-Dist: click>=8.0.0\nRequires-Dist: tomli; python_version < \"3.11\"\n\nRequires-Dist: not-a-header\n";
        assert_eq!(requires_from_metadata(meta), ["click>=8.0.0", "tomli; python_version < \"3.11\""]);
    }
}
