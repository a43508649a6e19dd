//! Time to inject one pod, per setup, next to two baselines measured in the
//! same run on the same pods: cloning the typed pod, and decoding it from JSON
//! (work any webhook does per review anyway). Each injection is timed twice:
//! by a new injector (the first pod of a model: the model is prepared and
//! the patch built) and by one that injected a pod of that shape before (the
//! other pods of a workload). Prints a table; no thresholds.
//!
//! Run: `cargo bench --bench inject`

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use llm_injector::crd::{LLMEngine, LLMModel};
use llm_injector::manifest::read_documents;
use llm_injector::nodes::{NodeGpus, NodeSnapshot};
use llm_injector::{Catalog, Injector, ModelLookup, Outcome};

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
    let injector = Injector::default();
    let review_with = |injector: &Injector| {
        let decision = llm_injector::server::review::mutate(black_box(&body), catalog, injector)
            .expect("review");
        black_box(decision.into_body().expect("encodes"));
    };
    let review = time_per_call(|| review_with(&injector));
    let review_cold = time_per_call(|| review_with(&Injector::default()));
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
        "  decode+inject+encode {:.1} us (first pod of the model: {:.1} us) | typed decode alone {:.1} us | JSON scan alone (baseline) {:.1} us",
        micros(review),
        micros(review_cold),
        micros(decode),
        micros(parse_only)
    );
}

/// The catalog plus the GPUs of `nodes` Nodes, as the webhook's cluster
/// catalog knows them.
struct WithNodes<'a> {
    catalog: &'a Catalog,
    nodes: Arc<NodeSnapshot>,
}

impl ModelLookup for WithNodes<'_> {
    fn model(&self, namespace: &str, name: &str) -> Option<Arc<LLMModel>> {
        self.catalog.model(namespace, name)
    }
    fn engine(&self, namespace: &str, name: &str) -> Option<Arc<LLMEngine>> {
        self.catalog.engine(namespace, name)
    }
    fn model_names(&self, namespace: &str) -> Vec<String> {
        self.catalog.model_names(namespace)
    }
    fn nodes(&self) -> Option<Arc<NodeSnapshot>> {
        Some(self.nodes.clone())
    }
}

/// The same review with the webhook's advice on the cluster's Nodes (worked
/// out once per Node snapshot and model version, then remembered), for
/// clusters of 10 and 1000 GPU Nodes, against the review without it; and
/// the first review after the Nodes changed, which works it out.
fn node_advice_figures(root: &Path, catalog: &Catalog) {
    let body =
        std::fs::read(root.join("tests/fixtures/apiserver-1.36/pod-create-generatename.json"))
            .expect("fixture");
    let injector = Injector::default();
    let review = |lookup: &dyn ModelLookup| {
        let decision = llm_injector::server::review::mutate(black_box(&body), lookup, &injector)
            .expect("review");
        black_box(decision.into_body().expect("encodes"));
    };
    let without = time_per_call(|| review(catalog));
    println!();
    println!(
        "whole /mutate review with the advice on the cluster's Nodes (A10G Nodes, GFD labels):"
    );
    for count in [10, 1000] {
        let nodes: Arc<[NodeGpus]> = (0..count)
            .map(|i| NodeGpus {
                name: format!("node-{i}"),
                allocatable: BTreeMap::from([
                    ("nvidia.com/gpu".to_owned(), 4),
                    ("amd.com/gpu".to_owned(), 4),
                ]),
                memory: Some(23028 << 20),
                mig_memory: BTreeMap::new(),
                product: Some("NVIDIA-A10G".to_owned()),
                replicas: 1,
            })
            .collect();
        let lookup = WithNodes {
            catalog,
            nodes: Arc::new(NodeSnapshot::new(nodes.clone())),
        };
        let with = time_per_call(|| review(&lookup));
        // A new snapshot per review: the advice worked out every time.
        let first = time_per_call(|| {
            review(&WithNodes {
                catalog,
                nodes: Arc::new(NodeSnapshot::new(nodes.clone())),
            })
        });
        println!(
            "  {count:>5} Nodes: {:.1} us, without the advice {:.1} us (baseline): {:.2}x; first review after a Node change {:.1} us: {:.2}x",
            micros(with),
            micros(without),
            with.as_secs_f64() / without.as_secs_f64(),
            micros(first),
            first.as_secs_f64() / without.as_secs_f64()
        );
    }
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
        "inject one pod: Injector::inject() = lookup + checks + warnings + patch; first pod: a new"
    );
    println!(
        "injector (model prepared, patch built); next pods: an injector that saw the pod's shape"
    );
    println!("(median of {BATCHES} batches, mimalloc as in the binary; goal: under 50 us per pod)");
    println!(
        "{:<22} {:>12} {:>14} {:>14} {:>16} {:>10}",
        "setup", "first pod us", "next pods us", "clone pod us", "decode pod us", "patch ops"
    );
    for (setup, file) in setups {
        let path = root.join("examples/workloads").join(file);
        let text = std::fs::read_to_string(&path).expect("workload");
        let doc = read_documents(file, &text).expect("yaml").remove(0);
        let pod: Pod = serde_json::from_value(doc.value.clone()).expect("pod");
        let json = serde_json::to_vec(&doc.value).expect("json");
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();

        let injector = Injector::default();
        let Ok(Outcome::Injected(injected)) = injector.inject(&pod, &namespace, &catalog) else {
            panic!("{file} does not inject");
        };
        let first = time_per_call(|| {
            let cold = Injector::default();
            black_box(cold.inject(black_box(&pod), &namespace, &catalog).is_ok());
        });
        let next = time_per_call(|| {
            black_box(
                injector
                    .inject(black_box(&pod), &namespace, &catalog)
                    .is_ok(),
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
            micros(first),
            micros(next),
            micros(clone),
            micros(decode),
            injected.patch.operations().len()
        );
    }
    review_figures(root, &catalog);
    node_advice_figures(root, &catalog);
}
