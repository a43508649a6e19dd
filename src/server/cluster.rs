//! LLMEngines and LLMModels from the cluster: kube runtime reflectors keep them
//! in memory from a watch, so a review never makes an API call. The GPUs of
//! the Nodes too, as one snapshot published when a Node's GPUs change, for
//! the advice on where an injected pod can run.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::crd::{LLMEngine, LLMModel};
use crate::lookup::ModelLookup;
use crate::nodes::{NodeGpus, NodeSnapshot};

/// The Node snapshots of a [`ClusterCatalog`] as they are published: none
/// until the first list of Nodes is complete.
pub type NodeSnapshots = watch::Receiver<Option<Arc<NodeSnapshot>>>;

/// Read side of the reflectors.
#[derive(Clone)]
pub struct ClusterCatalog {
    engines: Store<LLMEngine>,
    models: Store<LLMModel>,
    /// The Nodes' GPUs, once the Node cache has listed them; a new
    /// snapshot whenever they change.
    nodes: NodeSnapshots,
}

impl ClusterCatalog {
    /// Starts watching both kinds in all namespaces, on the current runtime.
    pub fn start(client: Client) -> Self {
        let (engines, engine_writer) = reflector::store::<LLMEngine>();
        let (models, model_writer) = reflector::store::<LLMModel>();
        let engine_stream = watcher(
            Api::<LLMEngine>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(engine_writer)
        .applied_objects();
        let model_stream = watcher(
            Api::<LLMModel>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(model_writer)
        .applied_objects();
        tokio::spawn(engine_stream.for_each(|event| async move {
            if let Err(error) = event {
                tracing::warn!(%error, "LLMEngine watch failed; retrying with backoff");
            }
        }));
        tokio::spawn(model_stream.for_each(|event| async move {
            if let Err(error) = event {
                tracing::warn!(%error, "LLMModel watch failed; retrying with backoff");
            }
        }));
        let (publish, nodes) = watch::channel(None);
        tokio::spawn(watch_nodes(client, publish));
        ClusterCatalog {
            engines,
            models,
            nodes,
        }
    }

    /// Resolves once both caches have listed everything once.
    pub async fn synced(&self) -> bool {
        self.engines.wait_until_ready().await.is_ok()
            && self.models.wait_until_ready().await.is_ok()
    }

    /// The Node snapshots as they are published (the status controller
    /// re-checks every model's fit on a new one).
    pub fn node_snapshots(&self) -> NodeSnapshots {
        self.nodes.clone()
    }

    /// Numbers of engines and models cached.
    pub fn sizes(&self) -> (usize, usize) {
        (self.engines.len(), self.models.len())
    }
}

/// Keeps `snapshot` to the GPUs of every Node, published once the first
/// list is complete and again whenever a Node's GPUs change (a kubelet's
/// heartbeats change nothing it holds, and publish nothing).
async fn watch_nodes(client: Client, publish: watch::Sender<Option<Arc<NodeSnapshot>>>) {
    let mut cache = NodeCache::default();
    watcher(Api::<Node>::all(client), watcher::Config::default())
        .default_backoff()
        .for_each(|event| {
            match event {
                Ok(event) => {
                    if let Some(nodes) = cache.apply(event) {
                        publish.send_replace(Some(Arc::new(NodeSnapshot::new(nodes))));
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "Node watch failed; retrying with backoff")
                }
            }
            async {}
        })
        .await;
}

/// The GPUs of the Nodes, by name, as the watch events tell them.
#[derive(Default)]
struct NodeCache {
    nodes: HashMap<String, NodeGpus>,
    /// A (re-)list in progress.
    listing: HashMap<String, NodeGpus>,
}

impl NodeCache {
    /// Applies `event`; the new snapshot when what it holds changed (a list
    /// counts once it is complete).
    fn apply(&mut self, event: watcher::Event<Node>) -> Option<Arc<[NodeGpus]>> {
        match event {
            watcher::Event::Init => {
                self.listing.clear();
                return None;
            }
            watcher::Event::InitApply(node) => {
                let gpus = NodeGpus::of(&node);
                self.listing.insert(gpus.name.clone(), gpus);
                return None;
            }
            watcher::Event::InitDone => self.nodes = std::mem::take(&mut self.listing),
            watcher::Event::Apply(node) => {
                let gpus = NodeGpus::of(&node);
                if self.nodes.get(&gpus.name) == Some(&gpus) {
                    return None;
                }
                self.nodes.insert(gpus.name.clone(), gpus);
            }
            watcher::Event::Delete(node) => {
                self.nodes
                    .remove(node.metadata.name.as_deref().unwrap_or_default())?;
            }
        }
        Some(self.nodes.values().cloned().collect())
    }
}

impl ModelLookup for ClusterCatalog {
    fn nodes(&self) -> Option<Arc<NodeSnapshot>> {
        self.nodes.borrow().clone()
    }

    fn model(&self, namespace: &str, name: &str) -> Option<Arc<LLMModel>> {
        self.models.get(&ObjectRef::new(name).within(namespace))
    }

    fn engine(&self, namespace: &str, name: &str) -> Option<Arc<LLMEngine>> {
        self.engines.get(&ObjectRef::new(name).within(namespace))
    }

    fn model_names(&self, namespace: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .models
            .state()
            .iter()
            .filter(|m| m.metadata.namespace.as_deref() == Some(namespace))
            .filter_map(|m| m.metadata.name.clone())
            .collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, gpus: &str, heartbeat: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"nvidia.com/gpu.memory": "23028"}},
            "status": {
                "allocatable": {"nvidia.com/gpu": gpus},
                "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": heartbeat}],
            },
        }))
        .unwrap()
    }

    fn names(snapshot: Option<Arc<[NodeGpus]>>) -> Option<Vec<String>> {
        snapshot.map(|nodes| {
            let mut names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
            names.sort();
            names
        })
    }

    #[test]
    fn the_snapshot_follows_the_nodes_gpus() {
        use watcher::Event::*;
        let mut cache = NodeCache::default();
        let some = |names: &[&str]| Some(names.iter().map(|n| (*n).to_owned()).collect());
        let steps: Vec<(watcher::Event<Node>, Option<Vec<String>>)> = vec![
            // The first list is published whole, once it is complete.
            (Init, None),
            (InitApply(node("a", "4", "2026-12-07T00:00:01Z")), None),
            (InitApply(node("b", "2", "2026-12-07T00:00:01Z")), None),
            (InitDone, some(&["a", "b"])),
            // A heartbeat changes nothing the snapshot holds.
            (Apply(node("a", "4", "2026-12-07T00:00:02Z")), None),
            // GPUs appear on a Node, a Node joins, one leaves.
            (
                Apply(node("b", "8", "2026-12-07T00:00:02Z")),
                some(&["a", "b"]),
            ),
            (
                Apply(node("c", "1", "2026-12-07T00:00:02Z")),
                some(&["a", "b", "c"]),
            ),
            (
                Delete(node("a", "4", "2026-12-07T00:00:03Z")),
                some(&["b", "c"]),
            ),
            (Delete(node("a", "4", "2026-12-07T00:00:03Z")), None),
            // A re-list after a watch gap replaces everything, a Node gone
            // meanwhile included.
            (Init, None),
            (InitApply(node("c", "1", "2026-12-07T00:00:04Z")), None),
            (InitDone, some(&["c"])),
        ];
        for (i, (event, expected)) in steps.into_iter().enumerate() {
            assert_eq!(names(cache.apply(event)), expected, "step {i}");
        }
        let c = cache.nodes.get("c").unwrap();
        assert_eq!(c.allocatable.get("nvidia.com/gpu"), Some(&1));
    }
}
