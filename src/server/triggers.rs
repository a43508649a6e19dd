//! What wakes the status controller: watch events filtered down to the
//! changes that can alter a status.
//!
//! A status write changes the object's `resourceVersion` but not its
//! `metadata.generation`, and a kubelet's status updates of a pod mostly
//! touch fields the status ignores (container states, IPs). Passing every
//! event would reconcile once more after each of our own writes; passing
//! only a changed key (kube's `predicate_filter`) would also drop deletions,
//! whose last event carries an unchanged generation. [`changes`] passes an
//! object when its key differs from the last one seen for that object
//! (name, namespace and uid: a re-created object is new), and every deleted
//! object.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use futures::{Stream, StreamExt, future};
use k8s_openapi::api::core::v1::Pod;
use kube::Resource;
use kube::runtime::watcher;

use crate::status::is_ready;
use crate::{MODEL_ANNOTATION, MODEL_LABEL, STATUS_ANNOTATION};

/// The objects of `events` whose `key` changed since the object was last
/// seen, and every deleted one. Watch errors pass through (the controller
/// logs them and the watcher's backoff retries).
pub fn changes<K, S>(
    events: S,
    key: fn(&K) -> u64,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource + Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let mut seen: HashMap<Identity, u64> = HashMap::new();
    events.filter_map(move |event| {
        let passed = match event {
            Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                let key = key(&object);
                (seen.insert(Identity::of(&object), key) != Some(key)).then_some(Ok(object))
            }
            Ok(watcher::Event::Delete(object)) => {
                seen.remove(&Identity::of(&object));
                Some(Ok(object))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            Err(error) => Some(Err(error)),
        };
        future::ready(passed)
    })
}

/// One object's identity across its updates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Identity {
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
}

impl Identity {
    fn of<K: Resource>(object: &K) -> Self {
        let meta = object.meta();
        Identity {
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            uid: meta.uid.clone(),
        }
    }
}

fn hash(value: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// The spec's version: `metadata.generation`, which a status write leaves alone.
pub fn generation<K: Resource>(object: &K) -> u64 {
    hash(object.meta().generation)
}

/// What the status reads of a pod: the model it names (label and
/// annotation), whether it carries an injection status, and whether it is
/// ready (see [`crate::status::PodFacts::of`]).
pub fn pod_facts(pod: &Pod) -> u64 {
    let labels = pod.metadata.labels.as_ref();
    let annotations = pod.metadata.annotations.as_ref();
    hash((
        labels.and_then(|l| l.get(MODEL_LABEL)),
        annotations.and_then(|a| a.get(MODEL_ANNOTATION)),
        annotations.is_some_and(|a| a.contains_key(STATUS_ANNOTATION)),
        is_ready(pod),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::LLMModel;
    use serde_json::json;

    fn model(uid: &str, generation: i64, ready_pods: i32) -> LLMModel {
        serde_json::from_value(json!({
            "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMModel",
            "metadata": {"name": "qwen", "namespace": "team-a", "uid": uid, "generation": generation},
            "spec": {"engineRef": {"name": "gpu"}, "model": "qwen3:8b"},
            "status": {"pods": {"injected": 1, "ready": ready_pods}},
        }))
        .unwrap()
    }

    fn pod(ready: &str, ip: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "team-a", "uid": "p1",
                "labels": {MODEL_LABEL: "qwen"},
                "annotations": {MODEL_ANNOTATION: "qwen", STATUS_ANNOTATION: "{}"}},
            "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": ready}]},
        }))
        .unwrap()
    }

    /// The keys of what `changes` lets through of `events`.
    fn passed<K: Resource + Clone + Send + 'static>(
        events: Vec<watcher::Event<K>>,
        key: fn(&K) -> u64,
    ) -> Vec<u64> {
        let stream = changes(futures::stream::iter(events.into_iter().map(Ok)), key);
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(stream.collect::<Vec<_>>())
            .into_iter()
            .map(|object| key(&object.unwrap()))
            .collect()
    }

    #[test]
    fn status_writes_do_not_pass_spec_changes_and_deletions_do() {
        use watcher::Event::*;
        let events = vec![
            Init,
            InitApply(model("u1", 1, 0)),
            InitDone,
            // Our own status write: same generation.
            Apply(model("u1", 1, 1)),
            // The spec changed.
            Apply(model("u1", 2, 1)),
            // Re-listed after a watch gap, unchanged.
            InitApply(model("u1", 2, 1)),
            // Deleted: the last event carries the same generation.
            Delete(model("u1", 2, 1)),
            // Re-created with the same name: a new object.
            Apply(model("u2", 1, 0)),
        ];
        let g = |n: i64| hash(Some(n));
        assert_eq!(passed(events, generation), [g(1), g(2), g(2), g(1)]);
    }

    #[test]
    fn pods_pass_when_what_the_status_reads_changes() {
        use watcher::Event::*;
        let events = vec![
            Apply(pod("False", "")),
            // A kubelet's update the status does not read.
            Apply(pod("False", "10.0.0.7")),
            Apply(pod("True", "10.0.0.7")),
            Apply(pod("True", "10.0.0.7")),
            Delete(pod("True", "10.0.0.7")),
        ];
        let not_ready = pod_facts(&pod("False", ""));
        let ready = pod_facts(&pod("True", ""));
        assert_ne!(ready, not_ready);
        assert_eq!(passed(events, pod_facts), [not_ready, ready, ready]);
    }

    #[test]
    fn a_pod_whose_annotation_was_edited_passes() {
        let mut edited = pod("True", "");
        edited
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .remove(STATUS_ANNOTATION);
        assert_ne!(pod_facts(&edited), pod_facts(&pod("True", "")));
    }
}
