//! Golden tests of `llm-injector inject`, run through the real binary.
//!
//! - `examples/workloads/X.yaml` → `tests/golden/examples/X.injected.yaml`
//! - `tests/golden/cases/X.yaml` → `X.injected.yaml` (+ `X.stderr` for warnings)
//! - `tests/golden/errors/X.yaml` → `X.stderr`, exit status 1, nothing on stdout
//!
//! Refresh with `UPDATE_GOLDEN=1 cargo test --release --test golden` and review the diff.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const CATALOGS: [&str; 2] = ["examples/catalog", "tests/golden/catalog.yaml"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some()
}

/// Runs `llm-injector inject -f <input>` with both catalogs, from the repo root.
fn inject(input: &str, stdin: Option<&[u8]>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_llm-injector"));
    command.current_dir(root()).args(["inject", "-f", input]);
    for catalog in CATALOGS {
        command.args(["--catalog", catalog]);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("run llm-injector");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(stdin.unwrap_or_default())
        .expect("write stdin");
    drop(pipe);
    child.wait_with_output().expect("wait for llm-injector")
}

/// Compares `actual` with the golden file, or rewrites it under UPDATE_GOLDEN.
/// Returns a description of the mismatch.
fn check_golden(path: &Path, actual: &str) -> Option<String> {
    if updating() {
        if actual.is_empty() {
            let _ = std::fs::remove_file(path);
        } else {
            std::fs::write(path, actual).expect("write golden file");
        }
        return None;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    (expected != actual).then(|| {
        format!(
            "{} differs (UPDATE_GOLDEN=1 to refresh):\n{}",
            path.display(),
            pretty_assertions::StrComparison::new(&expected, actual)
        )
    })
}

fn inputs(dir: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join(dir))
        .expect("read golden dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.ends_with(".yaml") && !name.ends_with(".injected.yaml")
        })
        .map(|p| {
            format!(
                "{dir}/{}",
                p.file_name().unwrap_or_default().to_string_lossy()
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {dir}");
    files
}

fn golden_path(input: &str, golden_dir: &str, suffix: &str) -> PathBuf {
    let stem = Path::new(input)
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    root().join(golden_dir).join(format!("{stem}{suffix}"))
}

/// Injects every input, compares stdout and stderr with the golden files and
/// checks that injecting the output again changes nothing.
fn check_successes(input_dir: &str, golden_dir: &str) {
    let mut failures = Vec::new();
    for input in inputs(input_dir) {
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
    for input in inputs("tests/golden/errors") {
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
