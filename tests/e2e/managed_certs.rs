//! certs.mode=managed on the real control plane: the chart's default mode,
//! rendered by Helm's library, its ServiceAccount and RBAC applied, and
//! `serve` started with the Deployment's own arguments (only the addresses,
//! the certificate's name and, to see renewals within a minute, the
//! validities changed). Checked: the Secret is created and the caBundle of
//! both webhook configurations written; serving-certificate renewals and a
//! CA rotation under a steady stream of pod creations fail none; a caBundle
//! removed by hand comes back; deleting the configurations (as `helm
//! uninstall` does) deletes the Secret.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::controlplane::{ControlPlane, free_port};
use crate::webhooks::Serve;
use crate::{Suite, helm};

/// The release (and namespace) of the rendered chart.
const RELEASE: &str = "e2e-certs";
/// Short lifetimes, so that the leaf is renewed every ~8 s and the CA
/// replaced after ~24 s.
const TLS_VALIDITY: &str = "12s";
const CA_VALIDITY: &str = "36s";
/// How long pods are created while certificates roll.
const ROLLING: Duration = Duration::from_secs(45);

/// The chart's arguments that this test sets itself.
const OVERRIDDEN: [&str; 7] = [
    // Text logs, which Serve::launch reads the addresses from.
    "--log-format",
    "--addr",
    "--admin-addr",
    "--tls-dns-names",
    "--tls-validity",
    "--ca-validity",
    "--cert-check-interval",
];

pub fn check(suite: &mut Suite, plane: &ControlPlane, namespace: &str) {
    if let Some(why) = helm::cannot_render(suite) {
        suite
            .report
            .skip("certs.mode=managed with the chart's RBAC", why);
        return;
    }
    let mut installed = Vec::new();
    let result = run(suite, plane, namespace, &mut installed);
    if let Err(why) = result {
        suite
            .report
            .check("certs.mode=managed with the chart's RBAC", Err(why));
    }
    for object in installed.iter().rev() {
        suite
            .kubectl
            .with_object(&["delete", "--ignore-not-found", "--wait=false"], object);
    }
}

/// The rendered objects of `kind`.
fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn run(
    suite: &mut Suite,
    plane: &ControlPlane,
    pods_namespace: &str,
    installed: &mut Vec<Value>,
) -> Result<(), String> {
    let file = suite.dir.join("chart-managed.yaml");
    helm::render_file(suite, RELEASE, &[], &file)?;
    let docs = helm::rendered(&file)?;

    // The ServiceAccount and RBAC of the chart, as installed.
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RELEASE}});
    apply(suite, &namespace, installed)?;
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ] {
        for object in of_kind(&docs, kind) {
            apply(suite, object, installed)?;
        }
    }
    let account = of_kind(&docs, "ServiceAccount")
        .first()
        .and_then(|sa| sa["metadata"]["name"].as_str())
        .ok_or("the chart renders no ServiceAccount")?
        .to_owned();

    // Its webhook configurations, served on 127.0.0.1 without a caBundle
    // and limited to the pods' namespace for the time of the test.
    let port = free_port();
    let mut configurations = Vec::new();
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        for config in of_kind(&docs, kind) {
            let mut config = config.clone();
            for webhook in config["webhooks"].as_array_mut().into_iter().flatten() {
                let path = webhook["clientConfig"]["service"]["path"]
                    .as_str()
                    .unwrap_or("/")
                    .to_owned();
                if webhook["clientConfig"].get("caBundle").is_some() {
                    return Err(format!("{kind}: the managed mode renders a caBundle"));
                }
                webhook["clientConfig"] = json!({"url": format!("https://127.0.0.1:{port}{path}")});
                webhook["namespaceSelector"] = json!({"matchExpressions": [{
                    "key": "kubernetes.io/metadata.name", "operator": "In",
                    "values": [pods_namespace, RELEASE]}]});
            }
            apply(suite, &config, installed)?;
            configurations.push(config);
        }
    }

    // serve with the Deployment's arguments.
    let deployment = of_kind(&docs, "Deployment");
    let chart_args = deployment
        .first()
        .and_then(|d| d["spec"]["template"]["spec"]["containers"][0]["args"].as_array())
        .ok_or("the chart renders no Deployment arguments")?;
    let mut args: Vec<String> = chart_args
        .iter()
        .filter_map(Value::as_str)
        .skip_while(|a| *a == "serve")
        .filter(|a| !OVERRIDDEN.iter().any(|o| a.starts_with(&format!("{o}="))))
        .map(str::to_owned)
        .collect();
    let secret = args
        .iter()
        .find_map(|a| a.strip_prefix("--tls-secret="))
        .ok_or("the chart passes no --tls-secret in managed mode")?
        .to_owned();
    args.extend([
        // In a pod these default to the pod's namespace.
        format!("--tls-secret-namespace={RELEASE}"),
        format!("--leader-election-namespace={RELEASE}"),
        "--tls-dns-names=127.0.0.1".to_owned(),
        format!("--tls-validity={TLS_VALIDITY}"),
        format!("--ca-validity={CA_VALIDITY}"),
        "--cert-check-interval=1s".to_owned(),
    ]);
    let serve = Serve::launch(
        &suite.injector,
        plane,
        "llm-injector-managed-certs",
        &format!("127.0.0.1:{port}"),
        &args,
        (RELEASE, &account),
    )?;
    installed.push(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": secret, "namespace": RELEASE}}));

    let result = published(suite, &secret, &configurations);
    suite.report.check(
        "certs.mode=managed: serve creates its Secret (owned by its MutatingWebhookConfiguration) and writes the caBundle of both webhook configurations",
        result,
    );
    let tester = of_kind(&docs, "ServiceAccount")
        .iter()
        .filter_map(|sa| sa["metadata"]["name"].as_str())
        .find(|name| name.ends_with("-test"))
        .ok_or("the chart renders no ServiceAccount for helm test")?
        .to_owned();
    let result = check_webhook(suite, plane, &tester);
    suite.report.check(
        "helm test: llm-injector check-webhook, as the chart's test ServiceAccount, gets the webhook's answer",
        result,
    );
    let result = rolling(suite, &serve, &secret, pods_namespace);
    suite.report.check(
        "certs.mode=managed: serving-certificate renewals and a CA rotation under a stream of pod creations fail none",
        result,
    );
    let result = removed_bundle_returns(suite, &secret, &configurations);
    suite.report.check(
        "certs.mode=managed: a caBundle removed by hand is written back",
        result,
    );
    drop(serve);
    let result = uninstalled(suite, &secret, &configurations);
    suite.report.check(
        "certs.mode=managed: deleting the webhook configurations (helm uninstall) deletes the Secret",
        result,
    );
    Ok(())
}

/// What the chart's test pod runs, as its ServiceAccount.
fn check_webhook(suite: &Suite, plane: &ControlPlane, account: &str) -> Result<String, String> {
    let output = crate::webhooks::as_service_account(
        std::process::Command::new(&suite.injector)
            .args(["check-webhook", "--namespace", RELEASE, "--timeout", "20s"])
            .env("KUBECONFIG", &plane.kubeconfig),
        (RELEASE, account),
    )
    .output();
    crate::succeeded_saying(output, |stdout| stdout.starts_with("ok:"))
}

fn apply(suite: &Suite, object: &Value, installed: &mut Vec<Value>) -> Result<(), String> {
    let out = suite.kubectl.with_object(&["apply"], object);
    if !out.success {
        return Err(format!(
            "applying {} {}: {}",
            object["kind"],
            object["metadata"]["name"],
            out.both()
        ));
    }
    installed.push(object.clone());
    Ok(())
}

fn get(suite: &Suite, args: &[&str]) -> Result<Value, String> {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    suite.kubectl.run(&all, None).json()
}

fn secret_data(suite: &Suite, secret: &str, key: &str) -> Result<String, String> {
    let object = get(suite, &["secret", "-n", RELEASE, secret])?;
    object["data"][key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("secret {RELEASE}/{secret} has no {key}"))
}

/// The caBundles of every webhook of `configurations`, as stored.
fn bundles(suite: &Suite, configurations: &[Value]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for config in configurations {
        let kind = config["kind"].as_str().unwrap_or_default().to_lowercase();
        let name = config["metadata"]["name"].as_str().unwrap_or_default();
        let live = get(suite, &[&kind, name])?;
        for webhook in live["webhooks"].as_array().into_iter().flatten() {
            out.push(
                webhook["clientConfig"]["caBundle"]
                    .as_str()
                    .unwrap_or("(none)")
                    .to_owned(),
            );
        }
    }
    Ok(out)
}

/// Waits up to `limit` for `done` to say Ok.
fn within<T>(limit: Duration, mut done: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let deadline = Instant::now() + limit;
    loop {
        match done() {
            Ok(value) => return Ok(value),
            Err(why) if Instant::now() > deadline => return Err(why),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn published(suite: &Suite, secret: &str, configurations: &[Value]) -> Result<String, String> {
    let count = within(Duration::from_secs(15), || {
        let ca = secret_data(suite, secret, "ca.crt")?;
        let bundles = bundles(suite, configurations)?;
        if bundles.iter().all(|b| *b == ca) {
            Ok(bundles.len())
        } else {
            Err(format!(
                "caBundles not (all) the Secret's ca.crt after 15 s: {} of {}",
                bundles.iter().filter(|b| **b == ca).count(),
                bundles.len()
            ))
        }
    })?;
    let object = get(suite, &["secret", "-n", RELEASE, secret])?;
    let owner = &object["metadata"]["ownerReferences"][0];
    if owner["kind"] != "MutatingWebhookConfiguration" {
        return Err(format!(
            "secret {RELEASE}/{secret} is not owned by the MutatingWebhookConfiguration: {}",
            object["metadata"]
        ));
    }
    if object["type"] != "kubernetes.io/tls" {
        return Err(format!("secret type {}", object["type"]));
    }
    Ok(format!(
        "{count} webhooks carry the Secret's ca.crt; owner {} {}",
        owner["kind"], owner["name"]
    ))
}

fn rolling(suite: &Suite, serve: &Serve, secret: &str, namespace: &str) -> Result<String, String> {
    let reviews_before = serve.metric("llm_injector_admission_reviews_total", &[])?;
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "managed-certs-", "namespace": namespace,
            "annotations": {"llm.injector.dev/model": "llama-cpu"}},
        "spec": {"containers": [{"name": "app", "image": "ghcr.io/example/chat:1.0"}]},
    });
    let (mut created, mut failures) = (0, Vec::new());
    let mut leaves = BTreeSet::new();
    let mut cas = BTreeSet::new();
    let mut served = BTreeSet::new();
    let start = Instant::now();
    while start.elapsed() < ROLLING {
        let out = suite
            .kubectl
            .with_object(&["create", "--dry-run=server", "-o", "json"], &pod);
        let injected = out.success && out.stdout.contains("llm.injector.dev/status");
        if injected {
            created += 1;
        } else {
            failures.push(format!(
                "at {:.1} s: {}",
                start.elapsed().as_secs_f64(),
                out.both().trim()
            ));
        }
        if let Ok(leaf) = secret_data(suite, secret, "tls.crt") {
            leaves.insert(leaf);
        }
        if let Ok(bundle) = secret_data(suite, secret, "ca.crt") {
            // The current CA is the bundle's first certificate.
            cas.insert(first_certificate(&bundle));
        }
        if let Ok(expiry) =
            serve.metric("llm_injector_tls_certificate_expiry_timestamp_seconds", &[])
        {
            served.insert(expiry as i64);
        }
    }
    let reviews = serve.metric("llm_injector_admission_reviews_total", &[])? - reviews_before;
    let summary = format!(
        "{created} pods injected in {} s, {} failed; {} serving certificates in the Secret, {} served (by expiry), {} CAs; {reviews} reviews answered by this serve",
        ROLLING.as_secs(),
        failures.len(),
        leaves.len(),
        served.len(),
        cas.len()
    );
    let mut problems = failures;
    problems.truncate(5);
    if created < 20 {
        problems.push(format!("only {created} pods created"));
    }
    if leaves.len() < 3 || served.len() < 3 {
        problems.push("fewer than 3 serving certificates rolled".to_owned());
    }
    if cas.len() < 2 {
        problems.push("the CA was not replaced".to_owned());
    }
    if reviews < f64::from(created) {
        problems.push("this serve answered fewer reviews than pods were created".to_owned());
    }
    if problems.is_empty() {
        Ok(summary)
    } else {
        Err(format!("{summary}\n{}", problems.join("\n")))
    }
}

/// The first certificate of a base64 PEM bundle, for telling CAs apart.
fn first_certificate(bundle_b64: &str) -> String {
    use base64::Engine as _;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(bundle_b64)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    pem.split("-----END CERTIFICATE-----")
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn removed_bundle_returns(
    suite: &Suite,
    secret: &str,
    configurations: &[Value],
) -> Result<String, String> {
    let mutating = configurations
        .iter()
        .find(|c| c["kind"] == "MutatingWebhookConfiguration")
        .and_then(|c| c["metadata"]["name"].as_str())
        .ok_or("no MutatingWebhookConfiguration")?;
    let out = suite.kubectl.run(
        &[
            "patch",
            "mutatingwebhookconfiguration",
            mutating,
            "--type=json",
            "-p",
            r#"[{"op": "remove", "path": "/webhooks/0/clientConfig/caBundle"}]"#,
        ],
        None,
    );
    if !out.success {
        return Err(format!("removing the caBundle: {}", out.both()));
    }
    let started = Instant::now();
    within(Duration::from_secs(10), || {
        let ca = secret_data(suite, secret, "ca.crt")?;
        let bundles = bundles(suite, configurations)?;
        if bundles.iter().all(|b| *b == ca) {
            Ok(format!(
                "written back after {:.1} s",
                started.elapsed().as_secs_f64()
            ))
        } else {
            Err("the caBundle was not written back within 10 s".to_owned())
        }
    })
}

fn uninstalled(suite: &Suite, secret: &str, configurations: &[Value]) -> Result<String, String> {
    for config in configurations {
        let out = suite.kubectl.with_object(&["delete"], config);
        if !out.success {
            return Err(format!("deleting {}: {}", config["kind"], out.both()));
        }
    }
    let started = Instant::now();
    within(Duration::from_secs(30), || {
        let out = suite
            .kubectl
            .run(&["get", "secret", "-n", RELEASE, secret], None);
        if !out.success && out.stderr.contains("NotFound") {
            Ok(format!(
                "the garbage collector deleted it after {:.1} s",
                started.elapsed().as_secs_f64()
            ))
        } else {
            Err(format!(
                "secret {RELEASE}/{secret} still there 30 s after its owner was deleted"
            ))
        }
    })
}
