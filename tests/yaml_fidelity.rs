//! `llm-injector inject` writes YAML that means to kubectl exactly what its
//! input meant: the corpus in `tests/yaml_fidelity/` (see its README) goes
//! through the binary unannotated (output = input, byte for byte) and
//! annotated (everything of the input kept, every comment kept, injecting
//! again changes nothing). `.ci/yaml_fidelity.py` reads the same outputs
//! with PyYAML and kubernetes-validate.

mod support;

use serde_json::Value;

use llm_injector::yaml::load;

fn corpus() -> Vec<(String, String)> {
    support::inputs("tests/yaml_fidelity", |p| {
        p.extension().is_some_and(|e| e == "yaml")
    })
    .into_iter()
    .map(|file| {
        let text = std::fs::read_to_string(support::root().join(&file)).expect("corpus file");
        (file, text)
    })
    .collect()
}

fn inject(text: &str) -> Result<String, String> {
    let args = [
        "inject",
        "-n",
        "team-a",
        "-f",
        "-",
        "--catalog",
        "examples/catalog",
    ];
    let output = support::run(&args, Some(text.as_bytes()));
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).expect("UTF-8 output"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Whether `output` holds everything of `input`: the same scalars, every key
/// of each mapping, and each list's items as the first items of the output's
/// (the last, for a container's env).
fn contains(input: &Value, output: &Value, path: &str, missing: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                match b.get(key) {
                    Some(other) => contains(value, other, &format!("{path}.{key}"), missing),
                    None => missing.push(format!("{path}.{key} is gone")),
                }
            }
        }
        // A container's env: injected entries go first (so `$(VAR)` of the
        // user's resolve), the user's follow as written.
        (Value::Array(a), Value::Array(b)) if a.len() <= b.len() && path.ends_with(".env") => {
            let shift = b.len() - a.len();
            for (i, (value, other)) in a.iter().zip(&b[shift..]).enumerate() {
                contains(value, other, &format!("{path}[{i}]"), missing);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() <= b.len() => {
            for (i, (value, other)) in a.iter().zip(b).enumerate() {
                contains(value, other, &format!("{path}[{i}]"), missing);
            }
        }
        (a, b) if a == b => {}
        (a, b) => missing.push(format!("{path}: {a} became {b}")),
    }
}

#[test]
fn documents_nobody_annotated_come_out_byte_for_byte() {
    for (file, text) in corpus() {
        let unannotated = text.replace("__MODEL_ANNOTATION__", "example.com/unrelated");
        let output = inject(&unannotated).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            output == unannotated,
            "{file}: the output differs from the input:\n{output}"
        );
    }
}

#[test]
fn injected_documents_keep_all_of_the_input_and_its_comments() {
    let mut failures = Vec::new();
    for (file, text) in corpus() {
        let annotated = text.replace("__MODEL_ANNOTATION__", "llm.injector.dev/model");
        let output = match inject(&annotated) {
            Ok(output) => output,
            Err(e) => {
                failures.push(format!("{file}: inject failed: {e}"));
                continue;
            }
        };
        assert_ne!(output, annotated, "{file}: nothing was injected");
        let (before, after) = (
            load(&annotated).expect("input"),
            load(&output).expect("output"),
        );
        assert_eq!(before.len(), after.len(), "{file}: document count");
        let mut missing = Vec::new();
        for (a, b) in before.iter().zip(&after) {
            contains(
                &a.root.value,
                &b.root.value,
                &format!("document {}", a.number),
                &mut missing,
            );
        }
        failures.extend(missing.into_iter().map(|m| format!("{file}: {m}")));
        for comment in annotated.lines().filter(|l| l.contains('#')) {
            if !output.contains(comment) {
                failures.push(format!("{file}: the line {comment:?} is gone"));
            }
        }
        match inject(&output) {
            Ok(again) if again == output => {}
            Ok(_) => failures.push(format!("{file}: injecting the output again changed it")),
            Err(e) => failures.push(format!("{file}: injecting the output again failed: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
