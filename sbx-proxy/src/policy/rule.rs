//! Single policy rules: domain patterns (`example.com`, `*.example.com`, `example.com:8443`,
//! `tcp://ssh.example.com:443`) and CIDR blocks, each remembering where it came from.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::target::{Host, Target, split_host_port, truncate};

/// Why a rule string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("invalid {kind} rule `{text}` ({source_label}): {reason}")]
#[diagnostic(code(sbx_proxy::rule), help("{help}"))]
pub struct RuleError {
    /// `domain` or `CIDR`.
    pub kind: &'static str,
    /// The offending text (shortened).
    pub text: String,
    /// Where it came from.
    pub source_label: String,
    /// What is wrong with it.
    pub reason: String,
    /// What a valid rule looks like.
    pub help: &'static str,
}

const DOMAIN_HELP: &str = "write a host name (`example.com`), a wildcard for its subdomains (`*.example.com`), \
optionally with a port (`example.com:8443`); prefix `tcp://` to also allow non-TLS traffic on TLS ports";
const CIDR_HELP: &str =
    "write an address block such as `10.0.0.0/8`, `192.168.1.5/32` or `fd00::/8`, or a single address";

/// The host part of a domain rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Matches exactly this name.
    Exact(String),
    /// `*.suffix`: matches every name that ends in `.suffix` (not `suffix` itself).
    Subdomains(String),
}

/// A domain rule from `allowed_domains` / `blocked_domains` or a preset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRule {
    /// Which host names the rule covers.
    pub pattern: HostPattern,
    /// The port it is limited to; `None` means every port.
    pub port: Option<u16>,
    /// Allows non-TLS traffic on TLS ports (written with a `tcp://` prefix).
    pub raw_tcp: bool,
    /// Where the rule came from, e.g. `.sbx.toml:12` or `balanced preset`.
    pub source: String,
}

impl DomainRule {
    /// Parses a rule such as `*.example.com:8443`; `source` says where it was written.
    pub fn parse(text: &str, source: impl Into<String>) -> Result<DomainRule, RuleError> {
        let source = source.into();
        let err = |reason: String| RuleError {
            kind: "domain",
            text: truncate(text),
            source_label: source.clone(),
            reason,
            help: DOMAIN_HELP,
        };
        let trimmed = text.trim();
        let (raw_tcp, rest) = match trimmed.strip_prefix("tcp://") {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        if rest.contains('/') {
            return Err(err("a domain rule has no scheme or path".into()));
        }
        let (host, port) = split_host_port(rest).map_err(|e| err(e.to_string()))?;
        let (wildcard, name) = match host.strip_prefix("*.") {
            Some(suffix) => (true, suffix),
            None => (false, host),
        };
        let name = match Host::parse(name).map_err(|e| err(e.to_string()))? {
            Host::Name(name) => name,
            Host::Ip(ip) => {
                return Err(err(format!("`{ip}` is an address; put addresses in allowed_cidrs / blocked_cidrs")));
            }
        };
        if name.contains('*') {
            return Err(err("`*` is only allowed as a leading `*.`".into()));
        }
        let pattern = if wildcard { HostPattern::Subdomains(name) } else { HostPattern::Exact(name) };
        Ok(DomainRule { pattern, port, raw_tcp, source })
    }

    /// Whether the rule covers `name` on `port`.
    pub fn matches(&self, name: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match &self.pattern {
            HostPattern::Exact(exact) => exact == name,
            HostPattern::Subdomains(suffix) => {
                name.len() > suffix.len() + 1
                    && name.ends_with(suffix.as_str())
                    && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
            }
        }
    }
}

impl fmt::Display for DomainRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.raw_tcp {
            f.write_str("tcp://")?;
        }
        match &self.pattern {
            HostPattern::Exact(name) => f.write_str(name)?,
            HostPattern::Subdomains(suffix) => write!(f, "*.{suffix}")?,
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// An address block from `allowed_cidrs` / `blocked_cidrs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrRule {
    /// The block.
    pub net: IpNet,
    /// Where the rule came from.
    pub source: String,
}

impl CidrRule {
    /// Parses `10.0.0.0/8` or a single address; `source` says where it was written.
    pub fn parse(text: &str, source: impl Into<String>) -> Result<CidrRule, RuleError> {
        let source = source.into();
        let trimmed = text.trim();
        let err = |reason: String| RuleError {
            kind: "CIDR",
            text: truncate(text),
            source_label: source.clone(),
            reason,
            help: CIDR_HELP,
        };
        let (addr, prefix) = match trimmed.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (trimmed, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| err(format!("`{}` is not an IP address", truncate(addr))))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let net = match prefix {
            None => IpNet::from(ip),
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|_| prefix.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|len| IpNet::new(ip, len).ok())
                .ok_or_else(|| err(format!("the prefix length must be a number from 0 to {max}")))?,
        };
        Ok(CidrRule { net: net.trunc(), source })
    }

    /// Whether the block contains `ip`. IPv4-mapped IPv6 addresses are compared as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.net.contains(&canonical_ip(ip))
    }
}

impl fmt::Display for CidrRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.net)
    }
}

/// Maps IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) to plain IPv4 so rules match either form.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The rule text that would allow exactly `target` (used in refusal hints).
pub(crate) fn suggestion_for(target: &Target, include_port: bool) -> String {
    match &target.host {
        Host::Name(name) if include_port => format!("{name}:{}", target.port),
        Host::Name(name) => name.clone(),
        Host::Ip(IpAddr::V4(ip)) => format!("{ip}/32"),
        Host::Ip(IpAddr::V6(ip)) => format!("{ip}/128"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_rules_parse_and_match() {
        let r = DomainRule::parse("*.Example.com", "t").unwrap();
        assert!(r.matches("a.example.com", 443));
        assert!(r.matches("b.a.example.com", 1));
        assert!(!r.matches("example.com", 443));
        assert!(!r.matches("badexample.com", 443));
        let r = DomainRule::parse("example.com:8443", "t").unwrap();
        assert!(r.matches("example.com", 8443));
        assert!(!r.matches("example.com", 443));
        assert_eq!(r.to_string(), "example.com:8443");
        let r = DomainRule::parse("tcp://ssh.example.com:443", "t").unwrap();
        assert!(r.raw_tcp);
        assert_eq!(r.to_string(), "tcp://ssh.example.com:443");
        for bad in ["", "*", "a.*.com", "http://x.com/", "1.2.3.4", "x.com:0", "x .com", "*.*.x.com"] {
            assert!(DomainRule::parse(bad, "t").is_err(), "{bad}");
        }
    }

    #[test]
    fn cidr_rules() {
        let r = CidrRule::parse("10.0.0.0/8", "t").unwrap();
        assert!(r.contains("10.9.9.9".parse().unwrap()));
        assert!(r.contains("::ffff:10.9.9.9".parse().unwrap()));
        assert!(!r.contains("11.0.0.1".parse().unwrap()));
        assert_eq!(CidrRule::parse("127.0.0.1", "t").unwrap().to_string(), "127.0.0.1/32");
        assert_eq!(CidrRule::parse("10.1.2.3/8", "t").unwrap().to_string(), "10.0.0.0/8");
        assert!(CidrRule::parse("10.0.0.0/33", "t").is_err());
        assert!(CidrRule::parse("example.com", "t").is_err());
    }
}
