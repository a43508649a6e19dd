//! A fixed amount of review or injection work, for instruction counts under
//! `valgrind --tool=callgrind` (wall-clock timings on a shared machine are
//! too noisy to compare small changes). Prints nothing but a checksum.
//!
//! Run: `cargo build --release --example profile`, then e.g.
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='profile::measured*'
//! target/release/examples/profile review 100`: the total / 100 is one call.
//! Modes: `review` (one whole `/mutate` review of the apiserver 1.36 fixture,
//! with a different uid each time), `decode` (its typed decode alone),
//! or a workload file name (`cpu.yaml`, `2x2.yaml`, ...) for `inject_requested`
//! (`patch:cpu.yaml` for `inject_requested_patch`, the webhook's call).

use std::hint::black_box;
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use llm_injector::inject::inject_requested_patch;
use llm_injector::manifest::read_documents;
use llm_injector::{Catalog, InjectOptions, inject_requested};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "review".to_owned());
    let iterations: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalog = Catalog::load(&root.join("examples/catalog"), "default").expect("catalog");
    let options = InjectOptions::default();
    let mut sum = 0usize;
    match mode.as_str() {
        "review" | "decode" => {
            let body =
                std::fs::read(root.join("tests/fixtures/apiserver-1.36/pod-create-named.json"))
                    .expect("fixture");
            let text = String::from_utf8(body).expect("utf-8");
            // A different uid per review, so that nothing keyed on the bytes can help.
            let bodies: Vec<Vec<u8>> = (0..iterations)
                .map(|i| {
                    text.replacen("\"uid\": \"", &format!("\"uid\": \"{i:06}"), 1)
                        .into_bytes()
                })
                .collect();
            for body in &bodies {
                sum += measured(|| {
                    if mode == "decode" {
                        serde_json::from_slice::<kube::core::admission::AdmissionReview<Pod>>(
                            black_box(body),
                        )
                        .is_ok() as usize
                    } else {
                        let decision = llm_injector::server::review::mutate(
                            black_box(body),
                            &catalog,
                            &options,
                        )
                        .expect("review");
                        black_box(decision.into_body().expect("encodes")).len()
                    }
                });
            }
        }
        file => {
            // `patch:cpu.yaml` for the webhook's patch-only injection.
            let (patch_only, file) = match file.strip_prefix("patch:") {
                Some(file) => (true, file),
                None => (false, file),
            };
            let text =
                std::fs::read_to_string(root.join("examples/workloads").join(file)).expect("file");
            let doc = read_documents(file, &text).expect("yaml").remove(0);
            let pod: Pod = serde_json::from_value(doc.value).expect("pod");
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            for _ in 0..iterations {
                sum += measured(|| {
                    if patch_only {
                        inject_requested_patch(black_box(&pod), &namespace, &catalog, &options)
                            .is_ok() as usize
                    } else {
                        inject_requested(black_box(&pod), &namespace, &catalog, &options).is_ok()
                            as usize
                    }
                });
            }
        }
    }
    println!("{sum}");
}

/// The work measured: callgrind collects only inside this function.
#[inline(never)]
fn measured(f: impl FnOnce() -> usize) -> usize {
    f()
}
