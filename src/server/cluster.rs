//! LLMEngines and LLMModels from the cluster: kube runtime reflectors keep them
//! in memory from a watch, so a review never makes an API call.

use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::crd::{LLMEngine, LLMModel};
use crate::lookup::ModelLookup;

/// Read side of the two reflectors.
#[derive(Clone)]
pub struct ClusterCatalog {
    engines: Store<LLMEngine>,
    models: Store<LLMModel>,
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
        let model_stream = watcher(Api::<LLMModel>::all(client), watcher::Config::default())
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
        ClusterCatalog { engines, models }
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

impl ModelLookup for ClusterCatalog {
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
