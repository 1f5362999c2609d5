//! The project's network policy and credential injections, in the form the proxy takes them.
//!
//! Every rule carries its source as `file:line` relative to the project (`.sbx.toml:4`), so a
//! `403` from the proxy, `sbx policy show` and the audit log name the exact line to change.
//! `sbx start`, `sbx proxy` and `sbx policy show` all build the proxy's configuration here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sbx_mise::{ConfigError, Origin, Spanned};
use sbx_proxy::{CidrRule, DomainRule, InjectionRule, PolicyConfig, ProxyOptions, Service};

use crate::project::Project;
use crate::sbx_toml::SecretSource;

/// `file:line` of `origin`, relative to the project root when the file is inside it.
pub fn rule_source(project: &Project, origin: &Origin) -> String {
    let path = origin.path();
    let shown = path.strip_prefix(&project.root).unwrap_or(path);
    format!("{}:{}", shown.display(), origin.line())
}

/// The proxy's policy for `project`: the `network_policy` preset and the domain and CIDR lists
/// of `[sandbox]`, each rule with its `.sbx.toml:line`.
///
/// `.sbx.toml` is validated with the same parsers when it is read, so this fails only for a
/// project that was changed in memory; the error then points at the offending value.
pub fn policy_for(project: &Project) -> Result<PolicyConfig, ConfigError> {
    let s = &project.sbx.sandbox;
    let domains = |list: &[Spanned<String>]| {
        list.iter()
            .map(|d| DomainRule::parse(&d.value, rule_source(project, &d.origin)).map_err(|e| rule_error(d, &e)))
            .collect::<Result<Vec<_>, _>>()
    };
    let cidrs = |list: &[Spanned<String>]| {
        list.iter()
            .map(|c| CidrRule::parse(&c.value, rule_source(project, &c.origin)).map_err(|e| rule_error(c, &e)))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(PolicyConfig {
        preset: s.network_policy.value,
        preset_source: s.network_policy.origin.as_ref().map_or_else(|| "default".into(), |o| rule_source(project, o)),
        allowed_domains: domains(&s.allowed_domains)?,
        blocked_domains: domains(&s.blocked_domains)?,
        allowed_cidrs: cidrs(&s.allowed_cidrs)?,
        blocked_cidrs: cidrs(&s.blocked_cidrs)?,
    })
}

/// The options of a proxy for `project`: named `name` (in every audit line and its CA), keeping
/// its files in `state_dir`, listening on the Unix socket `socket`, enforcing [`policy_for`] and
/// injecting `injections`. `sbx start` and `sbx proxy` both start their proxy from these.
pub fn proxy_options(
    project: &Project,
    name: impl Into<String>,
    state_dir: &Path,
    socket: PathBuf,
    injections: Vec<InjectionRule>,
) -> Result<ProxyOptions, ConfigError> {
    let mut options = ProxyOptions::new(name, state_dir);
    options.policy = policy_for(project)?;
    options.injections = injections;
    options.socket_path = Some(socket);
    Ok(options)
}

fn rule_error(value: &Spanned<String>, err: &sbx_proxy::policy::RuleError) -> ConfigError {
    ConfigError::at(
        &value.origin,
        format!("`{}` is not a valid {} rule: {}", value.value, err.kind, err.reason),
        "invalid rule",
        Some(err.help.into()),
    )
}

/// A `[secrets]` service whose credential the proxy will inject, before its value is read.
#[derive(Debug, Clone)]
pub struct PlannedInjection {
    /// The `[secrets]` key, e.g. `anthropic`.
    pub service: String,
    /// The API host whose TLS the proxy terminates.
    pub host: String,
    /// The header whose sentinel is replaced.
    pub header: String,
    /// The variable the sandbox gets, holding [`sbx_proxy::sentinel`] instead of the secret.
    pub env: String,
    /// The sentinel.
    pub sentinel: String,
    /// Where the real value comes from on the host.
    pub secret: SecretSource,
    /// Where the `[secrets]` entry is written (`.sbx.toml:12`).
    pub source: String,
}

impl PlannedInjection {
    /// The rule with an empty secret, for showing (`sbx policy show` never reads secrets).
    pub fn display_rule(&self) -> InjectionRule {
        self.rule(String::new())
    }

    fn rule(&self, secret: String) -> InjectionRule {
        InjectionRule {
            service: self.service.clone(),
            host: self.host.clone(),
            header: self.header.clone(),
            sentinel: self.sentinel.clone(),
            secret,
            source: self.source.clone(),
        }
    }
}

/// The `[secrets]` services the proxy injects (those in [`sbx_proxy::SERVICES`]) and the names
/// of the ones it cannot inject (their value would have to enter the sandbox).
pub fn injection_plan(project: &Project) -> (Vec<PlannedInjection>, Vec<String>) {
    let mut planned = Vec::new();
    let mut other = Vec::new();
    for (name, source) in &project.sbx.secrets {
        let Some(service) = sbx_proxy::services::service(name) else {
            other.push(name.clone());
            continue;
        };
        let env = match &source.value {
            SecretSource::Env(var) => var.clone(),
            SecretSource::Command(_) => service.env.to_string(),
        };
        planned.push(planned_injection(project, service, env, source.value.clone(), &source.origin));
    }
    (planned, other)
}

/// The injection of the known service whose clients read the variable `name`
/// (`ANTHROPIC_API_KEY`, …), with the host variable of that name as its source: how a
/// `required_secrets` entry without a `[secrets]` entry still keeps the real key outside the
/// sandbox. `origin` is where `name` is required.
pub fn injection_for_variable(project: &Project, name: &str, origin: &Origin) -> Option<PlannedInjection> {
    let service = sbx_proxy::services::SERVICES.iter().find(|s| s.env == name)?;
    Some(planned_injection(project, service, name.to_string(), SecretSource::Env(name.to_string()), origin))
}

fn planned_injection(
    project: &Project,
    service: &Service,
    env: String,
    secret: SecretSource,
    origin: &Origin,
) -> PlannedInjection {
    PlannedInjection {
        service: service.name.to_string(),
        host: service.host.to_string(),
        header: service.header.to_string(),
        env,
        sentinel: sbx_proxy::sentinel(service.name),
        secret,
        source: rule_source(project, origin),
    }
}

/// A credential the proxy should inject could not be read on the host.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot read the `{service}` credential ({source_label}): {reason}")]
#[diagnostic(code(sbx::secret), help("{help}"))]
pub struct SecretError {
    /// The service.
    pub service: String,
    /// Where its `[secrets]` entry is written.
    pub source_label: String,
    /// What went wrong.
    pub reason: String,
    /// What to do.
    pub help: String,
}

/// The proxy's injection rules for `project`, with the real secrets read on the host (see
/// [`read_secret`]). Services the proxy cannot inject are left out (see [`injection_plan`]).
pub fn injections_for(project: &Project, env: &BTreeMap<String, String>) -> Result<Vec<InjectionRule>, SecretError> {
    let (planned, _) = injection_plan(project);
    planned
        .into_iter()
        .map(|p| {
            let secret = read_secret(&p.secret, env).map_err(|why| {
                let (reason, help) = match &p.secret {
                    SecretSource::Env(var) => (
                        format!("the host variable {var} {why}"),
                        format!("export {var} before starting, or change [secrets] {} in .sbx.toml", p.service),
                    ),
                    SecretSource::Command(command) => (
                        format!("`{command}` {why}"),
                        format!("check that `{command}` prints the credential when run on the host"),
                    ),
                };
                SecretError { service: p.service.clone(), source_label: p.source.clone(), reason, help }
            })?;
            Ok(p.rule(secret))
        })
        .collect()
}

/// Reads a `[secrets]` source on the host: an `env` source from `env` (an empty value counts as
/// unset), a `command` source by running it with `/bin/sh -c` and exactly `env` on the host
/// (never in the sandbox), its output trimmed.
///
/// The error is a phrase that follows the source's name: `is not set`, `could not run: …`,
/// `failed (exit status: 3): …`, `printed nothing`.
pub fn read_secret(source: &SecretSource, env: &BTreeMap<String, String>) -> Result<String, String> {
    let command = match source {
        SecretSource::Env(var) => {
            return env.get(var).filter(|v| !v.is_empty()).cloned().ok_or_else(|| "is not set".to_string());
        }
        SecretSource::Command(command) => command,
    };
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("could not run: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("failed ({}): {}", out.status, stderr.trim()));
    }
    let text = String::from_utf8(out.stdout).map_err(|_| "printed something that is not UTF-8".to_string())?;
    match text.trim() {
        "" => Err("printed nothing".into()),
        value => Ok(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn project(text: &str) -> (tempfile::TempDir, Project) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".sbx.toml"), text).unwrap();
        let env = BTreeMap::from([("MISE_CEILING_PATHS".to_string(), dir.path().display().to_string())]);
        let project = Project::load(dir.path(), false, env).unwrap();
        (dir, project)
    }

    const TOML: &str = "[sandbox]\nnetwork_policy = \"locked-down\"\nallowed_domains = [\n  \"a.example\",\n  \"*.b.example:8443\",\n]\nblocked_cidrs = [\"10.0.0.0/8\"]\n[secrets]\nanthropic = { env = \"MY_KEY\" }\ngithub = { command = \"printf ' tok '\" }\ncustom = \"CUSTOM\"\n";

    #[test]
    fn every_rule_knows_its_line() {
        let (_dir, p) = project(TOML);
        let config = policy_for(&p).unwrap();
        assert_eq!(config.preset, sbx_proxy::Preset::DenyAll);
        assert_eq!(config.preset_source, ".sbx.toml:2");
        let sources: Vec<_> = config.allowed_domains.iter().map(|r| (r.to_string(), r.source.as_str())).collect();
        assert_eq!(sources, [("a.example".to_string(), ".sbx.toml:4"), ("*.b.example:8443".into(), ".sbx.toml:5")]);
        assert_eq!(config.blocked_cidrs[0].source, ".sbx.toml:7");
        assert!(Path::new(&config.blocked_cidrs[0].source).is_relative());
    }

    #[test]
    fn injections_read_env_and_commands_on_the_host() {
        let (_dir, p) = project(TOML);
        let (planned, other) = injection_plan(&p);
        let names: Vec<_> = planned.iter().map(|i| (i.service.as_str(), i.env.as_str(), i.source.as_str())).collect();
        assert_eq!(names, [("anthropic", "MY_KEY", ".sbx.toml:9"), ("github", "GITHUB_TOKEN", ".sbx.toml:10")]);
        assert_eq!(other, ["custom"]);
        let err = injections_for(&p, &BTreeMap::new()).unwrap_err();
        assert!(err.reason.contains("MY_KEY is not set"), "{err}");
        let env = BTreeMap::from([("MY_KEY".to_string(), "sk-real".to_string())]);
        let rules = injections_for(&p, &env).unwrap();
        assert_eq!(rules[0].secret, "sk-real");
        assert_eq!(rules[0].sentinel, "sbx-sentinel-anthropic");
        assert_eq!(rules[1].secret, "tok");
        assert_eq!(rules[1].header, "authorization");
        let run = |command: &str| read_secret(&SecretSource::Command(command.into()), &BTreeMap::new());
        assert!(run("echo oops >&2; exit 3").unwrap_err().starts_with("failed (exit status: 3): oops"));
        assert_eq!(run("true").unwrap_err(), "printed nothing");
    }
}
