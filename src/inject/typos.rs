//! Opt-in mistakes that would otherwise be silent: an annotation key that is
//! almost `llm.injector.dev/model`, or the right key written as a label.

use std::collections::BTreeMap;

use crate::{MODEL_ANNOTATION, STATUS_ANNOTATION};

/// The domain of the injector's annotations.
const DOMAIN: &str = "llm.injector.dev/";

/// Warnings for keys of a pod's `annotations` and `labels` that look like a
/// request for injection but are not one. `at` names the metadata
/// (`metadata`, `spec.template.metadata`).
pub fn opt_in_mistakes(
    annotations: Option<&BTreeMap<String, String>>,
    labels: Option<&BTreeMap<String, String>>,
    at: &str,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let requested = annotations.is_some_and(|a| a.contains_key(MODEL_ANNOTATION));
    for key in annotations.into_iter().flat_map(BTreeMap::keys) {
        if key != MODEL_ANNOTATION && key != STATUS_ANNOTATION && looks_like_opt_in(key) {
            warnings.push(format!(
                "{at}.annotations has {key:?}, which the injector does not read, so nothing is injected for it; the opt-in annotation is {MODEL_ANNOTATION:?}"
            ));
        }
    }
    for (key, value) in labels.into_iter().flatten() {
        if key == MODEL_ANNOTATION && !requested {
            warnings.push(format!(
                "{at}.labels has {key}: {value:?}, but the injector reads annotations, not labels, so nothing is injected: move it to {at}.annotations"
            ));
        } else if key != MODEL_ANNOTATION && looks_like_opt_in(key) {
            warnings.push(format!(
                "{at}.labels has {key:?}, which the injector does not read; to ask for a model, set the annotation {MODEL_ANNOTATION:?}"
            ));
        }
    }
    warnings
}

/// A key in the injector's domain, or within three edits of the opt-in key
/// once case and punctuation are ignored (`llm-injector.dev/model`,
/// `llm.injector.dev/models`, `LLM.Injector.dev/Model`).
fn looks_like_opt_in(key: &str) -> bool {
    key.starts_with(DOMAIN) || within_edits(&normalize(key), &normalize(MODEL_ANNOTATION), 3)
}

fn normalize(key: &str) -> Vec<char> {
    key.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Whether the Levenshtein distance of `a` and `b` is at most `max`: no
/// closer than their lengths allow, and no row of the table under `max`
/// means none after it is either.
fn within_edits(a: &[char], b: &[char], max: usize) -> bool {
    if a.len().abs_diff(b.len()) > max {
        return false;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        if current.iter().all(|&d| d > max) {
            return false;
        }
        previous = current;
    }
    previous[b.len()] <= max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_edits_table() {
        let cases = [
            ("kitten", "sitting", 3, true),
            ("kitten", "sitting", 2, false),
            ("", "abc", 3, true),
            ("", "abcd", 3, false),
            ("abc", "abc", 0, true),
            ("abcdef", "azcdez", 2, true),
            ("abcdef", "zzzzzz", 3, false),
            ("llminjectordevmodel", "llminjectordevmodels", 3, true),
            ("appkubernetesioname", "llminjectordevmodel", 3, false),
        ];
        for (a, b, max, expected) in cases {
            let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
            assert_eq!(within_edits(&a, &b, max), expected, "{a:?} {b:?} {max}");
            assert_eq!(within_edits(&b, &a, max), expected, "{b:?} {a:?} {max}");
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn near_misses_table() {
        // (annotation key, warned)
        let cases = [
            ("llm.injector.dev/model", false),
            ("llm.injector.dev/status", false),
            ("llm.injector.dev/models", true),
            ("llm-injector.dev/model", true),
            ("llm.injector.io/model", true),
            ("LLM.Injector.dev/Model", true),
            ("llminjector.dev/modle", true),
            ("llm.injector.dev/engine", true),
            ("app.kubernetes.io/name", false),
            ("sidecar.istio.io/inject", false),
            ("model", false),
        ];
        for (key, warned) in cases {
            let found = opt_in_mistakes(Some(&map(&[(key, "m")])), None, "metadata");
            assert_eq!(!found.is_empty(), warned, "{key}: {found:?}");
        }
    }

    #[test]
    fn label_instead_of_annotation() {
        let labels = map(&[(MODEL_ANNOTATION, "m")]);
        let found = opt_in_mistakes(None, Some(&labels), "spec.template.metadata");
        assert_eq!(found.len(), 1);
        assert!(
            found[0].contains("move it to spec.template.metadata.annotations"),
            "{found:?}"
        );
        // With the annotation set too, the label is someone's own selector.
        let annotations = map(&[(MODEL_ANNOTATION, "m")]);
        assert!(opt_in_mistakes(Some(&annotations), Some(&labels), "metadata").is_empty());
    }
}
