//! A test certificate authority and a server certificate it signed, for loopback TLS servers
//! (HTTPS origins of the proxy tests, registries of the HTTP client tests). Clients trust
//! [`TestCa::pem`].

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA and a server configuration for the given names, signed by it.
pub struct TestCa {
    /// The CA certificate, PEM.
    pub pem: String,
    /// Serves a certificate for the names (chain: leaf, CA) and offers `http/1.1` by ALPN;
    /// clone it to offer other protocols.
    pub server_config: Arc<rustls::ServerConfig>,
}

impl TestCa {
    /// A fresh CA and a certificate for `names` (DNS names or IP addresses); an error when a
    /// name is not one.
    pub fn new(names: &[&str]) -> anyhow::Result<TestCa> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "sbx test CA");
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?
            .signed_by(&key, &issuer)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone(), ca_cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )?;
        server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TestCa { pem: ca_cert.pem(), server_config: Arc::new(server_config) })
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> anyhow::Result<CertificateDer<'static>> {
        use rustls::pki_types::pem::PemObject;
        Ok(CertificateDer::from_pem_slice(self.pem.as_bytes())?)
    }
}
