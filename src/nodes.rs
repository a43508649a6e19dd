//! What a Node offers of GPUs, read from its allocatable extended resources
//! and the labels NVIDIA's GPU Feature Discovery and AMD's node labeller put
//! on it. Pure: the webhook's Node cache and `validate --nodes` share it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;

use crate::quantity;

/// GFD: memory of one GPU in MiB.
pub const NVIDIA_MEMORY: &str = "nvidia.com/gpu.memory";
/// GFD: the GPU model.
pub const NVIDIA_PRODUCT: &str = "nvidia.com/gpu.product";
/// GFD with time-slicing or MPS: how many replicas each GPU is offered as.
pub const NVIDIA_REPLICAS: &str = "nvidia.com/gpu.replicas";
/// AMD's node labeller: memory of one GPU (e.g. `64G`).
pub const AMD_VRAM: &str = "amd.com/gpu.vram";

/// What a Node offers of GPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeGpus {
    /// The Node's name.
    pub name: String,
    /// Allocatable count of each extended resource.
    pub allocatable: BTreeMap<String, u64>,
    /// Memory of one GPU, from the labels.
    pub memory: Option<u64>,
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
        NodeGpus {
            name: node.metadata.name.clone().unwrap_or_default(),
            allocatable,
            memory,
            product: label(NVIDIA_PRODUCT).map(str::to_owned),
            replicas: label(NVIDIA_REPLICAS)
                .and_then(|r| r.trim().parse().ok())
                .filter(|r| *r > 0)
                .unwrap_or(1),
        }
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
}
