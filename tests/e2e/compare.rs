//! Field-by-field comparison of the object `llm-injector inject` prints with
//! the one a real apiserver stored. Every difference is either explained by
//! a named class of what the apiserver (and its admission plugins and
//! controllers) adds, or is a failure.
//!
//! Objects are flattened to leaves keyed by path. List items that carry a
//! unique `name` (containers, env, volumes, ports, volume mounts), or else a
//! unique `mountPath`, are keyed by it, so an item the apiserver appends (the
//! ServiceAccount token volume) does not shift the others; the order of such
//! lists is compared separately (`[#order]`).

use std::collections::BTreeMap;

use serde_json::Value;

/// What the apiserver adds to a pod, by class: (class, path patterns). In a
/// pattern `*` matches within one path segment or one `[...]` key, `**`
/// matches the rest of the path.
pub const SERVER_ADDITIONS: &[(&str, &[&str])] = &[
    (
        "object metadata the apiserver sets",
        &[
            "metadata.uid",
            "metadata.resourceVersion",
            "metadata.creationTimestamp",
            "metadata.generation",
            "metadata.managedFields**",
            "status**",
        ],
    ),
    (
        "pod spec defaults",
        &[
            "spec.dnsPolicy",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.securityContext",
            "spec.terminationGracePeriodSeconds",
            "spec.enableServiceLinks",
            "spec.preemptionPolicy",
            "spec.priority",
        ],
    ),
    (
        "container defaults",
        &[
            "spec.*ontainers[*].terminationMessagePath",
            "spec.*ontainers[*].terminationMessagePolicy",
            "spec.*ontainers[*].imagePullPolicy",
            "spec.*ontainers[*].resources",
            "spec.*ontainers[*].ports[*].protocol",
            "spec.*ontainers[*].*Probe.timeoutSeconds",
            "spec.*ontainers[*].*Probe.periodSeconds",
            "spec.*ontainers[*].*Probe.successThreshold",
            "spec.*ontainers[*].*Probe.failureThreshold",
            "spec.*ontainers[*].*Probe.httpGet.scheme",
            "spec.*ontainers[*].env[*].valueFrom.fieldRef.apiVersion",
        ],
    ),
    (
        // With hostNetwork, a container port's hostPort defaults to its
        // containerPort (k8s.io/kubernetes v1.36.3 pkg/apis/core/v1/defaults.go
        // lines 396-405, defaultHostNetworkPorts).
        "hostNetwork: hostPort defaults to the container port",
        &["spec.*ontainers[*].ports[*].hostPort"],
    ),
    (
        "requests default to limits",
        &["spec.*ontainers[*].resources.requests**"],
    ),
    ("volume defaults", &["spec.volumes[*].*.defaultMode"]),
    (
        "DefaultTolerationSeconds admission (not-ready, unreachable)",
        &["spec.tolerations**"],
    ),
    (
        SERVICE_ACCOUNT_CLASS,
        &[
            "spec.serviceAccount",
            "spec.serviceAccountName",
            "spec.volumes[kube-api-access-*]**",
            "spec.volumes[#order]",
            "spec.*ontainers[*].volumeMounts[kube-api-access-*]**",
            "spec.*ontainers[*].volumeMounts[#order]",
        ],
    ),
    (
        "made by a controller (name, owner, template hash)",
        &[
            "metadata.name",
            "metadata.generateName",
            "metadata.ownerReferences**",
            "metadata.labels.pod-template-hash",
            "metadata.labels.controller-uid",
            "metadata.labels.job-name",
            "metadata.labels.batch.kubernetes.io/*",
            "metadata.finalizers**",
            "metadata.labels.controller-revision-hash",
            "metadata.labels.statefulset.kubernetes.io/pod-name",
            "metadata.labels.apps.kubernetes.io/pod-index",
            "metadata.labels.pod-template-generation",
            "spec.hostname",
            "spec.subdomain",
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution**",
        ],
    ),
    ("the request's namespace", &["metadata.namespace"]),
];

const SERVICE_ACCOUNT_CLASS: &str =
    "ServiceAccount admission (the account, and the API token in the pod's own containers)";
const MADE_BEFORE_THE_WEBHOOK: &str =
    "the status records fewer lists created (the token volume or a controller's labels came first)";

/// The status annotation, where the only difference is in the lists and
/// maps injection records as created: the webhook found `spec.volumes`
/// (the API token volume ServiceAccount admission adds before webhooks
/// run) or `metadata.labels` (a controller's, on the pods it makes) where
/// `inject`, on the object as written, found none.
fn made_before_the_webhook(path: &str, printed: &Value, got: &Value, stored: &Value) -> bool {
    if path != "metadata.annotations.llm.injector.dev/status" {
        return false;
    }
    let parse = |v: &Value| serde_json::from_str::<Value>(v.as_str()?).ok();
    let (Some(mut want), Some(have)) = (parse(printed), parse(got)) else {
        return false;
    };
    let token_volume = stored["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|v| {
            v["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("kube-api-access-"))
        });
    let controller_labels = stored["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .any(|(key, _)| class_of(&format!("metadata.labels.{key}")).is_some());
    if let Some(created) = want["created"].as_array_mut() {
        created.retain(|c| {
            !(c == "volumes" && token_volume || c == "metadata.labels" && controller_labels)
        });
        if created.is_empty() {
            want.as_object_mut().map(|o| o.remove("created"));
        }
    }
    want == have
}

/// The differences between the printed and the stored object.
#[derive(Debug, Default)]
pub struct Differences {
    /// Leaves only in the stored object, counted by class.
    pub added: BTreeMap<&'static str, usize>,
    /// Resource quantities inject prints as a number (as the user wrote
    /// them) and the apiserver stores as the canonical string: 1 and "1".
    pub canonical_quantities: usize,
    /// Differences no class explains.
    pub wrong: Vec<String>,
}

/// Compares `printed` (what `llm-injector inject` printed, which the stored
/// object must hold) with `stored` (what the apiserver stored).
pub fn compare(printed: &Value, stored: &Value) -> Differences {
    let want = flatten(printed);
    let got = flatten(stored);
    let mut differences = Differences::default();
    for (path, value) in &want {
        match got.get(path) {
            Some(stored) if path.ends_with("[#order]") => {
                if !same_order(value, stored) {
                    differences.wrong.push(format!(
                        "{path}: inject orders {value}, apiserver has {stored}"
                    ));
                }
            }
            Some(stored) if stored == value => {}
            Some(stored) if same_quantity(path, value, stored) => {
                differences.canonical_quantities += 1
            }
            Some(got) if made_before_the_webhook(path, value, got, stored) => {
                *differences
                    .added
                    .entry(MADE_BEFORE_THE_WEBHOOK)
                    .or_default() += 1
            }
            Some(stored) => differences.wrong.push(format!(
                "{path}: inject prints {value}, apiserver has {stored}"
            )),
            None => match class_of(path) {
                // A field inject prints that a controller replaces (a
                // template's name-less metadata has none of these).
                Some(class) if class.starts_with("made by a controller") => {}
                _ => differences.wrong.push(format!(
                    "{path}: inject prints {value}, apiserver dropped it"
                )),
            },
        }
    }
    for (path, value) in &got {
        if want.contains_key(path) {
            continue;
        }
        match class_of(path) {
            Some(class) => *differences.added.entry(class).or_default() += 1,
            None => differences.wrong.push(format!(
                "{path}: apiserver added {value}, which no class explains"
            )),
        }
    }
    differences
}

/// A number inject printed under `resources` that the apiserver stores as
/// the same quantity in canonical (string) form.
fn same_quantity(path: &str, printed: &Value, stored: &Value) -> bool {
    let number = printed.as_number().map(ToString::to_string);
    path.contains(".resources.") && number.is_some() && stored.as_str() == number.as_deref()
}

fn class_of(path: &str) -> Option<&'static str> {
    SERVER_ADDITIONS
        .iter()
        .find(|(_, patterns)| {
            patterns
                .iter()
                .any(|p| matches(p.as_bytes(), path.as_bytes()))
        })
        .map(|(class, _)| *class)
}

/// The printed order must survive, with items the apiserver appended or
/// inserted ignored.
fn same_order(printed: &Value, stored: &Value) -> bool {
    let (Some(want), Some(got)) = (printed.as_array(), stored.as_array()) else {
        return printed == stored;
    };
    let kept: Vec<&Value> = got.iter().filter(|name| want.contains(name)).collect();
    kept.len() == want.len() && kept.iter().zip(want).all(|(a, b)| *a == b)
}

/// Glob match: `**` matches anything, `*` anything but `.`, `[` and `]`.
pub fn matches(pattern: &[u8], path: &[u8]) -> bool {
    match pattern {
        [] => path.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=path.len()).any(|i| matches(rest, &path[i..])),
        [b'*', rest @ ..] => {
            let run = path
                .iter()
                .take_while(|c| !matches!(c, b'.' | b'[' | b']'))
                .count();
            (0..=run).any(|i| matches(rest, &path[i..]))
        }
        [c, rest @ ..] => path.first() == Some(c) && matches(rest, &path[1..]),
    }
}

/// Every leaf of `value` by path (`spec.containers[app].env[HOST].value`).
pub fn flatten(value: &Value) -> BTreeMap<String, Value> {
    let mut leaves = BTreeMap::new();
    flatten_into(value, String::new(), &mut leaves);
    leaves
}

fn flatten_into(value: &Value, path: String, leaves: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() || path.is_empty() => {
            for (key, item) in map {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                flatten_into(item, child, leaves);
            }
        }
        Value::Array(items) if !items.is_empty() => match item_keys(items) {
            Some(keys) => {
                let order = keys.iter().map(|k| Value::String(k.clone())).collect();
                leaves.insert(format!("{path}[#order]"), Value::Array(order));
                for (key, item) in keys.into_iter().zip(items) {
                    flatten_into(item, format!("{path}[{key}]"), leaves);
                }
            }
            None => {
                for (index, item) in items.iter().enumerate() {
                    flatten_into(item, format!("{path}[{index}]"), leaves);
                }
            }
        },
        leaf => {
            leaves.insert(path, leaf.clone());
        }
    }
}

/// The keys of a list whose items all have a distinct `name` (or
/// `mountPath`).
fn item_keys(items: &[Value]) -> Option<Vec<String>> {
    ["name", "mountPath"].into_iter().find_map(|field| {
        let keys: Vec<String> = items
            .iter()
            .map(|item| item.get(field)?.as_str().map(str::to_string))
            .collect::<Option<_>>()?;
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        (unique.len() == keys.len()).then_some(keys)
    })
}
