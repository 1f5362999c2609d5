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
    /// A fresh CA and a certificate for `names` (DNS names or IP addresses).
    ///
    /// # Panics
    /// If rcgen or rustls refuse the generated keys, which is a bug in the fixtures.
    pub fn new(names: &[&str]) -> TestCa {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "sbx test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("server key");
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("names");
        let cert = params.signed_by(&key, &issuer).expect("server certificate");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone(), ca_cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("server certificate and key");
        server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TestCa { pem: ca_cert.pem(), server_config: Arc::new(server_config) }
    }

    /// The CA certificate, DER.
    ///
    /// # Panics
    /// Never for a [`TestCa::new`] certificate.
    pub fn der(&self) -> CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(self.pem.as_bytes()).expect("the CA's own PEM")
    }
}
