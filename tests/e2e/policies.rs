//! Injection by admission policies (`serve --injection-mode policy`,
//! Kubernetes 1.36+): a replica in policy mode renders the policies of the
//! cluster's LLMModels; the suite's mutating webhook is unregistered and
//! that replica is stopped, and then every workload of the suite is created
//! again. Its pods must be stored as `llm-injector inject` prints them (the
//! same comparison the webhook's pods passed earlier in the run), and every
//! error golden refused with inject's message. At the end the policies go
//! and the webhook is registered again, for the sections after this one.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::controlplane::ControlPlane;
use crate::overhead::{Series, create_pods_timed, median};
use crate::webhooks::{SERVICE_ACCOUNT, Serve};
use crate::{Suite, TEAM, pods, validation};

/// The timed namespaces: one injected by the generated policies, one by
/// the webhook, each holding a copy of TEAM's llama-cpu and its engine and
/// nothing else (TEAM's other workloads and models would weigh on its pod
/// creates). The webhook's is out of the policies.
const POLICY_TIMED: &str = "e2e-timed-policies";
const WEBHOOK_TIMED: &str = "e2e-timed-webhook";
/// The namespaces the policy replica leaves alone.
const EXCLUDED: [&str; 3] = [SERVICE_ACCOUNT.0, "kube-system", WEBHOOK_TIMED];

/// The label selector of every policy the server renders.
const MANAGED: &str = "app.kubernetes.io/managed-by=llm-injector";
const KINDS: &str = "mutatingadmissionpolicies,mutatingadmissionpolicybindings,validatingadmissionpolicies,validatingadmissionpolicybindings";

/// The RBAC charts/llm-injector/templates/rbac.yaml adds for
/// injection.mode=policy|both.
fn policy_rbac() -> [Value; 2] {
    let (namespace, account) = SERVICE_ACCOUNT;
    [
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "llm-injector-policies"},
            "rules": [{
                "apiGroups": ["admissionregistration.k8s.io"],
                "resources": ["mutatingadmissionpolicies", "mutatingadmissionpolicybindings", "validatingadmissionpolicies", "validatingadmissionpolicybindings"],
                "verbs": ["list", "create", "patch", "delete"],
            }],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "llm-injector-policies"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "llm-injector-policies"},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        }),
    ]
}

/// The managed policies and bindings in the cluster, by `kind/name`, with
/// their spec.
fn stored(suite: &Suite) -> Result<Vec<(String, Value)>, String> {
    let list = suite
        .kubectl
        .run(&["get", KINDS, "-l", MANAGED, "-o", "json"], None)
        .json()?;
    Ok(keyed(list["items"].as_array().cloned().unwrap_or_default()))
}

/// What `llm-injector policies` renders for the cluster's LLMModels and
/// LLMEngines (read back with kubectl), by `kind/name`.
fn rendered(suite: &Suite) -> Result<Vec<(String, Value)>, String> {
    let catalog = suite
        .kubectl
        .run(&["get", "llmengines,llmmodels", "-A", "-o", "yaml"], None);
    let yaml = catalog
        .ok()
        .ok_or("kubectl get llmengines,llmmodels failed")?;
    let out = std::process::Command::new(&suite.injector)
        .args(["policies", "-f", "-"])
        .args(EXCLUDED.iter().flat_map(|n| ["--exclude-namespace", n]))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(yaml.as_bytes())?;
            child.wait_with_output()
        })
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let documents = pods::documents(&String::from_utf8_lossy(&out.stdout))?;
    Ok(keyed(documents))
}

/// Policies and bindings by `kind/name`, with their spec.
fn keyed(objects: Vec<Value>) -> Vec<(String, Value)> {
    objects
        .into_iter()
        .map(|o| {
            (
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap_or_default(),
                    o["metadata"]["name"].as_str().unwrap_or_default()
                ),
                o["spec"].clone(),
            )
        })
        .collect()
}

/// Polls `ready` every 250 ms for up to `seconds`.
fn wait_until(seconds: u64, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

/// A dry-run pod of `examples/workloads/cpu.yaml`'s model: whether the
/// apiserver stores it injected (the policies are loaded).
fn injected_by_apiserver(suite: &Suite) -> bool {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "policy-marker", "namespace": TEAM, "annotations": {"llm.injector.dev/model": "llama-cpu"}},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]},
    });
    suite
        .kubectl
        .with_object(&["create", "--dry-run=server", "-o", "json"], &pod)
        .json()
        .is_ok_and(|p| p["metadata"]["annotations"]["llm.injector.dev/status"].is_string())
}

/// The suite's validating registration with the `advise-pods` webhook's
/// matchConditions as the chart renders them for injection.mode=policy:
/// pods a policy injected are advised too (typo'd opt-in keys beside the
/// ones injection reads and writes).
fn advising_injected_pods(suite: &Suite, validating: &Value) -> Result<Value, String> {
    if let Some(why) = crate::helm::cannot_render(suite) {
        return Err(why.to_owned());
    }
    let file = suite.dir.join("chart-policy-mode.yaml");
    crate::helm::render_file(
        suite,
        "e2e-policy",
        &["--set", "injection.mode=policy"],
        &file,
    )?;
    let conditions = crate::helm::rendered(&file)?
        .into_iter()
        .filter(|o| o["kind"] == "ValidatingWebhookConfiguration")
        .flat_map(|o| o["webhooks"].as_array().cloned().unwrap_or_default())
        .find(|w| w["name"] == "advise-pods.llm.injector.dev")
        .map(|w| w["matchConditions"].clone())
        .ok_or("the chart rendered no advise-pods webhook for injection.mode=policy")?;
    let mut config = validating.clone();
    for webhook in config["webhooks"].as_array_mut().into_iter().flatten() {
        if webhook["name"] == "advise-pods.llm.injector.dev" {
            webhook["matchConditions"] = conditions.clone();
        }
    }
    Ok(config)
}

/// Replaces a webhook configuration with `config`.
fn replace(suite: &Suite, config: &Value) -> Result<(), String> {
    let out = suite.kubectl.with_object(&["replace"], config);
    out.success
        .then_some(())
        .ok_or_else(|| format!("replacing the webhook configuration: {}", out.both()))
}

pub fn check(
    suite: &mut Suite,
    plane: &ControlPlane,
    mutating_webhook: &Value,
    validating_webhook: &Value,
) -> Result<(), String> {
    for object in policy_rbac() {
        let out = suite.kubectl.with_object(&["apply"], &object);
        if !out.success {
            return Err(format!("RBAC for policies: {}", out.both()));
        }
    }
    for namespace in [POLICY_TIMED, WEBHOOK_TIMED] {
        copy_timed_model(suite, namespace)?;
    }
    let args = [
        "--injection-mode=policy",
        "--status-controller=false",
        // One replica: no Lease (webhook-config/'s RBAC grants only the
        // suite's own).
        "--leader-elect=false",
        "--policy-exclude-namespaces",
        &EXCLUDED.join(","),
    ]
    .map(str::to_owned);
    let mut server = Serve::launch(
        &suite.injector,
        plane,
        "llm-injector-policies",
        "127.0.0.1:0",
        &args,
        SERVICE_ACCOUNT,
    )?;
    // The workloads that bring their own LLMEngine and LLMModel: those are
    // applied first, for the policy to exist before their pods are created
    // (the apiserver loads a new policy a second or two after it is
    // written; the webhook's cache follows in milliseconds).
    let files = crate::workload_files(&suite.root);
    let own_catalog: Vec<&std::path::PathBuf> = files
        .iter()
        .filter(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains("kind: LLMModel")))
        .collect();
    for file in &own_catalog {
        let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
        for object in pods::documents(&text)?.into_iter().filter(|o| {
            o["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("llm.injector.dev/"))
        }) {
            let out = suite
                .kubectl
                .with_object(&["apply", "--server-side"], &object);
            if !out.success {
                return Err(format!("{}: {}", file.display(), out.both()));
            }
        }
    }
    let expected = rendered(suite)?;
    let in_sync = wait_until(60, || {
        stored(suite).is_ok_and(|s| {
            let mut s = s;
            let mut e = expected.clone();
            s.sort_by(|a, b| a.0.cmp(&b.0));
            e.sort_by(|a, b| a.0.cmp(&b.0));
            s == e
        })
    });
    let stored_now = stored(suite)?;
    suite.report.check(
        "serve --injection-mode policy keeps exactly the policies `llm-injector policies` renders for the cluster's models (stored spec = rendered spec)",
        if in_sync {
            Ok(format!("{} objects", stored_now.len()))
        } else {
            let names = |list: &[(String, Value)]| {
                list.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()
            };
            Err(format!(
                "after 60 s the cluster holds {:?}\nexpected {:?}\n(log: {})",
                names(&stored_now),
                names(&expected),
                server.process.log.display()
            ))
        },
    );
    let condition = suite
        .kubectl
        .run(
            &[
                "get",
                "llmmodel",
                "llama-cpu",
                "-n",
                TEAM,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"InjectedByPolicy\")].status}",
            ],
            None,
        )
        .stdout;
    suite.report.check(
        "LLMModel status says which policy injects its pods (condition InjectedByPolicy)",
        if condition.trim() == "True" {
            Ok(String::new())
        } else {
            Err(format!("InjectedByPolicy is {condition:?}"))
        },
    );

    follow_the_model(suite);

    // The webhook is unregistered, and the policy replica stopped: the
    // apiserver alone injects from here on.
    let name = mutating_webhook["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let out = suite
        .kubectl
        .run(&["delete", "mutatingwebhookconfiguration", &name], None);
    if !out.success {
        return Err(format!("unregistering the webhook: {}", out.both()));
    }
    server.process.kill();
    let mut advising = advising_injected_pods(suite, validating_webhook)?;
    let current = suite
        .kubectl
        .run(
            &[
                "get",
                "validatingwebhookconfiguration",
                advising["metadata"]["name"].as_str().unwrap_or_default(),
                "-o",
                "json",
            ],
            None,
        )
        .json()?;
    advising["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    replace(suite, &advising)?;
    let loaded = wait_until(30, || injected_by_apiserver(suite));
    suite.report.check(
        "with the webhook unregistered and the policy replica stopped, an annotated pod is still injected",
        if loaded {
            Ok(String::new())
        } else {
            Err("a dry-run pod asking for llama-cpu was not injected within 30 s".to_owned())
        },
    );
    for file in &files {
        let name = file
            .strip_prefix(&suite.root)
            .unwrap_or(file)
            .display()
            .to_string();
        let result = if own_catalog.contains(&file) {
            pods::check_file_applied(suite, file)
        } else {
            pods::check_file(suite, file, false)
        }
        .and_then(|r| pods::summary(&r));
        suite.report.check(
            &format!("{name}: through the policies alone, the pods the apiserver made are what inject prints"),
            result,
        );
    }
    validation::inject_errors_labelled(suite, "through the policies alone");
    fifty_containers(suite);
    measure(suite, mutating_webhook)?;

    // Back to the webhook for the sections after this one.
    let out = suite.kubectl.run(&["delete", KINDS, "-l", MANAGED], None);
    if !out.success {
        return Err(format!("deleting the policies: {}", out.both()));
    }
    let out = suite.kubectl.with_object(&["create"], mutating_webhook);
    if !out.success {
        return Err(format!("registering the webhook again: {}", out.both()));
    }
    let current = suite
        .kubectl
        .run(
            &[
                "get",
                "validatingwebhookconfiguration",
                validating_webhook["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default(),
                "-o",
                "json",
            ],
            None,
        )
        .json()?;
    let mut validating = validating_webhook.clone();
    validating["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    replace(suite, &validating)?;
    crate::wait_for_webhooks(suite)
}

/// A hand-written MutatingAdmissionPolicy `name` with JSONPatch mutation
/// `expression`, on the annotated, not yet injected pods of `namespace`,
/// and its binding: the references the generated policies are timed
/// against.
fn reference_policy(name: &str, namespace: &str, expression: &str) -> [Value; 2] {
    let matching = json!({
        "matchPolicy": "Equivalent",
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "objectSelector": {},
        "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"], "scope": "Namespaced"}],
    });
    [
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail", "reinvocationPolicy": "Never", "matchConstraints": matching,
                "matchConditions": [
                    {"name": "asks-for-a-model", "expression": "has(object.metadata.annotations) && 'llm.injector.dev/model' in object.metadata.annotations"},
                    {"name": "not-injected-yet", "expression": "!has(object.metadata.annotations) || !('llm.injector.dev/status' in object.metadata.annotations)"},
                ],
                "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": expression}}],
            },
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {"policyName": name, "matchResources": matching},
        }),
    ]
}

/// Issue 19's reference (docs/design/prototypes/fixed3.yaml): a fixed
/// 3-op mutation (an annotation, a label, one env entry).
fn fixed3(namespace: &str) -> [Value; 2] {
    reference_policy(
        "e2e-fixed3",
        namespace,
        r#"[
  JSONPatch{op: "add", path: "/metadata/annotations/" + jsonpatch.escapeKey("llm.injector.dev/status"), value: "{}"},
  JSONPatch{op: "add", path: "/metadata/labels", value: {"llm.injector.dev/model": "m"}},
  JSONPatch{op: "add", path: "/spec/containers/0/env", value: [{"name": "OLLAMA_HOST", "value": "http://127.0.0.1:11434"}]}
]"#,
    )
}

/// The least any policy can do to inject the timed pod: a fixed mutation
/// adding, as constants, what the generated policies added to it
/// (`injected`, the pod as they stored it): its status annotation, its
/// labels, each container's env, the init containers and the volumes
/// injection adds (`llm-` names), one operation each list. What separates
/// the generated policies from it is their CEL over the pod; what separates
/// it from [`fixed3`] is the size of what injection adds.
fn same_output(namespace: &str, injected: &Value) -> Result<[Value; 2], String> {
    use llm_injector::policy::cel_literal;
    let missing = |what: &str| format!("the injected pod has no {what}");
    let status = injected["metadata"]["annotations"]["llm.injector.dev/status"]
        .as_str()
        .ok_or_else(|| missing("status annotation"))?;
    let mut operations = vec![
        format!(
            "JSONPatch{{op: \"add\", path: \"/metadata/annotations/llm.injector.dev~1status\", value: {}}}",
            cel_literal(&json!(status))
        ),
        format!(
            "JSONPatch{{op: \"add\", path: \"/metadata/labels\", value: {}}}",
            cel_literal(&injected["metadata"]["labels"])
        ),
    ];
    let containers = injected["spec"]["containers"]
        .as_array()
        .ok_or_else(|| missing("containers"))?;
    for (i, container) in containers.iter().enumerate() {
        operations.push(format!(
            "JSONPatch{{op: \"add\", path: \"/spec/containers/{i}/env\", value: {}}}",
            cel_literal(&container["env"])
        ));
    }
    operations.push(format!(
        "JSONPatch{{op: \"add\", path: \"/spec/initContainers\", value: {}}}",
        cel_literal(&injected["spec"]["initContainers"])
    ));
    let volumes = injected["spec"]["volumes"]
        .as_array()
        .ok_or_else(|| missing("volumes"))?;
    for volume in volumes.iter().filter(|v| {
        v["name"]
            .as_str()
            .is_some_and(|name| name.starts_with("llm-"))
    }) {
        operations.push(format!(
            "JSONPatch{{op: \"add\", path: \"/spec/volumes/-\", value: {}}}",
            cel_literal(volume)
        ));
    }
    Ok(reference_policy(
        "e2e-same-output",
        namespace,
        &format!("[\n  {}\n]", operations.join(",\n  ")),
    ))
}

/// The timed pod of `namespace` as admission leaves it (a server dry run).
fn timed_pod(suite: &Suite, namespace: &str) -> Result<Value, String> {
    let pod = crate::overhead::pods(namespace, 1)["items"][0].clone();
    suite
        .kubectl
        .with_object(&["create", "--dry-run=server", "-o", "json"], &pod)
        .json()
}

/// Namespace `namespace`, with a copy of TEAM's llama-cpu (the model the
/// timed pods ask for) and its engine.
fn copy_timed_model(suite: &Suite, namespace: &str) -> Result<(), String> {
    let get = |kind: &str, name: &str| {
        suite
            .kubectl
            .run(&["get", kind, name, "-n", TEAM, "-o", "json"], None)
            .json()
    };
    let model = get("llmmodel", "llama-cpu")?;
    let engine_name = model["spec"]["engineRef"]["name"]
        .as_str()
        .ok_or("llama-cpu has no engineRef")?
        .to_owned();
    let engine = get("llmengine", &engine_name)?;
    let copies = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        json!({
            "apiVersion": engine["apiVersion"], "kind": "LLMEngine",
            "metadata": {"name": engine_name, "namespace": namespace},
            "spec": engine["spec"],
        }),
        json!({
            "apiVersion": model["apiVersion"], "kind": "LLMModel",
            "metadata": {"name": "llama-cpu", "namespace": namespace},
            "spec": model["spec"],
        }),
    ];
    for copy in &copies {
        suite
            .kubectl
            .with_object(&["create"], copy)
            .ok()
            .ok_or(format!("{} {namespace}", copy["kind"]))?;
    }
    Ok(())
}

/// The suite's webhook, registered again for [`WEBHOOK_TIMED`] alone (the
/// policies' namespaces stay without it): the webhook timed in the same
/// rounds as the policies.
fn register_timed_webhook(suite: &Suite, mutating_webhook: &Value) -> Result<Value, String> {
    let mut config = mutating_webhook.clone();
    config["metadata"] = json!({"name": WEBHOOK_TIMED});
    for hook in config["webhooks"].as_array_mut().into_iter().flatten() {
        hook["namespaceSelector"] =
            json!({"matchLabels": {"kubernetes.io/metadata.name": WEBHOOK_TIMED}});
    }
    suite
        .kubectl
        .with_object(&["create"], &config)
        .ok()
        .ok_or("registering the webhook for the timed namespace")?;
    Ok(config)
}

/// Pod creates through the generated policies, the two reference policies,
/// the webhook and no injection, interleaved in the same rounds; figures
/// printed (never a threshold).
fn measure(suite: &mut Suite, mutating_webhook: &Value) -> Result<(), String> {
    let (none, fixed, same) = (
        "e2e-policy-none",
        "e2e-policy-fixed3",
        "e2e-policy-same-output",
    );
    for namespace in [none, fixed, same] {
        // Out of the generated policies' namespaces.
        let object = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {"llm.injector.dev/injection": "disabled"}},
        });
        suite
            .kubectl
            .with_object(&["create"], &object)
            .ok()
            .ok_or(format!("namespace {namespace}"))?;
    }
    let injected = timed_pod(suite, POLICY_TIMED)?;
    let references = [fixed3(fixed), same_output(same, &injected)?];
    for object in references.iter().flatten() {
        suite
            .kubectl
            .with_object(&["create"], object)
            .ok()
            .ok_or(format!("reference policy {}", object["metadata"]["name"]))?;
    }
    let registration = register_timed_webhook(suite, mutating_webhook)?;
    for namespace in [fixed, same, WEBHOOK_TIMED] {
        let injecting = wait_until(30, || {
            timed_pod(suite, namespace)
                .is_ok_and(|p| p["metadata"]["annotations"]["llm.injector.dev/status"].is_string())
        });
        if !injecting {
            return Err(format!(
                "the pods of {namespace} were not mutated within 30 s"
            ));
        }
    }
    for namespace in [same, WEBHOOK_TIMED] {
        if timed_pod(suite, namespace)?["spec"]["initContainers"]
            != injected["spec"]["initContainers"]
        {
            return Err(format!(
                "the pods of {namespace} do not get the init containers the generated policies add"
            ));
        }
    }
    let count: usize = std::env::var("LLM_INJECTOR_E2E_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let rounds = 5;
    // The three admission plugins, then the apiserver's whole time.
    let series = [
        Series::plugin("MutatingAdmissionPolicy"),
        Series::plugin("ValidatingAdmissionPolicy"),
        Series::plugin("MutatingAdmissionWebhook"),
        Series::pod_creates(),
    ];
    // Per namespace: the time of each round, and the plugins' seconds.
    let scenarios = [none, fixed, same, POLICY_TIMED, WEBHOOK_TIMED];
    let mut times = vec![Vec::new(); scenarios.len()];
    let mut spent = vec![[0.0; 3]; scenarios.len()];
    let mut serving = vec![0.0; scenarios.len()];
    for _ in 0..rounds {
        for (k, namespace) in scenarios.iter().enumerate() {
            let (elapsed, seconds) = create_pods_timed(suite, namespace, count, &series)?;
            times[k].push(elapsed);
            for (total, s) in spent[k].iter_mut().zip(&seconds) {
                *total += s;
            }
            serving[k] += seconds[3];
        }
    }
    let pods = (count * rounds) as f64;
    let ms: Vec<f64> = times
        .into_iter()
        .map(|t| median(t) / count as f64 * 1000.0)
        .collect();
    // Per namespace, ms per pod in each plugin.
    let server: Vec<[f64; 3]> = spent
        .iter()
        .map(|s| s.map(|seconds| seconds / pods * 1000.0))
        .collect();
    let added = |k: usize| ms[k] - ms[0];
    let total = |k: usize| server[k].iter().sum::<f64>();
    let serving_ms = |k: usize| serving[k] / pods * 1000.0;
    let (fixed_k, same_k, ours_k, webhook_k) = (1, 2, 3, 4);
    let lines = [
        format!(
            "{count} annotated pods per kubectl create, {rounds} rounds, median per pod, each round through every namespace in turn"
        ),
        format!(
            "pod create: no injection {:.2} ms; fixed 3-op policy {:.2} ms (+{:.2}); same-output policy {:.2} ms (+{:.2}); generated policies {:.2} ms (+{:.2}); llm-injector webhook {:.2} ms (+{:.2})",
            ms[0],
            ms[fixed_k],
            added(fixed_k),
            ms[same_k],
            added(same_k),
            ms[ours_k],
            added(ours_k),
            ms[webhook_k],
            added(webhook_k),
        ),
        format!(
            "the generated policies add {:.2}x what the webhook adds, {:.1}x what the fixed 3-op adds, {:.2}x what the same-output adds",
            added(ours_k) / added(webhook_k).max(0.001),
            added(ours_k) / added(fixed_k).max(0.001),
            added(ours_k) / added(same_k).max(0.001),
        ),
        format!(
            "admission per pod in the apiserver (apiserver_admission_controller_admission_duration_seconds: MutatingAdmissionPolicy + ValidatingAdmissionPolicy + MutatingAdmissionWebhook): fixed 3-op {:.3} ms; same-output {:.3} ms; generated {:.3} ms ({:.3} + {:.3} + {:.3}); webhook {:.3} ms ({:.3} + {:.3} + {:.3}, the call and its patch); generated {:.2}x the webhook, {:.1}x the fixed 3-op, {:.2}x the same-output",
            total(fixed_k),
            total(same_k),
            total(ours_k),
            server[ours_k][0],
            server[ours_k][1],
            server[ours_k][2],
            total(webhook_k),
            server[webhook_k][0],
            server[webhook_k][1],
            server[webhook_k][2],
            total(ours_k) / total(webhook_k).max(0.000_001),
            total(ours_k) / total(fixed_k).max(0.000_001),
            total(ours_k) / total(same_k).max(0.000_001),
        ),
        format!(
            "the apiserver's time per pod create (apiserver_request_duration_seconds, POST pods: admission, validation, storage; the webhook's answer included): no injection {:.2} ms; fixed 3-op {:.2} ms; same-output {:.2} ms; generated {:.2} ms; webhook {:.2} ms; generated {:.2}x the webhook",
            serving_ms(0),
            serving_ms(fixed_k),
            serving_ms(same_k),
            serving_ms(ours_k),
            serving_ms(webhook_k),
            serving_ms(ours_k) / serving_ms(webhook_k).max(0.000_001),
        ),
    ];
    for line in &lines {
        suite.report.figure(line);
    }
    suite.kubectl.with_object(&["delete"], &registration);
    for object in references.iter().flat_map(|r| r.iter().rev()) {
        suite.kubectl.with_object(&["delete"], object);
    }
    suite.kubectl.run(
        &[
            "delete",
            "namespace",
            POLICY_TIMED,
            WEBHOOK_TIMED,
            "--wait=false",
        ],
        None,
    );
    Ok(())
}

/// The spec of TEAM's MutatingAdmissionPolicy, as JSON text.
fn team_policy(suite: &Suite) -> String {
    stored(suite)
        .unwrap_or_default()
        .into_iter()
        .find(|(key, _)| key == &format!("MutatingAdmissionPolicy/llm-injector.{TEAM}"))
        .map(|(_, spec)| spec.to_string())
        .unwrap_or_default()
}

/// A model created, changed and deleted while the policy replica runs:
/// its policies appear, follow the change and go with it.
fn follow_the_model(suite: &mut Suite) {
    let model = |keep_alive: &str| {
        json!({
            "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMModel",
            "metadata": {"name": "policy-follow", "namespace": TEAM},
            "spec": {"engineRef": {"name": "ollama-cpu"}, "model": "qwen3:0.6b", "serving": {"keepAlive": keep_alive}},
        })
    };
    let in_sync = |suite: &Suite| {
        let (Ok(mut stored), Ok(mut expected)) = (stored(suite), rendered(suite)) else {
            return false;
        };
        stored.sort_by(|a, b| a.0.cmp(&b.0));
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        stored == expected
    };
    let created = suite.kubectl.with_object(&["apply"], &model("5m")).success
        && wait_until(30, || {
            team_policy(suite).contains(r#"\"policy-follow\""#) && in_sync(suite)
        });
    let changed = created
        && suite.kubectl.with_object(&["apply"], &model("1h")).success
        && wait_until(30, || {
            team_policy(suite).contains(r#"dyn(\"1h\")"#) && in_sync(suite)
        });
    let deleted = changed
        && suite.kubectl.with_object(&["delete"], &model("1h")).success
        && wait_until(30, || {
            !team_policy(suite).contains(r#"\"policy-follow\""#) && in_sync(suite)
        });
    suite.report.check(
        "policies follow their model: its namespace's policy injects it once created, follows its change, and no longer injects it once deleted (within 30 s each)",
        match (created, changed, deleted) {
            (true, true, true) => Ok(String::new()),
            (false, _, _) => Err("no policies for a new model".to_owned()),
            (_, false, _) => Err("the policy did not follow the model's new keepAlive".to_owned()),
            _ => Err("the namespace's policy still injects the model after it was deleted".to_owned()),
        },
    );
}

/// A pod of 50 containers (4 env entries and 2 ports each, every fifth
/// asking for a GPU): injected by the policies within the apiserver's CEL
/// cost budget, which it checks only at admission (not when a policy is
/// created: docs/design/admission-policies-research.md).
fn fifty_containers(suite: &mut Suite) {
    let containers: Vec<Value> = (0..50)
        .map(|i| {
            let mut container = json!({
                "name": format!("c{i}"), "image": "busybox",
                "env": (0..4).map(|k| json!({"name": format!("E{k}"), "value": "x"})).collect::<Vec<_>>(),
                "ports": [{"containerPort": 8000 + i * 2}, {"containerPort": 8001 + i * 2}],
            });
            if i % 5 == 0 {
                container["resources"] = json!({"limits": {"nvidia.com/gpu": "1"}});
            }
            container
        })
        .collect();
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "fifty", "namespace": TEAM, "annotations": {"llm.injector.dev/model": "llama-cpu"}},
        "spec": {"containers": containers},
    });
    let out = suite
        .kubectl
        .with_object(&["create", "--dry-run=server", "-o", "json"], &pod);
    let result = if out.success {
        out.json().and_then(|stored| {
            let with_env = stored["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| {
                    c["env"]
                        .as_array()
                        .is_some_and(|e| e.iter().any(|v| v["name"] == "OLLAMA_HOST"))
                })
                .count();
            let injected = stored["metadata"]["annotations"]["llm.injector.dev/status"].is_string();
            if injected && with_env == 50 {
                Ok("injected; all 50 containers got the endpoint".to_owned())
            } else {
                Err(format!(
                    "injected: {injected}; containers with OLLAMA_HOST: {with_env} of 50"
                ))
            }
        })
    } else {
        Err(out.both())
    };
    suite.report.check(
        "a pod of 50 containers is injected by the policies within the apiserver's CEL cost budget",
        result,
    );
}
