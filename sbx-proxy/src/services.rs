//! Services whose credentials the proxy knows how to inject: the API host and the header that
//! carries the key. A `[secrets]` entry of `.sbx.toml` named after one of these is injected by
//! the proxy (the sandbox only sees [`sentinel`]); any other service's secret cannot be.

/// A service with a known API host and credential header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// The `[secrets]` key, e.g. `anthropic`.
    pub name: &'static str,
    /// The API host whose TLS the proxy terminates to inject the credential.
    pub host: &'static str,
    /// The header that carries the credential (the sentinel inside it is replaced).
    pub header: &'static str,
    /// The environment variable the service's clients read the credential from.
    pub env: &'static str,
}

/// Every service the proxy can inject a credential for.
pub const SERVICES: &[Service] = &[
    Service { name: "anthropic", host: "api.anthropic.com", header: "x-api-key", env: "ANTHROPIC_API_KEY" },
    Service { name: "openai", host: "api.openai.com", header: "authorization", env: "OPENAI_API_KEY" },
    Service {
        name: "gemini",
        host: "generativelanguage.googleapis.com",
        header: "x-goog-api-key",
        env: "GEMINI_API_KEY",
    },
    Service { name: "github", host: "api.github.com", header: "authorization", env: "GITHUB_TOKEN" },
];

/// The service called `name`, if the proxy knows it.
pub fn service(name: &str) -> Option<&'static Service> {
    SERVICES.iter().find(|s| s.name == name)
}

/// The placeholder the sandbox gets instead of `service`'s real credential.
pub fn sentinel(service: &str) -> String {
    format!("sbx-sentinel-{service}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inject::{Injection, InjectionRule};

    #[test]
    fn every_service_makes_a_valid_injection_rule() {
        for s in SERVICES {
            let rule = InjectionRule {
                service: s.name.into(),
                host: s.host.into(),
                header: s.header.into(),
                sentinel: sentinel(s.name),
                secret: "real-key".into(),
                source: "test".into(),
            };
            assert!(Injection::compile(&rule).is_ok(), "{}", s.name);
        }
        assert_eq!(service("github").map(|s| s.host), Some("api.github.com"));
        assert!(service("nope").is_none());
    }
}
