//! LLMEngines and LLMModels from the cluster: kube runtime reflectors keep them
//! in memory from a watch, so a review never makes an API call. The GPUs of
//! the Nodes too, as one snapshot rebuilt when a Node's GPUs change, for the
//! advice on where an injected pod can run.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, NodeStatus};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use super::triggers::changes;
use crate::crd::{LLMEngine, LLMModel};
use crate::lookup::ModelLookup;
use crate::nodes::NodeGpus;

/// Read side of the reflectors.
#[derive(Clone)]
pub struct ClusterCatalog {
    engines: Store<LLMEngine>,
    models: Store<LLMModel>,
    /// The Nodes' GPUs, once the Node cache has listed them.
    nodes: Arc<ArcSwap<Option<Arc<[NodeGpus]>>>>,
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
        let nodes = Arc::new(ArcSwap::from_pointee(None));
        tokio::spawn(watch_nodes(client, nodes.clone()));
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

    /// Numbers of engines and models cached.
    pub fn sizes(&self) -> (usize, usize) {
        (self.engines.len(), self.models.len())
    }
}

/// Keeps `snapshot` to the GPUs of every Node: the Nodes' labels and
/// allocatable resources only (a kubelet's heartbeats change neither, and
/// pass no further than the filter).
async fn watch_nodes(client: Client, snapshot: Arc<ArcSwap<Option<Arc<[NodeGpus]>>>>) {
    let (store, writer) = reflector::store::<Node>();
    let events = watcher(Api::<Node>::all(client), watcher::Config::default())
        .default_backoff()
        .modify(slim_node)
        .reflect(writer);
    changes(events, gpu_facts)
        .for_each(|event| {
            match event {
                Ok(_) => {
                    let nodes: Arc<[NodeGpus]> =
                        store.state().iter().map(|n| NodeGpus::of(n)).collect();
                    snapshot.store(Arc::new(Some(nodes)));
                }
                Err(error) => {
                    tracing::warn!(%error, "Node watch failed; retrying with backoff")
                }
            }
            async {}
        })
        .await;
}

/// What the cache keeps of a Node: its labels and allocatable resources.
fn slim_node(node: &mut Node) {
    node.metadata.managed_fields = None;
    node.metadata.annotations = None;
    node.spec = None;
    let allocatable = node.status.as_mut().and_then(|s| s.allocatable.take());
    node.status = Some(NodeStatus {
        allocatable,
        ..Default::default()
    });
}

/// The key of what `NodeGpus::of` reads.
fn gpu_facts(node: &Node) -> u64 {
    let mut hasher = DefaultHasher::new();
    NodeGpus::of(node).hash(&mut hasher);
    hasher.finish()
}

impl ModelLookup for ClusterCatalog {
    fn nodes(&self) -> Option<Arc<[NodeGpus]>> {
        self.nodes.load().as_ref().clone()
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
