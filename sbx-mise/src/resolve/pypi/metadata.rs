//! A release's `Requires-Dist`, read from the METADATA of one of its wheels (the pipx backend
//! says which), as pip and uv read it:
//!
//! * when the index serves the METADATA on its own (PEP 658, [`File::metadata`]), from
//!   `<wheel URL>.metadata`, checked against the digest the index lists;
//! * otherwise out of the wheel itself
//!   ([`Fetch::wheel_metadata`](crate::resolve::Fetch::wheel_metadata): range requests where
//!   the server allows them, the whole file where it does not).

use sha2::{Digest, Sha256};

use super::project::Digests;
#[cfg(doc)]
use super::project::File;
use crate::resolve::{FetchError, ResolveContext, ResolveError, WHEEL_METADATA};

/// The `Requires-Dist` lines of the METADATA of the wheel at `wheel_url`; `metadata` is its
/// [`File::metadata`].
pub async fn fetch_requires(
    ctx: &ResolveContext<'_>,
    wheel_url: &str,
    metadata: Option<&Digests>,
) -> Result<Vec<String>, ResolveError> {
    if let Some(digests) = metadata {
        let url = format!("{wheel_url}.metadata");
        match ctx.fetch.get(&url).await {
            Ok(body) => {
                if let Some(expected) = &digests.sha256
                    && !hex::encode(Sha256::digest(&body)).eq_ignore_ascii_case(expected)
                {
                    return Err(ResolveError::Malformed {
                        url,
                        message: format!(
                            "its sha256 is not the {expected} the index lists for it; the index or a proxy in \
                             between serves damaged files"
                        ),
                    });
                }
                return parse(&url, &body);
            }
            // Advertised but missing: the wheel still holds it.
            Err(FetchError::Status { status: 404, .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let body = ctx.fetch.wheel_metadata(wheel_url).await?;
    parse(wheel_url, &body)
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
