//! Kubernetes name rules: object names (DNS-1123 subdomains) and extended
//! resource names (`domain/name`), as the apiserver checks them.

/// Is `s` a DNS-1123 subdomain: at most 253 lowercase letters, digits, '-'
/// and '.', each dot-separated part starting and ending with a letter or digit?
/// (The names of most objects: ResourceClaimTemplates, RuntimeClasses, PVCs, LLMEngines.)
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_subdomain_part)
}

fn is_subdomain_part(part: &str) -> bool {
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = part.as_bytes();
    bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
}

/// The hint appended to messages about a name that is not a DNS-1123 subdomain.
pub const DNS_SUBDOMAIN_HINT: &str = "names are at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit";

/// Why `name` is not a Kubernetes extended resource name (`domain/name`, such
/// as `nvidia.com/gpu`), or `None` when it is one.
pub fn extended_resource_problem(name: &str) -> Option<&'static str> {
    let Some((domain, resource)) = name.split_once('/') else {
        return Some("has no domain: extended resources are written domain/name");
    };
    // "requests." + name must still be a qualified name for ResourceQuota.
    if !is_dns_subdomain(domain) || domain.len() > 253 - "requests.".len() {
        return Some("has an invalid domain (a lowercase DNS name such as nvidia.com)");
    }
    if domain == "kubernetes.io" || domain.ends_with(".kubernetes.io") {
        return Some(
            "is in the kubernetes.io domain, which is reserved for native resources such as cpu and memory",
        );
    }
    if domain.starts_with("requests.") {
        return Some("starts with requests., which ResourceQuota reserves");
    }
    let ok_inner = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    let bytes = resource.as_bytes();
    let shaped = bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.iter().all(ok_inner);
    if !shaped || resource.len() > 63 {
        return Some(
            "has an invalid name after the '/' (at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit)",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_subdomains() {
        let cases = [
            ("nvidia", true),
            ("two-gpus", true),
            ("a.b-c.d", true),
            ("0", true),
            ("", false),
            ("Nvidia", false),
            ("-a", false),
            ("a-", false),
            ("a..b", false),
            ("a.-b", false),
            ("a_b", false),
            ("a b", false),
        ];
        for (name, ok) in cases {
            assert_eq!(is_dns_subdomain(name), ok, "{name:?}");
        }
        assert!(is_dns_subdomain(&"a".repeat(253)));
        assert!(!is_dns_subdomain(&"a".repeat(254)));
    }

    #[test]
    fn extended_resources() {
        let cases = [
            ("nvidia.com/gpu", None),
            ("amd.com/gpu", None),
            ("nvidia.com/mig-1g.10gb", None),
            ("example.com/Fpga_X", None),
            ("gpu", Some("has no domain")),
            ("NVIDIA.com/gpu", Some("invalid domain")),
            ("/gpu", Some("invalid domain")),
            ("kubernetes.io/gpu", Some("kubernetes.io")),
            ("x.kubernetes.io/gpu", Some("kubernetes.io")),
            ("requests.nvidia.com/gpu", Some("requests.")),
            ("nvidia.com/", Some("after the '/'")),
            ("nvidia.com/-gpu", Some("after the '/'")),
            ("nvidia.com/g/pu", Some("after the '/'")),
        ];
        for (name, expected) in cases {
            let got = extended_resource_problem(name);
            match expected {
                None => assert_eq!(got, None, "{name}"),
                Some(fragment) => assert!(
                    got.is_some_and(|m| m.contains(fragment)),
                    "{name}: {got:?} lacks {fragment:?}"
                ),
            }
        }
        let long = format!("nvidia.com/{}", "g".repeat(64));
        assert!(extended_resource_problem(&long).is_some());
    }
}
