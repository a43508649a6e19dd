//! Ollama model references, parsed as Ollama 0.12 parses the name given to
//! `ollama pull` (`types/model/name.go`: `ParseNameBare` and `IsValid`):
//!
//! ```text
//! [[https://]host[:port]/][namespace/]model[:tag]
//! ```
//!
//! - the tag is what follows the last ':' when that comes after the last '/';
//! - every part starts with a letter, digit or '_' and goes on with letters,
//!   digits, '_' and '-'; model and tag may also hold '.', the host '.' and ':';
//!   the namespace may not hold '.';
//! - host: at most 350 characters; namespace, model, tag: at most 80;
//! - case is kept: Ollama compares names ignoring case, so capitals are valid
//!   (`hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M`);
//! - there is no digest: Ollama 0.12 rejects `name@sha256:...` as an invalid name.

/// The parts of an Ollama model reference; absent parts default to
/// `registry.ollama.ai`, `library` and `latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OllamaName<'a> {
    pub host: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub model: &'a str,
    pub tag: Option<&'a str>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Host,
    Namespace,
    Model,
    Tag,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Host => "host",
            Part::Namespace => "namespace",
            Part::Model => "model name",
            Part::Tag => "tag",
        }
    }

    fn max_len(self) -> usize {
        if self == Part::Host { 350 } else { 80 }
    }

    fn allows(self, b: u8) -> bool {
        match b {
            b'_' | b'-' => true,
            b'.' => self != Part::Namespace,
            b':' => self == Part::Host,
            _ => b.is_ascii_alphanumeric(),
        }
    }

    fn rule(self) -> &'static str {
        match self {
            Part::Host => "letters, digits, '_', '-', '.' and ':'",
            Part::Namespace => "letters, digits, '_' and '-' (no '.')",
            Part::Model | Part::Tag => "letters, digits, '_', '-' and '.'",
        }
    }
}

/// Parses an Ollama model reference, or says what is wrong with it.
pub fn parse_ollama_name(reference: &str) -> Result<OllamaName<'_>, String> {
    if reference.is_empty() {
        return Err("is empty".to_owned());
    }
    if reference.contains('@') {
        return Err(
            "has a digest (@...), which Ollama 0.12 does not take in a model name (pin a tag)"
                .to_owned(),
        );
    }
    let mut rest = reference;
    let mut tag = None;
    if let Some(colon) = rest.rfind(':')
        && rest.rfind('/').is_none_or(|slash| colon > slash)
    {
        tag = Some(&rest[colon + 1..]);
        rest = &rest[..colon];
    }
    let (rest, model) = match rest.rsplit_once('/') {
        Some((rest, model)) => (Some(rest), model),
        None => (None, rest),
    };
    let (host, namespace) = match rest.map(|r| r.rsplit_once('/').ok_or(r)) {
        None => (None, None),
        Some(Err(namespace)) => (None, Some(namespace)),
        Some(Ok((host, namespace))) => (Some(strip_scheme(host)?), Some(namespace)),
    };
    for (part, value) in [
        (Part::Host, host),
        (Part::Namespace, namespace),
        (Part::Model, Some(model)),
        (Part::Tag, tag),
    ] {
        if let Some(value) = value {
            check_part(part, value)?;
        }
    }
    Ok(OllamaName {
        host,
        namespace,
        model,
        tag,
    })
}

/// `https://host` is `host`; Ollama pulls over plain HTTP only when asked to
/// (`--insecure`), which the injector's puller is not.
fn strip_scheme(host: &str) -> Result<&str, String> {
    match host.split_once("://") {
        None => Ok(host),
        Some(("https", host)) => Ok(host),
        Some(("http", _)) => Err(
            "pulls over plain HTTP (http://), which ollama pull refuses without --insecure; use https:// or no scheme"
                .to_owned(),
        ),
        Some((scheme, _)) => Err(format!(
            "has the scheme {scheme:?}; Ollama pulls over https only"
        )),
    }
}

fn check_part(part: Part, value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return Err(format!("has an empty {}", part.name()));
    }
    let first_ok = bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_';
    if !first_ok || !bytes.iter().all(|b| part.allows(*b)) {
        return Err(format!(
            "has an invalid {} {value:?}: it takes {}, starting with a letter, digit or '_'",
            part.name(),
            part.rule()
        ));
    }
    if value.len() > part.max_len() {
        return Err(format!(
            "has a {} of {} characters; Ollama allows at most {}",
            part.name(),
            value.len(),
            part.max_len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::testing::assert_rejects;

    #[test]
    fn parses_like_ollama() {
        // (reference, host, namespace, model, tag)
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            &'a str,
            Option<&'a str>,
        );
        let cases: [Case; 10] = [
            ("qwen3:8b", None, None, "qwen3", Some("8b")),
            ("qwen3", None, None, "qwen3", None),
            (
                "library/llama3.2:1b",
                None,
                Some("library"),
                "llama3.2",
                Some("1b"),
            ),
            (
                "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
                Some("hf.co"),
                Some("bartowski"),
                "Llama-3.2-1B-Instruct-GGUF",
                Some("Q4_K_M"),
            ),
            (
                "localhost:5000/team/m",
                Some("localhost:5000"),
                Some("team"),
                "m",
                None,
            ),
            (
                "localhost:5000/team/m:v1",
                Some("localhost:5000"),
                Some("team"),
                "m",
                Some("v1"),
            ),
            (
                "https://ollama.com/library/qwen3:8b",
                Some("ollama.com"),
                Some("library"),
                "qwen3",
                Some("8b"),
            ),
            ("_private/m_1:_t", None, Some("_private"), "m_1", Some("_t")),
            ("Qwen3:8B", None, None, "Qwen3", Some("8B")),
            ("a.b:1.2-x_y", None, None, "a.b", Some("1.2-x_y")),
        ];
        for (reference, host, namespace, model, tag) in cases {
            let name = parse_ollama_name(reference).unwrap_or_else(|e| panic!("{reference}: {e}"));
            assert_eq!(
                (name.host, name.namespace, name.model, name.tag),
                (host, namespace, model, tag),
                "{reference}"
            );
        }
    }

    #[test]
    fn rejects_what_ollama_rejects_saying_why() {
        let cases = [
            ("", "is empty"),
            ("qwen3@sha256:abc", "digest"),
            ("qwen3:", "empty tag"),
            (":8b", "empty model name"),
            ("/qwen3", "empty namespace"),
            ("team/", "empty model name"),
            ("a/b/c/d", "invalid host \"a/b\""),
            (
                "my.team/qwen3",
                "invalid namespace \"my.team\": it takes letters, digits, '_' and '-' (no '.')",
            ),
            ("-qwen3", "invalid model name \"-qwen3\""),
            (".qwen3", "invalid model name"),
            ("qwen3:.1", "invalid tag \".1\""),
            ("qwen 3", "invalid model name \"qwen 3\""),
            ("qwén3", "invalid model name"),
            ("team/m:t/x", "invalid namespace \"m:t\""),
            ("http://example.com/a/b", "plain HTTP"),
            ("ftp://example.com/a/b", "scheme \"ftp\""),
        ];
        assert_rejects(&cases, |input| parse_ollama_name(input).err());
        let long_model = "m".repeat(81);
        assert!(
            parse_ollama_name(&long_model)
                .unwrap_err()
                .contains("at most 80")
        );
        assert!(parse_ollama_name(&format!("m:{}", "t".repeat(80))).is_ok());
        let long_host = format!("{}/ns/m", "h".repeat(351));
        assert!(
            parse_ollama_name(&long_host)
                .unwrap_err()
                .contains("at most 350")
        );
    }
}
