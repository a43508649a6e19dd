//! Serving certificates: loaded from PEM files and re-read on a timer (a
//! kubelet Secret update swaps a `..data` symlink, which a file watch never
//! sees), validated before they replace the current pair, and served through
//! a rustls certificate resolver, so rotation needs no restart and drops no
//! connection. Without files, a self-signed CA and leaf for local use.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::metrics::gauge::Gauge;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

use super::polled_files::{LastSeen, Polled, every};

/// Why a certificate pair could not be used.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate found")]
    NoCertificate { path: String },
    #[error("{path}: {message}")]
    BadPem { path: String, message: String },
    #[error("the key in {key} does not belong to the certificate in {cert}: {message}")]
    Mismatch {
        cert: String,
        key: String,
        message: String,
    },
    #[error("cannot generate the self-signed certificate: {0}")]
    Generate(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The crypto provider of every TLS config here: ring, with its default
/// (modern AEAD-only) cipher suites.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM certificate chain and private key and checks they match.
pub fn parse_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_name: &str,
    key_name: &str,
) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::BadPem {
            path: cert_name.to_owned(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_name.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::BadPem {
        path: key_name.to_owned(),
        message: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::Mismatch {
        cert: cert_name.to_owned(),
        key: key_name.to_owned(),
        message: e.to_string(),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The certificate currently served, swappable without locking handshakes,
/// and when it expires (a gauge the metrics read).
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
    expiry: Gauge,
}

impl CertResolver {
    pub fn new(key: CertifiedKey) -> Self {
        let resolver = CertResolver {
            current: ArcSwap::from_pointee(key),
            expiry: Gauge::default(),
        };
        resolver.expiry.set(not_after(&resolver.current.load()));
        resolver
    }

    /// Replaces the served certificate; new handshakes use it at once.
    pub fn replace(&self, key: CertifiedKey) {
        self.expiry.set(not_after(&key));
        self.current.store(Arc::new(key));
    }

    /// When the served certificate expires, in seconds since the Unix epoch
    /// (0 if it cannot be read); follows [`replace`](Self::replace).
    pub fn expiry(&self) -> Gauge {
        self.expiry.clone()
    }
}

/// The `notAfter` of the leaf of `key`, in seconds since the Unix epoch; 0
/// when it does not parse (rustls accepted it, so that is not expected).
fn not_after(key: &CertifiedKey) -> i64 {
    key.cert
        .first()
        .and_then(|der| x509_parser::parse_x509_certificate(der).ok())
        .map_or(0, |(_, cert)| cert.validity().not_after.timestamp())
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// A certificate pair read from files and re-read when their bytes change.
#[derive(Debug)]
pub struct FileCerts {
    cert_path: PathBuf,
    key_path: PathBuf,
    resolver: Arc<CertResolver>,
    /// The bytes last looked at (loaded or refused), to act once per change.
    last_seen: LastSeen<(Vec<u8>, Vec<u8>)>,
}

/// What a reload attempt did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Rotated,
    /// The new pair was refused; the old one is still served.
    Refused(String),
}

impl FileCerts {
    /// Loads the pair; fails if it is unreadable or inconsistent.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let (cert, key) = (read(cert_path)?, read(key_path)?);
        let pair = parse_pair(
            &cert,
            &key,
            &cert_path.display().to_string(),
            &key_path.display().to_string(),
        )?;
        Ok(FileCerts {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            resolver: Arc::new(CertResolver::new(pair)),
            last_seen: LastSeen::new((cert, key)),
        })
    }

    /// The resolver handshakes use.
    pub fn resolver(&self) -> Arc<CertResolver> {
        self.resolver.clone()
    }

    /// Re-reads both files; swaps in the new pair if it changed and is valid.
    pub fn reload(&self) -> Reload {
        let polled = self.last_seen.poll(
            || {
                let text = |path: &Path| read(path).map_err(|e| e.to_string());
                Ok((text(&self.cert_path)?, text(&self.key_path)?))
            },
            |(cert, key)| {
                parse_pair(
                    cert,
                    key,
                    &self.cert_path.display().to_string(),
                    &self.key_path.display().to_string(),
                )
                .map_err(|e| e.to_string())
            },
        );
        match polled {
            Polled::Unchanged => Reload::Unchanged,
            Polled::Changed(pair) => {
                self.resolver.replace(pair);
                Reload::Rotated
            }
            Polled::Refused(reason) => Reload::Refused(reason),
        }
    }

    /// Re-reads the files every `interval`, forever, logging rotations and refusals.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        every(interval, || async {
            match self.reload() {
                Reload::Unchanged => {}
                Reload::Rotated => {
                    tracing::info!(cert = %self.cert_path.display(), "serving certificate rotated")
                }
                Reload::Refused(reason) => tracing::error!(
                    cert = %self.cert_path.display(),
                    %reason,
                    "new serving certificate refused; still serving the previous one"
                ),
            }
        })
        .await
    }
}

/// A development CA and a serving certificate it signed.
pub struct GeneratedCerts {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// How long generated certificates are valid, from a few minutes before
/// now (clocks of other machines may lag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Of the CA.
    pub ca: Duration,
    /// Of the serving certificate; cut to the CA's.
    pub leaf: Duration,
}

/// A day.
pub const DAY: Duration = Duration::from_secs(24 * 3600);

impl Default for Validity {
    /// Ten years for the CA, one for the serving certificate: rotated
    /// yearly, with the CA in the webhook configurations left alone.
    fn default() -> Self {
        Validity {
            ca: DAY * 3650,
            leaf: DAY * 365,
        }
    }
}

/// How far before now a generated certificate becomes valid.
const BACKDATE: Duration = Duration::from_secs(300);

/// Generates a CA and a leaf for `dns_names` (IP addresses allowed), valid
/// for `validity`: for development, or for the kubectl path where the
/// operator rotates them.
pub fn generate(
    common_name: &str,
    dns_names: &[String],
    validity: Validity,
) -> Result<GeneratedCerts, TlsError> {
    let ca = generate_ca(&format!("{common_name} CA"), validity.ca)?;
    let leaf = issue_leaf(&ca, common_name, dns_names, validity.leaf)?;
    Ok(GeneratedCerts {
        ca_pem: ca.cert_pem,
        cert_pem: leaf.cert_pem,
        key_pem: leaf.key_pem,
    })
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemPair {
    pub cert_pem: String,
    pub key_pem: String,
}

fn generate_error(e: rcgen::Error) -> TlsError {
    TlsError::Generate(e.to_string())
}

/// `now + validity`, or an error past year 9999.
fn until(now: time::OffsetDateTime, validity: Duration) -> Result<time::OffsetDateTime, TlsError> {
    time::Duration::try_from(validity)
        .ok()
        .and_then(|d| now.checked_add(d))
        .filter(|t| t.year() <= 9999)
        .ok_or_else(|| {
            TlsError::Generate(format!(
                "a certificate valid for {validity:?} ends past year 9999"
            ))
        })
}

/// A self-signed CA named `common_name`, valid from a few minutes ago for
/// `validity`, that may sign serving certificates only.
pub fn generate_ca(common_name: &str, validity: Duration) -> Result<PemPair, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let now = time::OffsetDateTime::now_utc();
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(generate_error)?;
    params.not_before = now - BACKDATE;
    params.not_after = until(now, validity)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let key = KeyPair::generate().map_err(generate_error)?;
    let cert = params.self_signed(&key).map_err(generate_error)?;
    Ok(PemPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A serving certificate for `dns_names` (IP addresses allowed) signed by
/// `ca`, valid from a few minutes ago for `validity`, cut to the CA's end.
pub fn issue_leaf(
    ca: &PemPair,
    common_name: &str,
    dns_names: &[String],
    validity: Duration,
) -> Result<PemPair, TlsError> {
    use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair};
    use rcgen::{Issuer, KeyUsagePurpose};
    let ca_der = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes())
        .map_err(|e| TlsError::Generate(format!("the CA certificate: {e}")))?;
    let ca_until = x509_parser::parse_x509_certificate(&ca_der)
        .ok()
        .and_then(|(_, cert)| {
            time::OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp()).ok()
        })
        .ok_or_else(|| TlsError::Generate("the CA certificate does not parse".to_owned()))?;
    let ca_key = KeyPair::from_pem(&ca.key_pem)
        .map_err(|e| TlsError::Generate(format!("the CA key: {e}")))?;
    let issuer = Issuer::from_ca_cert_der(&ca_der, ca_key).map_err(generate_error)?;

    let now = time::OffsetDateTime::now_utc();
    let mut params = CertificateParams::new(dns_names.to_vec()).map_err(generate_error)?;
    params.not_before = now - BACKDATE;
    params.not_after = until(now, validity).map_or(ca_until, |t| t.min(ca_until));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().map_err(generate_error)?;
    let cert = params.signed_by(&key, &issuer).map_err(generate_error)?;
    Ok(PemPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The rustls server config: TLS 1.3 and 1.2 only, ring's modern suites,
/// ALPN h2 and http/1.1, certificates from `resolver`.
pub fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::ProtocolVersion;

    /// The pair `generated` holds, as the server serves it.
    fn served(generated: &GeneratedCerts) -> CertifiedKey {
        parse_pair(
            generated.cert_pem.as_bytes(),
            generated.key_pem.as_bytes(),
            "cert",
            "key",
        )
        .unwrap()
    }

    /// An in-memory handshake with a client offering only `versions`.
    fn handshake(
        server: Arc<ServerConfig>,
        ca_pem: &str,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Result<ProtocolVersion, rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let client_config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(client_config), name)?;
        let mut server = rustls::ServerConnection::new(server)?;
        for _ in 0..10 {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).unwrap();
            server.read_tls(&mut buf.as_slice()).unwrap();
            server.process_new_packets()?;
            let mut buf = Vec::new();
            server.write_tls(&mut buf).unwrap();
            client.read_tls(&mut buf.as_slice()).unwrap();
            client.process_new_packets()?;
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(server.protocol_version().unwrap());
            }
        }
        panic!("handshake did not finish");
    }

    #[test]
    fn tls_1_2_and_1_3_with_aead_suites_only() {
        let generated = generate("test", &["localhost".to_owned()], Validity::default()).unwrap();
        let key = served(&generated);
        let config = server_config(Arc::new(CertResolver::new(key))).unwrap();
        for (versions, expected) in [
            (&[&rustls::version::TLS13][..], ProtocolVersion::TLSv1_3),
            (&[&rustls::version::TLS12][..], ProtocolVersion::TLSv1_2),
        ] {
            let got = handshake(config.clone(), &generated.ca_pem, versions).unwrap();
            assert_eq!(got, expected);
        }
        // rustls offers nothing older than TLS 1.2, and the server is built
        // with exactly 1.3 and 1.2; every suite is AEAD with forward secrecy.
        for suite in &config.crypto_provider().cipher_suites {
            let name = format!("{:?}", suite.suite());
            assert!(
                name.contains("GCM") || name.contains("CHACHA20_POLY1305"),
                "not an AEAD suite: {name}"
            );
            assert!(
                name.starts_with("TLS13") || name.starts_with("TLS_ECDHE"),
                "suite without forward secrecy: {name}"
            );
        }
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn mismatched_or_broken_pairs_are_refused() {
        let a = generate("a", &["localhost".to_owned()], Validity::default()).unwrap();
        let b = generate("b", &["localhost".to_owned()], Validity::default()).unwrap();
        let cases = [
            (a.cert_pem.as_str(), b.key_pem.as_str(), "does not belong"),
            ("", a.key_pem.as_str(), "no PEM certificate"),
            (a.cert_pem.as_str(), "", "key"),
            (
                "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
                a.key_pem.as_str(),
                "cert",
            ),
        ];
        for (cert, key, expected) in cases {
            let error = parse_pair(cert.as_bytes(), key.as_bytes(), "cert", "key")
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
        assert!(parse_pair(a.cert_pem.as_bytes(), a.key_pem.as_bytes(), "cert", "key").is_ok());
    }

    #[test]
    fn validity_is_what_was_asked_and_the_resolver_reports_it() {
        let pair = |validity| {
            let generated = generate("v", &["localhost".to_owned()], validity).unwrap();
            let ca = CertificateDer::from_pem_slice(generated.ca_pem.as_bytes()).unwrap();
            let ca_until = x509_parser::parse_x509_certificate(&ca)
                .unwrap()
                .1
                .validity()
                .not_after
                .timestamp();
            (ca_until, served(&generated))
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let days = |seconds: i64| (seconds - now + 3600) / 86_400;
        let (ca_until, key) = pair(Validity::default());
        let resolver = CertResolver::new(key);
        assert_eq!(days(ca_until), 3650);
        assert_eq!(days(resolver.expiry().get()), 365);
        // A rotated certificate moves the gauge; a leaf outliving its CA is cut.
        let (ca_until, key) = pair(Validity {
            ca: DAY * 30,
            leaf: DAY * 90,
        });
        resolver.replace(key);
        assert_eq!(days(ca_until), 30);
        assert_eq!(resolver.expiry().get(), ca_until);
    }
}
