//! Figures, not thresholds: how often the apiserver calls llm-injector per
//! annotated pod (its own metric,
//! `apiserver_admission_webhook_admission_duration_seconds_count`), and the
//! time llm-injector adds to a pod create, next to what a bare webhook adds
//! (one fixed patch, same registration) and to no webhook at all, in the
//! same run.

use std::time::Instant;

use serde_json::{Value, json};

use crate::Suite;
use crate::webhooks::BareWebhook;

const INJECT: &str = "inject.llm.injector.dev";
const BARE: &str = "bare.e2e.llm.injector.dev";

/// (count, sum in seconds) of the apiserver's admission duration histogram
/// for webhook `name`, over all operations and outcomes.
fn webhook_calls(suite: &Suite, name: &str) -> Result<(f64, f64), String> {
    let text = suite.kubectl.raw("/metrics")?;
    let series = |metric| Series::webhook(metric, name).sum(&text);
    Ok((
        series("apiserver_admission_webhook_admission_duration_seconds_count"),
        series("apiserver_admission_webhook_admission_duration_seconds_sum"),
    ))
}

pub fn pods(namespace: &str, count: usize) -> Value {
    let items: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("bench-{i}"), "namespace": namespace,
                             "annotations": {"llm.injector.dev/model": "llama-cpu"}},
                "spec": {"containers": [{"name": "app", "image": "ghcr.io/example/app:1.0"}]},
            })
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "List", "items": items})
}

/// Seconds to create `count` annotated pods in `namespace` with one kubectl
/// run (kubectl's start-up is paid once), then deletes them.
pub fn create_pods(suite: &Suite, namespace: &str, count: usize) -> Result<f64, String> {
    let list = pods(namespace, count);
    let started = Instant::now();
    let out = suite.kubectl.with_object(&["create", "-o", "name"], &list);
    let elapsed = started.elapsed().as_secs_f64();
    if !out.success {
        return Err(format!(
            "creating {count} pods in {namespace}: {}",
            out.both()
        ));
    }
    let out = suite.kubectl.run(
        &[
            "delete",
            "pods",
            "--all",
            "-n",
            namespace,
            "--wait=true",
            "--timeout=60s",
        ],
        None,
    );
    if !out.success {
        return Err(out.both());
    }
    Ok(elapsed)
}

/// A sum over the apiserver's `/metrics`: of the series of `metric` that
/// carry every one of `labels` (`key="value"`).
pub struct Series {
    metric: &'static str,
    labels: Vec<String>,
}

impl Series {
    /// Seconds the apiserver has spent in admission plugin `plugin`
    /// (`apiserver_admission_controller_admission_duration_seconds_sum`,
    /// every operation and outcome).
    pub fn plugin(plugin: &str) -> Self {
        Series {
            metric: "apiserver_admission_controller_admission_duration_seconds_sum",
            labels: vec![format!("name=\"{plugin}\"")],
        }
    }

    /// Seconds the apiserver has spent serving pod creates
    /// (`apiserver_request_duration_seconds_sum`, POST on pods): admission,
    /// validation and storage, a webhook's answer included.
    pub fn pod_creates() -> Self {
        Series {
            metric: "apiserver_request_duration_seconds_sum",
            labels: ["resource=\"pods\"", "subresource=\"\"", "verb=\"POST\""]
                .map(str::to_owned)
                .to_vec(),
        }
    }

    /// Webhook `name`'s series of the apiserver's admission duration
    /// histogram (`metric` its `_count` or `_sum`).
    fn webhook(metric: &'static str, name: &str) -> Self {
        Series {
            metric,
            labels: vec![format!("name=\"{name}\"")],
        }
    }

    /// The sum in `metrics`, the text of `/metrics`.
    fn sum(&self, metrics: &str) -> f64 {
        let head = format!("{}{{", self.metric);
        metrics
            .lines()
            .filter(|l| l.starts_with(&head) && self.labels.iter().all(|label| l.contains(label)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// [`create_pods`], with how much each of `series` grew meanwhile.
pub fn create_pods_timed(
    suite: &Suite,
    namespace: &str,
    count: usize,
    series: &[Series],
) -> Result<(f64, Vec<f64>), String> {
    let before = suite.kubectl.raw("/metrics")?;
    let elapsed = create_pods(suite, namespace, count)?;
    let after = suite.kubectl.raw("/metrics")?;
    let grown = series
        .iter()
        .map(|s| s.sum(&after) - s.sum(&before))
        .collect();
    Ok((elapsed, grown))
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Registers the bare webhook for namespace e2e-bare, then times pod
/// creates in team-a (llm-injector), e2e-bare and e2e-none (no webhook).
pub fn measure(
    suite: &mut Suite,
    bare: &BareWebhook,
    mutating: &Value,
    injected_namespace: &str,
) -> Result<(), String> {
    use base64::Engine as _;
    for (namespace, bench) in [("e2e-bare", "bare"), ("e2e-none", "none")] {
        let object = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {"llm.injector.dev/injection": "disabled", "e2e-bench": bench}},
        });
        suite
            .kubectl
            .with_object(&["create"], &object)
            .ok()
            .ok_or(format!("namespace {namespace}"))?;
    }
    let mut config = mutating.clone();
    config["metadata"] = json!({"name": "e2e-bare"});
    let hook = &mut config["webhooks"][0];
    hook["name"] = json!(BARE);
    hook["clientConfig"] = json!({
        "url": format!("https://{}/mutate", bare.addr),
        "caBundle": base64::engine::general_purpose::STANDARD.encode(&bare.ca_pem),
    });
    hook["namespaceSelector"] = json!({"matchLabels": {"e2e-bench": "bare"}});
    suite
        .kubectl
        .with_object(&["create"], &config)
        .ok()
        .ok_or("registering the bare webhook")?;
    // The apiserver's webhook informer: wait until the bare webhook is called.
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while webhook_calls(suite, BARE)?.0 == 0.0 {
        create_pods(suite, "e2e-bare", 1)?;
        if Instant::now() > deadline {
            return Err("the bare webhook was never called".into());
        }
    }

    let count: usize = std::env::var("LLM_INJECTOR_E2E_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let rounds = 5;
    let (before_inject, before_bare) = (webhook_calls(suite, INJECT)?, webhook_calls(suite, BARE)?);
    let (mut none, mut bare_times, mut inject) = (Vec::new(), Vec::new(), Vec::new());
    let mut plugin = 0.0;
    for _ in 0..rounds {
        none.push(create_pods(suite, "e2e-none", count)?);
        bare_times.push(create_pods(suite, "e2e-bare", count)?);
        let (elapsed, spent) = create_pods_timed(
            suite,
            injected_namespace,
            count,
            &[Series::plugin("MutatingAdmissionWebhook")],
        )?;
        inject.push(elapsed);
        plugin += spent[0];
    }
    let (after_inject, after_bare) = (webhook_calls(suite, INJECT)?, webhook_calls(suite, BARE)?);
    let pods = (count * rounds) as f64;
    let per_pod = |total: f64| total / count as f64 * 1000.0;
    let (none, bare_ms, inject_ms) = (
        per_pod(median(none)),
        per_pod(median(bare_times)),
        per_pod(median(inject)),
    );
    let calls_inject = (after_inject.0 - before_inject.0) / pods;
    let calls_bare = (after_bare.0 - before_bare.0) / pods;
    let latency = |after: (f64, f64), before: (f64, f64)| {
        (after.1 - before.1) / (after.0 - before.0).max(1.0) * 1000.0
    };
    let exclusions = suite.kubectl.raw("/metrics")?;
    let skipped: f64 = exclusions
        .lines()
        .filter(|l| {
            l.starts_with("apiserver_admission_match_condition_exclusions_total{")
                && l.contains(&format!("name=\"{INJECT}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let lines = [
        format!("{count} annotated pods per kubectl create, {rounds} rounds, median per pod"),
        format!(
            "webhook calls per annotated pod (apiserver_admission_webhook_admission_duration_seconds_count): llm-injector {calls_inject:.2}, bare webhook {calls_bare:.2}"
        ),
        format!(
            "calls the matchConditions spared llm-injector over the whole suite (apiserver_admission_match_condition_exclusions_total: pods asking for no model, reinvocations of injected pods): {skipped}"
        ),
        format!(
            "webhook call as the apiserver times it: llm-injector {:.2} ms, bare webhook {:.2} ms",
            latency(after_inject, before_inject),
            latency(after_bare, before_bare)
        ),
        format!(
            "the MutatingAdmissionWebhook plugin per llm-injector pod (apiserver_admission_controller_admission_duration_seconds: the call, and applying the patch): {:.3} ms",
            plugin / pods * 1000.0
        ),
        format!(
            "pod create: no webhook {none:.2} ms, bare webhook {bare_ms:.2} ms (+{:.2}), llm-injector {inject_ms:.2} ms (+{:.2}); llm-injector adds {:.1}x what the bare webhook adds",
            bare_ms - none,
            inject_ms - none,
            (inject_ms - none) / (bare_ms - none).max(0.001)
        ),
    ];
    for line in &lines {
        suite.report.figure(line);
    }
    Ok(())
}
