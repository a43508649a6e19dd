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

/// What the LLMEngine and LLMModel caches went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheChanges {
    /// Objects applied or deleted, lists done.
    pub count: u64,
    /// Whether each cache (engines, models) has listed once.
    pub listed: [bool; 2],
}

/// Read side of the reflectors.
#[derive(Clone)]
pub struct ClusterCatalog {
    engines: Store<LLMEngine>,
    models: Store<LLMModel>,
    /// The changes of either cache, for whom renders something of them all,
    /// and whether both have listed.
    changes: watch::Receiver<CacheChanges>,
    /// The Nodes' GPUs, once the Node cache has listed them; a new
    /// snapshot whenever they change.
    nodes: NodeSnapshots,
}

impl ClusterCatalog {
    /// Starts watching both kinds in all namespaces, on the current runtime.
    pub fn start(client: Client) -> Self {
        let (engines, engine_writer) = reflector::store::<LLMEngine>();
        let (models, model_writer) = reflector::store::<LLMModel>();
        let (changed, changes) = watch::channel(CacheChanges::default());
        let changed = Arc::new(changed);
        let engine_stream = watcher(
            Api::<LLMEngine>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(engine_writer);
        let model_stream = watcher(
            Api::<LLMModel>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(model_writer);
        tokio::spawn(engine_stream.for_each(count_changes("LLMEngine", 0, changed.clone())));
        tokio::spawn(model_stream.for_each(count_changes("LLMModel", 1, changed)));
        let (publish, nodes) = watch::channel(None);
        tokio::spawn(watch_nodes(client, publish));
        ClusterCatalog {
            engines,
            models,
            changes,
            nodes,
        }
    }

    /// Every LLMModel cached, with its namespace, by namespace then name.
    pub fn models(&self) -> Vec<(String, Arc<LLMModel>)> {
        let mut models: Vec<(String, Arc<LLMModel>)> = self
            .models
            .state()
            .into_iter()
            .map(|m| (m.metadata.namespace.clone().unwrap_or_default(), m))
            .collect();
        models.sort_by(|a, b| (&a.0, &a.1.metadata.name).cmp(&(&b.0, &b.1.metadata.name)));
        models
    }

    /// The caches' changes as they happen.
    pub fn changes(&self) -> watch::Receiver<CacheChanges> {
        self.changes.clone()
    }

    /// Resolves once both caches have listed everything once (any number
    /// of tasks may wait: a reflector's own readiness wakes only one).
    pub async fn synced(&self) -> bool {
        let mut changes = self.changes.clone();
        changes
            .wait_for(|c| c.listed.iter().all(|listed| *listed))
            .await
            .is_ok()
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

/// Per event of the watch of `kind` (cache `index` of
/// [`CacheChanges::listed`]), after the reflector stored it: a change
/// counted (an object applied or deleted, a list done), an error logged.
fn count_changes<K>(
    kind: &'static str,
    index: usize,
    changed: Arc<watch::Sender<CacheChanges>>,
) -> impl FnMut(Result<watcher::Event<K>, watcher::Error>) -> std::future::Ready<()> {
    move |event| {
        match event {
            Ok(watcher::Event::InitDone) => changed.send_modify(|c| {
                c.count = c.count.wrapping_add(1);
                c.listed[index] = true;
            }),
            Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                changed.send_modify(|c| c.count = c.count.wrapping_add(1));
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "{kind} watch failed; retrying with backoff"),
        }
        std::future::ready(())
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
