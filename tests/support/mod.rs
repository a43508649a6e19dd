//! What the integration tests share: the repository root, running the real
//! binary and comparing its output with golden files (refreshed under
//! `UPDATE_GOLDEN`); [`server`] for the webhook tests (fixtures, the golden
//! catalogs, a ready `AppState`, an HTTPS client) and [`router`] for the
//! router tests (a fake Ollama instance, the router in process).
#![allow(dead_code)]

pub mod router;
pub mod server;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// True when golden files are to be rewritten (`UPDATE_GOLDEN=1`).
pub fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some()
}

/// Runs `llm-injector <args>` from the repository root, with `stdin` as input.
pub fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llm-injector"))
        .current_dir(root())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run llm-injector");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(stdin.unwrap_or_default())
        .expect("write stdin");
    drop(pipe);
    child.wait_with_output().expect("wait for llm-injector")
}

/// Compares `actual` with the golden file, or rewrites it under UPDATE_GOLDEN
/// (removing it when `actual` is empty). Returns a description of the mismatch.
pub fn check_golden(path: &Path, actual: &str) -> Option<String> {
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

/// The entries of `dir` (relative to the root) that `keep` accepts, as
/// `dir/name`, sorted; fails when there are none.
pub fn inputs(dir: &str, keep: impl Fn(&Path) -> bool) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join(dir))
        .expect("read golden dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| keep(p))
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

/// `golden_dir/<stem of input><suffix>`, under the root.
pub fn golden_path(input: &str, golden_dir: &str, suffix: &str) -> PathBuf {
    let stem = Path::new(input)
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    root().join(golden_dir).join(format!("{stem}{suffix}"))
}
