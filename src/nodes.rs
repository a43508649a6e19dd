//! What a Node offers of GPUs, read from its allocatable extended resources
//! and the labels NVIDIA's GPU Feature Discovery and AMD's node labeller put
//! on it; and a snapshot of a cluster's Nodes that works out what depends on
//! them once per model. Pure: the webhook's Node cache and `validate --nodes`
//! share it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Node;

use crate::crd::{LLMEngine, LLMModel};
use crate::quantity;

/// GFD: memory of one GPU in MiB.
pub const NVIDIA_MEMORY: &str = "nvidia.com/gpu.memory";
/// GFD: the GPU model.
pub const NVIDIA_PRODUCT: &str = "nvidia.com/gpu.product";
/// GFD with time-slicing or MPS: how many replicas each GPU is offered as.
pub const NVIDIA_REPLICAS: &str = "nvidia.com/gpu.replicas";
/// AMD's node labeller: memory of one GPU (e.g. `64G`).
pub const AMD_VRAM: &str = "amd.com/gpu.vram";
/// The extended resources of MIG devices under GFD's `mixed` strategy,
/// one per profile (`nvidia.com/mig-1g.5gb`); GFD labels each profile's
/// memory in MiB as `<resource>.memory`.
pub const NVIDIA_MIG_PREFIX: &str = "nvidia.com/mig-";

/// What a Node offers of GPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeGpus {
    /// The Node's name.
    pub name: String,
    /// Allocatable count of each extended resource.
    pub allocatable: BTreeMap<String, u64>,
    /// Memory of one GPU, from the labels (under GFD's `single` MIG
    /// strategy: of one MIG device).
    pub memory: Option<u64>,
    /// Memory of one MIG device per MIG resource (`mixed` strategy), from
    /// the `nvidia.com/mig-<profile>.memory` labels.
    pub mig_memory: BTreeMap<String, u64>,
    /// The GPU model, from the labels.
    pub product: Option<String>,
    /// Replicas each GPU is shared as (time-slicing, MPS); 1 when not shared.
    pub replicas: u64,
}

impl NodeGpus {
    /// The GPUs of `node` as its status and labels tell.
    pub fn of(node: &Node) -> NodeGpus {
        let labels = node.metadata.labels.as_ref();
        let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
        let allocatable = node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .into_iter()
            .flatten()
            .filter(|(name, _)| name.contains('/'))
            .filter_map(|(name, count)| Some((name.clone(), count.0.trim().parse().ok()?)))
            .collect();
        let memory = label(NVIDIA_MEMORY)
            .and_then(|mib| mib.trim().parse::<u64>().ok())
            .map(|mib| mib.saturating_mul(1 << 20))
            .or_else(|| label(AMD_VRAM).and_then(quantity::bytes));
        let mig_memory = labels
            .into_iter()
            .flatten()
            .filter_map(|(key, mib)| {
                let resource = key.strip_suffix(".memory")?;
                let mib = mib.trim().parse::<u64>().ok()?;
                resource
                    .starts_with(NVIDIA_MIG_PREFIX)
                    .then(|| (resource.to_owned(), mib.saturating_mul(1 << 20)))
            })
            .collect();
        NodeGpus {
            name: node.metadata.name.clone().unwrap_or_default(),
            allocatable,
            memory,
            mig_memory,
            product: label(NVIDIA_PRODUCT).map(str::to_owned),
            replicas: label(NVIDIA_REPLICAS)
                .and_then(|r| r.trim().parse().ok())
                .filter(|r| *r > 0)
                .unwrap_or(1),
        }
    }
}

impl NodeGpus {
    /// Memory of one device of `resource`: a MIG profile's own label, else
    /// the GPU's.
    pub fn memory_for(&self, resource: &str) -> Option<u64> {
        if resource.starts_with(NVIDIA_MIG_PREFIX) {
            self.mig_memory.get(resource).copied()
        } else {
            self.memory
        }
    }

    /// Whether a device of `resource` is a MIG device: a MIG profile's
    /// resource, or `nvidia.com/gpu` on a Node whose GPUs GFD names as MIG
    /// devices (the `single` strategy: `A100-SXM4-40GB-MIG-1g.5gb`).
    pub fn is_mig(&self, resource: &str) -> bool {
        resource.starts_with(NVIDIA_MIG_PREFIX)
            || self.product.as_deref().is_some_and(|p| p.contains("-MIG-"))
    }
}

/// The most (model, engine) pairs a snapshot remembers before it forgets
/// them all (old versions of edited models go that way).
const PAIRS_REMEMBERED: usize = 4096;

/// The GPUs of a cluster's Nodes at one moment, and what was worked out
/// from them for each version of a model and its engine, so that a review
/// works it out once per snapshot, not once per pod. A new snapshot (a Node's
/// GPUs changed) starts with nothing remembered.
#[derive(Default)]
pub struct NodeSnapshot {
    nodes: Arc<[NodeGpus]>,
    /// By the addresses of the model and engine, which the entry keeps
    /// alive: an address is not reused while it is remembered.
    remembered: Mutex<HashMap<(usize, usize), Remembered>>,
}

struct Remembered {
    _model: Arc<LLMModel>,
    _engine: Arc<LLMEngine>,
    advice: Arc<[String]>,
}

impl NodeSnapshot {
    /// A snapshot of `nodes`.
    pub fn new(nodes: impl Into<Arc<[NodeGpus]>>) -> Self {
        NodeSnapshot {
            nodes: nodes.into(),
            remembered: Mutex::default(),
        }
    }

    /// The Nodes' GPUs.
    pub fn nodes(&self) -> &[NodeGpus] {
        &self.nodes
    }

    /// `advise(model, engine, nodes)`, worked out once for these versions of
    /// `model` and `engine` (the same `Arc`s, as a reflector's store hands
    /// them out until the object changes).
    pub fn advice(
        &self,
        model: &Arc<LLMModel>,
        engine: &Arc<LLMEngine>,
        advise: impl FnOnce(&LLMModel, &LLMEngine, &[NodeGpus]) -> Vec<String>,
    ) -> Arc<[String]> {
        let key = (Arc::as_ptr(model) as usize, Arc::as_ptr(engine) as usize);
        let lock = || self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = lock().get(&key) {
            return known.advice.clone();
        }
        // Worked out outside the lock: reviews of other models do not wait.
        let advice: Arc<[String]> = advise(model, engine, &self.nodes).into();
        let mut remembered = lock();
        if remembered.len() >= PAIRS_REMEMBERED {
            remembered.clear();
        }
        remembered.insert(
            key,
            Remembered {
                _model: model.clone(),
                _engine: engine.clone(),
                advice: advice.clone(),
            },
        );
        advice
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(allocatable: serde_json::Value, labels: serde_json::Value) -> NodeGpus {
        NodeGpus::of(
            &serde_json::from_value(json!({
                "metadata": {"name": "n", "labels": labels},
                "status": {"allocatable": allocatable},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn nodes_read_from_gfd_and_amd_labels() {
        let a10 = node(
            json!({"cpu": "32", "nvidia.com/gpu": "4"}),
            json!({NVIDIA_MEMORY: "23028", NVIDIA_PRODUCT: "NVIDIA-A10G"}),
        );
        assert_eq!(a10.allocatable.get("nvidia.com/gpu"), Some(&4));
        assert!(!a10.allocatable.contains_key("cpu"));
        assert_eq!(a10.memory, Some(23028 << 20));
        assert_eq!(a10.product.as_deref(), Some("NVIDIA-A10G"));
        assert_eq!(a10.replicas, 1);
        let amd = node(json!({"amd.com/gpu": "8"}), json!({AMD_VRAM: "64Gi"}));
        assert_eq!(amd.memory, Some(64 << 30));
        // GFD's mixed MIG strategy: each profile its own resource and memory.
        let mixed = node(
            json!({"nvidia.com/gpu": "1", "nvidia.com/mig-1g.5gb": "7", "nvidia.com/mig-3g.20gb": "2"}),
            json!({NVIDIA_MEMORY: "40960", NVIDIA_PRODUCT: "NVIDIA-A100-SXM4-40GB",
                "nvidia.com/mig-1g.5gb.memory": "4864", "nvidia.com/mig-1g.5gb.count": "7",
                "nvidia.com/mig-3g.20gb.count": "2", "nvidia.com/mig.strategy": "mixed"}),
        );
        assert_eq!(mixed.memory_for("nvidia.com/gpu"), Some(40960 << 20));
        assert_eq!(mixed.memory_for("nvidia.com/mig-1g.5gb"), Some(4864 << 20));
        assert_eq!(mixed.memory_for("nvidia.com/mig-3g.20gb"), None);
        assert!(mixed.is_mig("nvidia.com/mig-1g.5gb") && !mixed.is_mig("nvidia.com/gpu"));
        // The single strategy: nvidia.com/gpu are MIG devices, labelled so.
        let single = node(
            json!({"nvidia.com/gpu": "7"}),
            json!({NVIDIA_MEMORY: "4864", NVIDIA_PRODUCT: "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb"}),
        );
        assert!(single.is_mig("nvidia.com/gpu"));
        assert_eq!(single.memory_for("nvidia.com/gpu"), Some(4864 << 20));
        let shared = node(
            json!({"nvidia.com/gpu": "16"}),
            json!({NVIDIA_REPLICAS: "4"}),
        );
        assert_eq!((shared.replicas, shared.memory), (4, None));
        let odd = node(
            json!({"nvidia.com/gpu": "lots"}),
            json!({NVIDIA_MEMORY: "huge", NVIDIA_REPLICAS: "0"}),
        );
        assert_eq!(
            (odd.allocatable.len(), odd.memory, odd.replicas),
            (0, None, 1)
        );
    }

    #[test]
    fn a_snapshot_works_advice_out_once_per_model_version() {
        let snapshot = NodeSnapshot::new(vec![node(json!({"nvidia.com/gpu": "1"}), json!({}))]);
        let engine: Arc<LLMEngine> = Arc::new(
            serde_yaml::from_str(
                "metadata: {name: e}\nspec: {runtime: Ollama, accelerator: {vendor: NVIDIA}}",
            )
            .unwrap(),
        );
        let model = |tag: &str| -> Arc<LLMModel> {
            Arc::new(
                serde_yaml::from_str(&format!(
                    "metadata: {{name: m}}\nspec: {{model: {tag}, engineRef: {{name: e}}}}"
                ))
                .unwrap(),
            )
        };
        let calls = std::cell::Cell::new(0);
        let advise = |m: &LLMModel, _: &LLMEngine, nodes: &[NodeGpus]| {
            calls.set(calls.get() + 1);
            vec![format!("{} on {} node(s)", m.spec.model, nodes.len())]
        };
        let (first, edited) = (model("qwen3:8b"), model("qwen3:14b"));
        assert_eq!(
            &*snapshot.advice(&first, &engine, advise),
            ["qwen3:8b on 1 node(s)"]
        );
        assert_eq!(
            &*snapshot.advice(&first, &engine, advise),
            ["qwen3:8b on 1 node(s)"]
        );
        assert_eq!(calls.get(), 1, "the same versions are worked out once");
        // An edited model is another Arc: worked out anew.
        assert_eq!(
            &*snapshot.advice(&edited, &engine, advise),
            ["qwen3:14b on 1 node(s)"]
        );
        assert_eq!(calls.get(), 2);
        // So is an edited engine.
        let other_engine = Arc::new(LLMEngine::clone(&engine));
        snapshot.advice(&first, &other_engine, advise);
        assert_eq!(calls.get(), 3);
    }
}
