//! The fit check as users run it: `llm-injector estimate` (the table for a
//! library model, one GPU size, the errors for what it cannot know) and
//! `llm-injector validate --nodes` (advice from `kubectl get nodes -o yaml`).

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
    let cases: [(&[&str], &[&str]); 6] = [
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
        (
            &["qwen3:14b", "--context", "8192", "--parallel", "4"],
            &[
                "model                 qwen3:14b Q4_K_M",
                "weights               8.4 GiB (estimated from 14.8B parameters at Q4_K_M)",
                "context               8192 tokens x 4 request(s)",
            ],
        ),
        (
            &[
                "llama3.1:8b",
                "--parameters",
                "8.03B",
                "--quantization",
                "q8_0",
            ],
            &[
                "model                 llama3.1:8b Q8_0",
                "weights               8.0 GiB (estimated from 8.0B parameters at Q8_0)",
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
    let cases: [(&[&str], &str); 6] = [
        (&["qwen3:0.6b"], "needs weightsSize"),
        (
            &["llama3.1", "--quantization", "IQ9"],
            "is not one the estimate knows",
        ),
        (
            &["llama3.1", "--parameters", "many"],
            "is not a parameter count",
        ),
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

/// `validate -f FILES --nodes NODES` in a temporary directory.
fn validate_with_nodes(objects: &str, nodes: &str) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!("llm-injector-fit-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (objects_file, nodes_file) = (dir.join("objects.yaml"), dir.join("nodes.yaml"));
    std::fs::write(&objects_file, objects).unwrap();
    std::fs::write(&nodes_file, nodes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_llm-injector"))
        .arg("validate")
        .arg("-f")
        .arg(&objects_file)
        .arg("--nodes")
        .arg(&nodes_file)
        .output()
        .expect("run llm-injector validate");
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const OBJECTS: &str = r#"
apiVersion: llm.injector.dev/v1alpha1
kind: LLMEngine
metadata: {name: gpu}
spec: {accelerator: {vendor: NVIDIA}}
---
apiVersion: llm.injector.dev/v1alpha1
kind: LLMModel
metadata: {name: long}
spec: {model: "llama3.1:8b", engineRef: {name: gpu}, serving: {contextLength: 32768, parallelRequests: 4}}
---
apiVersion: llm.injector.dev/v1alpha1
kind: LLMModel
metadata: {name: wide}
spec: {model: "llama3.1:8b", engineRef: {name: gpu}, parallelism: {model: 4, data: 2}}
---
apiVersion: llm.injector.dev/v1alpha1
kind: LLMModel
metadata: {name: fine}
spec: {model: "llama3.1:8b", engineRef: {name: gpu}, parallelism: {model: 2}}
"#;

/// What `kubectl get nodes -o yaml` prints for a node with four A10Gs that
/// NVIDIA's GPU Feature Discovery labelled.
const NODES: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata:
    name: a10-node
    labels: {nvidia.com/gpu.memory: "23028", nvidia.com/gpu.product: NVIDIA-A10G, nvidia.com/gpu.count: "4"}
  status:
    allocatable: {cpu: "32", memory: 128Gi, nvidia.com/gpu: "4"}
"#;

#[test]
fn validate_warns_when_no_node_has_the_gpus() {
    let (ok, stdout, stderr) = validate_with_nodes(OBJECTS, NODES);
    assert!(ok, "advice is not an error: {stderr}");
    assert!(
        stdout.contains("validated 4 objects: 0 errors, 2 warnings"),
        "{stdout}"
    );
    for fragment in [
        "LLMModel default/long: no Node with 1 nvidia.com/gpu has GPUs large enough for an instance of LLMModel \"long\" (~29.7 GiB on 1 GPU(s) at 32768 x 4); the largest is Node a10-node with 22.5 GiB per GPU (NVIDIA-A10G)",
        "LLMModel default/wide: no Node has the 8 nvidia.com/gpu a pod of LLMModel \"wide\" requests (the most is 4, on Node a10-node)",
    ] {
        assert!(stderr.contains(fragment), "{fragment:?} not in\n{stderr}");
    }
    assert!(!stderr.contains("default/fine"), "{stderr}");
    // Anything but Nodes in --nodes is an error, named.
    let (ok, _, stderr) = validate_with_nodes(OBJECTS, OBJECTS);
    assert!(
        !ok && stderr.contains("--nodes takes Node objects"),
        "{stderr}"
    );
}
