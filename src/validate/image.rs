//! Container image references, as the container runtime parses them
//! (the grammar of `distribution/reference`):
//! `[domain[:port]/]path[:tag][@algorithm:hex]`.

/// The parts of a container image reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// Registry host (and port), when the reference names one.
    pub domain: Option<&'a str>,
    /// Repository path, such as `ollama/ollama`.
    pub path: &'a str,
    pub tag: Option<&'a str>,
    /// `algorithm:hex`, such as `sha256:...`.
    pub digest: Option<&'a str>,
}

impl ImageRef<'_> {
    /// Pinned: a digest, or a tag other than `latest`.
    pub fn is_pinned(&self) -> bool {
        self.digest.is_some() || self.tag.is_some_and(|t| t != "latest")
    }
}

/// Whether an image reference mentions ROCm anywhere (`ollama/ollama:0.12.6-rocm`),
/// ignoring case: the sign of an AMD build.
pub fn mentions_rocm(image: &str) -> bool {
    image
        .as_bytes()
        .windows(4)
        .any(|w| w.eq_ignore_ascii_case(b"rocm"))
}

/// Parses an image reference, or says what is wrong with it.
pub fn parse_image(image: &str) -> Result<ImageRef<'_>, String> {
    if image.is_empty() {
        return Err("is empty".to_owned());
    }
    if let Some(c) = image.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("contains the character {c:?}"));
    }
    let (name_and_tag, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        check_digest(digest)?;
    }
    // A ':' after the last '/' starts the tag; one before it belongs to a registry port.
    let last_slash = name_and_tag.rfind('/');
    let (name, tag) = match name_and_tag.rfind(':') {
        Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
            (&name_and_tag[..colon], Some(&name_and_tag[colon + 1..]))
        }
        _ => (name_and_tag, None),
    };
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    if name.len() > 255 {
        return Err(format!(
            "has a repository name of {} characters; at most 255",
            name.len()
        ));
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, rest)) if looks_like_domain(first) => (Some(first), rest),
        _ => (None, name),
    };
    if let Some(domain) = domain {
        check_domain(domain)?;
    }
    check_path(path)?;
    Ok(ImageRef {
        domain,
        path,
        tag,
        digest,
    })
}

/// As the runtime decides: the first component is a registry when it has a
/// '.' or ':', is `localhost`, or has capitals (a path never does).
fn looks_like_domain(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

fn check_domain(domain: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "has an invalid registry {domain:?} (a host name or IP address, optionally :port)"
        ))
    };
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        // An IPv6 address: [::1]:5000
        let Some((address, after)) = rest.split_once(']') else {
            return bad();
        };
        if address.is_empty() || !address.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return bad();
        }
        match after {
            "" => (None, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return bad(),
            },
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        b.first().is_some_and(u8::is_ascii_alphanumeric)
            && b.last().is_some_and(u8::is_ascii_alphanumeric)
            && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
    };
    if host.is_some_and(|h| !h.split('.').all(component_ok)) {
        return bad();
    }
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return bad();
    }
    Ok(())
}

/// Path components: lowercase letters and digits, separated by '.', '_', '__' or dashes.
fn check_path(path: &str) -> Result<(), String> {
    for component in path.split('/') {
        if !path_component_ok(component) {
            return Err(format!(
                "has an invalid repository path component {component:?} (lowercase letters and digits, separated by '.', '_', '__' or '-')"
            ));
        }
    }
    Ok(())
}

fn path_component_ok(component: &str) -> bool {
    let b = component.as_bytes();
    let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !(b.first().is_some_and(alnum) && b.last().is_some_and(alnum)) {
        return false;
    }
    // Between alphanumeric runs: exactly one of ".", "_", "__", or any number of "-".
    let mut i = 0;
    while i < b.len() {
        if alnum(&b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(&b[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn check_tag(tag: &str) -> Result<(), String> {
    let b = tag.as_bytes();
    let word = |x: &u8| x.is_ascii_alphanumeric() || *x == b'_';
    let ok = b.first().is_some_and(word)
        && b.iter().all(|x| word(x) || matches!(x, b'.' | b'-'))
        && b.len() <= 128;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "has an invalid tag {tag:?} (at most 128 letters, digits, '_', '.' and '-', not starting with '.' or '-')"
        ))
    }
}

fn check_digest(digest: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("has an invalid digest {digest:?}: {why}"));
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return bad("write it as algorithm:hex, such as sha256:<64 hex digits>");
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '-', '_']).all(|part| {
            part.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
                && part.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    if !algorithm_ok {
        return bad("the algorithm is not a name such as sha256");
    }
    let lower_hex = hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let wanted = match algorithm {
        "sha256" => Some(64),
        "sha512" => Some(128),
        _ => None,
    };
    match wanted {
        _ if !lower_hex || hex.is_empty() => bad("the hex part is not lowercase hexadecimal"),
        Some(n) if hex.len() != n => bad(&format!(
            "{algorithm} has {n} hex digits, this one {}",
            hex.len()
        )),
        None if hex.len() < 32 => bad("a digest has at least 32 hex digits"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::testing::assert_rejects;

    const SHA: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn parses_valid_references() {
        let digest_ref = format!("registry.example.com/ollama/ollama@sha256:{SHA}");
        let both = format!("ollama/ollama:0.12.6@sha256:{SHA}");
        /// (reference, domain, path, tag, has digest, pinned)
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            &'a str,
            Option<&'a str>,
            bool,
            bool,
        );
        let cases: Vec<Case> = vec![
            (
                "ollama/ollama:0.12.6",
                None,
                "ollama/ollama",
                Some("0.12.6"),
                false,
                true,
            ),
            ("ollama/ollama", None, "ollama/ollama", None, false, false),
            (
                "ollama/ollama:latest",
                None,
                "ollama/ollama",
                Some("latest"),
                false,
                false,
            ),
            ("ollama", None, "ollama", None, false, false),
            ("ollama:1", None, "ollama", Some("1"), false, true),
            (
                "localhost/ollama:1",
                Some("localhost"),
                "ollama",
                Some("1"),
                false,
                true,
            ),
            (
                "localhost:5000/a/b",
                Some("localhost:5000"),
                "a/b",
                None,
                false,
                false,
            ),
            (
                "[::1]:5000/ollama:x",
                Some("[::1]:5000"),
                "ollama",
                Some("x"),
                false,
                true,
            ),
            (
                "Registry.Example.com/a__b/c-d/e.f",
                Some("Registry.Example.com"),
                "a__b/c-d/e.f",
                None,
                false,
                false,
            ),
            ("a---b:Q_4", None, "a---b", Some("Q_4"), false, true),
            // Capitals make the first component a registry, as for the runtime.
            (
                "Ollama/ollama:1",
                Some("Ollama"),
                "ollama",
                Some("1"),
                false,
                true,
            ),
            (
                &digest_ref,
                Some("registry.example.com"),
                "ollama/ollama",
                None,
                true,
                true,
            ),
            (&both, None, "ollama/ollama", Some("0.12.6"), true, true),
        ];
        for (reference, domain, path, tag, digest, pinned) in cases {
            let parsed = parse_image(reference).unwrap_or_else(|e| panic!("{reference}: {e}"));
            assert_eq!(parsed.domain, domain, "{reference}");
            assert_eq!(parsed.path, path, "{reference}");
            assert_eq!(parsed.tag, tag, "{reference}");
            assert_eq!(parsed.digest.is_some(), digest, "{reference}");
            assert_eq!(parsed.is_pinned(), pinned, "{reference}");
        }
    }

    #[test]
    fn rejects_invalid_references_saying_why() {
        let cases = [
            ("", "is empty"),
            ("ollama/ollama :1", "character ' '"),
            ("ollama/Ollama:1", "component \"Ollama\""),
            ("ollama//ollama", "component \"\""),
            ("ollama/ollama/", "component \"\""),
            ("ollama/-ollama", "component \"-ollama\""),
            ("ollama/a..b", "component \"a..b\""),
            ("ollama/a___b", "component \"a___b\""),
            ("ollama:", "invalid tag \"\""),
            ("ollama:-1", "invalid tag \"-1\""),
            ("ollama:a/b", "invalid registry \"ollama:a\""),
            ("ex-.com/ollama", "invalid registry"),
            ("example.com:x/ollama", "invalid registry"),
            ("[zz]:5000/ollama", "invalid registry"),
            ("ollama@sha256:abc", "sha256 has 64 hex digits, this one 3"),
            ("ollama@sha256", "algorithm:hex"),
            ("ollama@1sha:0123456789abcdef0123456789abcdef", "algorithm"),
            ("ollama@sha256:ABCD", "lowercase hexadecimal"),
            ("ollama@md5x:0123", "at least 32"),
        ];
        assert_rejects(&cases, |input| parse_image(input).err());
        assert!(parse_image(&format!("ollama:{}", "a".repeat(129))).is_err());
        assert!(parse_image(&format!("{}:1", "a".repeat(256))).is_err());
    }

    #[test]
    fn rocm_is_recognised_anywhere_ignoring_case() {
        assert!(mentions_rocm("ollama/ollama:0.12.6-rocm"));
        assert!(mentions_rocm("example.com/rocm/ollama:1"));
        assert!(mentions_rocm("ollama/ollama:0.12.6-ROCm"));
        assert!(!mentions_rocm("ollama/ollama:0.12.6"));
    }
}
