//! `llm-injector check-webhook`: does the apiserver reach the webhook? It
//! asks the apiserver to create, as a server-side dry run (nothing is
//! stored), a pod that asks for a model that cannot exist. The webhook
//! refuses it, so a refusal from `inject.llm.injector.dev` proves the whole
//! path: registration, Service, TLS (caBundle) and the server's answer. The
//! chart's `helm test` runs it.

use std::time::{Duration, Instant};

use clap::Args;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use llm_injector::MODEL_ANNOTATION;
use llm_injector::duration::parse_duration;

/// The mutating webhook's name in the chart and in webhook-config/.
const WEBHOOK: &str = "inject.llm.injector.dev";
/// A model name no LLMModel can have (object names are at most 253
/// characters of [a-z0-9.-]; this one has an underscore).
const NO_SUCH_MODEL: &str = "llm-injector_check-webhook";

#[derive(Args, Debug)]
pub struct CheckWebhookArgs {
    /// Namespace of the dry-run pod (the webhook must cover it).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Keep trying this long while the webhook cannot be reached (a fresh
    /// install's caBundle is written within seconds).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
}

/// What one dry run showed.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The webhook answered (refused the pod as it must).
    Answered(String),
    /// The apiserver could not call it, or another admission step refused.
    Failed(String),
    /// The pod was admitted: the webhook was not called.
    NotCalled,
}

/// Reads the apiserver's answer to the dry-run create.
fn outcome(answer: Result<(), String>) -> Outcome {
    match answer {
        Ok(()) => Outcome::NotCalled,
        Err(message) if message.contains(&format!("admission webhook \"{WEBHOOK}\" denied")) => {
            Outcome::Answered(message)
        }
        Err(message) => Outcome::Failed(message),
    }
}

pub fn run(args: &CheckWebhookArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(check(args))
}

async fn check(args: &CheckWebhookArgs) -> Result<(), String> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("cannot connect to the Kubernetes API: {e}"))?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {
            "generateName": "llm-injector-check-webhook-",
            "annotations": {MODEL_ANNOTATION: NO_SUCH_MODEL},
        },
        "spec": {"containers": [{"name": "check", "image": "registry.k8s.io/pause:3.10"}]},
    }))
    .map_err(|e| e.to_string())?;
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let started = Instant::now();
    loop {
        let attempt = Instant::now();
        let answer = pods
            .create(&params, &pod)
            .await
            .map(|_| ())
            .map_err(|e| match e {
                kube::Error::Api(status) => status.message,
                other => other.to_string(),
            });
        match outcome(answer) {
            Outcome::Answered(message) => {
                println!(
                    "ok: the apiserver called {WEBHOOK} for a pod in namespace {namespace} and it answered in {} ms: {message}",
                    attempt.elapsed().as_millis()
                );
                return Ok(());
            }
            Outcome::NotCalled => {
                return Err(format!(
                    "the apiserver admitted a dry-run pod of namespace {namespace} asking for model {NO_SUCH_MODEL:?} without calling {WEBHOOK}: \
                     the namespace is excluded (webhook.excludeNamespaces), not opted in (webhook.namespaceOptIn: label it llm.injector.dev/injection=enabled), \
                     or the MutatingWebhookConfiguration is missing"
                ));
            }
            Outcome::Failed(message) if started.elapsed() >= args.timeout => {
                return Err(format!(
                    "the apiserver could not get an answer from {WEBHOOK} within {:?}: {message}\n\
                     check: the server's pods are ready; the Service has endpoints; the webhook configuration's caBundle is the CA of the served certificate",
                    args.timeout
                ));
            }
            Outcome::Failed(message) => {
                eprintln!("not yet: {message}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_told_apart() {
        let denied = r#"admission webhook "inject.llm.injector.dev" denied the request: pod asks for LLMModel "llm-injector_check-webhook""#;
        let tls = r#"Internal error occurred: failed calling webhook "inject.llm.injector.dev": failed to call webhook: Post "https://llm-injector.llm-system.svc:443/mutate?timeout=5s": tls: failed to verify certificate: x509: certificate signed by unknown authority"#;
        let other = r#"admission webhook "other.example.com" denied the request: no"#;
        assert_eq!(
            outcome(Err(denied.to_owned())),
            Outcome::Answered(denied.to_owned())
        );
        assert_eq!(
            outcome(Err(tls.to_owned())),
            Outcome::Failed(tls.to_owned())
        );
        assert_eq!(
            outcome(Err(other.to_owned())),
            Outcome::Failed(other.to_owned())
        );
        assert_eq!(outcome(Ok(())), Outcome::NotCalled);
    }
}
