//! A fixed amount of review or injection work, for instruction counts under
//! `valgrind --tool=callgrind` (wall-clock timings on a shared machine are
//! too noisy to compare small changes). Prints nothing but a checksum.
//!
//! Run: `cargo build --release --example profile`, then e.g.
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='profile::measured*'
//! target/release/examples/profile review 100`: the total / 100 is one call.
//! Modes: `review` (one whole `/mutate` review of the apiserver 1.36 fixture,
//! with a different uid each time, by one injector, as the webhook does),
//! `review-cold` (the same with a new injector each time: every review
//! prepares the model and builds its patch, as for the first pod of a
//! workload), `decode` (its typed decode alone), or a workload file name
//! (`cpu.yaml`, `2x2.yaml`, ...) for `Injector::inject` with a new injector
//! each time (`warm:cpu.yaml` with one injector).

use std::hint::black_box;
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use llm_injector::manifest::read_documents;
use llm_injector::{Catalog, Injector};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "review".to_owned());
    let iterations: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalog = Catalog::load(&root.join("examples/catalog"), "default").expect("catalog");
    let injector = Injector::default();
    let mut sum = 0usize;
    match mode.as_str() {
        "review" | "review-cold" | "decode" => {
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
                        let cold = Injector::default();
                        let injector = if mode == "review-cold" {
                            &cold
                        } else {
                            &injector
                        };
                        let decision = llm_injector::server::review::mutate(
                            black_box(body),
                            &catalog,
                            injector,
                        )
                        .expect("review");
                        black_box(decision.into_body().expect("encodes")).len()
                    }
                });
            }
        }
        file => {
            // `warm:cpu.yaml` for one injector for every call.
            let (warm, file) = match file.strip_prefix("warm:") {
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
                    let cold = Injector::default();
                    let injector = if warm { &injector } else { &cold };
                    injector
                        .inject(black_box(&pod), &namespace, &catalog)
                        .is_ok() as usize
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
