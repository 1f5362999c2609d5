//! The per-sandbox certificate authority and the TLS configurations built on it.
//!
//! The sandbox trusts this CA; the proxy uses it to present certificates only for hosts that
//! have a credential-injection rule. Its key never leaves the proxy process (unless the caller
//! persists it with [`CertificateAuthority::key_pem`]). Upstream connections use normal
//! verification against [`UpstreamRoots`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use time::{Duration, OffsetDateTime};

use crate::ProxyError;

/// The TLS crypto provider used everywhere in the proxy (the same one reqwest uses).
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn tls_err(what: &'static str) -> impl Fn(rustls::Error) -> ProxyError {
    move |e| ProxyError::Tls { what, reason: e.to_string() }
}

fn cert_err(what: &'static str) -> impl Fn(rcgen::Error) -> ProxyError {
    move |e| ProxyError::Certificate { what, reason: e.to_string() }
}

/// A per-sandbox certificate authority.
pub struct CertificateAuthority {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
    leaves: Mutex<HashMap<String, Arc<ServerConfig>>>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

fn ca_params(sandbox: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "sbx sandbox proxy CA");
    dn.push(DnType::OrganizationName, format!("sbx sandbox {sandbox}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(5 * 365);
    params
}

impl CertificateAuthority {
    /// Makes a fresh CA for `sandbox` (ECDSA P-256, valid five years).
    pub fn generate(sandbox: &str) -> Result<CertificateAuthority, ProxyError> {
        let key = KeyPair::generate().map_err(cert_err("CA key"))?;
        let params = ca_params(sandbox);
        let cert = params.self_signed(&key).map_err(cert_err("CA certificate"))?;
        let key_pem = key.serialize_pem();
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem,
            issuer: Issuer::new(params, key),
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// Loads a CA saved with [`cert_pem`](Self::cert_pem) and [`key_pem`](Self::key_pem); `sandbox`
    /// must be the name it was generated for (it is part of the CA's subject).
    pub fn from_pem(sandbox: &str, cert_pem: &str, key_pem: &str) -> Result<CertificateAuthority, ProxyError> {
        let key = KeyPair::from_pem(key_pem).map_err(cert_err("CA key"))?;
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| ProxyError::Certificate { what: "CA certificate", reason: e.to_string() })?;
        Ok(CertificateAuthority {
            cert_pem: cert_pem.to_owned(),
            cert_der,
            key_pem: key_pem.to_owned(),
            issuer: Issuer::new(ca_params(sandbox), key),
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate (PEM) the sandbox must trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key (PEM), for callers that persist the CA between proxy runs.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A TLS server configuration presenting a certificate for `host`, issued on first use.
    pub(crate) fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, ProxyError> {
        if let Some(config) = self.leaves.lock().map_err(|_| ProxyError::Poisoned)?.get(host) {
            return Ok(config.clone());
        }
        let key = KeyPair::generate().map_err(cert_err("leaf key"))?;
        let mut params = CertificateParams::new(vec![host.to_owned()]).map_err(cert_err("leaf certificate"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        params.distinguished_name = dn;
        params.is_ca = IsCa::NoCa;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(30);
        let leaf = params.signed_by(&key, &self.issuer).map_err(cert_err("leaf certificate"))?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_err("server config"))?
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), self.cert_der.clone()], key_der)
            .map_err(tls_err("server certificate"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        self.leaves.lock().map_err(|_| ProxyError::Poisoned)?.insert(host.to_owned(), config.clone());
        Ok(config)
    }
}

/// Which certificate authorities the proxy trusts for upstream TLS (injection hosts only).
#[derive(Debug, Clone, Default)]
pub enum UpstreamRoots {
    /// The Mozilla root program (webpki-roots).
    #[default]
    WebPki,
    /// Only the certificates in this PEM text (tests, private upstreams).
    Pem(String),
}

impl UpstreamRoots {
    /// Builds the client configuration used to re-encrypt towards the real upstream.
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>, ProxyError> {
        let mut roots = RootCertStore::empty();
        match self {
            UpstreamRoots::WebPki => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            UpstreamRoots::Pem(pem) => {
                for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    let cert =
                        cert.map_err(|e| ProxyError::Certificate { what: "upstream roots", reason: e.to_string() })?;
                    roots.add(cert).map_err(tls_err("upstream roots"))?;
                }
                if roots.is_empty() {
                    return Err(ProxyError::Certificate {
                        what: "upstream roots",
                        reason: "no certificate in the PEM text".into(),
                    });
                }
            }
        }
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_err("client config"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}
