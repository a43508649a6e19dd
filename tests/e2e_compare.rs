//! The unit tests of the end-to-end suite's pod comparison
//! (tests/e2e/compare.rs), which the suite itself (`harness = false`) cannot
//! run.

#[allow(dead_code)]
#[path = "e2e/compare.rs"]
mod compare;

use compare::{compare, flatten, matches};
use serde_json::{Value, json};

#[test]
fn glob() {
    for (pattern, path, want) in [
        (
            "spec.*ontainers[*].imagePullPolicy",
            "spec.initContainers[llm-pull].imagePullPolicy",
            true,
        ),
        (
            "spec.*ontainers[*].imagePullPolicy",
            "spec.containers[app].imagePullPolicy",
            true,
        ),
        (
            "spec.*ontainers[*].imagePullPolicy",
            "spec.containers[app].env[X].imagePullPolicy",
            false,
        ),
        ("status**", "status.phase", true),
        (
            "spec.volumes[kube-api-access-*]**",
            "spec.volumes[kube-api-access-x7k2p].projected.sources[0]",
            true,
        ),
        (
            "spec.volumes[kube-api-access-*]**",
            "spec.volumes[models].emptyDir",
            false,
        ),
        ("metadata.name", "metadata.namespace", false),
    ] {
        assert_eq!(
            matches(pattern.as_bytes(), path.as_bytes()),
            want,
            "{pattern} ~ {path}"
        );
    }
}

#[test]
fn named_items_are_keyed_by_name_and_ordered() {
    let leaves =
        flatten(&json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}}));
    assert_eq!(leaves["spec.containers[a].image"], json!("x"));
    assert_eq!(leaves["spec.containers[#order]"], json!(["a", "b"]));
    let leaves = flatten(&json!({"args": ["serve", "serve"]}));
    assert_eq!(leaves["args[1]"], json!("serve"));
}

#[test]
fn defaults_are_classified_and_changes_are_wrong() {
    let printed =
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x"}]}});
    let stored = json!({
        "metadata": {"name": "p", "uid": "u"},
        "spec": {
            "containers": [{"name": "a", "image": "x", "imagePullPolicy": "IfNotPresent"}],
            "volumes": [{"name": "kube-api-access-abcde", "projected": {}}],
        },
    });
    let d = compare(&printed, &stored);
    assert!(d.wrong.is_empty(), "{:?}", d.wrong);
    assert_eq!(d.added["container defaults"], 1);

    let changed =
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "y"}]}});
    assert_eq!(compare(&printed, &changed).wrong.len(), 1);
    let unexplained = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x", "tty": true}]}});
    assert_eq!(compare(&printed, &unexplained).wrong.len(), 1);
    let reordered = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "b"}, {"name": "a", "image": "x"}]}});
    let two = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}});
    assert!(
        compare(&two, &reordered)
            .wrong
            .iter()
            .any(|w| w.contains("[#order]"))
    );
}

#[test]
fn quantities_in_canonical_form_are_the_same() {
    let pod = |gpus: Value| json!({"spec": {"containers": [{"name": "a", "resources": {"limits": {"nvidia.com/gpu": gpus}}}]}});
    let same = compare(&pod(json!(1)), &pod(json!("1")));
    assert!(same.wrong.is_empty(), "{:?}", same.wrong);
    assert_eq!(same.canonical_quantities, 1);
    assert_eq!(compare(&pod(json!(1)), &pod(json!("2"))).wrong.len(), 1);
    // Only under resources: elsewhere 1 and "1" differ.
    let port = |p: Value| json!({"spec": {"containers": [{"name": "a", "args": [p]}]}});
    assert_eq!(compare(&port(json!(1)), &port(json!("1"))).wrong.len(), 1);
}
