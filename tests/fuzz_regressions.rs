//! The CI side of fuzzing (issue 7): the checks of the cargo-fuzz targets in
//! `fuzz/` (shared through `fuzz/src/lib.rs`) replayed on
//!
//! - every seed of `fuzz/seeds/` (the captured apiserver reviews),
//! - every input the fuzzer found that once failed, `tests/fuzz/<target>/`
//!   (fixed; kept as regressions) and `tests/fuzz/open/<target>/` (not fixed
//!   yet: one `#[ignore]` test each),
//! - and proptest mutations of the captured reviews, byte-level (truncate,
//!   flip, insert, delete, splice, JSON tokens) and JSON-level (replace or
//!   remove a node), through `review::mutate` and `review::validate`.
//!
//! Every result must be a 400 or a valid AdmissionReview response for the
//! request's uid; a patch must apply to the request's object. The fuzzer
//! itself runs by hand (fuzz/README.md). Run: `cargo test --release --test fuzz_regressions`.

#[path = "../fuzz/src/lib.rs"]
mod fuzz_checks;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fuzz_checks::{check_inject, check_mutate, check_validate, repo_root};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

/// Files of a directory, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// The check of a fuzz target, by the target's name.
fn check_of(target: &str) -> fn(&[u8]) -> &'static str {
    match target {
        "mutate_body" => check_mutate,
        "validate_body" => check_validate,
        "inject_pod" => check_inject,
        other => panic!("no fuzz target {other}"),
    }
}

/// Replays one input file through `target`'s check, naming the file on
/// failure; returns the outcome.
fn replay(target: &str, path: &Path) -> &'static str {
    let input = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let check = check_of(target);
    match std::panic::catch_unwind(|| check(&input)) {
        Ok(outcome) => outcome,
        Err(panic) => {
            eprintln!("{target}: {} fails", path.display());
            std::panic::resume_unwind(panic);
        }
    }
}

fn seed_reviews() -> Vec<PathBuf> {
    files(&repo_root().join("fuzz/seeds/reviews"))
}

#[test]
fn seeds_replay() {
    let reviews = seed_reviews();
    assert!(
        reviews.len() >= 6,
        "fuzz/seeds/reviews holds the captured reviews"
    );
    for path in &reviews {
        let name = path.file_name().unwrap().to_string_lossy();
        let (mutated, validated) = (replay("mutate_body", path), replay("validate_body", path));
        // The checks are not vacuous: the captured pods are patched (and the
        // patch checked), the captured LLMModel changes are decided.
        if name.starts_with("pod-") {
            assert_eq!(mutated, "patched", "{name}");
        } else {
            assert_eq!(mutated, "allowed", "{name}");
            assert_ne!(validated, "bad", "{name}");
        }
    }
    for path in files(&repo_root().join("fuzz/seeds/inject_pod")) {
        replay("inject_pod", &path);
    }
}

#[test]
fn fixed_crashers_replay() {
    for target in ["mutate_body", "validate_body", "inject_pod"] {
        for path in files(&repo_root().join("tests/fuzz").join(target)) {
            replay(target, &path);
        }
    }
}

/// Inputs of `check_inject` (bytes read as choices) cover the corners of
/// `build_pod`: all zeros, all ones, each model of the catalog.
#[test]
fn inject_pod_corners() {
    let mut outcomes = BTreeMap::new();
    for fill in [0u8, 1, 2, 3, 0x55, 0xaa, 0xff] {
        for len in [0usize, 1, 2, 4, 8, 16, 64, 256] {
            *outcomes.entry(check_inject(&vec![fill; len])).or_insert(0) += 1;
        }
    }
    for model in 0u8..13 {
        for containers in 0u8..5 {
            let data = [0, 1, 2, model, 3, 1, containers, 1, 0, 0, 1, 1, 1];
            *outcomes.entry(check_inject(&data)).or_insert(0) += 1;
        }
    }
    // Built pods reach injection (patched) and its refusals (denied).
    assert!(outcomes.contains_key("patched"), "{outcomes:?}");
    assert!(outcomes.contains_key("denied"), "{outcomes:?}");
}

fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| {
        seed_reviews()
            .iter()
            .map(|p| std::fs::read(p).expect("a seed"))
            .collect()
    })
}

/// JSON fragments the byte-level mutations insert.
const TOKENS: &[&str] = &[
    "null",
    "true",
    "0",
    "-1",
    "1e999",
    "\"\"",
    "{}",
    "[]",
    ",",
    ":",
    "\"",
    "\\u0000",
    "\\ud800",
    "\"CREATE\"",
    "\"UPDATE\"",
    "\"DELETE\"",
    "\"Pod\"",
    "\"LLMModel\"",
    "\"LLMEngine\"",
    "\"admission.k8s.io/v1\"",
    "\"admission.k8s.io/v1beta1\"",
    "\"llm.injector.dev/model\"",
    "\"llm.injector.dev/status\"",
    "\"qwen-2x2\"",
    "\"llama-cpu\"",
    "\"llm-pull\"",
    "\"llm-engine-0\"",
    "\"nvidia.com/gpu\"",
    "11434",
];

#[derive(Debug, Clone)]
enum ByteEdit {
    Truncate(Index),
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Token(Index, Index),
    Delete(Index, u8),
    /// Replaces a range with a range of another captured review.
    Splice(Index, u8, Index, Index, u16),
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        1 => any::<Index>().prop_map(ByteEdit::Truncate),
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| ByteEdit::Flip(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| ByteEdit::Set(i, b)),
        2 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, t)| ByteEdit::Token(i, t)),
        2 => (any::<Index>(), 1u8..32).prop_map(|(i, n)| ByteEdit::Delete(i, n)),
        2 => (any::<Index>(), 0u8..64, any::<Index>(), any::<Index>(), 0u16..512)
            .prop_map(|(i, n, s, j, m)| ByteEdit::Splice(i, n, s, j, m)),
    ]
}

fn apply_byte_edit(body: &mut Vec<u8>, edit: &ByteEdit) {
    let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
    let len = body.len();
    match edit {
        ByteEdit::Truncate(i) => body.truncate(at(i, len)),
        ByteEdit::Flip(i, bit) if len > 0 => body[i.index(len)] ^= 1 << bit,
        ByteEdit::Set(i, b) if len > 0 => body[i.index(len)] = *b,
        ByteEdit::Insert(i, bytes) => {
            let at = at(i, len);
            body.splice(at..at, bytes.iter().copied());
        }
        ByteEdit::Token(i, t) => {
            let at = at(i, len);
            let token = TOKENS[t.index(TOKENS.len())].bytes();
            body.splice(at..at, token);
        }
        ByteEdit::Delete(i, n) => {
            let from = at(i, len);
            body.drain(from..(from + usize::from(*n)).min(len));
        }
        ByteEdit::Splice(i, n, s, j, m) => {
            let from = at(i, len);
            let to = (from + usize::from(*n)).min(len);
            let other = &seeds()[s.index(seeds().len())];
            let start = j.index(other.len());
            let end = (start + usize::from(*m)).min(other.len());
            body.splice(from..to, other[start..end].iter().copied());
        }
        ByteEdit::Flip(..) | ByteEdit::Set(..) => {}
    }
}

/// Values the JSON-level mutations put in place of a node.
fn replacement(which: &Index, seed: &Value) -> Value {
    let values = [
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(u64::MAX),
        json!(""),
        json!("CREATE"),
        json!("UPDATE"),
        json!("DELETE"),
        json!("CONNECT"),
        json!("Pod"),
        json!("LLMModel"),
        json!("LLMEngine"),
        json!("team-a"),
        json!("qwen-2x2"),
        json!("llama-amd"),
        json!("llm-pull"),
        json!("llm-models"),
        json!("x".repeat(300)),
        json!({}),
        json!([]),
        json!([{}]),
        json!({"name": "llm-engine-0"}),
        json!({"llm.injector.dev/model": "qwen-mp2"}),
        json!({"llm.injector.dev/status": "{}"}),
        json!([{"containerPort": 11434}]),
        json!({"nvidia.com/gpu": "1"}),
        seed.clone(),
    ];
    values[which.index(values.len())].clone()
}

/// The JSON pointers of every node of `value`, parents first.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

#[derive(Debug, Clone)]
enum JsonEdit {
    Replace(Index, Index),
    Remove(Index),
}

fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        3 => (any::<Index>(), any::<Index>()).prop_map(|(at, v)| JsonEdit::Replace(at, v)),
        1 => any::<Index>().prop_map(JsonEdit::Remove),
    ]
}

fn apply_json_edit(review: &mut Value, seed: &Value, edit: &JsonEdit) {
    let mut all = Vec::new();
    pointers(review, String::new(), &mut all);
    let (JsonEdit::Replace(at, _) | JsonEdit::Remove(at)) = edit;
    let pointer = &all[at.index(all.len())];
    match edit {
        JsonEdit::Replace(_, value) => {
            if let Some(node) = review.pointer_mut(pointer) {
                *node = replacement(value, seed);
            }
        }
        JsonEdit::Remove(_) => {
            let Some((parent, key)) = pointer.rsplit_once('/') else {
                return;
            };
            let key = key.replace("~1", "/").replace("~0", "~");
            match review.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.remove(&key);
                }
                Some(Value::Array(items)) => {
                    if let Ok(i) = key.parse::<usize>() {
                        items.remove(i);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Cases of each proptest; together they take a few seconds in release.
const CASES: u32 = 4000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn byte_mutations_of_captured_reviews(
        seed in any::<Index>(),
        edits in prop::collection::vec(byte_edit(), 1..6),
    ) {
        let mut body = seeds()[seed.index(seeds().len())].clone();
        for edit in &edits {
            apply_byte_edit(&mut body, edit);
        }
        check_mutate(&body);
        check_validate(&body);
    }

    #[test]
    fn json_mutations_of_captured_reviews(
        seed in any::<Index>(),
        edits in prop::collection::vec(json_edit(), 1..5),
    ) {
        let original = &seeds()[seed.index(seeds().len())];
        let seed_value: Value = serde_json::from_slice(original).expect("a seed is JSON");
        let mut review = seed_value.clone();
        for edit in &edits {
            apply_json_edit(&mut review, &seed_value, edit);
        }
        let body = serde_json::to_vec(&review).expect("JSON");
        check_mutate(&body);
        check_validate(&body);
    }

    #[test]
    fn built_pods_inject(data in prop::collection::vec(any::<u8>(), 0..160)) {
        check_inject(&data);
    }
}

/// How the generated inputs are decided, to see what the proptests reach:
/// `cargo test --release --test fuzz_regressions -- --ignored --nocapture outcome_histogram`
#[test]
#[ignore = "a report, not a check (run it with --ignored --nocapture)"]
fn outcome_histogram() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::new(config());
    let bytes = (any::<Index>(), prop::collection::vec(byte_edit(), 1..6));
    let edits = (any::<Index>(), prop::collection::vec(json_edit(), 1..5));
    let pods = prop::collection::vec(any::<u8>(), 0..160);
    let mut counts: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for _ in 0..CASES {
        let (seed, byte_edits) = bytes.new_tree(&mut runner).unwrap().current();
        let mut body = seeds()[seed.index(seeds().len())].clone();
        for edit in &byte_edits {
            apply_byte_edit(&mut body, edit);
        }
        *counts
            .entry(("bytes /mutate", check_mutate(&body)))
            .or_default() += 1;
        *counts
            .entry(("bytes /validate", check_validate(&body)))
            .or_default() += 1;

        let (seed, json_edits) = edits.new_tree(&mut runner).unwrap().current();
        let seed_value: Value =
            serde_json::from_slice(&seeds()[seed.index(seeds().len())]).unwrap();
        let mut review = seed_value.clone();
        for edit in &json_edits {
            apply_json_edit(&mut review, &seed_value, edit);
        }
        let body = serde_json::to_vec(&review).unwrap();
        *counts
            .entry(("json /mutate", check_mutate(&body)))
            .or_default() += 1;
        *counts
            .entry(("json /validate", check_validate(&body)))
            .or_default() += 1;

        let data = pods.new_tree(&mut runner).unwrap().current();
        *counts
            .entry(("built pods", check_inject(&data)))
            .or_default() += 1;
    }
    for ((what, outcome), n) in counts {
        println!("{what:16} {outcome:8} {n}");
    }
}

/// Replays a directory (or file) of fuzz inputs on stable and prints each
/// outcome, to triage a corpus or `fuzz/artifacts/`:
/// `FUZZ_REPLAY=mutate_body:fuzz/artifacts/mutate_body cargo test --release --test fuzz_regressions -- --ignored --nocapture replay_dir`
#[test]
#[ignore = "a tool, not a check (set FUZZ_REPLAY=<target>:<path>, run with --ignored --nocapture)"]
fn replay_dir() {
    let Ok(spec) = std::env::var("FUZZ_REPLAY") else {
        return;
    };
    let (target, path) = spec.split_once(':').expect("FUZZ_REPLAY=<target>:<path>");
    let path = repo_root().join(path);
    let inputs = if path.is_dir() {
        files(&path)
    } else {
        vec![path]
    };
    for input in inputs {
        let len = std::fs::metadata(&input).map(|m| m.len()).unwrap_or(0);
        println!("{:8} {len:6} {}", replay(target, &input), input.display());
    }
}

#[test]
fn lone_surrogates_are_replaced_for_the_raw_reading() {
    use fuzz_checks::replace_lone_surrogates as fix;
    assert_eq!(fix(r#""a\ud800b""#), r#""a\ufffdb""#);
    assert_eq!(fix(r#""\udc00""#), r#""\ufffd""#);
    assert_eq!(fix(r#""\ud83d\ude00""#), r#""\ud83d\ude00""#);
    assert_eq!(fix(r#""\\ud800""#), r#""\\ud800""#);
    assert_eq!(fix(r#""\n\u00e9é\ud800"#), r#""\n\u00e9é\ufffd"#);
}
