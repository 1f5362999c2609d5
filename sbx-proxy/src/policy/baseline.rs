//! The baseline of the `balanced` preset, read from `data/balanced.toml` (embedded at build time
//! so the binary and the file users read can never disagree).

use serde::Deserialize;

use super::rule::DomainRule;
use crate::ProxyError;

const BALANCED_TOML: &str = include_str!("../../data/balanced.toml");

/// One named group of baseline hosts (e.g. "package registries").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineGroup {
    /// The group's name.
    pub name: String,
    /// Its rules; each rule's `source` reads `balanced preset [<group>]`.
    pub rules: Vec<DomainRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    group: Vec<Group>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    name: String,
    domains: Vec<String>,
}

/// The text of `data/balanced.toml`, for users who want to read it.
pub fn balanced_baseline_text() -> &'static str {
    BALANCED_TOML
}

/// The parsed `balanced` baseline.
pub fn balanced_baseline() -> Result<Vec<BaselineGroup>, ProxyError> {
    let file: File = toml::from_str(BALANCED_TOML).map_err(|e| ProxyError::Baseline(e.to_string()))?;
    file.group
        .into_iter()
        .map(|g| {
            let source = format!("balanced preset [{}]", g.name);
            let rules = g
                .domains
                .iter()
                .map(|d| DomainRule::parse(d, source.clone()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ProxyError::Baseline(e.to_string()))?;
            Ok(BaselineGroup { name: g.name, rules })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn baseline_parses_and_covers_the_agents() {
        let groups = super::balanced_baseline().unwrap();
        let all: Vec<String> = groups.iter().flat_map(|g| g.rules.iter().map(|r| r.to_string())).collect();
        for host in ["api.anthropic.com", "api.openai.com", "generativelanguage.googleapis.com", "registry.npmjs.org"] {
            assert!(all.iter().any(|r| r == host), "{host} missing");
        }
    }
}
