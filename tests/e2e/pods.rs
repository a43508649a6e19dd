//! Pods through the apiserver: each workload file is created with kubectl
//! as users do, and every pod the apiserver stores, or a controller
//! (ReplicaSet, Deployment, StatefulSet, DaemonSet, Job, CronJob) makes, is
//! compared field by field with what `llm-injector inject` prints for the
//! same file.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Suite;
use crate::compare::{self, Differences};

/// The catalogs the golden files are injected with (tests/golden.rs).
pub const CATALOGS: [&str; 2] = ["examples/catalog", "tests/golden/catalog.yaml"];

/// `llm-injector inject -f FILE` with both catalogs: the printed documents
/// (List items flattened), or the error it printed.
pub fn injected(suite: &Suite, file: &Path) -> Result<Vec<Value>, String> {
    injected_with_warnings(suite, file).map(|(documents, _)| documents)
}

/// What `llm-injector inject` warned about one object of a file.
pub struct CliWarning {
    /// `Kind namespace/name`.
    pub object: String,
    pub message: String,
}

/// inject's warnings (`warning: FILE document N: Kind namespace/name:
/// message`), read with the suite's one parser of its output.
fn cli_warnings(stderr: &str) -> Vec<CliWarning> {
    crate::validation::findings(stderr)
        .into_values()
        .flat_map(|(_, warnings)| warnings)
        .filter_map(|warning| {
            let (object, message) = warning.split_once(": ")?;
            Some(CliWarning {
                object: object.to_string(),
                message: message.to_string(),
            })
        })
        .collect()
}

/// Like [`injected`], with the warnings inject printed.
pub fn injected_with_warnings(
    suite: &Suite,
    file: &Path,
) -> Result<(Vec<Value>, Vec<CliWarning>), String> {
    let mut command = std::process::Command::new(&suite.injector);
    command
        .current_dir(&suite.root)
        .arg("inject")
        .arg("-f")
        .arg(file);
    for catalog in CATALOGS {
        command.args(["--catalog", catalog]);
    }
    let out = command.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let warnings = cli_warnings(&String::from_utf8_lossy(&out.stderr));
    Ok((documents(&String::from_utf8_lossy(&out.stdout))?, warnings))
}

/// The documents of a YAML stream as JSON, `kind: List` items flattened.
pub fn documents(text: &str) -> Result<Vec<Value>, String> {
    let mut all = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value: Value = serde::Deserialize::deserialize(document).map_err(|e| e.to_string())?;
        flatten_lists(value, &mut all);
    }
    Ok(all)
}

fn flatten_lists(value: Value, into: &mut Vec<Value>) {
    match value {
        Value::Null => {}
        Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
            for item in map
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                flatten_lists(item, into);
            }
        }
        other => into.push(other),
    }
}

/// What one file came to: pods compared, and the differences.
pub struct WorkloadResult {
    pub pods: Vec<(String, Differences)>,
    pub other_objects: usize,
    /// Warnings kubectl showed that inject did not print for a Pod or
    /// workload of the file, or the reverse (the mutating webhook warns
    /// about pods, the advising one about workloads and typo'd keys).
    pub warning_mismatches: Vec<String>,
    /// How many of inject's warnings kubectl showed too.
    pub warnings_matched: usize,
}

/// The kinds whose warnings the webhooks give when they are created.
const WORKLOAD_KINDS: [&str; 7] = [
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
];

/// Compares the `Warning:` lines kubectl printed with inject's warnings about
/// the Pods and workloads of the same file.
fn compare_warnings(cli: &[CliWarning], kubectl_stderr: &str) -> (usize, Vec<String>) {
    // A ValidatingAdmissionPolicy's warning comes after the apiserver's
    // own words: "Validation failed for ValidatingAdmissionPolicy 'P' with
    // binding 'B': MESSAGE".
    let shown: Vec<&str> = kubectl_stderr
        .lines()
        .filter_map(|line| line.strip_prefix("Warning: "))
        .map(|line| {
            line.strip_prefix("Validation failed for ValidatingAdmissionPolicy '")
                .and_then(|rest| rest.split_once("': "))
                .map_or(line, |(_, message)| message)
        })
        .collect();
    let expected: Vec<&str> = cli
        .iter()
        .filter(|w| {
            let kind = w.object.split(' ').next().unwrap_or_default();
            WORKLOAD_KINDS.contains(&kind)
        })
        .map(|w| w.message.as_str())
        .collect();
    let mut mismatches = Vec::new();
    let matched = expected.iter().filter(|m| shown.contains(m)).count();
    for message in &expected {
        if !shown.contains(message) {
            mismatches.push(format!("inject warns, the webhook did not: {message}"));
        }
    }
    for message in &shown {
        if !expected.contains(message) {
            mismatches.push(format!("the webhook warns, inject did not: {message}"));
        }
    }
    (matched, mismatches)
}

/// Creates `file` with `kubectl create -f` (with `dry_run`, `--dry-run=server`)
/// and compares every pod of it with the printed documents. Deletes what it
/// created afterwards.
pub fn check_file(suite: &Suite, file: &Path, dry_run: bool) -> Result<WorkloadResult, String> {
    check_file_with(suite, file, dry_run, &["create"])
}

/// [`check_file`] with `kubectl apply --server-side` (no
/// last-applied-configuration annotation): the file's objects that exist
/// already (its LLMEngines and LLMModels, applied before) are kept.
pub fn check_file_applied(suite: &Suite, file: &Path) -> Result<WorkloadResult, String> {
    check_file_with(suite, file, false, &["apply", "--server-side"])
}

fn check_file_with(
    suite: &Suite,
    file: &Path,
    dry_run: bool,
    verb: &[&str],
) -> Result<WorkloadResult, String> {
    let (printed, cli) = injected_with_warnings(suite, file)?;
    let path = file.to_str().expect("utf-8 path");
    let mut args = verb.to_vec();
    args.extend(["-f", path, "-o", "json"]);
    if dry_run {
        args.push("--dry-run=server");
    }
    let out = suite.kubectl.run(&args, None);
    let (warnings_matched, warning_mismatches) = compare_warnings(&cli, &out.stderr);
    let created = out.json();
    let result = created.and_then(|created| {
        let mut stored = Vec::new();
        flatten_lists(created, &mut stored);
        if stored.len() != printed.len() {
            return Err(format!(
                "kubectl created {} objects, inject printed {}",
                stored.len(),
                printed.len()
            ));
        }
        let mut result = WorkloadResult {
            pods: Vec::new(),
            other_objects: 0,
            warning_mismatches,
            warnings_matched,
        };
        for (object, printed) in stored.iter().zip(&printed) {
            match expected_pod(printed) {
                None => result.other_objects += 1,
                Some(_) if object["kind"] == "Pod" => {
                    result
                        .pods
                        .push((describe(object), compare_pod(printed, object)));
                }
                Some(_) if dry_run => result.other_objects += 1,
                Some(template) => {
                    for pod in pods_of(suite, object)? {
                        result
                            .pods
                            .push((describe(&pod), compare_pod(&template, &pod)));
                    }
                }
            }
        }
        Ok(result)
    });
    if !dry_run {
        let delete = || suite.kubectl.delete_file(path);
        // kubectl deletes in file order: an LLMEngine listed before the
        // model that uses it is refused (engine_in_use) while the model
        // exists, and goes in a second pass, as a user would run it again.
        let first = delete();
        let out = if first.success { first } else { delete() };
        if !out.success {
            return Err(format!("cleaning up {path}: {}", out.both()));
        }
    }
    result
}

/// The injected containers (`llm-*`) of a stored pod that mount the pod's
/// API token: there must be none.
fn injected_with_token(pod: &Value) -> Vec<String> {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|list| pod["spec"][list].as_array().cloned().unwrap_or_default())
        .filter(|c| c["name"].as_str().is_some_and(|n| n.starts_with("llm-")))
        .filter(|c| {
            c["volumeMounts"].as_array().into_iter().flatten().any(|m| {
                m["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("kube-api-access-"))
            })
        })
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}

/// Compares a stored pod with the printed one, and adds a difference for
/// every injected container that got the API token.
pub fn compare_pod(printed: &Value, stored: &Value) -> Differences {
    let mut differences = compare::compare(printed, stored);
    for name in injected_with_token(stored) {
        differences.wrong.push(format!(
            "injected container {name} mounts the pod's API token (kube-api-access-*)"
        ));
    }
    differences
}

fn describe(object: &Value) -> String {
    format!(
        "{} {}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["namespace"].as_str().unwrap_or("?"),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// The pod a printed document stands for: itself for a Pod, its pod
/// template (as a pod) for a workload; None for other kinds.
fn expected_pod(printed: &Value) -> Option<Value> {
    let template = match printed["kind"].as_str()? {
        "Pod" => return Some(printed.clone()),
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" => {
            &printed["spec"]["template"]
        }
        "CronJob" => &printed["spec"]["jobTemplate"]["spec"]["template"],
        _ => return None,
    };
    let mut metadata = template["metadata"].clone();
    if let Some(namespace) = printed["metadata"].get("namespace") {
        metadata["namespace"] = namespace.clone();
    }
    Some(json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}))
}

/// The pods a controller made for `object`: waits until there are as many
/// as it should make (a CronJob is run once with `kubectl create job
/// --from`).
pub fn pods_of(suite: &Suite, object: &Value) -> Result<Vec<Value>, String> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let mut root_uid = object["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let want = match kind {
        "DaemonSet" => 1, // the one Node of the suite
        "Job" => object["spec"]["parallelism"].as_u64().unwrap_or(1),
        "CronJob" => {
            let job = format!("{name}-e2e");
            let created = suite
                .kubectl
                .run(
                    &[
                        "create",
                        "job",
                        &job,
                        "-n",
                        &namespace,
                        &format!("--from=cronjob/{name}"),
                        "-o",
                        "json",
                    ],
                    None,
                )
                .json()?;
            root_uid = created["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            created["spec"]["parallelism"].as_u64().unwrap_or(1)
        }
        _ => object["spec"]["replicas"].as_u64().unwrap_or(1),
    } as usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = suite
            .kubectl
            .run(
                &[
                    "get",
                    "pods,replicasets,jobs",
                    "-n",
                    &namespace,
                    "-o",
                    "json",
                ],
                None,
            )
            .json()?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let pods: Vec<Value> = items
            .iter()
            .filter(|item| item["kind"] == "Pod" && owned_by(item, &root_uid, &items))
            .cloned()
            .collect();
        if pods.len() >= want {
            return Ok(pods);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{kind} {namespace}/{name}: {} of {want} pods after 60 s",
                pods.len()
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Whether `item`'s owner chain reaches `uid`.
fn owned_by(item: &Value, uid: &str, all: &[Value]) -> bool {
    item["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|owner| {
            let owner_uid = owner["uid"].as_str().unwrap_or_default();
            owner_uid == uid
                || all
                    .iter()
                    .find(|o| o["metadata"]["uid"] == owner_uid)
                    .is_some_and(|o| owned_by(o, uid, all))
        })
}

/// One line per pod: the classes of what the apiserver added, or every
/// unexplained difference.
pub fn summary(result: &WorkloadResult) -> Result<String, String> {
    let mut lines = Vec::new();
    let mut wrong = false;
    for (pod, differences) in &result.pods {
        if differences.wrong.is_empty() {
            let mut added: Vec<String> = differences
                .added
                .iter()
                .map(|(class, n)| format!("{n} {class}"))
                .collect();
            if differences.canonical_quantities > 0 {
                added.push(format!(
                    "{} quantities in canonical form",
                    differences.canonical_quantities
                ));
            }
            lines.push(format!(
                "{pod}: same as inject; apiserver added {}",
                added.join(", ")
            ));
        } else {
            wrong = true;
            lines.push(format!(
                "{pod}: {} difference(s) no class explains:",
                differences.wrong.len()
            ));
            lines.extend(differences.wrong.iter().map(|w| format!("    {w}")));
        }
    }
    if result.pods.is_empty() {
        return Err("no pod was compared".into());
    }
    if result.other_objects > 0 {
        lines.push(format!(
            "({} other object(s) created, not pods)",
            result.other_objects
        ));
    }
    if result.warnings_matched > 0 {
        lines.push(format!(
            "kubectl showed inject's {} warning(s), and no other",
            result.warnings_matched
        ));
    }
    if !result.warning_mismatches.is_empty() {
        wrong = true;
        lines.extend(result.warning_mismatches.iter().cloned());
    }
    if wrong {
        Err(lines.join("\n"))
    } else {
        Ok(lines.join("\n"))
    }
}
