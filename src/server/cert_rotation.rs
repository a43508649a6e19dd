//! When self-managed certificates change, decided from what is stored alone
//! (pure; the Secret and webhook configurations are [`super::cert_secret`]'s).
//!
//! What is stored: a CA bundle (the current CA first, then earlier CAs that
//! have not expired), the current CA's key, and a serving certificate with
//! its key. One [`Step`] at a time, so that clients never meet a certificate
//! they do not trust:
//!
//! - the serving certificate is renewed a third of its validity before it
//!   ends, by the same CA: the `caBundle` of the webhook configurations does
//!   not change, every replica may serve either certificate;
//! - the CA is replaced a third of its validity before it ends in two steps:
//!   first a new CA joins the bundle (the serving certificate stays), and
//!   only once that bundle is in every webhook configuration
//!   (`bundle_published`) is a serving certificate issued by the new CA;
//! - expired CAs leave the bundle.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::tls::{PemPair, TlsError, Validity, generate_ca, issue_leaf, parse_pair};

/// The certificates as stored in the Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// PEM CAs: the current one (whose key is `ca_key`) first.
    pub ca_bundle: String,
    /// PEM key of the current CA.
    pub ca_key: String,
    /// PEM serving certificate.
    pub tls_crt: String,
    /// PEM key of the serving certificate.
    pub tls_key: String,
}

/// What the certificates must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Common name of the serving certificate (the CA's gets " CA").
    pub common_name: String,
    /// Names (and IP addresses) the serving certificate is for.
    pub dns_names: Vec<String>,
    pub validity: Validity,
}

/// The one change to make now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Everything is as it should be.
    Keep,
    /// Nothing usable is stored: a new CA and serving certificate.
    Create { reason: String },
    /// The CA nears its end: a new CA joins the bundle.
    RotateCa { reason: String },
    /// A new serving certificate from the current CA.
    IssueLeaf { reason: String },
    /// Expired CAs leave the bundle.
    Prune { expired: usize },
}

/// A CA of the bundle, parsed.
struct Ca {
    der: CertificateDer<'static>,
    not_after: i64,
}

/// The parts of a stored set the plan needs, or why it is unusable.
struct Parsed {
    bundle: Vec<Ca>,
    leaf_not_after: i64,
    leaf_by_current_ca: bool,
    leaf_names: BTreeSet<String>,
}

fn parse(stored: &Stored) -> Result<Parsed, String> {
    let bundle = CertificateDer::pem_slice_iter(stored.ca_bundle.as_bytes())
        .map(|der| {
            let der = der.map_err(|e| format!("ca.crt: {e}"))?;
            let not_after = with_cert(&der, |cert| cert.validity().not_after.timestamp())
                .ok_or("ca.crt: a certificate does not parse")?;
            Ok(Ca { der, not_after })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let current = bundle.first().ok_or("ca.crt holds no certificate")?;
    let ca_key = rcgen::KeyPair::from_pem(&stored.ca_key).map_err(|e| format!("ca.key: {e}"))?;
    let key_matches = with_cert(&current.der, |ca| {
        ca.public_key().subject_public_key.data.as_ref() == ca_key.public_key_raw()
    });
    if key_matches != Some(true) {
        return Err("ca.key is not the key of the first certificate of ca.crt".to_owned());
    }
    parse_pair(
        stored.tls_crt.as_bytes(),
        stored.tls_key.as_bytes(),
        "tls.crt",
        "tls.key",
    )
    .map_err(|e| e.to_string())?;
    let leaf_der = CertificateDer::from_pem_slice(stored.tls_crt.as_bytes())
        .map_err(|e| format!("tls.crt: {e}"))?;
    let (leaf_not_after, leaf_by_current_ca, leaf_names) = with_cert(&leaf_der, |leaf| {
        let by_current = with_cert(&current.der, |ca| {
            leaf.verify_signature(Some(ca.public_key())).is_ok()
        }) == Some(true);
        (
            leaf.validity().not_after.timestamp(),
            by_current,
            subject_alt_names(leaf),
        )
    })
    .ok_or("tls.crt does not parse")?;
    Ok(Parsed {
        bundle,
        leaf_not_after,
        leaf_by_current_ca,
        leaf_names,
    })
}

fn with_cert<T>(der: &[u8], read: impl FnOnce(&X509Certificate<'_>) -> T) -> Option<T> {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, cert)| read(&cert))
}

/// DNS names and IP addresses of a certificate, as text.
fn subject_alt_names(cert: &X509Certificate<'_>) -> BTreeSet<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return BTreeSet::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|b| IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A third of `validity`, in seconds: how long before its end a certificate
/// is replaced.
fn renew_margin(validity: Duration) -> i64 {
    i64::try_from(validity.as_secs() / 3).unwrap_or(i64::MAX)
}

/// The one change to make at `now` (seconds since the epoch) to what is
/// stored; `bundle_published`: every webhook configuration already trusts
/// the stored bundle.
pub fn plan(now: i64, stored: Option<&Stored>, policy: &Policy, bundle_published: bool) -> Step {
    let Some(stored) = stored else {
        return Step::Create {
            reason: "nothing stored yet".to_owned(),
        };
    };
    let parsed = match parse(stored) {
        Ok(parsed) => parsed,
        Err(reason) => {
            return Step::Create {
                reason: format!("what is stored is unusable: {reason}"),
            };
        }
    };
    let ca_end = parsed.bundle[0].not_after;
    if ca_end - now < renew_margin(policy.validity.ca) {
        return Step::RotateCa {
            reason: format!(
                "the CA ends at {} (in {} s)",
                timestamp(ca_end),
                ca_end - now
            ),
        };
    }
    let leaf_end = parsed.leaf_not_after;
    let wanted: BTreeSet<String> = policy.dns_names.iter().cloned().collect();
    let leaf_reason = if leaf_end <= now {
        Some(format!("it expired at {}", timestamp(leaf_end)))
    } else if !parsed.leaf_by_current_ca {
        bundle_published.then(|| "a previous CA signed it".to_owned())
    } else if parsed.leaf_names != wanted {
        Some(format!(
            "it is for {:?}, not {:?}",
            parsed.leaf_names, wanted
        ))
    } else if leaf_end - now < renew_margin(policy.validity.leaf.min(policy.validity.ca)) {
        Some(format!(
            "it ends at {} (in {} s)",
            timestamp(leaf_end),
            leaf_end - now
        ))
    } else {
        None
    };
    if let Some(reason) = leaf_reason {
        return Step::IssueLeaf { reason };
    }
    let expired = parsed.bundle[1..]
        .iter()
        .filter(|ca| ca.not_after <= now)
        .count();
    if expired > 0 {
        return Step::Prune { expired };
    }
    Step::Keep
}

/// A Unix time as RFC 2822, for messages.
fn timestamp(seconds: i64) -> String {
    x509_parser::time::ASN1Time::from_timestamp(seconds)
        .ok()
        .and_then(|t| t.to_rfc2822().ok())
        .unwrap_or_else(|| seconds.to_string())
}

/// What is stored after `step`; `None` for [`Step::Keep`].
pub fn apply(
    step: &Step,
    now: i64,
    stored: Option<&Stored>,
    policy: &Policy,
) -> Result<Option<Stored>, TlsError> {
    let ca_name = format!("{} CA", policy.common_name);
    let leaf = |ca: &PemPair| {
        issue_leaf(
            ca,
            &policy.common_name,
            &policy.dns_names,
            policy.validity.leaf,
        )
    };
    let unchanged = || {
        stored
            .cloned()
            .ok_or_else(|| TlsError::Generate(format!("{step:?} needs stored certificates")))
    };
    Ok(Some(match step {
        Step::Keep => return Ok(None),
        Step::Create { .. } => {
            let ca = generate_ca(&ca_name, policy.validity.ca)?;
            let issued = leaf(&ca)?;
            Stored {
                ca_bundle: ca.cert_pem,
                ca_key: ca.key_pem,
                tls_crt: issued.cert_pem,
                tls_key: issued.key_pem,
            }
        }
        Step::RotateCa { .. } => {
            let old = unchanged()?;
            let ca = generate_ca(&ca_name, policy.validity.ca)?;
            Stored {
                ca_bundle: format!(
                    "{}{}",
                    ca.cert_pem,
                    unexpired_pem(&cas(&old.ca_bundle), now)
                ),
                ca_key: ca.key_pem,
                ..old
            }
        }
        Step::IssueLeaf { .. } => {
            let old = unchanged()?;
            let current = cas(&old.ca_bundle)
                .into_iter()
                .next()
                .ok_or_else(|| TlsError::Generate("ca.crt holds no certificate".to_owned()))?;
            let issued = leaf(&PemPair {
                cert_pem: pem(&current),
                key_pem: old.ca_key.clone(),
            })?;
            Stored {
                tls_crt: issued.cert_pem,
                tls_key: issued.key_pem,
                ..old
            }
        }
        Step::Prune { .. } => {
            let old = unchanged()?;
            let bundle = cas(&old.ca_bundle);
            let (current, earlier) = bundle
                .split_first()
                .ok_or_else(|| TlsError::Generate("ca.crt holds no certificate".to_owned()))?;
            Stored {
                ca_bundle: format!("{}{}", pem(current), unexpired_pem(earlier, now)),
                ..old
            }
        }
    }))
}

/// The certificates of a PEM bundle (unreadable ones left out).
fn cas(bundle: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(bundle.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

/// The CAs of `cas` that end after `now`, as PEM.
fn unexpired_pem(cas: &[CertificateDer<'_>], now: i64) -> String {
    cas.iter()
        .filter(|der| with_cert(der, |c| c.validity().not_after.timestamp() > now) == Some(true))
        .map(|der| pem(der))
        .collect()
}

/// One certificate as PEM.
fn pem(der: &CertificateDer<'_>) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls_pki_types::{ServerName, UnixTime};

    use super::*;
    use crate::server::tls::provider;

    const NAME: &str = "llm-injector.llm-system.svc";

    fn policy(ca_seconds: u64, leaf_seconds: u64) -> Policy {
        Policy {
            common_name: NAME.to_owned(),
            dns_names: vec![NAME.to_owned(), "127.0.0.1".to_owned()],
            validity: Validity {
                ca: Duration::from_secs(ca_seconds),
                leaf: Duration::from_secs(leaf_seconds),
            },
        }
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    /// `step` applied at `now` (panics on Keep).
    fn after(step: &Step, now: i64, stored: Option<&Stored>, policy: &Policy) -> Stored {
        apply(step, now, stored, policy).unwrap().unwrap()
    }

    fn created(policy: &Policy) -> Stored {
        let step = plan(now(), None, policy, true);
        assert!(matches!(step, Step::Create { .. }), "{step:?}");
        after(&step, now(), None, policy)
    }

    /// Whether a client trusting `bundle` accepts `stored`'s serving
    /// certificate for NAME, as the apiserver checks it.
    fn trusted(bundle: &str, stored: &Stored) -> bool {
        let mut roots = rustls::RootCertStore::empty();
        for der in CertificateDer::pem_slice_iter(bundle.as_bytes()) {
            roots.add(der.unwrap()).unwrap();
        }
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
        let leaf = CertificateDer::from_pem_slice(stored.tls_crt.as_bytes()).unwrap();
        verifier
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from(NAME).unwrap(),
                &[],
                UnixTime::now(),
            )
            .is_ok()
    }

    fn kind(step: &Step) -> &'static str {
        match step {
            Step::Keep => "keep",
            Step::Create { .. } => "create",
            Step::RotateCa { .. } => "rotate-ca",
            Step::IssueLeaf { .. } => "issue-leaf",
            Step::Prune { .. } => "prune",
        }
    }

    #[test]
    fn renewals_fall_a_third_of_the_validity_before_the_end() {
        let policy = policy(3600, 600);
        let stored = created(&policy);
        assert!(trusted(&stored.ca_bundle, &stored));
        let t = now();
        // (seconds from now, bundle published, expected step)
        let cases = [
            (0, true, "keep"),
            (399, true, "keep"),
            // The leaf ends at t+600: renewed from 200 s before.
            (401, true, "issue-leaf"),
            (401, false, "issue-leaf"),
            (700, false, "issue-leaf"),
            // The CA ends at t+3600: replaced from 1200 s before.
            (2401, true, "rotate-ca"),
            (2401, false, "rotate-ca"),
            (4000, true, "rotate-ca"),
        ];
        for (offset, published, expected) in cases {
            let step = plan(t + offset, Some(&stored), &policy, published);
            assert_eq!(kind(&step), expected, "at +{offset} s: {step:?}");
        }
        // A renewed leaf comes from the same CA: the bundle stays, trusted.
        let step = plan(t + 401, Some(&stored), &policy, true);
        let renewed = after(&step, t, Some(&stored), &policy);
        assert_eq!(renewed.ca_bundle, stored.ca_bundle);
        assert_ne!(renewed.tls_crt, stored.tls_crt);
        assert!(trusted(&stored.ca_bundle, &renewed));
        assert_eq!(kind(&plan(t, Some(&renewed), &policy, true)), "keep");
    }

    #[test]
    fn a_new_ca_is_trusted_before_it_signs_and_the_old_one_leaves_when_expired() {
        // An old CA of 100 s, then the policy asks for an hour.
        let old = created(&policy(100, 100));
        let policy = policy(3600, 600);
        let t = now();
        let step = plan(t, Some(&old), &policy, true);
        assert_eq!(kind(&step), "rotate-ca", "{step:?}");
        let rotated = after(&step, t, Some(&old), &policy);
        // The new CA first, the old one kept; the leaf untouched and still
        // trusted through the new bundle.
        assert_eq!(cas(&rotated.ca_bundle).len(), 2);
        assert!(rotated.ca_bundle.ends_with(&old.ca_bundle));
        assert_eq!(rotated.tls_crt, old.tls_crt);
        assert!(trusted(&rotated.ca_bundle, &rotated));
        // The new CA signs only once the bundle is in every configuration.
        assert_eq!(kind(&plan(t, Some(&rotated), &policy, false)), "keep");
        let step = plan(t, Some(&rotated), &policy, true);
        assert_eq!(kind(&step), "issue-leaf", "{step:?}");
        let reissued = after(&step, t, Some(&rotated), &policy);
        assert_eq!(reissued.ca_bundle, rotated.ca_bundle);
        // Trusted by the published bundle, not by the old CA alone.
        assert!(trusted(&rotated.ca_bundle, &reissued));
        assert!(!trusted(&old.ca_bundle, &reissued));
        assert_eq!(kind(&plan(t, Some(&reissued), &policy, true)), "keep");
        // Once the old CA has expired, it leaves the bundle.
        let step = plan(t + 200, Some(&reissued), &policy, true);
        assert_eq!(step, Step::Prune { expired: 1 });
        let pruned = after(&step, t + 200, Some(&reissued), &policy);
        assert_eq!(cas(&pruned.ca_bundle).len(), 1);
        assert!(trusted(&pruned.ca_bundle, &pruned));
        assert_eq!(kind(&plan(t + 200, Some(&pruned), &policy, true)), "keep");
    }

    #[test]
    fn unusable_or_mismatched_contents_are_replaced() {
        let policy = policy(3600, 600);
        let good = created(&policy);
        let other = created(&policy);
        let t = now();
        let cases = [
            (
                Stored {
                    ca_key: other.ca_key.clone(),
                    ..good.clone()
                },
                "create",
                "ca.key is not the key",
            ),
            (
                Stored {
                    ca_bundle: String::new(),
                    ..good.clone()
                },
                "create",
                "ca.crt holds no certificate",
            ),
            (
                Stored {
                    tls_key: other.tls_key.clone(),
                    ..good.clone()
                },
                "create",
                "does not belong",
            ),
            (
                Stored {
                    tls_crt: "garbage".to_owned(),
                    ..good.clone()
                },
                "create",
                "tls.crt",
            ),
            // A leaf another CA signed: replaced once the bundle is out.
            (
                Stored {
                    tls_crt: other.tls_crt.clone(),
                    tls_key: other.tls_key.clone(),
                    ..good.clone()
                },
                "issue-leaf",
                "a previous CA signed it",
            ),
        ];
        for (stored, expected, reason) in cases {
            let step = plan(t, Some(&stored), &policy, true);
            assert_eq!(kind(&step), expected, "{step:?}");
            assert!(
                format!("{step:?}").contains(reason),
                "{step:?} lacks {reason:?}"
            );
            let fixed = after(&step, t, Some(&stored), &policy);
            assert_eq!(kind(&plan(t, Some(&fixed), &policy, true)), "keep");
            assert!(trusted(&fixed.ca_bundle, &fixed));
        }
        // Other names asked for: a new leaf for them.
        let renamed = Policy {
            dns_names: vec![NAME.to_owned(), "llm-injector.other.svc".to_owned()],
            ..policy.clone()
        };
        let step = plan(t, Some(&good), &renamed, true);
        assert_eq!(kind(&step), "issue-leaf", "{step:?}");
        let fixed = after(&step, t, Some(&good), &renamed);
        assert_eq!(kind(&plan(t, Some(&fixed), &renamed, true)), "keep");
    }
}
