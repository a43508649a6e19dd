//! Golden tests of `llm-injector validate`, run through the real binary, and
//! the README's table of validation rules.
//!
//! - `tests/golden/validate/X.yaml` or `X/` (a directory) → `X.stderr` (the
//!   findings) and `X.stdout` (the summary), validated with
//!   `--catalog examples/catalog -n team-a`; exit status 1 exactly when there
//!   is an error. When `tests/fixtures/nodes/X.yaml` exists, it is the
//!   cluster's Nodes (`--nodes`).
//!
//! Refresh with `UPDATE_GOLDEN=1 cargo test --release --test validate` and review the diff.

mod support;

use std::process::Output;

use llm_injector::validate::Rule;
use support::{check_golden, golden_path, inputs};

const DIR: &str = "tests/golden/validate";

fn validate(inputs: &[&str], stdin: Option<&[u8]>) -> Output {
    validate_on(inputs, None, stdin)
}

/// [`validate`] with the Nodes of `nodes` (a file), when given.
fn validate_on(inputs: &[&str], nodes: Option<&str>, stdin: Option<&[u8]>) -> Output {
    let mut args = vec!["validate", "--catalog", "examples/catalog", "-n", "team-a"];
    for input in inputs {
        args.extend(["-f", input]);
    }
    if let Some(nodes) = nodes {
        args.extend(["--nodes", nodes]);
    }
    support::run(&args, stdin)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn cases_match_golden_files() {
    let mut failures = Vec::new();
    let cases = inputs(DIR, |p| {
        p.is_dir() || p.extension().is_some_and(|e| e == "yaml")
    });
    for input in cases {
        let stem = std::path::Path::new(&input)
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let nodes = format!("tests/fixtures/nodes/{stem}.yaml");
        let nodes = support::root().join(&nodes).exists().then_some(nodes);
        let output = validate_on(&[&input], nodes.as_deref(), None);
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        let errors = stderr.lines().any(|l| l.starts_with("error: "));
        let wanted = if errors { 1 } else { 0 };
        if output.status.code() != Some(wanted) {
            failures.push(format!(
                "{input}: exit {:?}, want {wanted}\n{stderr}",
                output.status.code()
            ));
        }
        if !stdout.starts_with("validated ") || stdout.lines().count() != 1 {
            failures.push(format!(
                "{input}: stdout is not one summary line: {stdout:?}"
            ));
        }
        failures.extend(check_golden(&golden_path(&input, DIR, ".stderr"), &stderr));
        failures.extend(check_golden(&golden_path(&input, DIR, ".stdout"), &stdout));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The examples are valid: no error, no warning.
#[test]
fn examples_validate_cleanly() {
    let output = validate(&["examples/catalog", "examples/workloads"], None);
    assert_eq!(text(&output.stderr), "");
    assert_eq!(
        text(&output.stdout),
        "validated 14 objects: 0 errors, 0 warnings\n"
    );
    assert!(output.status.success());
}

/// `-f -` reads stdin; `-f` repeats and mixes with files.
#[test]
fn reads_stdin_and_several_inputs() {
    let model = "apiVersion: llm.injector.dev/v1alpha1\nkind: LLMModel\nmetadata: {name: m, namespace: team-b}\nspec: {model: 'qwen3:8b', engineRef: {name: team-gpu}, parallelism: {model: 3}}\n";
    let output = validate(
        &["-", &format!("{DIR}/apply-dir/30-engine.yaml")],
        Some(model.as_bytes()),
    );
    assert_eq!(
        text(&output.stderr),
        "error: <stdin> document 1: LLMModel team-b/m: spec.parallelism.model: 3 exceeds LLMEngine \"team-gpu\" accelerator.maxDevicesPerInstance 2; lower it or raise the engine's limit\n"
    );
    assert_eq!(output.status.code(), Some(1));
    // A missing input is an error of its own, before anything is validated.
    let output = validate(&[&format!("{DIR}/no-such-file.yaml")], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("no-such-file.yaml: cannot read"));
    assert_eq!(text(&output.stdout), "");
}

/// Every rule has a row in the README's "Validation rules" table.
#[test]
fn readme_lists_every_rule() {
    let readme = std::fs::read_to_string(support::root().join("README.md")).expect("README.md");
    let section = readme
        .split("\n## Validation rules\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README.md has a section \"## Validation rules\"");
    let missing: Vec<&str> = Rule::ALL
        .iter()
        .map(|r| r.id())
        .filter(|id| !section.contains(&format!("| `{id}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "rules without a row in the README: {missing:?}"
    );
}
