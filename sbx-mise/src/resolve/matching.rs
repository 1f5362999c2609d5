//! Picking the version a request means, with mise's semantics.
//!
//! * A plain version is a fuzzy prefix on dot boundaries: `1.2` matches `1.2.3`, not `1.20.0`;
//!   the newest match wins. A version that exists exactly is taken as is.
//! * Prereleases (`-rc.1`, `rc1`, `-beta`, `a1`, …) are skipped unless the request itself
//!   names one.
//! * `latest` is the newest stable version; `prefix:1.2` the newest starting with `1.2`
//!   (`1.20` included); `sub-1:latest` steps the newest version back (22.11.0 → newest 21.x),
//!   `sub-0.1:1.22` → newest 1.21.x.
//! * `lts` is the node backend's business ([`super::node`]).
//!
//! Versions are ordered with the `semver` crate when every candidate is semver (after an
//! optional `v`), and otherwise by a total order on their numeric and alphabetic chunks.

use std::cmp::Ordering;
use std::sync::OnceLock;

use regex::Regex;

use super::ResolveError;
use crate::VersionRequest;

/// Whether a version string looks like a prerelease (mise's heuristic, plus semver's `-`).
pub fn is_prerelease(version: &str) -> bool {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(
            r"(?i)(-src|-dev|-latest|-stm|[-.](rc|pre|preview)|-milestone|-alpha|-beta|[-.]?(alpha|beta|rc|pre|dev)\.?[0-9]*$|[0-9](a|b|c|rc)[0-9]+|snapshot|-next|nightly|master)",
        )
        .ok()
    });
    match re {
        Some(re) => re.is_match(version),
        None => version.contains('-'),
    }
}

/// Sorts versions oldest → newest (see the module docs for the order).
pub fn sort_versions(versions: &mut [String]) {
    let all_semver = versions.iter().all(|v| parse_semver(v).is_some());
    if all_semver {
        versions.sort_by(|a, b| match (parse_semver(a), parse_semver(b)) {
            (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
            _ => a.cmp(b),
        });
    } else {
        versions.sort_by(|a, b| compare_chunks(a, b));
    }
}

fn parse_semver(v: &str) -> Option<semver::Version> {
    semver::Version::parse(v.strip_prefix('v').unwrap_or(v)).ok()
}

#[derive(PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Chunk {
    // Declaration order is the order: text (prerelease tags) < end of version < numbers.
    Text(String),
    End,
    Num(u64),
}

fn chunks(v: &str) -> Vec<Chunk> {
    let v = v.strip_prefix('v').unwrap_or(v);
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_digit = false;
    let flush = |cur: &mut String, digit: bool, out: &mut Vec<Chunk>| {
        if cur.is_empty() {
            return;
        }
        let chunk = if digit {
            cur.parse().map(Chunk::Num).unwrap_or_else(|_| Chunk::Text(cur.clone()))
        } else {
            Chunk::Text(cur.to_ascii_lowercase())
        };
        out.push(chunk);
        cur.clear();
    };
    for c in v.chars() {
        if c.is_ascii_alphanumeric() {
            let digit = c.is_ascii_digit();
            if !cur.is_empty() && digit != cur_digit {
                flush(&mut cur, cur_digit, &mut out);
            }
            cur_digit = digit;
            cur.push(c);
        } else {
            flush(&mut cur, cur_digit, &mut out);
        }
    }
    flush(&mut cur, cur_digit, &mut out);
    out
}

/// A total order on version strings by chunks: `1.2 < 1.2.1 < 1.10`, `1.0.0-rc1 < 1.0.0`.
pub fn compare_chunks(a: &str, b: &str) -> Ordering {
    let (ca, cb) = (chunks(a), chunks(b));
    let n = ca.len().max(cb.len());
    for i in 0..n {
        let x = ca.get(i).unwrap_or(&Chunk::End);
        let y = cb.get(i).unwrap_or(&Chunk::End);
        match x.cmp(y) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    a.cmp(b)
}

/// The newest of `versions` (any order) satisfying `keep`.
fn newest(versions: &[String], keep: impl Fn(&str) -> bool) -> Option<&String> {
    let mut matching: Vec<String> = versions.iter().filter(|v| keep(v)).cloned().collect();
    sort_versions(&mut matching);
    let best = matching.pop()?;
    versions.iter().find(|v| **v == best)
}

/// Picks the version `request` means among `versions` (any order).
///
/// `tool` is only used in the error. `Lts` is not handled here and yields `Unsupported`.
pub fn select(tool: &str, versions: &[String], request: &VersionRequest) -> Result<String, ResolveError> {
    let no_match = || ResolveError::NoMatch {
        tool: tool.to_string(),
        request: request.to_string(),
        nearest: nearest(versions, &request.to_string()),
    };
    match request {
        VersionRequest::Version(v) => fuzzy(versions, v).ok_or_else(no_match),
        VersionRequest::Latest => newest(versions, |v| !is_prerelease(v)).cloned().ok_or_else(no_match),
        VersionRequest::Prefix(p) => {
            let pre_ok = is_prerelease(p);
            let starts = |v: &str| v.strip_prefix('v').unwrap_or(v).starts_with(p.trim_start_matches('v'));
            newest(versions, |v| starts(v) && (pre_ok || !is_prerelease(v))).cloned().ok_or_else(no_match)
        }
        VersionRequest::Sub { depth, base } => {
            let base_version = match base.as_str() {
                "latest" => newest(versions, |v| !is_prerelease(v)).cloned(),
                b => fuzzy(versions, b),
            }
            .ok_or_else(no_match)?;
            let wanted = subtract(&base_version, depth).ok_or_else(no_match)?;
            fuzzy(versions, &wanted).ok_or_else(no_match)
        }
        VersionRequest::Lts(_) => Err(ResolveError::Unsupported(format!(
            "`{request}` only means something for node; {tool} has no LTS lines"
        ))),
        VersionRequest::Ref(_) | VersionRequest::Path(_) | VersionRequest::System => {
            Err(ResolveError::Unsupported(format!("`{request}` cannot be locked: sbx pins released versions only")))
        }
    }
}

/// mise's fuzzy match: an exact listing wins, else the newest stable version on a dot boundary.
pub fn fuzzy(versions: &[String], request: &str) -> Option<String> {
    let bare = |v: &str| v.strip_prefix('v').unwrap_or(v).to_string();
    if let Some(exact) = versions.iter().find(|v| bare(v) == bare(request)) {
        return Some(exact.clone());
    }
    let pre_ok = is_prerelease(request);
    newest(versions, |v| VersionRequest::fuzzy_matches(request, v) && (pre_ok || !is_prerelease(v))).cloned()
}

/// mise's `sub-N:` arithmetic: `base` truncated to as many components as `depth`, each one
/// decremented by the matching component of `depth` (`22.11.0` − `1` → `21`;
/// `1.22.5` − `0.1` → `1.21`). `None` if it would go below zero or a component is not a number.
pub fn subtract(base: &str, depth: &str) -> Option<String> {
    let base = base.strip_prefix('v').unwrap_or(base);
    let base = base.split(['-', '+']).next().unwrap_or(base);
    let sub: Vec<u64> = depth.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let parts: Vec<u64> = base.split('.').take(sub.len()).map(|p| p.parse().ok()).collect::<Option<_>>()?;
    if parts.len() < sub.len() {
        return None;
    }
    let out: Vec<String> =
        parts.iter().zip(&sub).map(|(b, s)| b.checked_sub(*s).map(|n| n.to_string())).collect::<Option<_>>()?;
    Some(out.join("."))
}

/// Up to five existing versions close to a request that matched nothing, newest first: the
/// newest stable versions sharing the longest leading part of the request, else the newest.
pub fn nearest(versions: &[String], request: &str) -> Vec<String> {
    let mut stable: Vec<String> = versions.iter().filter(|v| !is_prerelease(v)).cloned().collect();
    sort_versions(&mut stable);
    stable.reverse();
    let parts: Vec<&str> = request.split('.').collect();
    for len in (1..parts.len()).rev() {
        let prefix = parts[..len].join(".");
        let close: Vec<String> =
            stable.iter().filter(|v| VersionRequest::fuzzy_matches(&prefix, v)).take(5).cloned().collect();
        if !close.is_empty() {
            return close;
        }
    }
    stable.into_iter().take(5).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn pick(versions: &[&str], request: &str) -> Result<String, ResolveError> {
        select("tool", &list(versions), &VersionRequest::parse(request).unwrap())
    }

    const NODE: &[&str] =
        &["18.20.4", "20.17.0", "20.18.0", "21.7.3", "22.1.0", "22.9.0", "22.10.0", "22.11.0", "23.3.0", "24.0.0-rc.1"];

    #[test]
    fn fuzzy_prefix_on_dot_boundaries() {
        let v = ["1.2.3", "1.2.10", "1.20.0", "1.3.0"];
        assert_eq!(pick(&v, "1.2").unwrap(), "1.2.10");
        assert_eq!(pick(&v, "1.20").unwrap(), "1.20.0");
        assert_eq!(pick(&v, "1").unwrap(), "1.20.0");
        assert_eq!(pick(&v, "1.2.3").unwrap(), "1.2.3");
        assert_eq!(pick(NODE, "22").unwrap(), "22.11.0");
        assert_eq!(pick(NODE, "2").map_err(|e| e.to_string()).unwrap_err(), "no version of tool matches `2`");
    }

    #[test]
    fn prereleases_are_skipped_unless_named() {
        assert_eq!(pick(NODE, "latest").unwrap(), "23.3.0");
        assert!(pick(NODE, "24").is_err());
        assert_eq!(pick(NODE, "24.0.0-rc.1").unwrap(), "24.0.0-rc.1");
        let py = ["3.12.7", "3.13.0rc1", "3.13.0a1"];
        assert_eq!(pick(&py, "3").unwrap(), "3.12.7");
        assert_eq!(pick(&py, "3.13.0rc1").unwrap(), "3.13.0rc1");
        let go = ["1.22.9", "1.23.3", "1.24rc1"];
        assert_eq!(pick(&go, "latest").unwrap(), "1.23.3");
        let gh = ["v2.62.0", "v2.63.0-pre.0"];
        assert_eq!(pick(&gh, "latest").unwrap(), "v2.62.0");
        assert_eq!(pick(&gh, "2.62").unwrap(), "v2.62.0");
    }

    #[test]
    fn prefix_is_not_bound_to_dots() {
        let v = ["1.2.3", "1.20.0", "1.3.0"];
        assert_eq!(pick(&v, "prefix:1.2").unwrap(), "1.20.0");
        assert!(pick(&v, "prefix:2").is_err());
    }

    #[test]
    fn sub_steps_back() {
        assert_eq!(pick(NODE, "sub-1:latest").unwrap(), "22.11.0");
        assert_eq!(pick(NODE, "sub-2:latest").unwrap(), "21.7.3");
        assert_eq!(pick(NODE, "sub-1:22").unwrap(), "21.7.3");
        let go = ["1.21.0", "1.21.13", "1.22.0", "1.22.9"];
        assert_eq!(pick(&go, "sub-0.1:1.22").unwrap(), "1.21.13");
        assert_eq!(pick(&go, "sub-0.1:latest").unwrap(), "1.21.13");
        assert!(pick(&go, "sub-2:latest").is_err());
        assert_eq!(subtract("22.11.0", "1").as_deref(), Some("21"));
        assert_eq!(subtract("1.22.5", "0.1").as_deref(), Some("1.21"));
        assert_eq!(subtract("0.1", "1"), None);
    }

    #[test]
    fn no_match_suggests_nearest() {
        match pick(NODE, "22.99") {
            Err(ResolveError::NoMatch { nearest, .. }) => {
                assert_eq!(nearest, ["22.11.0", "22.10.0", "22.9.0", "22.1.0"])
            }
            other => panic!("{other:?}"),
        }
        match pick(NODE, "99") {
            Err(ResolveError::NoMatch { nearest, .. }) => assert_eq!(nearest[0], "23.3.0"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(pick(NODE, "lts"), Err(ResolveError::Unsupported(_))));
    }

    #[test]
    fn sorting() {
        let mut v = list(&["1.10.0", "1.9.0", "1.10.0-rc.1", "v1.2.0"]);
        sort_versions(&mut v);
        assert_eq!(v, ["v1.2.0", "1.9.0", "1.10.0-rc.1", "1.10.0"]);
        let mut v = list(&["3.13.0", "3.13.0rc1", "3.9", "3.12.7+20241016", "1.24rc1", "1.24"]);
        sort_versions(&mut v);
        assert_eq!(v, ["1.24rc1", "1.24", "3.9", "3.12.7+20241016", "3.13.0rc1", "3.13.0"]);
        assert!(is_prerelease("1.0.0-beta.2") && is_prerelease("3.13.0a1") && is_prerelease("1.24rc1"));
        assert!(!is_prerelease("22.11.0") && !is_prerelease("3.12.7+20241016") && !is_prerelease("2024.1.1"));
    }

    proptest::proptest! {
        #[test]
        fn chunk_order_is_total(a in "[0-9a-z.+-]{0,12}", b in "[0-9a-z.+-]{0,12}") {
            let ab = compare_chunks(&a, &b);
            proptest::prop_assert_eq!(ab.reverse(), compare_chunks(&b, &a));
            proptest::prop_assert_eq!(ab == Ordering::Equal, a == b);
        }

        #[test]
        fn sorting_never_panics(v in proptest::collection::vec("[0-9a-z.+-]{0,8}", 0..30)) {
            let mut v = v;
            sort_versions(&mut v);
        }
    }
}
