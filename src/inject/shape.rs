//! What of a pod the patch of an injection depends on, and nothing else: the
//! key under which a [`Prepared`](super::prepared::Prepared) injection keeps
//! the patch it made, so every pod of one shape gets the same patch.

use k8s_openapi::api::core::v1::{EnvVar, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::user::{self, EnvAdditions};
use crate::MODEL_LABEL;

/// Whether the pod has metadata, annotations and labels in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum MetadataShape {
    /// A pod template without `metadata`.
    Absent,
    Present {
        annotations: bool,
        labels: LabelsShape,
    },
}

/// The pod's labels, as far as the model label goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum LabelsShape {
    Absent,
    /// Labels without the model label.
    Without,
    /// The model label with the model's name already.
    WithModel,
}

/// The env entries put before one user container's own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct EnvShape {
    /// Indexes into the prepared user environment.
    pub wanted: Vec<usize>,
    /// `NVIDIA_VISIBLE_DEVICES=void` after them.
    pub no_gpu: bool,
    /// Whether the container has an `env` list already.
    pub had_env: bool,
}

/// The shape of a pod, as far as its injection patch is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct PodShape {
    pub metadata: MetadataShape,
    /// Lengths of the lists injection appends to, when present.
    pub init_containers: Option<usize>,
    pub volumes: Option<usize>,
    pub resource_claims: Option<usize>,
    /// The pod's own `runtimeClassName` (injection only adds one).
    pub runtime_class: Option<String>,
    /// For each user container (by index) that gets env entries.
    pub env: Vec<(usize, EnvShape)>,
    /// The uid `llm-pull` runs as under a classic service-mesh sidecar.
    pub pull_uid: Option<i64>,
}

impl PodShape {
    /// The shape of a pod with this metadata and spec, for injecting
    /// `user_env` (see [`EnvAdditions`]) and running `llm-pull` as `pull_uid`.
    pub fn of(
        meta: Option<&ObjectMeta>,
        spec: &PodSpec,
        user_env: &[EnvVar],
        pull_uid: Option<i64>,
    ) -> Self {
        let metadata = match meta {
            None => MetadataShape::Absent,
            Some(m) => MetadataShape::Present {
                annotations: m.annotations.is_some(),
                labels: match &m.labels {
                    None => LabelsShape::Absent,
                    // A label with another value is refused before.
                    Some(labels) if labels.contains_key(MODEL_LABEL) => LabelsShape::WithModel,
                    Some(_) => LabelsShape::Without,
                },
            },
        };
        let env = spec
            .containers
            .iter()
            .enumerate()
            .filter(|(_, c)| !user::is_proxy(c))
            .filter_map(|(index, container)| {
                let additions = EnvAdditions::of(container, user_env);
                (!additions.is_empty()).then(|| {
                    let shape = EnvShape {
                        had_env: container.env.is_some(),
                        wanted: additions.wanted,
                        no_gpu: additions.no_gpu,
                    };
                    (index, shape)
                })
            })
            .collect();
        PodShape {
            metadata,
            init_containers: spec.init_containers.as_ref().map(Vec::len),
            volumes: spec.volumes.as_ref().map(Vec::len),
            resource_claims: spec.resource_claims.as_ref().map(Vec::len),
            runtime_class: spec.runtime_class_name.clone(),
            env,
            pull_uid,
        }
    }
}
