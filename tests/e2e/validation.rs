//! What the apiserver answers for bad objects once llm-injector is
//! registered: the documents the validation goldens (tests/golden/validate)
//! and the inject error goldens (tests/golden/errors) call wrong are refused
//! with the message `llm-injector validate` / `inject` prints, warnings come
//! back as kubectl's `Warning:`, and with `serve` stopped each webhook's
//! failure policy does what webhook-config/ says.

use std::path::Path;

use serde_json::{Value, json};

use crate::pods::documents;
use crate::{Suite, squash};

/// Errors and warnings by document number, each without its
/// `FILE document N: ` prefix.
pub type Findings = std::collections::BTreeMap<usize, (Vec<String>, Vec<String>)>;

/// The `error:`/`warning:` lines `llm-injector validate` or `inject` print.
pub fn findings(text: &str) -> Findings {
    let mut findings = Findings::new();
    for line in text.lines() {
        let (severity, rest) = match line.split_once(": ") {
            Some(("error", rest)) => (0, rest),
            Some(("warning", rest)) => (1, rest),
            _ => continue,
        };
        let Some((place, message)) = rest.split_once(": ") else {
            continue;
        };
        let Some(number) = place
            .split_once(" document ")
            .and_then(|(_, n)| n.split_whitespace().next())
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let entry = findings.entry(number).or_default();
        if severity == 0 {
            entry.0.push(message.to_string())
        } else {
            entry.1.push(message.to_string())
        }
    }
    findings
}

/// The findings of a golden file pair (`STEM.stdout` and `STEM.stderr`).
fn golden_findings(golden: &Path, stem: &str) -> Findings {
    let text: String = ["stdout", "stderr"]
        .iter()
        .map(|suffix| {
            std::fs::read_to_string(golden.join(format!("{stem}.{suffix}"))).unwrap_or_default()
        })
        .collect();
    findings(&text)
}

/// A message split into the object it is about (`team-a/p` of
/// `Pod team-a/p: `) and the rest: inject prints the kind, the webhook
/// names the object in its own words.
fn without_object(message: &str) -> (&str, &str) {
    match message.split_once(": ") {
        Some((object, rest)) if object.contains('/') => {
            (object.split(' ').next_back().unwrap_or(object), rest)
        }
        _ => ("", message),
    }
}

/// An LLMEngine with an empty spec: a CPU engine with every default.
fn cpu_engine(name: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMEngine",
        "metadata": {"name": name, "namespace": namespace}, "spec": {},
    })
}

/// An LLMModel of a small CPU model on `engine`.
fn small_model(name: &str, namespace: &str, engine: &str) -> Value {
    json!({
        "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": "qwen3:0.6b", "engineRef": {"name": engine}},
    })
}

/// The LLMEngine an LLMModel names.
fn engine_of(model: &Value) -> &str {
    model["spec"]["engineRef"]["name"]
        .as_str()
        .unwrap_or_default()
}

/// What the apiserver must say when it refuses `object` for `error` (a
/// finding of validate or inject): the object's name and the message. Two
/// things differ from the offline tools, for reasons of the cluster:
/// - a pod whose LLMModel was itself refused at apply time names a model
///   that does not exist;
/// - the hint after "not found" lists the models the cluster has, not the
///   files'.
fn expected_denial(
    suite: &Suite,
    object: &Value,
    namespace: &str,
    error: &str,
) -> (String, String) {
    let (name, rest) = without_object(error);
    let model = object["metadata"]["annotations"]["llm.injector.dev/model"]
        .as_str()
        .unwrap_or_default();
    let not_found = format!("LLMModel \"{model}\" (annotation llm.injector.dev/model) not found");
    let model_missing = object["kind"] == "Pod"
        && !model.is_empty()
        && !suite
            .kubectl
            .run(&["get", "llmmodel", model, "-n", namespace], None)
            .success;
    // Only a finding about the model's own contents becomes "not found"; one
    // about the annotation itself stays as it is.
    let about_model = rest.starts_with("LLMModel ");
    let rest = if (model_missing && about_model) || rest.starts_with(&not_found) {
        not_found
    } else {
        rest.to_string()
    };
    (name.to_string(), squash(&rest))
}

/// Whether the apiserver's answer `said` refuses with `error`: our message
/// from the webhook, or, when the CRD's own schema or CEL rules refuse the
/// object first (the webhook is then never called), the apiserver's
/// "is invalid" naming the same field or the object that holds it.
fn refused_as(said: &str, name: &str, message: &str, error: &str) -> bool {
    if said.contains(message) && said.contains(name) {
        return true;
    }
    let (_, rest) = without_object(error);
    let field = rest.split(':').next().unwrap_or_default();
    let mut path: Vec<&str> = field
        .split('.')
        .map(|part| part.split('[').next().unwrap_or(part))
        .collect();
    if !said.contains(" is invalid: ") {
        return false;
    }
    while !path.is_empty() {
        if said.contains(&format!("{}: ", path.join(".")))
            || said.contains(&format!("{}[", path.join(".")))
        {
            return true;
        }
        path.pop();
    }
    false
}

/// The documents of `file` created one by one in `namespace`, in order (so
/// each sees the ones before it, as `validate` sees the whole file, and the
/// suite waits for serve's cache to hold each): documents with an error in
/// `findings` must be refused with each of its messages (see [`refused_as`]),
/// LLMEngines and LLMModels with warnings accepted with each as `Warning:`.
/// Unless `keep`, what was created is deleted again.
pub fn documents_through_apiserver(
    suite: &mut Suite,
    file: &Path,
    findings: &Findings,
    namespace: &str,
    keep: bool,
) {
    let text = std::fs::read_to_string(file).expect("input file");
    let objects = documents(&text).expect("input parses");
    let shown = file
        .strip_prefix(&suite.root)
        .unwrap_or(file)
        .display()
        .to_string();
    let mut problems = Vec::new();
    let mut created = Vec::new();
    let (mut accepted, mut refused, mut by_schema, mut warned) = (0, 0, 0, 0);
    let mut engine_later_warned = 0;
    for (index, object) in objects.iter().enumerate() {
        let number = index + 1;
        let (errors, warnings) = findings.get(&number).cloned().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or("?");
        let name = object["metadata"]["name"].as_str().unwrap_or("?");
        let what = format!("document {number} ({kind} {name})");
        let expected: Vec<(String, String)> = errors
            .iter()
            .map(|e| expected_denial(suite, object, namespace, e))
            .collect();
        // An LLMModel whose engine is defined further down the file.
        let engine_later = kind == "LLMModel"
            && objects[number..].iter().any(|o| {
                o["kind"] == "LLMEngine"
                    && o["metadata"]["name"].as_str() == Some(engine_of(object))
            });
        let cached = suite.cached(kind);
        let out = suite
            .kubectl
            .with_object(&["create", "-n", namespace], object);
        let said = squash(&out.stderr);
        if out.success {
            accepted += 1;
            created.push(format!("{}/{name}", kind.to_lowercase()));
            if let Some(count) = cached {
                suite.wait_for_cache(kind, count + 1);
            }
        }
        if !errors.is_empty() && engine_later {
            // validate read the whole file; the apiserver has not seen the
            // engine yet, and says so.
            let warning = format!("LLMEngine \"{}\" does not exist", engine_of(object));
            if out.success && said.contains("Warning:") && said.contains(&warning) {
                engine_later_warned += 1;
            } else {
                problems.push(format!(
                    "{what}: its LLMEngine comes later in the file, so it must be accepted with `Warning: ... {warning}`; kubectl said: {said}"
                ));
            }
        } else if !errors.is_empty() {
            if out.success {
                problems.push(format!(
                    "{what}: accepted, but validate says: {}",
                    errors.join("; ")
                ));
                continue;
            }
            refused += 1;
            if said.contains("denied the request") {
                // The webhook reports every finding at once.
                for ((object_name, message), error) in expected.iter().zip(&errors) {
                    if !refused_as(&said, object_name, message, error) {
                        problems.push(format!(
                            "{what}: refused without {message:?}; kubectl said: {said}"
                        ));
                    }
                }
            } else {
                // The CRD's schema or CEL refused it first, so the webhook
                // never saw it: at least one finding must be named.
                by_schema += 1;
                let named = expected
                    .iter()
                    .zip(&errors)
                    .any(|((object_name, message), error)| {
                        refused_as(&said, object_name, message, error)
                    });
                if !named {
                    problems.push(format!(
                        "{what}: refused without naming any of {errors:?}; kubectl said: {said}"
                    ));
                }
            }
        } else if !out.success {
            problems.push(format!(
                "{what}: refused, but validate finds no error: {said}"
            ));
        } else if kind.starts_with("LLM") {
            for warning in &warnings {
                warned += 1;
                if !said.contains(&format!("Warning: {}", squash(warning))) {
                    problems.push(format!(
                        "{what}: no `Warning: {warning}`; kubectl said: {said}"
                    ));
                }
            }
        }
    }
    if !keep {
        for object in created.iter().rev() {
            suite
                .kubectl
                .run(&["delete", "-n", namespace, object, "--wait=false"], None);
        }
    }
    let what = format!(
        "{shown} through the apiserver: {accepted} accepted; {refused} refused ({} by the webhook with validate's messages, {by_schema} by the CRD's schema or CEL first, naming the field); {warned} warning(s) as `Warning:`; {engine_later_warned} model(s) before their engine accepted with a warning",
        refused - by_schema
    );
    suite.report.problems(&what, problems);
}

/// [`documents_through_apiserver`] for an input of tests/golden/validate,
/// judged by its golden output.
pub fn golden_documents(suite: &mut Suite, stem: &str, namespace: &str) {
    let dir = suite.root.join("tests/golden/validate");
    let findings = golden_findings(&dir, stem);
    documents_through_apiserver(
        suite,
        &dir.join(format!("{stem}.yaml")),
        &findings,
        namespace,
        false,
    );
}

/// Applies a catalog file document by document, judged by what
/// `llm-injector validate` says of it now: the objects it calls wrong are
/// refused at apply time, the rest stay.
pub fn catalog_through_apiserver(
    suite: &mut Suite,
    file: &Path,
    namespace: &str,
    other_catalog: &Path,
) {
    let out = std::process::Command::new(&suite.injector)
        .arg("validate")
        .arg("-f")
        .arg(file)
        .arg("--catalog")
        .arg(other_catalog)
        .arg("-n")
        .arg(namespace)
        .output()
        .expect("llm-injector validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    documents_through_apiserver(suite, file, &findings(&text), namespace, true);
}

/// Every Pod of tests/golden/errors is refused with the message `inject`
/// prints for it.
pub fn inject_errors(suite: &mut Suite) {
    inject_errors_labelled(suite, "");
}

/// [`inject_errors`], each check's name ending with `label`.
pub fn inject_errors_labelled(suite: &mut Suite, label: &str) {
    let dir = suite.root.join("tests/golden/errors");
    let mut stems: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/golden/errors")
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".yaml")
                .map(str::to_string)
        })
        .collect();
    stems.sort();
    for stem in stems {
        let text = std::fs::read_to_string(dir.join(format!("{stem}.yaml"))).expect("error case");
        let Ok(objects) = documents(&text) else {
            continue;
        }; // malformed YAML: kubectl's own error
        let findings = golden_findings(&dir, &stem);
        for (index, object) in objects.iter().enumerate() {
            let Some((errors, _)) = findings.get(&(index + 1)) else {
                continue;
            };
            if object["kind"] != "Pod" || errors.is_empty() {
                continue;
            }
            let namespace = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default");
            let expected: Vec<(String, String)> = errors
                .iter()
                .map(|e| expected_denial(suite, object, namespace, e))
                .collect();
            let out = suite.kubectl.with_object(&["create"], object);
            let said = squash(&out.stderr);
            let missing: Vec<&(String, String)> = expected
                .iter()
                .filter(|(name, message)| !said.contains(message) || !said.contains(name))
                .collect();
            let result = if out.success {
                suite
                    .kubectl
                    .with_object(&["delete", "--wait=false"], object);
                Err(format!("created, but inject says: {}", errors.join("; ")))
            } else if !missing.is_empty() {
                Err(format!("refused without {missing:?}: {said}"))
            } else {
                Ok(said)
            };
            let what = format!(
                "tests/golden/errors/{stem}.yaml: the pod is refused with inject's message{}",
                if label.is_empty() {
                    String::new()
                } else {
                    format!(" ({label})")
                }
            );
            suite.report.check(&what, result);
        }
    }
}

/// An LLMModel whose engine does not exist yet is accepted with a warning
/// naming the missing engine; creating the engine afterwards is fine.
pub fn model_before_engine(suite: &mut Suite, namespace: &str) {
    let model = small_model("engine-later", namespace, "engine-not-yet");
    let out = suite.kubectl.with_object(&["create"], &model);
    let result = if out.success
        && out.stderr.contains("Warning:")
        && out.stderr.contains("engine-not-yet")
    {
        Ok(out.stderr.trim().to_string())
    } else {
        Err(out.both())
    };
    suite.report.check(
        "an LLMModel created before its LLMEngine is accepted with a `Warning:`",
        result,
    );
    let engine = cpu_engine("engine-not-yet", namespace);
    let out = suite.kubectl.with_object(&["create"], &engine);
    suite.report.check(
        "its LLMEngine can be created afterwards",
        out.ok().ok_or("refused"),
    );
}

/// Deleting an engine that an LLMModel uses is refused, naming the model.
pub fn delete_engine_in_use(suite: &mut Suite, namespace: &str) {
    let out = suite.kubectl.run(
        &[
            "delete",
            "llmengine",
            "engine-not-yet",
            "-n",
            namespace,
            "--wait=false",
        ],
        None,
    );
    let result = if !out.success && out.stderr.contains("engine-later") {
        Ok(squash(&out.stderr))
    } else {
        Err(out.both())
    };
    suite.report.check(
        "deleting an LLMEngine an LLMModel uses is refused, naming the model",
        result,
    );
    for object in ["llmmodel/engine-later", "llmengine/engine-not-yet"] {
        suite
            .kubectl
            .run(&["delete", object, "-n", namespace, "--wait=false"], None);
    }
}

/// With serve stopped: each webhook of webhook-config/ behaves as its
/// failurePolicy says: Fail refuses with "failed calling webhook", Ignore
/// lets the request through. A pod that asks for no model is not sent to
/// the webhook at all (matchConditions), so it is created.
pub fn webhook_down(suite: &mut Suite, registrations: &[Value], namespace: &str) {
    let policy_of = |webhook: &str| {
        registrations
            .iter()
            .flat_map(|config| config["webhooks"].as_array().cloned().unwrap_or_default())
            .find(|hook| hook["name"] == webhook)
            .and_then(|hook| hook["failurePolicy"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("webhook-config/ has no webhook {webhook}"))
    };
    let pod = |name: &str, annotated: bool| {
        let annotations = if annotated {
            json!({"llm.injector.dev/model": "llama-cpu"})
        } else {
            json!({})
        };
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": {"containers": [{"name": "app", "image": "ghcr.io/example/app:1.0"}]},
        })
    };
    let model = small_model("while-down", namespace, "ollama-cpu");
    let engine = cpu_engine("deleted-while-down", namespace);
    let mut typo = pod("typo-while-down", false);
    typo["metadata"]["annotations"] = json!({"llm.injector.dev/models": "llama-cpu"});
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "advised-while-down", "namespace": namespace},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "advised-while-down"}},
            "template": {
                "metadata": {
                    "labels": {"app": "advised-while-down"},
                    "annotations": {"llm.injector.dev/model": "llama-cpu"},
                },
                "spec": {"containers": [{"name": "app", "image": "ghcr.io/example/app:1.0"}]},
            },
        },
    });
    // Created while serve still ran, deleted below while it is down.
    let cases: [(&str, &str, Value, &[&str]); 5] = [
        (
            "inject.llm.injector.dev",
            "an annotated pod",
            pod("annotated-while-down", true),
            &["create"],
        ),
        (
            "validate.llm.injector.dev",
            "an LLMModel",
            model,
            &["create"],
        ),
        (
            "validate-delete.llm.injector.dev",
            "deleting an LLMEngine",
            engine,
            &["delete", "--wait=false"],
        ),
        (
            "advise-pods.llm.injector.dev",
            "a pod with a typo'd opt-in key",
            typo,
            &["create"],
        ),
        (
            "advise-workloads.llm.injector.dev",
            "a Deployment whose template asks for a model",
            deployment,
            &["create"],
        ),
    ];
    for (webhook, what, object, verb) in cases {
        let policy = policy_of(webhook);
        let out = suite.kubectl.with_object(verb, &object);
        let message = format!("failed calling webhook \"{webhook}\"");
        let result = match policy.as_str() {
            "Fail" if !out.success && out.stderr.contains(&message) => Ok(squash(&out.stderr)),
            "Ignore" if out.success => Ok(out.stdout.trim().to_string()),
            _ => Err(out.both()),
        };
        suite.report.check(
            &format!(
                "webhook down, {webhook} failurePolicy {policy}: {what} is {}",
                if policy == "Fail" {
                    "refused"
                } else {
                    "let through"
                }
            ),
            result,
        );
        if out.success && verb == ["create"] {
            suite
                .kubectl
                .with_object(&["delete", "--wait=false"], &object);
        }
    }
    let out = suite
        .kubectl
        .with_object(&["create"], &pod("plain-while-down", false));
    suite.report.check(
        "webhook down: a pod that asks for no model is still created (never sent to the webhook)",
        out.ok().ok_or("refused"),
    );
}

/// The LLMEngine the delete case needs, created while serve runs.
pub fn prepare_webhook_down(suite: &mut Suite, namespace: &str) {
    let engine = cpu_engine("deleted-while-down", namespace);
    let out = suite.kubectl.with_object(&["create"], &engine);
    suite.report.check(
        "an unused LLMEngine to delete while the webhook is down",
        out.ok().ok_or("refused"),
    );
}
