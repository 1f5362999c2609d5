//! Version requests as written in mise config, kept typed for the resolver.

use std::fmt;
use std::path::PathBuf;

/// What a config asked for, before resolution.
///
/// mise matches plain versions as *fuzzy prefixes* on dot boundaries: `22` matches `22.11.0`,
/// `1.2` matches `1.2.3` but not `1.20.0`, and a full version matches only itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VersionRequest {
    /// A plain version or fuzzy prefix: `22`, `3.12`, `1.22.3`.
    Version(String),
    /// The newest stable version.
    Latest,
    /// The newest long-term-support release (node); `lts/iron` names one LTS line.
    Lts(Option<String>),
    /// `prefix:1.2` — the newest version starting with that string, not bound to dots.
    Prefix(String),
    /// `ref:main` — a git ref, built from source by mise; kept so errors can name it.
    Ref(String),
    /// `path:/opt/node` — a directory on the host used as the tool.
    Path(PathBuf),
    /// `sub-1:latest` — the base version with its last `depth` components decremented.
    Sub {
        /// How many version components to step back (`sub-1` → 1).
        depth: String,
        /// The version the subtraction starts from (`latest` or a version).
        base: String,
    },
    /// `system` — use whatever the host has on PATH; never locked.
    System,
}

/// Why a version request could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestParseError {
    /// Nothing was written.
    #[error("empty version")]
    Empty,
    /// A `prefix:`/`ref:`/`path:`/`sub-N:` form with nothing after the colon.
    #[error("`{0}` needs a value after the colon")]
    MissingValue(String),
    /// `sub-N:` where N is not a positive integer.
    #[error("`{0}` is not a valid `sub-N:` request: N must be a positive integer")]
    BadSub(String),
    /// Whitespace inside a version.
    #[error("version `{0}` contains whitespace")]
    Whitespace(String),
}

impl VersionRequest {
    /// Reads one version string as mise does.
    pub fn parse(raw: &str) -> Result<Self, RequestParseError> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(RequestParseError::Empty);
        }
        if s.chars().any(char::is_whitespace) {
            return Err(RequestParseError::Whitespace(raw.to_string()));
        }
        let need = |v: &str, kind: &str| {
            if v.is_empty() { Err(RequestParseError::MissingValue(kind.to_string())) } else { Ok(v.to_string()) }
        };
        if let Some(v) = s.strip_prefix("prefix:") {
            return Ok(Self::Prefix(need(v, "prefix:")?));
        }
        if let Some(v) = s.strip_prefix("ref:") {
            return Ok(Self::Ref(need(v, "ref:")?));
        }
        if let Some(v) = s.strip_prefix("path:") {
            return Ok(Self::Path(PathBuf::from(need(v, "path:")?)));
        }
        if let Some(rest) = s.strip_prefix("sub-") {
            let (depth, base) = rest.split_once(':').ok_or_else(|| RequestParseError::BadSub(s.to_string()))?;
            let ok =
                !depth.is_empty() && depth.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if !ok || depth.trim_matches(['0', '.']).is_empty() {
                return Err(RequestParseError::BadSub(s.to_string()));
            }
            return Ok(Self::Sub { depth: depth.to_string(), base: need(base, &format!("sub-{depth}:"))? });
        }
        Ok(match s {
            "latest" => Self::Latest,
            "lts" => Self::Lts(None),
            "system" => Self::System,
            _ => match s.strip_prefix("lts/") {
                Some(line) if !line.is_empty() => Self::Lts(Some(line.to_string())),
                _ => Self::Version(s.to_string()),
            },
        })
    }

    /// Whether `candidate` satisfies a plain fuzzy request (`1.2` ⊇ `1.2.3`, not `1.20`).
    pub fn fuzzy_matches(prefix: &str, candidate: &str) -> bool {
        let prefix = prefix.strip_prefix('v').unwrap_or(prefix);
        let candidate = candidate.strip_prefix('v').unwrap_or(candidate);
        match candidate.strip_prefix(prefix) {
            Some(rest) => rest.is_empty() || rest.starts_with(['.', '-', '+']),
            None => false,
        }
    }

    /// Whether a request names one fixed thing that lock can pin without choosing.
    pub fn is_lockable(&self) -> bool {
        !matches!(self, Self::Ref(_) | Self::Path(_) | Self::System)
    }
}

impl fmt::Display for VersionRequest {
    /// Writes the request back exactly in mise's syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version(v) => f.write_str(v),
            Self::Latest => f.write_str("latest"),
            Self::Lts(None) => f.write_str("lts"),
            Self::Lts(Some(line)) => write!(f, "lts/{line}"),
            Self::Prefix(p) => write!(f, "prefix:{p}"),
            Self::Ref(r) => write!(f, "ref:{r}"),
            Self::Path(p) => write!(f, "path:{}", p.display()),
            Self::Sub { depth, base } => write!(f, "sub-{depth}:{base}"),
            Self::System => f.write_str("system"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::VersionRequest as R;
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(R::parse("22").unwrap(), R::Version("22".into()));
        assert_eq!(R::parse("latest").unwrap(), R::Latest);
        assert_eq!(R::parse("lts").unwrap(), R::Lts(None));
        assert_eq!(R::parse("lts/iron").unwrap(), R::Lts(Some("iron".into())));
        assert_eq!(R::parse("prefix:1.2").unwrap(), R::Prefix("1.2".into()));
        assert_eq!(R::parse("ref:main").unwrap(), R::Ref("main".into()));
        assert_eq!(R::parse("path:/opt/x").unwrap(), R::Path("/opt/x".into()));
        assert_eq!(R::parse("sub-1:latest").unwrap(), R::Sub { depth: "1".into(), base: "latest".into() });
        assert_eq!(R::parse("sub-0.1:1.2").unwrap(), R::Sub { depth: "0.1".into(), base: "1.2".into() });
        assert_eq!(R::parse("system").unwrap(), R::System);
    }

    #[test]
    fn rejects_bad_forms() {
        assert_eq!(R::parse(" "), Err(RequestParseError::Empty));
        assert!(matches!(R::parse("prefix:"), Err(RequestParseError::MissingValue(_))));
        assert!(matches!(R::parse("sub-x:latest"), Err(RequestParseError::BadSub(_))));
        assert!(matches!(R::parse("sub-0:latest"), Err(RequestParseError::BadSub(_))));
        assert!(matches!(R::parse("1 2"), Err(RequestParseError::Whitespace(_))));
    }

    #[test]
    fn round_trips_through_display() {
        for s in ["22", "latest", "lts", "lts/iron", "prefix:1.2", "ref:main", "path:/x", "sub-1:latest", "system"] {
            assert_eq!(R::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn fuzzy_matching_is_on_dot_boundaries() {
        assert!(R::fuzzy_matches("1.2", "1.2.3"));
        assert!(R::fuzzy_matches("1.2", "1.2"));
        assert!(!R::fuzzy_matches("1.2", "1.20.0"));
        assert!(R::fuzzy_matches("22", "v22.11.0"));
        assert!(!R::fuzzy_matches("2", "22.1.0"));
    }
}
