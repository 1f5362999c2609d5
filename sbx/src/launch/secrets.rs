//! `required_secrets`: each variable is read on the host (its `[secrets]` source, else the host
//! environment variable of the same name) before anything starts. A missing one stops the start
//! with the whole list of what is missing and how to provide it.
//!
//! Where the proxy injects a service's credential (a `[secrets]` service the proxy knows, see
//! [`crate::policy::injection_plan`]), the sandbox gets only the sentinel and the proxy holds the
//! real value. Such a service's credential is injected even when no `required_secrets` entry
//! names its variable, as long as its source can be read; and a required variable of a service
//! the proxy knows (`ANTHROPIC_API_KEY`, …) is injected from the host variable even without a
//! `[secrets]` entry.

use std::collections::BTreeMap;

use sbx_proxy::InjectionRule;
use serde::{Deserialize, Serialize};

use crate::policy::{PlannedInjection, injection_for_variable, injection_plan, read_secret, rule_source};
use crate::project::Project;
use crate::sbx_toml::SecretSource;

/// A secret read on the host, ready to hand to the sandbox or the proxy.
#[derive(Clone, Serialize, Deserialize)]
pub struct ResolvedSecret {
    /// The variable name inside the sandbox.
    pub name: String,
    /// The real value (never written to disk, never printed).
    pub value: String,
    /// The `[secrets]` service it belongs to, if any.
    pub service: Option<String>,
    /// Where the value came from, for `--dry-run` (`host env ANTHROPIC_API_KEY`, `command …`).
    pub from: String,
    /// The injection (host, header, sentinel) when the proxy swaps a sentinel for the value.
    pub inject: Option<(String, String, String)>,
    /// Where the requirement is written (`.sbx.toml:5`).
    pub source: String,
}

impl std::fmt::Debug for ResolvedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedSecret")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .field("service", &self.service)
            .field("from", &self.from)
            .field("inject", &self.inject)
            .finish()
    }
}

impl ResolvedSecret {
    /// What the sandbox's environment gets: the sentinel when injected, else the value.
    pub fn sandbox_value(&self) -> String {
        match &self.inject {
            Some((_, _, sentinel)) => sentinel.clone(),
            None => self.value.clone(),
        }
    }

    /// The proxy's injection rule, when the credential is injected.
    pub fn injection_rule(&self) -> Option<InjectionRule> {
        let (host, header, sentinel) = self.inject.clone()?;
        let service = self.service.clone()?;
        Some(InjectionRule { sentinel, service, host, header, secret: self.value.clone(), source: self.source.clone() })
    }
}

/// One required secret that could not be read.
#[derive(Debug, Clone)]
pub struct Missing {
    /// The variable.
    pub name: String,
    /// What was tried.
    pub tried: String,
    /// How to provide it.
    pub help: String,
}

/// The required secrets are not all available.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{} required secret{} missing: {}", .missing.len(), if .missing.len() == 1 { " is" } else { "s are" }, names(.missing))]
#[diagnostic(code(sbx::start::missing_secrets), help("{}", help(.missing)))]
pub struct MissingSecrets {
    /// Every missing secret.
    pub missing: Vec<Missing>,
}

fn names(missing: &[Missing]) -> String {
    missing.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
}

fn help(missing: &[Missing]) -> String {
    let mut out = String::from("nothing was started. Provide each one, then run `sbx start` again:");
    for m in missing {
        out.push_str(&format!("\n  {}: {} — {}", m.name, m.tried, m.help));
    }
    out
}

/// Finds the `[secrets]` entry for variable `name`: keyed by the name itself, or an `env` source
/// naming it; with its key and where it is written (`.sbx.toml:7`).
fn source_for<'a>(project: &'a Project, name: &str) -> Option<(&'a str, &'a SecretSource, String)> {
    let secrets = &project.sbx.secrets;
    let (key, source) = secrets
        .get_key_value(name)
        .or_else(|| secrets.iter().find(|(_, s)| matches!(&s.value, SecretSource::Env(v) if v == name)))?;
    Some((key.as_str(), &source.value, rule_source(project, &source.origin)))
}

/// Reads `source` (written at `origin`) on the host: `Ok((value, from))`, or `Err((tried, help))`.
fn read(
    source: &SecretSource,
    origin: &str,
    env: &BTreeMap<String, String>,
) -> Result<(String, String), (String, String)> {
    let value = read_secret(source, env);
    match source {
        SecretSource::Command(cmd) => match value {
            Ok(v) => Ok((v, format!("command `{cmd}` ({origin})"))),
            Err(why) => Err((
                format!("the command `{cmd}` ({origin})"),
                format!("it {why}; fix the command or run it by hand to see what it needs"),
            )),
        },
        SecretSource::Env(var) => match value {
            Ok(v) => Ok((v, format!("host env {var} ({origin})"))),
            Err(_) => Err((
                format!("host environment variable {var} ({origin})"),
                format!("export {var}=… in the shell that runs sbx"),
            )),
        },
    }
}

fn injected(p: &PlannedInjection, value: String, from: String) -> ResolvedSecret {
    ResolvedSecret {
        name: p.env.clone(),
        value,
        service: Some(p.service.clone()),
        from,
        inject: Some((p.host.clone(), p.header.clone(), p.sentinel.clone())),
        source: p.source.clone(),
    }
}

/// The secrets a start needs, read on the host.
#[derive(Debug, Default)]
pub struct Resolved {
    /// What the sandbox and the proxy get.
    pub secrets: Vec<ResolvedSecret>,
    /// Injectable `[secrets]` services that no `required_secrets` entry names and whose source
    /// could not be read (not injected; a note for the user).
    pub skipped: Vec<String>,
}

/// Reads every `required_secrets` entry of `project` from the host, plus the credentials of
/// injectable `[secrets]` services.
pub fn resolve(project: &Project) -> Result<Resolved, MissingSecrets> {
    let env = &project.env;
    let (planned, _) = injection_plan(project);
    let mut out = Resolved::default();
    let mut missing = Vec::new();
    for required in &project.sbx.sandbox.required_secrets {
        let name = required.value.clone();
        if let Some(p) = planned.iter().find(|p| p.env == name) {
            match read(&p.secret, &p.source, env) {
                Ok((value, from)) => out.secrets.push(injected(p, value, from)),
                Err((tried, help)) => missing.push(Missing { name, tried, help }),
            }
            continue;
        }
        // The variable of a service the proxy knows, without a `[secrets]` entry: still injected
        // (from the host variable of that name), so the real key stays outside by default.
        if source_for(project, &name).is_none()
            && let Some(p) = injection_for_variable(project, &name, &required.origin)
        {
            match read(&p.secret, &p.source, env) {
                Ok((value, from)) => out.secrets.push(injected(&p, value, from)),
                Err((tried, help)) => missing.push(Missing { name, tried, help }),
            }
            continue;
        }
        let result = match source_for(project, &name) {
            Some((service, source, origin)) => {
                read(source, &origin, env).map(|(v, from)| (v, from, Some(service.to_string())))
            }
            None => match env.get(&name).filter(|v| !v.is_empty()) {
                Some(v) => Ok((v.clone(), format!("host env {name}"), None)),
                None => Err((
                    format!("host environment variable {name}"),
                    format!(
                        "export {name}=… in the shell that runs sbx, or give it a source in .sbx.toml: \
                         [secrets] {name} = {{ command = \"…\" }}"
                    ),
                )),
            },
        };
        match result {
            Ok((value, from, service)) => out.secrets.push(ResolvedSecret {
                name,
                value,
                service,
                from,
                inject: None,
                source: rule_source(project, &required.origin),
            }),
            Err((tried, help)) => missing.push(Missing { name, tried, help }),
        }
    }
    if !missing.is_empty() {
        return Err(MissingSecrets { missing });
    }
    for p in &planned {
        if out.secrets.iter().any(|s| s.name == p.env) {
            continue;
        }
        match read(&p.secret, &p.source, env) {
            Ok((value, from)) => out.secrets.push(injected(p, value, from)),
            Err((tried, _)) => out.skipped.push(format!("[secrets] {} ({tried} is not available)", p.service)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_secrets_show_only_the_sentinel() {
        let s = ResolvedSecret {
            name: "ANTHROPIC_API_KEY".into(),
            value: "sk-real-value".into(),
            service: Some("anthropic".into()),
            from: "host env".into(),
            inject: Some(("api.anthropic.com".into(), "x-api-key".into(), "sbx-sentinel-anthropic".into())),
            source: ".sbx.toml:5".into(),
        };
        assert_eq!(s.sandbox_value(), "sbx-sentinel-anthropic");
        let rule = s.injection_rule().unwrap();
        assert_eq!(rule.secret, "sk-real-value");
        assert_eq!(rule.sentinel, "sbx-sentinel-anthropic");
        assert!(!format!("{s:?}").contains("sk-real"));
        let plain = ResolvedSecret { inject: None, service: None, ..s };
        assert_eq!(plain.sandbox_value(), "sk-real-value");
        assert!(plain.injection_rule().is_none());
    }

    #[test]
    fn missing_lists_every_name_and_how() {
        let e = MissingSecrets {
            missing: vec![
                Missing { name: "A".into(), tried: "host environment variable A".into(), help: "export A=…".into() },
                Missing { name: "B".into(), tried: "the command `x`".into(), help: "fix it".into() },
            ],
        };
        assert_eq!(e.to_string(), "2 required secrets are missing: A, B");
        let h = help(&e.missing);
        assert!(h.contains("A: host environment variable A — export A=…") && h.contains("B: the command"), "{h}");
    }
}
