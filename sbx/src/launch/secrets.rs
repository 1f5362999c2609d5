//! `required_secrets`: each variable is read on the host (its `[secrets]` source, else the host
//! environment variable of the same name) before anything starts. A missing one stops the start
//! with the whole list of what is missing and how to provide it.
//!
//! Where the proxy injects a service's credential (the service's agent preset names its API host
//! and header), the sandbox gets only a sentinel and the proxy holds the real value.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use sbx_proxy::InjectionRule;
use serde::{Deserialize, Serialize};

use crate::agents;
use crate::project::Project;
use crate::sbx_toml::SecretSource;

/// The sentinel the sandbox sees in place of `service`'s real credential.
pub fn sentinel(service: &str) -> String {
    format!("sbx-sentinel-{service}")
}

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
    /// The injection (host, header) when the proxy swaps a sentinel for the value.
    pub inject: Option<(String, String)>,
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
        match (&self.inject, &self.service) {
            (Some(_), Some(service)) => sentinel(service),
            _ => self.value.clone(),
        }
    }

    /// The proxy's injection rule, when the credential is injected.
    pub fn injection_rule(&self) -> Option<InjectionRule> {
        let (host, header) = self.inject.clone()?;
        let service = self.service.clone()?;
        Some(InjectionRule {
            sentinel: sentinel(&service),
            service,
            host,
            header,
            secret: self.value.clone(),
            source: self.source.clone(),
        })
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

/// Finds the `[secrets]` entry for variable `name`: keyed by the name itself, by the service
/// whose agent preset reads that variable, or by an `env` source naming it.
fn source_for<'a>(project: &'a Project, name: &str) -> Option<(&'a str, &'a SecretSource, String)> {
    let secrets = &project.sbx.secrets;
    if let Some((k, s)) = secrets.get_key_value(name) {
        return Some((k.as_str(), &s.value, s.origin.to_string()));
    }
    if let Some(preset) = agents::by_secret_env(name)
        && let Some(service) = preset.secret_service
        && let Some((k, s)) = secrets.get_key_value(service)
    {
        return Some((k.as_str(), &s.value, s.origin.to_string()));
    }
    secrets
        .iter()
        .find(|(_, s)| matches!(&s.value, SecretSource::Env(v) if v == name))
        .map(|(k, s)| (k.as_str(), &s.value, s.origin.to_string()))
}

/// Runs a `[secrets]` command on the host (never in the sandbox) and returns its trimmed output.
fn run_command(command: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("could not run it: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("it failed ({}): {}", out.status, err.trim()));
    }
    let text = String::from_utf8(out.stdout).map_err(|_| "its output is not UTF-8".to_string())?;
    let value = text.trim().to_string();
    if value.is_empty() { Err("it printed nothing".into()) } else { Ok(value) }
}

/// Reads every `required_secrets` entry of `project` from the host.
pub fn resolve(project: &Project) -> Result<Vec<ResolvedSecret>, MissingSecrets> {
    let env = &project.env;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for required in &project.sbx.sandbox.required_secrets {
        let name = required.value.clone();
        let source = required.origin.to_string();
        let entry = source_for(project, &name);
        let service = entry
            .as_ref()
            .map(|(k, _, _)| k.to_string())
            .or_else(|| agents::by_secret_env(&name).and_then(|p| p.secret_service).map(str::to_string));
        let (value, from) = match entry.map(|(_, s, origin)| (s, origin)) {
            Some((SecretSource::Command(cmd), origin)) => match run_command(cmd, env) {
                Ok(v) => (v, format!("command `{cmd}` ({origin})")),
                Err(why) => {
                    missing.push(Missing {
                        name,
                        tried: format!("the command `{cmd}` ({origin})"),
                        help: format!("{why}; fix the command or run it by hand to see what it needs"),
                    });
                    continue;
                }
            },
            Some((SecretSource::Env(var), origin)) => match env.get(var).filter(|v| !v.is_empty()) {
                Some(v) => (v.clone(), format!("host env {var} ({origin})")),
                None => {
                    missing.push(Missing {
                        name,
                        tried: format!("host environment variable {var} ({origin})"),
                        help: format!("export {var}=… in the shell that runs sbx"),
                    });
                    continue;
                }
            },
            None => match env.get(&name).filter(|v| !v.is_empty()) {
                Some(v) => (v.clone(), format!("host env {name}")),
                None => {
                    missing.push(Missing {
                        help: format!(
                            "export {name}=… in the shell that runs sbx, or add a source to .sbx.toml: \
                             [secrets] {} = {{ command = \"…\" }}",
                            service.as_deref().unwrap_or(&name)
                        ),
                        tried: format!("host environment variable {name}"),
                        name,
                    });
                    continue;
                }
            },
        };
        let inject = service
            .as_deref()
            .and_then(agents::by_service)
            .filter(|p| p.secret_env == Some(name.as_str()))
            .and_then(|p| Some((p.api_host?.to_string(), p.secret_header?.to_string())));
        found.push(ResolvedSecret { name, value, service, from, inject, source });
    }
    if missing.is_empty() { Ok(found) } else { Err(MissingSecrets { missing }) }
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
            inject: Some(("api.anthropic.com".into(), "x-api-key".into())),
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
