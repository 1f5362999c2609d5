//! Credential injection rules: which header on which host gets its sentinel replaced by the
//! real secret. The secret is held by the proxy on the host; the sandbox only ever sees the
//! sentinel.

use std::fmt;

use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};

use crate::ProxyError;
use crate::target::{Host, Target};

/// One `[secrets]` service whose credential the proxy injects.
#[derive(Clone)]
pub struct InjectionRule {
    /// Service name, e.g. `anthropic` (used in logs and `sbx policy show`).
    pub service: String,
    /// The API host, `name` or `name:port` (port defaults to 443).
    pub host: String,
    /// The header that carries the credential, e.g. `x-api-key` or `authorization`.
    pub header: String,
    /// The placeholder the sandbox sends instead of the secret.
    pub sentinel: String,
    /// The real secret, read on the host. Never logged, never rendered.
    pub secret: String,
    /// Where the rule was configured (e.g. `.sbx.toml:20`).
    pub source: String,
}

impl fmt::Debug for InjectionRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InjectionRule")
            .field("service", &self.service)
            .field("host", &self.host)
            .field("header", &self.header)
            .field("sentinel", &self.sentinel)
            .field("secret", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

/// A validated injection rule.
#[derive(Clone)]
pub(crate) struct Injection {
    pub service: String,
    pub target: Target,
    header: HeaderName,
    sentinel: String,
    secret: String,
}

impl Injection {
    /// Validates a rule: host, header name, a sentinel long enough not to occur by accident, and
    /// a secret that can travel in a header.
    pub fn compile(rule: &InjectionRule) -> Result<Injection, ProxyError> {
        let bad = |reason: String| ProxyError::Injection { service: rule.service.clone(), reason };
        let target = Target::parse_with_default(&rule.host, 443).map_err(|e| bad(format!("host: {e}")))?;
        if !matches!(target.host, Host::Name(_)) {
            return Err(bad("the host must be a name, not an address".into()));
        }
        let header = HeaderName::from_bytes(rule.header.as_bytes()).map_err(|_| bad("invalid header name".into()))?;
        if rule.sentinel.len() < 8 {
            return Err(bad("the sentinel must be at least 8 characters".into()));
        }
        if HeaderValue::from_str(&rule.sentinel).is_err() || HeaderValue::from_str(&rule.secret).is_err() {
            return Err(bad("the sentinel and the secret must be printable header text".into()));
        }
        if rule.secret.is_empty() || rule.secret.contains(&rule.sentinel) {
            return Err(bad("the secret is empty or contains the sentinel".into()));
        }
        Ok(Injection {
            service: rule.service.clone(),
            target,
            header,
            sentinel: rule.sentinel.clone(),
            secret: rule.secret.clone(),
        })
    }

    /// Replaces the sentinel with the secret in this rule's header; returns whether it did.
    pub fn apply(&self, headers: &mut HeaderMap) -> bool {
        let has_sentinel = |v: &HeaderValue| v.to_str().is_ok_and(|t| t.contains(&self.sentinel));
        let values: Vec<HeaderValue> = headers.get_all(&self.header).iter().cloned().collect();
        if !values.iter().any(has_sentinel) {
            return false;
        }
        headers.remove(&self.header);
        for value in values {
            let replaced = match value.to_str() {
                Ok(text) if text.contains(&self.sentinel) => {
                    HeaderValue::from_str(&text.replace(&self.sentinel, &self.secret)).ok()
                }
                _ => None,
            };
            match replaced {
                Some(mut new) => {
                    new.set_sensitive(true);
                    headers.append(self.header.clone(), new);
                }
                None => {
                    headers.append(self.header.clone(), value);
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> InjectionRule {
        InjectionRule {
            service: "anthropic".into(),
            host: "api.anthropic.com".into(),
            header: "authorization".into(),
            sentinel: "SBX-SENTINEL-anthropic".into(),
            secret: "sk-real".into(),
            source: "t".into(),
        }
    }

    #[test]
    fn replaces_only_the_sentinel_in_the_header() {
        let inj = Injection::compile(&rule()).unwrap();
        assert_eq!(inj.target.port, 443);
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer SBX-SENTINEL-anthropic"));
        h.insert("x-other", HeaderValue::from_static("SBX-SENTINEL-anthropic"));
        assert!(inj.apply(&mut h));
        assert_eq!(h["authorization"], "Bearer sk-real");
        assert_eq!(h["x-other"], "SBX-SENTINEL-anthropic");
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer something-else"));
        assert!(!inj.apply(&mut h));
        assert_eq!(h["authorization"], "Bearer something-else");
        assert!(!format!("{:?}", rule()).contains("sk-real"));
    }

    #[test]
    fn rejects_bad_rules() {
        let mut r = rule();
        r.sentinel = "short".into();
        assert!(Injection::compile(&r).is_err());
        let mut r = rule();
        r.secret = "a\nb".into();
        assert!(Injection::compile(&r).is_err());
        let mut r = rule();
        r.host = "1.2.3.4".into();
        assert!(Injection::compile(&r).is_err());
    }
}
