//! Time to inject one pod, per setup, next to two baselines measured in the
//! same run on the same pods: cloning the typed pod, and decoding it from JSON
//! (work any webhook does per review anyway). Prints a table; no thresholds.
//!
//! Run: `cargo bench --bench inject`

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use llm_injector::inject::inject_requested_patch;
use llm_injector::manifest::read_documents;
use llm_injector::{Catalog, InjectOptions, Outcome, inject_requested};

/// The allocator of the `llm-injector` binary, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCHES: usize = 9;
const TARGET_BATCH: Duration = Duration::from_millis(60);

/// Median time of one call of `f`, over `BATCHES` batches sized to ~60 ms.
fn time_per_call(mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    let mut calibration = 0u32;
    while start.elapsed() < Duration::from_millis(20) {
        f();
        calibration += 1;
    }
    let per_call = start.elapsed() / calibration.max(1);
    let iterations = (TARGET_BATCH.as_nanos() / per_call.as_nanos().max(1)).max(10) as u32;
    let mut samples: Vec<Duration> = (0..BATCHES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed() / iterations
        })
        .collect();
    samples.sort();
    samples[BATCHES / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// One whole `/mutate` review of a pod captured from kube-apiserver 1.36:
/// decode, inject, encode (the server's work per request, minus HTTP and TLS).
fn review_figures(root: &Path, catalog: &Catalog) {
    let body =
        std::fs::read(root.join("tests/fixtures/apiserver-1.36/pod-create-generatename.json"))
            .expect("fixture");
    let review = time_per_call(|| {
        let decision = llm_injector::server::review::mutate(
            black_box(&body),
            catalog,
            &InjectOptions::default(),
        )
        .expect("review");
        black_box(decision.into_body().expect("encodes"));
    });
    let decode = time_per_call(|| {
        black_box(
            serde_json::from_slice::<kube::core::admission::AdmissionReview<Pod>>(black_box(&body))
                .is_ok(),
        );
    });
    let parse_only = time_per_call(|| {
        black_box(serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&body)).is_ok());
    });
    println!();
    println!(
        "whole /mutate review of a {}-byte apiserver pod review (no HTTP/TLS):",
        body.len()
    );
    println!(
        "  decode+inject+encode {:.1} us | typed decode alone {:.1} us | JSON scan alone (baseline) {:.1} us",
        micros(review),
        micros(decode),
        micros(parse_only)
    );
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalog = Catalog::load(&root.join("examples/catalog"), "default").expect("catalog");
    let setups = [
        ("CPU", "cpu.yaml"),
        ("one NVIDIA GPU", "gpu1.yaml"),
        ("2-GPU model parallel", "mp2.yaml"),
        ("2x2 data over model", "2x2.yaml"),
        ("one AMD GPU", "amd.yaml"),
    ];
    println!(
        "inject one pod: inject_requested() = lookup + checks + build + patch (the CLI's call);"
    );
    println!(
        "patch only: inject_requested_patch(), the same without the injected object (the webhook's)"
    );
    println!("(median of {BATCHES} batches, mimalloc as in the binary; goal: under 50 us per pod)");
    println!(
        "{:<22} {:>12} {:>14} {:>14} {:>16} {:>10}",
        "setup", "inject us", "patch only us", "clone pod us", "decode pod us", "patch ops"
    );
    for (setup, file) in setups {
        let path = root.join("examples/workloads").join(file);
        let text = std::fs::read_to_string(&path).expect("workload");
        let doc = read_documents(file, &text).expect("yaml").remove(0);
        let pod: Pod = serde_json::from_value(doc.value.clone()).expect("pod");
        let json = serde_json::to_vec(&doc.value).expect("json");
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();

        let options = InjectOptions::default();
        let Ok(Outcome::Injected(injected)) =
            inject_requested(&pod, &namespace, &catalog, &options)
        else {
            panic!("{file} does not inject");
        };
        let inject = time_per_call(|| {
            black_box(inject_requested(black_box(&pod), &namespace, &catalog, &options).is_ok());
        });
        let patch_only = time_per_call(|| {
            black_box(
                inject_requested_patch(black_box(&pod), &namespace, &catalog, &options).is_ok(),
            );
        });
        let clone = time_per_call(|| {
            black_box(black_box(&pod).clone());
        });
        let decode = time_per_call(|| {
            black_box(serde_json::from_slice::<Pod>(black_box(&json)).is_ok());
        });
        println!(
            "{:<22} {:>12.1} {:>14.1} {:>14.2} {:>16.1} {:>10}",
            setup,
            micros(inject),
            micros(patch_only),
            micros(clone),
            micros(decode),
            injected.patch.len()
        );
    }
    review_figures(root, &catalog);
}
