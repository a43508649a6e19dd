//! Whether any Node of the cluster has the GPUs a model's pods ask for: as
//! many of the engine's extended resource as a pod requests, and, where
//! NVIDIA's GPU Feature Discovery or AMD's node labeller says how much
//! memory a GPU has, enough of it for one instance ([`crate::estimate`]).
//! Also the two GPU shapes that never help a split model: MIG devices (a
//! process sees one) and time-sliced replicas (they share one GPU's memory).
//! Advice only: a Node may join later, so nothing here denies.

use super::memory::{facts_of, serving_of};
use crate::crd::{Allocation, LLMEngine, LLMModel};
use crate::estimate::{self, GPU_MINIMUM_MEMORY, Gpus, Placement, gib};
pub use crate::nodes::NodeGpus;
use crate::nodes::{NVIDIA_MIG_PREFIX, NVIDIA_REPLICAS};

/// Advice on where the pods of `model` (on `engine`) can run, given the
/// cluster's `nodes`: empty when a Node has what a pod asks for, or when
/// nothing is known of the nodes.
pub fn node_advice(model: &LLMModel, engine: &LLMEngine, nodes: &[NodeGpus]) -> Vec<String> {
    let accelerator = &engine.spec.accelerator;
    let (Some(resource), Allocation::DevicePlugin) = (
        engine.spec.effective_resource_name(),
        accelerator.allocation,
    ) else {
        return Vec::new();
    };
    let name = model.metadata.name.as_deref().unwrap_or_default();
    let per_instance = u64::try_from(model.spec.effective_gpus(accelerator.vendor)).unwrap_or(0);
    let per_pod =
        per_instance.saturating_mul(u64::try_from(model.spec.parallelism.data).unwrap_or(1));
    let mut advice = Vec::new();
    if per_instance > 1 && resource.starts_with(NVIDIA_MIG_PREFIX) {
        advice.push(format!(
            "LLMModel {name:?} gives each engine instance {per_instance} {resource} devices, but a process sees one MIG device: Ollama would use one and leave the others idle; set parallelism.model to 1, or use whole GPUs (nvidia.com/gpu)"
        ));
    }
    if nodes.is_empty() || per_pod == 0 {
        return advice;
    }
    let with_count: Vec<&NodeGpus> = nodes
        .iter()
        .filter(|n| n.allocatable.get(resource).is_some_and(|c| *c >= per_pod))
        .collect();
    if with_count.is_empty() {
        let most = nodes
            .iter()
            .filter_map(|n| Some((n.allocatable.get(resource)?, &n.name)))
            .max();
        let most = match most {
            Some((count, node)) => format!("the most is {count}, on Node {node}"),
            None => format!("no Node offers {resource} at all"),
        };
        advice.push(format!(
            "no Node has the {per_pod} {resource} a pod of LLMModel {name:?} requests ({most}): its pods stay Pending until one does; lower parallelism.model or parallelism.data, or add such a Node"
        ));
        return advice;
    }
    if per_instance > 1
        && !resource.starts_with(NVIDIA_MIG_PREFIX)
        && with_count.iter().all(|n| n.is_mig(resource))
    {
        let product = with_count[0].product.as_deref().unwrap_or_default();
        advice.push(format!(
            "LLMModel {name:?} gives each engine instance {per_instance} {resource}, but every Node offering them offers MIG devices as {resource} (GPU Feature Discovery's single strategy: {product}), and a process sees one MIG device: Ollama would use one and leave the others idle; set parallelism.model to 1, or use Nodes with whole GPUs"
        ));
    }
    if per_instance > 1 && with_count.iter().all(|n| n.replicas > 1) {
        advice.push(format!(
            "LLMModel {name:?} splits an instance over {per_instance} {resource}, but every Node offering them shares each GPU as time-sliced replicas ({NVIDIA_REPLICAS}): the replicas may be one GPU, whose memory they share; use parallelism.model 1, or unshared GPUs"
        ));
    }
    // Memory: only where the labels tell it, and only when the estimate is known.
    let facts = facts_of(&model.spec).facts;
    let serving = serving_of(&model.spec, engine);
    let count = u32::try_from(per_instance).unwrap_or(u32::MAX);
    let Ok(found) = estimate::estimate(&facts, &serving, count) else {
        return advice;
    };
    let labelled: Vec<(&NodeGpus, u64)> = with_count
        .iter()
        .filter_map(|n| Some((*n, n.memory_for(resource)?)))
        .collect();
    let whole = |memory: u64| {
        let gpus = Gpus {
            count,
            memory,
            minimum: GPU_MINIMUM_MEMORY,
        };
        found.placement(&gpus) == Placement::Gpu
    };
    if labelled.len() == with_count.len() && !labelled.iter().any(|(_, memory)| whole(*memory)) {
        let largest = labelled.iter().max_by_key(|(_, memory)| *memory);
        let largest = largest.map_or(String::new(), |(node, memory)| {
            format!(
                "; the largest is Node {} with {} per GPU{}",
                node.name,
                gib(*memory),
                node.product
                    .as_deref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default()
            )
        });
        let needed = found.needed(&Gpus {
            count,
            memory: 0,
            minimum: GPU_MINIMUM_MEMORY,
        });
        advice.push(format!(
            "no Node with {per_pod} {resource} has GPUs large enough for an instance of LLMModel {name:?} (~{} on {count} GPU(s) at {} x {}){largest}: Ollama would put layers on the CPU; raise parallelism.model, lower serving.contextLength or serving.parallelRequests, or add larger GPUs",
            gib(needed),
            found.context,
            found.parallel,
        ));
    }
    advice
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::{NVIDIA_MEMORY, NVIDIA_PRODUCT};
    use crate::validate::testing;
    use serde_json::json;

    fn node(name: &str, allocatable: serde_json::Value, labels: serde_json::Value) -> NodeGpus {
        NodeGpus::of(
            &serde_json::from_value(json!({
                "metadata": {"name": name, "labels": labels},
                "status": {"allocatable": allocatable},
            }))
            .unwrap(),
        )
    }

    fn a10(name: &str, count: u32) -> NodeGpus {
        node(
            name,
            json!({"cpu": "32", "nvidia.com/gpu": count.to_string()}),
            json!({NVIDIA_MEMORY: "23028", NVIDIA_PRODUCT: "NVIDIA-A10G", "nvidia.com/gpu.count": count.to_string()}),
        )
    }

    #[test]
    fn advice_table() {
        let nvidia = |extra: serde_json::Value| {
            testing::engine(
                "gpu",
                testing::merged(json!({"accelerator": {"vendor": "NVIDIA"}}), extra),
            )
        };
        let model = |reference: &str,
                     parallelism: serde_json::Value,
                     serving: serde_json::Value| {
            testing::model(
                "m",
                json!({"model": reference, "engineRef": {"name": "gpu"}, "parallelism": parallelism, "serving": serving}),
            )
        };
        let long = json!({"contextLength": 32768, "parallelRequests": 4});
        /// (what, model, engine, nodes, a fragment of each piece of advice)
        type Case = (
            &'static str,
            LLMModel,
            LLMEngine,
            Vec<NodeGpus>,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "nothing known of the nodes",
                model("llama3.1:8b", json!({"model": 4}), json!(null)),
                nvidia(json!({})),
                vec![],
                vec![],
            ),
            (
                "a node with four A10s",
                model("llama3.1:8b", json!({"model": 2, "data": 2}), json!(null)),
                nvidia(json!({})),
                vec![a10("a", 4)],
                vec![],
            ),
            (
                "eight GPUs a pod, four a node",
                model("llama3.1:8b", json!({"model": 2, "data": 4}), json!(null)),
                nvidia(json!({})),
                vec![a10("a", 4), a10("b", 2)],
                vec![
                    "no Node has the 8 nvidia.com/gpu a pod of LLMModel \"m\" requests (the most is 4, on Node a)",
                ],
            ),
            (
                "another resource than the nodes offer",
                model("llama3.1:8b", json!({}), json!(null)),
                nvidia(json!({"accelerator": {"resourceName": "nvidia.com/mig-3g.40gb"}})),
                vec![a10("a", 4)],
                vec!["no Node offers nvidia.com/mig-3g.40gb at all"],
            ),
            (
                "32768 x 4 does not fit one 22.5 GiB A10",
                model("llama3.1:8b", json!({"model": 1}), long.clone()),
                nvidia(json!({})),
                vec![a10("a", 4)],
                vec![
                    "no Node with 1 nvidia.com/gpu has GPUs large enough for an instance of LLMModel \"m\" (~29.7 GiB on 1 GPU(s) at 32768 x 4); the largest is Node a with 22.5 GiB per GPU (NVIDIA-A10G)",
                ],
            ),
            (
                "... but fits two",
                model("llama3.1:8b", json!({"model": 2}), long.clone()),
                nvidia(json!({})),
                vec![a10("a", 4)],
                vec![],
            ),
            (
                "a node without memory labels is not judged on memory",
                model("llama3.1:8b", json!({"model": 1}), long),
                nvidia(json!({})),
                vec![
                    a10("a", 4),
                    node("bare", json!({"nvidia.com/gpu": "1"}), json!({})),
                ],
                vec![],
            ),
            (
                "two MIG devices for one instance",
                model("llama3.1:8b", json!({"model": 2}), json!(null)),
                nvidia(json!({"accelerator": {"resourceName": "nvidia.com/mig-1g.10gb"}})),
                vec![node(
                    "mig",
                    json!({"nvidia.com/mig-1g.10gb": "7"}),
                    json!({}),
                )],
                vec!["a process sees one MIG device"],
            ),
            (
                "a MIG profile's own memory (mixed strategy), not the whole GPU's",
                model("llama3.1:8b", json!({"model": 1}), json!(null)),
                nvidia(json!({"accelerator": {"resourceName": "nvidia.com/mig-1g.5gb"}})),
                vec![node(
                    "a100",
                    json!({"nvidia.com/gpu": "1", "nvidia.com/mig-1g.5gb": "7"}),
                    json!({NVIDIA_MEMORY: "40960", NVIDIA_PRODUCT: "NVIDIA-A100-SXM4-40GB",
                        "nvidia.com/mig-1g.5gb.memory": "4864"}),
                )],
                vec!["the largest is Node a100 with 4.8 GiB per GPU"],
            ),
            (
                "two MIG devices of GFD's single strategy for one instance",
                model("llama3.1:8b", json!({"model": 2}), json!(null)),
                nvidia(json!({})),
                vec![node(
                    "a100",
                    json!({"nvidia.com/gpu": "7"}),
                    json!({NVIDIA_MEMORY: "9984", NVIDIA_PRODUCT: "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb"}),
                )],
                vec![
                    "offers MIG devices as nvidia.com/gpu (GPU Feature Discovery's single strategy: NVIDIA-A100-SXM4-80GB-MIG-1g.10gb)",
                ],
            ),
            (
                "two time-sliced replicas for one instance",
                model("llama3.1:8b", json!({"model": 2}), json!(null)),
                nvidia(json!({})),
                vec![node(
                    "shared",
                    json!({"nvidia.com/gpu": "8"}),
                    json!({NVIDIA_REPLICAS: "4"}),
                )],
                vec!["time-sliced replicas"],
            ),
            (
                "DRA engines claim devices, not resources",
                model("llama3.1:8b", json!({"model": 8}), json!(null)),
                nvidia(
                    json!({"accelerator": {"allocation": "DRA", "dra": {"resourceClaimTemplateName": "gpus"}}}),
                ),
                vec![a10("a", 1)],
                vec![],
            ),
        ];
        for (what, model, engine, nodes, expected) in cases {
            let advice = node_advice(&model, &engine, &nodes);
            assert_eq!(advice.len(), expected.len(), "{what}: {advice:#?}");
            for (advice, fragment) in advice.iter().zip(expected) {
                assert!(
                    advice.contains(fragment),
                    "{what}: {fragment:?} not in {advice}"
                );
            }
        }
    }
}
