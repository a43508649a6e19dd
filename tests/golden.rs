//! Golden tests of `llm-injector inject`, run through the real binary.
//!
//! - `examples/workloads/X.yaml` → `tests/golden/examples/X.injected.yaml`
//! - `tests/golden/cases/X.yaml` → `X.injected.yaml` (+ `X.stderr` for warnings)
//! - `tests/golden/errors/X.yaml` → `X.stderr`, exit status 1, nothing on stdout
//! - `tests/golden/explain/X.yaml` → `X.stdout` and `X.stderr` of
//!   `llm-injector explain`, exit status 1 exactly when one object is refused
//!
//! Refresh with `UPDATE_GOLDEN=1 cargo test --release --test golden` and review the diff.

mod support;

use std::process::Output;

use support::{check_golden, golden_path, inputs};

const CATALOGS: [&str; 2] = ["examples/catalog", "tests/golden/catalog.yaml"];

/// Runs `llm-injector inject -f <input>` with both catalogs, from the repo root.
fn inject(input: &str, stdin: Option<&[u8]>) -> Output {
    let mut args = vec!["inject", "-f", input];
    for catalog in CATALOGS {
        args.extend(["--catalog", catalog]);
    }
    support::run(&args, stdin)
}

/// The inputs of a golden directory: `*.yaml` but not `*.injected.yaml`.
fn yaml_inputs(dir: &str) -> Vec<String> {
    inputs(dir, |p| {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        name.ends_with(".yaml") && !name.ends_with(".injected.yaml")
    })
}

/// Injects every input, compares stdout and stderr with the golden files and
/// checks that injecting the output again changes nothing.
fn check_successes(input_dir: &str, golden_dir: &str) {
    let mut failures = Vec::new();
    for input in yaml_inputs(input_dir) {
        let output = inject(&input, None);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            failures.push(format!(
                "{input}: exit {:?}\n{stderr}",
                output.status.code()
            ));
            continue;
        }
        failures.extend(check_golden(
            &golden_path(&input, golden_dir, ".injected.yaml"),
            &stdout,
        ));
        failures.extend(check_golden(
            &golden_path(&input, golden_dir, ".stderr"),
            &stderr,
        ));

        let again = inject("-", Some(stdout.as_bytes()));
        if String::from_utf8_lossy(&again.stdout) != stdout {
            failures.push(format!("{input}: injecting the output again changed it"));
        }
        failures.extend(check_uninject(&input, &stdout));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `llm-injector uninject` of the injected output gives the input back,
/// byte for byte (the YAML as written), and uninjecting that again changes
/// nothing.
fn check_uninject(input: &str, injected: &str) -> Vec<String> {
    let uninject = |text: &str| support::run(&["uninject", "-f", "-"], Some(text.as_bytes()));
    let output = uninject(injected);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return vec![format!(
            "{input}: uninject failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )];
    }
    let original = std::fs::read_to_string(input).unwrap_or_default();
    let mut failures = Vec::new();
    if stdout != original {
        failures.push(format!(
            "{input}: uninject of the injected output is not the input:\n{}",
            pretty_assertions::StrComparison::new(&original, &stdout)
        ));
    }
    let again = uninject(&stdout);
    if String::from_utf8_lossy(&again.stdout) != stdout {
        failures.push(format!("{input}: uninjecting again changed it"));
    }
    failures
}

#[test]
fn explain_matches_golden_files() {
    let mut failures = Vec::new();
    for input in yaml_inputs("tests/golden/explain") {
        let mut args = vec!["explain", "-f", input.as_str()];
        for catalog in CATALOGS {
            args.extend(["--catalog", catalog]);
        }
        let output = support::run(&args, None);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let refused = stdout.lines().any(|l| l.ends_with(": refused"));
        if output.status.code() != Some(i32::from(refused)) {
            failures.push(format!("{input}: exit {:?}", output.status.code()));
        }
        for (suffix, text) in [(".stdout", &stdout), (".stderr", &stderr)] {
            failures.extend(check_golden(
                &golden_path(&input, "tests/golden/explain", suffix),
                text,
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn examples_match_golden_files() {
    check_successes("examples/workloads", "tests/golden/examples");
}

#[test]
fn cases_match_golden_files() {
    check_successes("tests/golden/cases", "tests/golden/cases");
}

#[test]
fn errors_exit_1_with_golden_messages_and_print_nothing() {
    let mut failures = Vec::new();
    for input in yaml_inputs("tests/golden/errors") {
        let output = inject(&input, None);
        if output.status.code() != Some(1) {
            failures.push(format!("{input}: exit {:?}, want 1", output.status.code()));
        }
        if !output.stdout.is_empty() {
            failures.push(format!("{input}: printed to stdout on failure"));
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.trim().is_empty() {
            failures.push(format!("{input}: no error message"));
        }
        failures.extend(check_golden(
            &golden_path(&input, "tests/golden/errors", ".stderr"),
            &stderr,
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every golden file belongs to an input: one left behind by a renamed or
/// deleted case would otherwise never be compared again.
#[test]
fn no_orphan_golden_files() {
    let mut orphans = Vec::new();
    for (golden_dir, input_dir) in [
        ("tests/golden/examples", "examples/workloads"),
        ("tests/golden/cases", "tests/golden/cases"),
        ("tests/golden/errors", "tests/golden/errors"),
    ] {
        let goldens = inputs(golden_dir, |p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.ends_with(".injected.yaml") || name.ends_with(".stderr")
        });
        for golden in goldens {
            let name = golden.rsplit('/').next().unwrap_or_default();
            let stem = name
                .strip_suffix(".injected.yaml")
                .or_else(|| name.strip_suffix(".stderr"))
                .unwrap_or(name);
            if !support::root()
                .join(input_dir)
                .join(format!("{stem}.yaml"))
                .is_file()
            {
                orphans.push(format!("{golden} has no input {input_dir}/{stem}.yaml"));
            }
        }
    }
    assert!(orphans.is_empty(), "{}", orphans.join("\n"));
}

/// `llm-injector policies -f X.yaml` → `tests/golden/policies/X.policies.yaml`
/// (and `X.stderr`): the admission policies of the models of each input,
/// reviewed in the diff; the end-to-end suite has a real apiserver store
/// and run them.
#[test]
fn policies_match_golden_files() {
    let mut failures = Vec::new();
    let inputs = inputs("tests/golden/policies", |p| {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        name.ends_with(".yaml") && !name.ends_with(".policies.yaml")
    });
    assert!(!inputs.is_empty(), "no tests/golden/policies/*.yaml");
    for input in inputs {
        let output = support::run(&["policies", "-f", input.as_str()], None);
        if !output.status.success() {
            failures.push(format!(
                "{input}: exit {:?}: {}",
                output.status.code(),
                String::from_utf8_lossy(&output.stderr)
            ));
            continue;
        }
        for (suffix, text) in [
            (".policies.yaml", &output.stdout),
            (".stderr", &output.stderr),
        ] {
            failures.extend(check_golden(
                &golden_path(&input, "tests/golden/policies", suffix),
                &String::from_utf8_lossy(text),
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
