//! The network policy: presets, domain rules and CIDR rules, and the decisions made from them.
//!
//! Order of evaluation for a host name: a matching `blocked_domains` rule refuses (deny beats
//! allow); otherwise a matching `allowed_domains` rule or preset baseline rule allows; otherwise
//! the preset decides (`allow-all` allows, `balanced` and `deny-all` refuse). Every address the
//! name resolves to is then checked: `blocked_cidrs` refuse, and special addresses (loopback,
//! private, link-local, …) need an `allowed_cidrs` rule. IP-literal targets need an
//! `allowed_cidrs` rule (under `allow-all`, public literal addresses are allowed by the preset).

mod baseline;
mod render;
mod rule;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

pub use baseline::{BaselineGroup, balanced_baseline, balanced_baseline_text};
pub use render::render_policy;
pub use rule::{CidrRule, DomainRule, HostPattern, RuleError};

use crate::addr::classify;
use crate::refusal::{Fix, Refusal};
use crate::target::{Host, Target};
use rule::{canonical_ip, suggestion_for};

/// A named starting point for the policy. Serialises as its canonical name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Everything not explicitly blocked is allowed (alias `open`).
    AllowAll,
    /// The AI API hosts, code hosts and package registries in `data/balanced.toml` (default).
    #[default]
    Balanced,
    /// Only what `allowed_domains` / `allowed_cidrs` list (alias `locked-down`).
    DenyAll,
}

impl Preset {
    /// Every name `network_policy` accepts: the canonical names, then the aliases.
    pub const ACCEPTED_NAMES: &'static [&'static str] = &["allow-all", "balanced", "deny-all", "open", "locked-down"];

    /// The canonical name, as written in `.sbx.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Preset::AllowAll => "allow-all",
            Preset::Balanced => "balanced",
            Preset::DenyAll => "deny-all",
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown preset name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("unknown network preset `{0}`")]
#[diagnostic(
    code(sbx_proxy::preset),
    help("use one of `allow-all` (alias `open`), `balanced` (the default) or `deny-all` (alias `locked-down`)")
)]
pub struct UnknownPreset(pub String);

impl FromStr for Preset {
    type Err = UnknownPreset;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "allow-all" | "open" => Ok(Preset::AllowAll),
            "balanced" => Ok(Preset::Balanced),
            "deny-all" | "locked-down" => Ok(Preset::DenyAll),
            _ => Err(UnknownPreset(crate::target::truncate(s))),
        }
    }
}

/// The policy as configured: plain data, filled in by the CLI from `.sbx.toml`.
#[derive(Debug, Clone, Default)]
pub struct PolicyConfig {
    /// The preset.
    pub preset: Preset,
    /// Where the preset was chosen (e.g. `.sbx.toml:4`, or `default`).
    pub preset_source: String,
    /// `allowed_domains`.
    pub allowed_domains: Vec<DomainRule>,
    /// `blocked_domains`; these beat every allow.
    pub blocked_domains: Vec<DomainRule>,
    /// `allowed_cidrs`: the only way to reach special or literal addresses.
    pub allowed_cidrs: Vec<CidrRule>,
    /// `blocked_cidrs`; these beat every allow.
    pub blocked_cidrs: Vec<CidrRule>,
}

/// The rule that decided something, for refusals, audit lines and `sbx policy show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// The list the rule is in: `allowed_domains`, `blocked_domains`, `allowed_cidrs`,
    /// `blocked_cidrs`, `preset`, or `address check`.
    pub list: &'static str,
    /// The rule as written (canonical form).
    pub text: String,
    /// Where it came from.
    pub source: String,
}

impl fmt::Display for Matched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} \"{}\" ({})", self.list, self.text, self.source)
    }
}

impl Matched {
    fn domain(list: &'static str, rule: &DomainRule) -> Matched {
        Matched { list, text: rule.to_string(), source: rule.source.clone() }
    }

    fn cidr(list: &'static str, rule: &CidrRule) -> Matched {
        Matched { list, text: rule.to_string(), source: rule.source.clone() }
    }
}

/// A host name that passed the domain policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAllowed {
    /// The rule that allowed it.
    pub by: Matched,
    /// Whether non-TLS traffic is allowed on TLS ports.
    pub raw_tcp: bool,
}

/// A compiled policy, ready to answer questions.
#[derive(Debug, Clone)]
pub struct Policy {
    config: PolicyConfig,
    baseline: Vec<DomainRule>,
}

impl Policy {
    /// Compiles `config`, loading the preset baseline.
    pub fn new(config: PolicyConfig) -> Result<Policy, crate::ProxyError> {
        let baseline = match config.preset {
            Preset::Balanced => balanced_baseline()?.into_iter().flat_map(|g| g.rules).collect(),
            Preset::AllowAll | Preset::DenyAll => Vec::new(),
        };
        Ok(Policy { config, baseline })
    }

    /// The configuration this policy was built from.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    fn preset_rule(&self) -> Matched {
        let source = if self.config.preset_source.is_empty() { "default" } else { &self.config.preset_source };
        Matched { list: "preset", text: self.config.preset.name().into(), source: source.into() }
    }

    /// Checks a host name on a port against the domain rules.
    pub fn check_name(&self, name: &str, port: u16, target: &Target) -> Result<NameAllowed, Box<Refusal>> {
        if let Some(rule) = self.config.blocked_domains.iter().find(|r| r.matches(name, port)) {
            return Err(Box::new(Refusal {
                target: target.to_string(),
                reason: format!("{name} is on the blocked list"),
                rule: Matched::domain("blocked_domains", rule),
                fix: Fix::Remove { list: "blocked_domains", text: rule.to_string(), source: rule.source.clone() },
            }));
        }
        let allowed = self.config.allowed_domains.iter().find(|r| r.matches(name, port));
        if let Some(rule) = allowed {
            return Ok(NameAllowed { by: Matched::domain("allowed_domains", rule), raw_tcp: rule.raw_tcp });
        }
        if let Some(rule) = self.baseline.iter().find(|r| r.matches(name, port)) {
            return Ok(NameAllowed { by: Matched::domain("preset", rule), raw_tcp: rule.raw_tcp });
        }
        match self.config.preset {
            Preset::AllowAll => Ok(NameAllowed { by: self.preset_rule(), raw_tcp: false }),
            Preset::Balanced | Preset::DenyAll => Err(Box::new(Refusal {
                target: target.to_string(),
                reason: format!("{name} is not on the allowed list of the {} preset", self.config.preset),
                rule: self.preset_rule(),
                fix: Fix::Add {
                    list: "allowed_domains",
                    text: suggestion_for(target, false),
                    at: self.config.allowed_domains.first().map(|r| r.source.clone()),
                },
            })),
        }
    }

    /// Checks one address the proxy is about to connect to. `Ok(Some(rule))` names the CIDR
    /// rule that was needed to allow it; `Ok(None)` means an ordinary public address.
    pub fn check_address(&self, target: &Target, ip: IpAddr) -> Result<Option<Matched>, Box<Refusal>> {
        let ip = canonical_ip(ip);
        if let Some(rule) = self.config.blocked_cidrs.iter().find(|r| r.contains(ip)) {
            return Err(Box::new(Refusal {
                target: target.to_string(),
                reason: format!("address {ip} is in a blocked address block"),
                rule: Matched::cidr("blocked_cidrs", rule),
                fix: Fix::Remove { list: "blocked_cidrs", text: rule.to_string(), source: rule.source.clone() },
            }));
        }
        if let Some(rule) = self.config.allowed_cidrs.iter().find(|r| r.contains(ip)) {
            return Ok(Some(Matched::cidr("allowed_cidrs", rule)));
        }
        let cidr_fix = Fix::Add {
            list: "allowed_cidrs",
            text: single_address_block(ip),
            at: self.config.allowed_cidrs.first().map(|r| r.source.clone()),
        };
        let address_rule = |text: &str| Matched { list: "address check", text: text.into(), source: "built in".into() };
        match (&target.host, classify(ip)) {
            (_, Some(special)) => {
                let how = match &target.host {
                    Host::Name(name) => format!("{name} resolved to {ip}, a {special} address"),
                    Host::Ip(_) => format!("{ip} is a {special} address"),
                };
                Err(Box::new(Refusal {
                    target: target.to_string(),
                    reason: format!("{how}; such addresses are refused unless allowed_cidrs covers them"),
                    rule: address_rule("special addresses need allowed_cidrs"),
                    fix: cidr_fix,
                }))
            }
            (Host::Ip(_), None) if self.config.preset == Preset::AllowAll => Ok(Some(self.preset_rule())),
            (Host::Ip(_), None) => Err(Box::new(Refusal {
                target: target.to_string(),
                reason: "connections to IP addresses need an allowed_cidrs rule".into(),
                rule: address_rule("IP-literal targets need allowed_cidrs"),
                fix: cidr_fix,
            })),
            (Host::Name(_), None) => Ok(None),
        }
    }
}

fn single_address_block(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(preset: Preset, allowed: &[&str], blocked: &[&str], cidrs: &[&str]) -> Policy {
        Policy::new(PolicyConfig {
            preset,
            preset_source: "test".into(),
            allowed_domains: allowed.iter().map(|r| DomainRule::parse(r, "t:1").unwrap()).collect(),
            blocked_domains: blocked.iter().map(|r| DomainRule::parse(r, "t:2").unwrap()).collect(),
            allowed_cidrs: cidrs.iter().map(|r| CidrRule::parse(r, "t:3").unwrap()).collect(),
            blocked_cidrs: vec![CidrRule::parse("203.0.113.0/24", "t:4").unwrap()],
        })
        .unwrap()
    }

    fn name_ok(p: &Policy, name: &str, port: u16) -> bool {
        let t = Target { host: Host::Name(name.into()), port };
        p.check_name(name, port, &t).is_ok()
    }

    #[test]
    fn presets_and_rules() {
        let open = policy(Preset::AllowAll, &[], &["*.evil.com"], &[]);
        assert!(name_ok(&open, "anything.org", 443));
        assert!(!name_ok(&open, "x.evil.com", 443));
        let bal = policy(Preset::Balanced, &["example.com:8443"], &["registry.npmjs.org"], &[]);
        assert!(name_ok(&bal, "api.anthropic.com", 443));
        assert!(!name_ok(&bal, "registry.npmjs.org", 443), "deny beats the baseline");
        assert!(name_ok(&bal, "example.com", 8443));
        assert!(!name_ok(&bal, "example.com", 443));
        assert!(!name_ok(&bal, "unknown.org", 443));
        let locked = policy(Preset::DenyAll, &["*.example.com"], &["bad.example.com"], &[]);
        assert!(!name_ok(&locked, "api.anthropic.com", 443));
        assert!(name_ok(&locked, "a.example.com", 443));
        assert!(!name_ok(&locked, "bad.example.com", 443));
    }

    #[test]
    fn addresses() {
        let p = policy(Preset::AllowAll, &[], &[], &["10.1.0.0/16"]);
        let named = Target { host: Host::Name("x.test".into()), port: 80 };
        assert!(p.check_address(&named, "1.1.1.1".parse().unwrap()).unwrap().is_none());
        assert!(p.check_address(&named, "127.0.0.1".parse().unwrap()).is_err());
        assert!(p.check_address(&named, "::ffff:169.254.169.254".parse().unwrap()).is_err());
        assert!(p.check_address(&named, "10.1.2.3".parse().unwrap()).unwrap().is_some());
        assert!(p.check_address(&named, "203.0.113.9".parse().unwrap()).is_err());
        let lit = Target { host: Host::Ip("1.1.1.1".parse().unwrap()), port: 80 };
        assert!(p.check_address(&lit, "1.1.1.1".parse().unwrap()).is_ok());
        let strict = policy(Preset::Balanced, &[], &[], &[]);
        let err = strict.check_address(&lit, "1.1.1.1".parse().unwrap()).unwrap_err();
        assert_eq!(err.fix, Fix::Add { list: "allowed_cidrs", text: "1.1.1.1/32".into(), at: None });
    }

    #[test]
    fn preset_names() {
        assert_eq!("open".parse::<Preset>().unwrap(), Preset::AllowAll);
        assert_eq!("Locked-Down".parse::<Preset>().unwrap(), Preset::DenyAll);
        assert_eq!("balanced".parse::<Preset>().unwrap(), Preset::Balanced);
        assert!("strict".parse::<Preset>().is_err());
    }
}
