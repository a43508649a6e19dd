//! The CRDs on a real apiserver: server-side applied and Established,
//! explained by `kubectl explain`, listed by short name and category with
//! their printer columns, and every case of tests/crds/cel-cases.yaml
//! accepted or refused by the apiserver's own CEL as the Rust CEL tests
//! expect.

use serde_json::{Value, json};

use crate::{Suite, squash};

/// The CRDs of crds/, as JSON.
pub fn definitions(suite: &Suite) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(suite.root.join("crds"))
        .expect("crds/")
        .map(|entry| entry.expect("crds/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            serde_yaml::from_str(&std::fs::read_to_string(path).expect("CRD file"))
                .expect("CRD YAML")
        })
        .collect()
}

/// Applies crds/ server-side and waits for Established.
pub fn install(suite: &mut Suite) -> Result<(), String> {
    let crds = suite.root.join("crds");
    let out = suite.kubectl.run(
        &[
            "apply",
            "--server-side",
            "--field-manager=e2e",
            "-f",
            crds.to_str().expect("utf-8 path"),
        ],
        None,
    );
    suite.report.check(
        "CRDs are server-side applied (kubectl apply --server-side -f crds/)",
        out.ok().ok_or("refused"),
    );
    let mut names = vec!["wait", "--for=condition=Established", "--timeout=60s"];
    let definitions = definitions(suite);
    let crd_names: Vec<String> = definitions
        .iter()
        .map(|crd| {
            format!(
                "crd/{}",
                crd["metadata"]["name"].as_str().expect("CRD name")
            )
        })
        .collect();
    names.extend(crd_names.iter().map(String::as_str));
    let out = suite.kubectl.run(&names, None);
    let ok = out.success;
    suite.report.check(
        "the CRDs are Established",
        if ok { Ok(out.stdout) } else { Err(out.both()) },
    );
    if ok {
        Ok(())
    } else {
        Err("the CRDs did not become Established".into())
    }
}

/// `kubectl explain <plural>.spec...` for every field of every CRD's spec:
/// each is found and shows the first words of its description.
pub fn explain(suite: &mut Suite) {
    for crd in definitions(suite) {
        let plural = crd["spec"]["names"]["plural"]
            .as_str()
            .expect("plural")
            .to_string();
        // The apiserver publishes a new CRD's OpenAPI a moment after
        // Established; kubectl explain needs it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !suite.kubectl.run(&["explain", &plural], None).success
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let mut fields = Vec::new();
        collect_fields(schema, &format!("{plural}.spec"), &mut fields);
        let mut problems = Vec::new();
        for (path, description) in &fields {
            let out = suite.kubectl.run(&["explain", path], None);
            let said = squash(&out.stdout);
            let first_words: String = squash(description)
                .split(' ')
                .take(8)
                .collect::<Vec<_>>()
                .join(" ");
            if !out.success {
                problems.push(format!("kubectl explain {path}: {}", out.both()));
            } else if description.trim().is_empty() {
                problems.push(format!("{path} has no description in the CRD"));
            } else if !said.contains(&first_words) {
                problems.push(format!(
                    "kubectl explain {path} does not show {first_words:?}: {said}"
                ));
            }
        }
        let what = format!(
            "kubectl explain describes all {} fields of {plural}.spec",
            fields.len()
        );
        suite.report.problems(&what, problems);
    }
}

/// (kubectl explain path, description) of every property under `schema`.
fn collect_fields(schema: &Value, path: &str, out: &mut Vec<(String, String)>) {
    let object = if schema["type"] == "array" {
        &schema["items"]
    } else {
        schema
    };
    let Some(properties) = object["properties"].as_object() else {
        return;
    };
    for (name, property) in properties {
        let child = format!("{path}.{name}");
        out.push((
            child.clone(),
            property["description"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ));
        collect_fields(property, &child, out);
    }
}

/// After the catalog is applied: every short name and the category list the
/// objects, with the CRD's printer columns as the table's header.
pub fn listing(suite: &mut Suite, namespace: &str) {
    let definitions = definitions(suite);
    for crd in &definitions {
        let names = &crd["spec"]["names"];
        let kind = names["kind"].as_str().expect("kind");
        let columns: Vec<String> = crd["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|column| column["priority"].as_i64().unwrap_or(0) == 0)
            .map(|column| column["name"].as_str().expect("column name").to_uppercase())
            .collect();
        for short in names["shortNames"].as_array().into_iter().flatten() {
            let short = short.as_str().expect("short name");
            let out = suite.kubectl.run(&["get", short, "-n", namespace], None);
            let header: Vec<String> = out
                .stdout
                .lines()
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect();
            let mut want = vec!["NAME".to_string()];
            want.extend(
                columns
                    .iter()
                    .flat_map(|c| c.split(' ').map(str::to_string)),
            );
            let result = if !out.success {
                Err(out.both())
            } else if header != want {
                Err(format!(
                    "header {header:?}, wanted {want:?}:\n{}",
                    out.stdout
                ))
            } else if out.stdout.lines().count() < 2 {
                Err(format!("no {kind} listed:\n{}", out.both()))
            } else {
                Ok(out.stdout)
            };
            suite.report.check(
                &format!("kubectl get {short} lists {kind}s with the printer columns"),
                result,
            );
        }
    }
    let categories: std::collections::BTreeSet<&str> = definitions
        .iter()
        .flat_map(|crd| {
            crd["spec"]["names"]["categories"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter_map(Value::as_str)
        .collect();
    for category in categories {
        let out = suite
            .kubectl
            .run(&["get", category, "-n", namespace, "-o", "name"], None);
        let missing: Vec<String> = definitions
            .iter()
            .filter(|crd| {
                crd["spec"]["names"]["categories"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c == category))
            })
            .map(|crd| {
                format!(
                    "{}.{}/",
                    crd["spec"]["names"]["singular"].as_str().unwrap_or("?"),
                    crd["spec"]["group"].as_str().unwrap_or("?")
                )
            })
            .filter(|prefix| {
                !out.stdout
                    .lines()
                    .any(|line| line.starts_with(prefix.as_str()))
            })
            .collect();
        let result = if out.success && missing.is_empty() {
            Ok(out.stdout.clone())
        } else {
            Err(format!("missing {missing:?}: {}", out.both()))
        };
        suite.report.check(
            &format!("kubectl get {category} lists every kind of the category"),
            result,
        );
    }
}

/// Every case of tests/crds/cel-cases.yaml through the apiserver's own
/// validation (server dry run, before any webhook is registered).
pub fn cel_cases(suite: &mut Suite, namespace: &str) {
    let path = suite.root.join("tests/crds/cel-cases.yaml");
    let cases: Vec<Value> =
        serde_yaml::from_str(&std::fs::read_to_string(&path).expect("cel-cases.yaml"))
            .expect("cel-cases YAML");
    let mut problems = Vec::new();
    for case in &cases {
        let object = json!({
            "apiVersion": "llm.injector.dev/v1alpha1",
            "kind": case["kind"],
            "metadata": {"name": "x", "namespace": namespace},
            "spec": case["spec"],
        });
        let out = suite
            .kubectl
            .with_object(&["create", "--dry-run=server"], &object);
        let name = format!(
            "{} {:?}",
            case["kind"].as_str().unwrap_or("?"),
            case["case"].as_str().unwrap_or("?")
        );
        match case["rejects"].as_str() {
            None if !out.success => problems.push(format!(
                "{name}: refused, but the case is valid: {}",
                out.both()
            )),
            Some(fragment) if out.success => problems.push(format!(
                "{name}: accepted, but must be refused with {fragment:?}"
            )),
            Some(fragment) if !squash(&out.stderr).contains(&squash(fragment)) => problems.push(
                format!("{name}: refused without {fragment:?}: {}", out.both()),
            ),
            _ => {}
        }
    }
    let what = format!(
        "the apiserver's CEL agrees with tests/crds/cel-cases.yaml on all {} cases",
        cases.len()
    );
    suite.report.problems(&what, problems);
}
