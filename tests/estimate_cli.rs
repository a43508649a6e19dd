//! `llm-injector estimate` as users run it: the table for a library model,
//! one GPU size, and the errors for what it cannot know.

use std::process::Command;

fn estimate(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_llm-injector"))
        .arg("estimate")
        .args(args)
        .output()
        .expect("run llm-injector estimate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn prints_the_terms_and_the_gpu_sizes_it_fits() {
    // (arguments, lines the table holds)
    let cases: [(&[&str], &[&str]); 4] = [
        (
            &["llama3.1:8b"],
            &[
                "context               4096 tokens x 1 request(s)",
                "KV cache (f16)        0.5 GiB",
                "total                 5.8 GiB on 1 GPU(s)",
                "4.0 GiB               20 of 33 layers on the GPU, the rest on the CPU",
                "8.0 GiB               fits",
            ],
        ),
        (
            &[
                "llama3.1",
                "--context",
                "32768",
                "--parallel",
                "4",
                "--memory",
                "24Gi",
            ],
            &[
                "KV cache (f16)        16.0 GiB",
                "24.0 GiB              22 of 33 layers on the GPU, the rest on the CPU",
            ],
        ),
        (
            &[
                "llama3.1",
                "--context",
                "32768",
                "--parallel",
                "4",
                "--gpus",
                "2",
                "--memory",
                "24Gi",
            ],
            &["24.0 GiB              fits"],
        ),
        (
            &["deepseek-r1", "--kv-cache-type", "q8_0"],
            &[
                "model                 deepseek-r1:8b Q4_K_M",
                "KV cache (q8_0)       0.3 GiB",
                "(approximate: Ollama 0.12.6 measures",
            ],
        ),
    ];
    for (args, lines) in cases {
        let (ok, stdout, stderr) = estimate(args);
        assert!(ok, "{args:?}: {stderr}");
        for line in lines {
            assert!(stdout.contains(line), "{args:?}: {line:?} not in\n{stdout}");
        }
    }
}

#[test]
fn says_what_it_cannot_know() {
    let cases: [(&[&str], &str); 4] = [
        (&["qwen3:8b"], "needs weightsSize"),
        (&["no-such-model"], "is not in the built-in table"),
        (&["llama3.1", "--memory", "24GB"], "is not a quantity"),
        (&["qwen3", "--weights-size", "lots"], "is not a quantity"),
    ];
    for (args, message) in cases {
        let (ok, stdout, stderr) = estimate(args);
        assert!(!ok && stdout.is_empty(), "{args:?}: {stdout}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let (ok, stdout, _) = estimate(&["--list"]);
    assert!(ok && stdout.contains("deepseek-r1:8b") && stdout.contains("nomic-embed-text:v1.5"));
}
