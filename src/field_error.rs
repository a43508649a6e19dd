//! Which field of an object failed to decode. serde_json's errors give a line
//! and column of the body, which mean nothing to someone who wrote YAML; this
//! decodes again through `serde_path_to_error` to name the field
//! (`spec.containers[0].image`). Only on the error path: decoding that
//! succeeds never pays for the path tracking.

use serde::de::DeserializeOwned;

/// Why `value` does not decode as a `T`, naming the field: `Some("spec.x:
/// invalid type: ...")`, or `None` if it does decode.
#[cfg(feature = "server")]
pub fn field_error<T: DeserializeOwned>(value: &serde_json::Value) -> Option<String> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(_) => None,
        Err(error) => Some(describe(&error.path().to_string(), error.inner())),
    }
}

/// [`field_error`] for a `value` found at `prefix` (such as `spec.template`)
/// of a larger object, naming the field from that object's root.
pub fn field_error_under<T: DeserializeOwned>(
    value: &serde_json::Value,
    prefix: &str,
) -> Option<String> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(_) => None,
        Err(error) => {
            let path = error.path().to_string();
            let path = match (prefix, path.as_str()) {
                (prefix, "" | ".") => prefix.to_owned(),
                ("", path) => path.to_owned(),
                (prefix, path) if path.starts_with('[') => format!("{prefix}{path}"),
                (prefix, path) => format!("{prefix}.{path}"),
            };
            Some(describe(&path, error.inner()))
        }
    }
}

/// Why `body` does not decode as a `T`, naming the field from the root of the
/// body, with `prefix` (such as `request.object.`) taken off the path.
#[cfg(feature = "server")]
pub fn field_error_in<T: DeserializeOwned>(body: &[u8], prefix: &str) -> Option<String> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(_) => None,
        Err(error) => {
            let path = error.path().to_string();
            let path = path.strip_prefix(prefix).unwrap_or(&path);
            Some(describe(path, error.inner()))
        }
    }
}

fn describe(path: &str, error: &serde_json::Error) -> String {
    // serde_json adds "at line L column C" for errors read from bytes.
    let message = error.to_string();
    let message = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(head, _)| head);
    let described = if path.is_empty() || path == "." {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    };
    // serde quotes the offending value, which may be megabytes long.
    match described.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}... ({} bytes)", &described[..cut], described.len()),
        None => described,
    }
}

/// Longest explanation returned, in characters.
const MAX_CHARS: usize = 300;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::LLMEngine;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    #[test]
    fn names_the_field_that_does_not_decode() {
        let cases = [
            (
                json!({"spec": {"containers": [{"name": "a", "image": 123}]}}),
                Some("spec.containers[0].image: invalid type: integer `123`, expected a string"),
            ),
            (json!({"spec": {"containers": [{"name": "a"}]}}), None),
            (
                json!({"spec": "x"}),
                Some("spec: invalid type: string \"x\", expected PodSpec"),
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(field_error::<Pod>(&value).as_deref(), expected, "{value}");
        }
        let template =
            json!({"spec": {"volumes": [{"name": "v", "secret": {"defaultMode": "0400"}}]}});
        assert_eq!(
            field_error_under::<k8s_openapi::api::core::v1::PodTemplateSpec>(
                &template,
                "spec.template"
            )
            .as_deref(),
            Some(
                "spec.template.spec.volumes[0].secret.defaultMode: invalid type: string \"0400\", expected i32"
            )
        );
        assert_eq!(
            field_error_under::<Pod>(&json!("x"), "items[2]").as_deref(),
            Some("items[2]: invalid type: string \"x\", expected Pod")
        );
        let engine = json!({
            "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMEngine",
            "metadata": {"name": "e"},
            "spec": {"runtime": "Ollama", "accelerator": {"vendor": "nvidia"}}
        });
        let message = field_error::<LLMEngine>(&engine).expect("an error");
        assert!(
            message.starts_with("spec.accelerator.vendor: unknown variant `nvidia`"),
            "{message}"
        );
    }

    #[test]
    fn paths_in_a_body_lose_their_prefix_and_position() {
        let body = br#"{"request": {"object": {"spec": {"hostNetwork": "yes"}}}}"#;
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Review {
            request: Request,
        }
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Request {
            object: Pod,
        }
        assert_eq!(
            field_error_in::<Review>(body, "request.object.").as_deref(),
            Some("spec.hostNetwork: invalid type: string \"yes\", expected a boolean")
        );
        assert_eq!(
            field_error_in::<Review>(b"{\"request\": {\"object\": {}}}", ""),
            None
        );
    }

    #[test]
    fn long_values_are_cut() {
        let huge = json!({"spec": {"hostNetwork": "y".repeat(1 << 20)}});
        let message = field_error::<Pod>(&huge).expect("an error");
        assert!(
            message.starts_with("spec.hostNetwork: invalid type: string \"yyy"),
            "{message}"
        );
        assert!(message.ends_with(" bytes)"), "{message}");
        assert!(message.len() < 400, "{} bytes", message.len());
    }
}
