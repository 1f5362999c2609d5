//! The sandbox environment, built from nothing: the image's `Env`, a few terminal and locale
//! variables, the proxy variables, the CA bundle variables and the explicitly passed values.
//! No host variable gets in unless the caller names it.

use std::collections::BTreeMap;

/// Port the in-sandbox relay listens on (loopback only).
pub const PROXY_PORT: u16 = 3128;
/// Where the injection CA certificate appears inside the sandbox.
pub const CA_PATH: &str = "/.sbx/ca.pem";
/// `PATH` used when the image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// CA bundles of common base images, relative to the rootfs (Debian/Ubuntu/Alpine, Fedora/RHEL, others).
const SYSTEM_BUNDLES: &[&str] =
    &["etc/ssl/certs/ca-certificates.crt", "etc/pki/tls/certs/ca-bundle.crt", "etc/ssl/cert.pem"];

/// Replaces the injection CA mount of `plan` with a bundle of that CA plus the image's own CA
/// bundle (if it has one), written to the sandbox's state dir. The CA variables (`SSL_CERT_FILE`,
/// …) replace a program's trust store, so a bundle holding only sbx's CA would break TLS to every
/// host the proxy does not intercept.
pub fn install_ca_bundle(plan: &mut crate::spec::LaunchPlan) -> crate::Result<()> {
    use crate::error::Error;
    let Some(mount) = plan.mounts.iter_mut().find(|m| m.dest == std::path::Path::new(CA_PATH)) else {
        return Ok(());
    };
    let mut bundle = std::fs::read(&mount.source).map_err(Error::io("reading the proxy CA", &mount.source))?;
    if !bundle.ends_with(b"\n") {
        bundle.push(b'\n');
    }
    for rel in SYSTEM_BUNDLES {
        let path = plan.rootfs.join(rel);
        // Only regular files inside the rootfs (a symlink could point anywhere on the host).
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file())
            && let Ok(system) = std::fs::read(&path)
        {
            bundle.extend_from_slice(&system);
            break;
        }
    }
    let out = plan.state_dir.join("ca-bundle.pem");
    std::fs::write(&out, &bundle).map_err(Error::io("writing the CA bundle", &out))?;
    mount.source = out;
    Ok(())
}

/// What the environment is built from.
#[derive(Debug, Clone)]
pub struct EnvInput<'a> {
    /// `KEY=VALUE` entries from the image config.
    pub image_env: &'a [String],
    /// The sandbox user's home directory.
    pub home: &'a str,
    /// `TERM` to set (the caller passes the host's when attaching a terminal).
    pub term: Option<&'a str>,
    /// `LANG` to set; `C.UTF-8` when `None`.
    pub lang: Option<&'a str>,
    /// Whether the proxy relay is running (sets the proxy variables).
    pub proxy: bool,
    /// Whether an injection CA is mounted at [`CA_PATH`].
    pub ca: bool,
    /// Explicit variables (e.g. declared secrets), applied last.
    pub explicit: &'a BTreeMap<String, String>,
}

/// Builds the complete environment of the sandboxed command.
pub fn build(input: &EnvInput<'_>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for entry in input.image_env {
        if let Some((k, v)) = entry.split_once('=')
            && !k.is_empty()
        {
            env.insert(k.to_string(), v.to_string());
        }
    }
    env.entry("PATH".into()).or_insert_with(|| DEFAULT_PATH.to_string());
    env.insert("HOME".into(), input.home.to_string());
    env.insert("TERM".into(), input.term.unwrap_or("dumb").to_string());
    env.insert("LANG".into(), input.lang.unwrap_or("C.UTF-8").to_string());
    if input.proxy {
        let url = format!("http://127.0.0.1:{PROXY_PORT}");
        for k in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"] {
            env.insert(k.into(), url.clone());
        }
        for k in ["NO_PROXY", "no_proxy"] {
            env.insert(k.into(), "localhost,127.0.0.1".into());
        }
    }
    if input.ca {
        for k in ["SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"] {
            env.insert(k.into(), CA_PATH.into());
        }
    }
    for (k, v) in input.explicit {
        env.insert(k.clone(), v.clone());
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_from_nothing_with_proxy_ca_and_secrets() {
        let image = vec!["PATH=/opt/bin:/usr/bin".to_string(), "FOO=bar".into(), "broken".into()];
        let mut explicit = BTreeMap::new();
        explicit.insert("API_KEY".to_string(), "sentinel".to_string());
        let env = build(&EnvInput {
            image_env: &image,
            home: "/home/sbx",
            term: Some("xterm"),
            lang: None,
            proxy: true,
            ca: true,
            explicit: &explicit,
        });
        assert_eq!(env["PATH"], "/opt/bin:/usr/bin");
        assert_eq!(env["FOO"], "bar");
        assert_eq!(env["HTTPS_PROXY"], "http://127.0.0.1:3128");
        assert_eq!(env["no_proxy"], "localhost,127.0.0.1");
        assert_eq!(env["NODE_EXTRA_CA_CERTS"], CA_PATH);
        assert_eq!(env["API_KEY"], "sentinel");
        assert_eq!(env["TERM"], "xterm");
        assert!(!env.contains_key("USER"));
        assert!(!env.contains_key("broken"));
    }

    #[test]
    fn no_proxy_no_ca() {
        let none = BTreeMap::new();
        let env = build(&EnvInput {
            image_env: &[],
            home: "/h",
            term: None,
            lang: None,
            proxy: false,
            ca: false,
            explicit: &none,
        });
        assert_eq!(env["PATH"], DEFAULT_PATH);
        assert!(!env.contains_key("HTTP_PROXY"));
        assert!(!env.contains_key("SSL_CERT_FILE"));
        assert_eq!(env.len(), 4);
    }
}
