//! A throwaway PKI for HTTPS tests: a root CA, an intermediate under it and
//! a server certificate from the intermediate, made fresh per test (ECDSA
//! P-256, rcgen on ring). The server sends the leaf and the intermediate,
//! so a client that trusts only `ca.pem` exercises chain building as it
//! would against a real tenant.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use ironclad_sim::{Simulator, TlsIdentity};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// The name the HTTPS tests give the simulator (`SimConfig::public_host`).
/// `.test` is reserved (RFC 2606): it can never resolve to anything real.
pub const TEST_HOST: &str = "ironclad.test";

/// A certificate authority that can issue server certificates.
pub struct TestCa {
    root: CertifiedIssuer<'static, KeyPair>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    /// A new root and intermediate; `name` goes in their common names, so a
    /// failing handshake's message says which CA was involved.
    pub fn new(name: &str) -> TestCa {
        let root = CertifiedIssuer::self_signed(
            ca_params(&format!("{name} root CA")),
            KeyPair::generate().expect("root key"),
        )
        .expect("root CA certificate");
        let intermediate = CertifiedIssuer::signed_by(
            ca_params(&format!("{name} intermediate CA")),
            KeyPair::generate().expect("intermediate key"),
            &*root,
        )
        .expect("intermediate CA certificate");
        TestCa { root, intermediate }
    }

    /// The root certificate, PEM: what a client trusts (`--ca-file`).
    pub fn root_pem(&self) -> String {
        self.root.pem()
    }

    /// Writes the root certificate to `path`.
    pub fn write_root(&self, path: &Path) {
        std::fs::write(path, self.root_pem()).expect("write CA certificate");
    }

    /// A server certificate for `dns_name` and 127.0.0.1, and its key.
    pub fn issue(&self, dns_name: &str) -> Leaf {
        let mut params = CertificateParams::new(vec![dns_name.to_string()]).expect("leaf params");
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params
            .distinguished_name
            .push(DnType::CommonName, dns_name.to_string());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &*self.intermediate)
            .expect("leaf certificate");
        Leaf {
            // Leaf first, then the intermediate; the root stays with clients.
            chain_pem: format!("{}{}", cert.pem(), self.intermediate.pem()),
            key_pem: key.serialize_pem(),
        }
    }
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name.to_string());
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.use_authority_key_identifier_extension = true;
    params
}

/// A server certificate chain and its private key, PEM.
pub struct Leaf {
    pub chain_pem: String,
    pub key_pem: String,
}

impl Leaf {
    pub fn identity(&self) -> TlsIdentity {
        TlsIdentity::from_pem(self.chain_pem.clone(), self.key_pem.clone())
    }
}

/// The files one HTTPS test needs, in one directory.
pub struct TestPki {
    pub ca: TestCa,
    pub leaf: Leaf,
    /// `ca.pem`: the root certificate (give it to the host's `--ca-file`).
    pub ca_pem: PathBuf,
    /// `cert.pem`: the server's chain, leaf then intermediate
    /// (`ironclad-sim --tls-cert`).
    pub cert_pem: PathBuf,
    /// `key.pem`: the server's private key, PKCS#8 (`ironclad-sim --tls-key`).
    pub key_pem: PathBuf,
}

impl TestPki {
    /// A new CA and a certificate for `dns_name` (and 127.0.0.1), written
    /// as `ca.pem`, `cert.pem` and `key.pem` in `dir`.
    pub fn create(dir: &Path, dns_name: &str) -> TestPki {
        let ca = TestCa::new("ironclad-sim test");
        let leaf = ca.issue(dns_name);
        let (ca_pem, cert_pem, key_pem) = (
            dir.join("ca.pem"),
            dir.join("cert.pem"),
            dir.join("key.pem"),
        );
        ca.write_root(&ca_pem);
        std::fs::write(&cert_pem, &leaf.chain_pem).expect("write cert.pem");
        std::fs::write(&key_pem, &leaf.key_pem).expect("write key.pem");
        TestPki {
            ca,
            leaf,
            ca_pem,
            cert_pem,
            key_pem,
        }
    }

    /// What `SimConfig::tls` takes to serve this PKI's certificate.
    pub fn identity(&self) -> TlsIdentity {
        self.leaf.identity()
    }
}

/// The root certificate of a new CA that has signed nothing the simulator
/// serves, written to `dir/other-ca.pem`: a `--ca-file` that must be refused.
pub fn unrelated_ca(dir: &Path) -> PathBuf {
    let path = dir.join("other-ca.pem");
    TestCa::new("unrelated").write_root(&path);
    path
}

/// `NAME:PORT:127.0.0.1`, the host's (and curl's) `--resolve` value that
/// sends the simulator's base URL host to where it listens.
pub fn resolve_arg(sim: &Simulator) -> String {
    let base = sim.base_url();
    let name = base
        .split("://")
        .nth(1)
        .and_then(|rest| rest.rsplit_once(':'))
        .map(|(name, _)| name.to_string())
        .expect("base URL is scheme://name:port");
    let addr = sim.local_addr();
    format!("{name}:{}:{}", addr.port(), addr.ip())
}
