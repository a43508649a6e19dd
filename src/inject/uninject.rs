//! Undoing an injection: what the `llm.injector.dev/status` annotation says
//! was added is removed, and nothing else (like `linkerd uninject`). The
//! annotation records, per pod, the init containers, volumes and resource
//! claims added (by name), the env entries put before each user container's
//! own (by container index and name), the label and `runtimeClassName` set,
//! and the lists and maps injection created, which go again once empty.

use serde_json::{Map, Value};
use thiserror::Error;

use super::InjectionStatus;
use crate::STATUS_ANNOTATION;

/// What uninjecting a pod did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uninjected {
    /// No status annotation: never injected (or already uninjected).
    NotInjected,
    /// The injection of this LLMModel was removed.
    Removed { model: String },
}

/// Why a pod cannot be uninjected exactly; it is left as it was.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UninjectError {
    #[error(
        "annotation {STATUS_ANNOTATION} does not read as an injection status ({0}); remove what was injected by hand"
    )]
    Unreadable(String),
    #[error(
        "annotation {STATUS_ANNOTATION} was written by an llm-injector that did not record the env entries it added; inject the original workload again with this version, or remove the llm-* containers, volumes and env entries by hand"
    )]
    NoEnvRecord,
    #[error(
        "annotation {STATUS_ANNOTATION} says env entries were added to spec.containers[{0}], which the pod does not have; was a container removed since injection?"
    )]
    NoContainer(usize),
}

/// Removes from `pod` (a pod or pod template as JSON: `metadata`, `spec`)
/// what its status annotation says injection added. On an error `pod` is
/// unchanged.
pub fn uninject_pod(pod: &mut Value) -> Result<Uninjected, UninjectError> {
    let Some(text) = pod
        .pointer(&format!(
            "/metadata/annotations/{}",
            STATUS_ANNOTATION.replace('~', "~0").replace('/', "~1")
        ))
        .and_then(Value::as_str)
    else {
        return Ok(Uninjected::NotInjected);
    };
    let status: InjectionStatus =
        serde_json::from_str(text).map_err(|e| UninjectError::Unreadable(e.to_string()))?;
    let env = status.env.as_ref().ok_or(UninjectError::NoEnvRecord)?;
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if let Some(missing) = env.iter().find(|e| e.container >= containers) {
        return Err(UninjectError::NoContainer(missing.container));
    }
    let created = |what: &str| status.created.iter().any(|c| c == what);

    if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
        for (list, names) in [
            ("initContainers", &status.init_containers),
            ("volumes", &status.volumes),
            ("resourceClaims", &status.resource_claims),
        ] {
            remove_named(spec, list, names, created(list));
        }
        if status.runtime_class_name.is_some()
            && spec.get("runtimeClassName").and_then(Value::as_str)
                == status.runtime_class_name.as_deref()
        {
            spec.remove("runtimeClassName");
        }
        if let Some(list) = spec.get_mut("containers").and_then(Value::as_array_mut) {
            for added in env {
                if let Some(container) = list[added.container].as_object_mut() {
                    remove_named(container, "env", &added.names, added.created_list);
                }
            }
        }
    }
    if let Some(metadata) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
        remove_keys(
            metadata,
            "labels",
            &status.labels,
            created("metadata.labels"),
        );
        remove_keys(
            metadata,
            "annotations",
            &[STATUS_ANNOTATION.to_owned()],
            created("metadata.annotations"),
        );
    }
    if created("metadata")
        && let Some(object) = pod.as_object_mut()
        && object
            .get("metadata")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        object.remove("metadata");
    }
    Ok(Uninjected::Removed {
        model: status.model,
    })
}

/// Removes from the list `key` of `object` the first entry named each of
/// `names`; the list itself too when it is then empty and injection made it.
fn remove_named(object: &mut Map<String, Value>, key: &str, names: &[String], made: bool) {
    let Some(list) = object.get_mut(key).and_then(Value::as_array_mut) else {
        return;
    };
    for name in names {
        if let Some(at) = list
            .iter()
            .position(|item| item.get("name").and_then(Value::as_str) == Some(name))
        {
            list.remove(at);
        }
    }
    if made && list.is_empty() {
        object.remove(key);
    }
}

/// Removes `keys` from the map `key` of `object`; the map itself too when
/// it is then empty and injection made it.
fn remove_keys(object: &mut Map<String, Value>, key: &str, keys: &[String], made: bool) {
    let Some(map) = object.get_mut(key).and_then(Value::as_object_mut) else {
        return;
    };
    for k in keys {
        map.remove(k);
    }
    if made && map.is_empty() {
        object.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(extra: Value) -> String {
        let mut base = json!({
            "model": "m", "engine": "e", "ollamaModel": "m:1", "instances": 1,
            "gpusPerInstance": 0, "initContainers": ["llm-pull", "llm-engine-0"],
            "volumes": ["llm-models"], "endpoint": "http://127.0.0.1:11434",
            "env": [{"container": 0, "names": ["OLLAMA_HOST"]}],
        });
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        base.to_string()
    }

    #[test]
    fn removes_exactly_what_the_annotation_names() {
        let mut pod = json!({
            "metadata": {"name": "p", "labels": {"app": "a", "llm.injector.dev/model": "m"},
                "annotations": {"llm.injector.dev/model": "m",
                    "llm.injector.dev/status": status(json!({"labels": ["llm.injector.dev/model"],
                        "runtimeClassName": "nvidia", "created": ["initContainers"]}))}},
            "spec": {
                "runtimeClassName": "nvidia",
                "initContainers": [{"name": "llm-pull"}, {"name": "llm-engine-0"}],
                "volumes": [{"name": "data"}, {"name": "llm-models"}],
                "containers": [{"name": "app", "env": [{"name": "OLLAMA_HOST", "value": "x"},
                    {"name": "MODE", "value": "prod"}]}],
            },
        });
        let removed = uninject_pod(&mut pod).unwrap();
        assert_eq!(
            removed,
            Uninjected::Removed {
                model: "m".to_owned()
            }
        );
        assert_eq!(
            pod,
            json!({
                "metadata": {"name": "p", "labels": {"app": "a"},
                    "annotations": {"llm.injector.dev/model": "m"}},
                "spec": {
                    "volumes": [{"name": "data"}],
                    "containers": [{"name": "app", "env": [{"name": "MODE", "value": "prod"}]}],
                },
            })
        );
        // Once removed, there is nothing left to remove.
        let again = pod.clone();
        assert_eq!(uninject_pod(&mut pod), Ok(Uninjected::NotInjected));
        assert_eq!(pod, again);
    }

    #[test]
    fn what_injection_did_not_make_stays() {
        // The label was the user's (not listed), runtimeClassName another
        // one than injection set, the env list the user's own.
        let mut pod = json!({
            "metadata": {"labels": {"llm.injector.dev/model": "m"},
                "annotations": {"llm.injector.dev/model": "m",
                    "llm.injector.dev/status": status(json!({"runtimeClassName": "nvidia"}))}},
            "spec": {
                "runtimeClassName": "kata",
                "initContainers": [{"name": "llm-pull"}, {"name": "llm-engine-0"}],
                "volumes": [{"name": "llm-models"}],
                "containers": [{"name": "app", "env": [{"name": "OLLAMA_HOST", "value": "x"}]}],
            },
        });
        uninject_pod(&mut pod).unwrap();
        assert_eq!(
            pod,
            json!({
                "metadata": {"labels": {"llm.injector.dev/model": "m"},
                    "annotations": {"llm.injector.dev/model": "m"}},
                "spec": {"runtimeClassName": "kata", "initContainers": [], "volumes": [],
                    "containers": [{"name": "app", "env": []}]},
            })
        );
    }

    #[test]
    fn unclear_records_leave_the_pod_alone() {
        let cases = [
            ("not json".to_owned(), "does not read"),
            (
                status(json!({}))
                    .replace(r#","env":[{"container":0,"names":["OLLAMA_HOST"]}]"#, ""),
                "did not record the env entries",
            ),
            (
                status(json!({"env": [{"container": 3, "names": ["X"]}]})),
                "spec.containers[3]",
            ),
        ];
        for (text, expected) in cases {
            let mut pod = json!({
                "metadata": {"annotations": {"llm.injector.dev/status": text}},
                "spec": {"containers": [{"name": "app"}], "initContainers": [{"name": "llm-pull"}]},
            });
            let before = pod.clone();
            let error = uninject_pod(&mut pod).unwrap_err().to_string();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
            assert_eq!(pod, before);
        }
    }
}
