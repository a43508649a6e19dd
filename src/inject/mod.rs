//! The pure injection core, shared by the webhook and `llm-injector inject`.
//!
//! [`inject`] turns a typed pod or pod template, an `LLMModel` and its
//! `LLMEngine` into the injected object and the RFC 6902 patch between the
//! two (`json_patch::diff` of both serialised from the same typed value).
//! [`inject_requested`] adds the opt-in and lookup steps around it. Nothing
//! here touches HTTP, TLS, a client or a clock.

mod containers;
mod error;
mod options;
mod plan;
mod user;

use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

pub use containers::{
    CLAIM_PREFIX, ENGINE_CONTAINER_PREFIX, MODEL_MOUNT_PATH, MODEL_VOLUME, PULL_CONTAINER,
    ROUTER_CONTAINER,
};
pub use error::InjectError;
pub use options::{DEFAULT_ROUTER_IMAGE, InjectOptions};
pub use plan::{Plan, RESERVED_ENGINE_ENV, last_injected_port};
pub use user::requests_gpu;

use crate::catalog::ModelLookup;
use crate::crd::{LLMEngine, LLMModel};
use crate::validate::is_dns_subdomain;
use crate::{MODEL_ANNOTATION, STATUS_ANNOTATION};

/// A Kubernetes object that holds a pod: a `Pod` or a `PodTemplateSpec`.
pub trait PodLike: Serialize + Clone {
    /// The pod's metadata, where the opt-in annotation is read.
    fn pod_metadata(&self) -> Option<&ObjectMeta>;
    /// Metadata and spec to mutate; metadata is created when absent.
    fn parts_mut(&mut self) -> Result<(&mut ObjectMeta, &mut PodSpec), InjectError>;
    /// A copy without `metadata.managedFields`, which injection never changes
    /// (and which can be the largest part of a pod).
    fn clone_without_managed_fields(&self) -> Self;
}

fn meta_without_managed_fields(meta: &ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        annotations: meta.annotations.clone(),
        creation_timestamp: meta.creation_timestamp.clone(),
        deletion_grace_period_seconds: meta.deletion_grace_period_seconds,
        deletion_timestamp: meta.deletion_timestamp.clone(),
        finalizers: meta.finalizers.clone(),
        generate_name: meta.generate_name.clone(),
        generation: meta.generation,
        labels: meta.labels.clone(),
        managed_fields: None,
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        owner_references: meta.owner_references.clone(),
        resource_version: meta.resource_version.clone(),
        self_link: meta.self_link.clone(),
        uid: meta.uid.clone(),
    }
}

impl PodLike for Pod {
    fn pod_metadata(&self) -> Option<&ObjectMeta> {
        Some(&self.metadata)
    }
    fn parts_mut(&mut self) -> Result<(&mut ObjectMeta, &mut PodSpec), InjectError> {
        let spec = self.spec.as_mut().ok_or(InjectError::NoPodSpec)?;
        Ok((&mut self.metadata, spec))
    }
    fn clone_without_managed_fields(&self) -> Self {
        Pod {
            metadata: meta_without_managed_fields(&self.metadata),
            spec: self.spec.clone(),
            status: self.status.clone(),
        }
    }
}

impl PodLike for PodTemplateSpec {
    fn pod_metadata(&self) -> Option<&ObjectMeta> {
        self.metadata.as_ref()
    }
    fn parts_mut(&mut self) -> Result<(&mut ObjectMeta, &mut PodSpec), InjectError> {
        let spec = self.spec.as_mut().ok_or(InjectError::NoPodSpec)?;
        Ok((self.metadata.get_or_insert_with(ObjectMeta::default), spec))
    }
    fn clone_without_managed_fields(&self) -> Self {
        PodTemplateSpec {
            metadata: self.metadata.as_ref().map(meta_without_managed_fields),
            spec: self.spec.clone(),
        }
    }
}

/// What the annotations of a pod ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// No `llm.injector.dev/model` annotation: leave the pod alone.
    NotRequested,
    /// The pod already carries `llm.injector.dev/status`: injection happened.
    AlreadyInjected,
    /// Inject the named LLMModel.
    Model(&'a str),
}

/// Reads the opt-in annotation from a pod's metadata.
pub fn requested_model(meta: Option<&ObjectMeta>) -> Request<'_> {
    let Some(annotations) = meta.and_then(|m| m.annotations.as_ref()) else {
        return Request::NotRequested;
    };
    match (
        annotations.get(MODEL_ANNOTATION),
        annotations.contains_key(STATUS_ANNOTATION),
    ) {
        (None, _) => Request::NotRequested,
        (Some(_), true) => Request::AlreadyInjected,
        (Some(name), false) => Request::Model(name),
    }
}

/// Checks that an annotation value is a plain object name in the pod's namespace.
pub fn check_model_name(value: &str, namespace: &str) -> Result<(), InjectError> {
    let why = if value.trim().is_empty() {
        Some(" (it is empty)")
    } else if value.contains('/') {
        Some(
            " (it contains '/'; a pod may only use LLMModels of its own namespace, so no namespace or path may be given)",
        )
    } else if value.len() > 253 {
        Some(" (it is longer than 253 characters)")
    } else if !is_dns_subdomain(value) {
        Some(
            " (names are lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)",
        )
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(InjectError::InvalidModelName {
            annotation: MODEL_ANNOTATION,
            value: value.to_owned(),
            namespace: namespace.to_owned(),
            why,
        }),
    }
}

/// What injection added, written as JSON into the `llm.injector.dev/status` annotation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct InjectionStatus {
    /// The LLMModel injected.
    pub model: String,
    /// Its LLMEngine.
    pub engine: String,
    /// The Ollama model reference served.
    pub ollama_model: String,
    /// Engine instances (data parallelism).
    pub instances: i32,
    /// GPUs per instance (model parallelism).
    pub gpus_per_instance: i32,
    /// The init containers added, in order.
    pub init_containers: Vec<String>,
    /// The volumes added.
    pub volumes: Vec<String>,
    /// The pod resource claims added (DRA).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_claims: Vec<String>,
    /// The endpoint user containers were pointed at.
    pub endpoint: String,
}

/// An injected object and the JSON Patch that turns the input into it.
#[derive(Debug, Clone)]
pub struct Injected<P> {
    pub object: P,
    pub patch: json_patch::Patch,
    pub status: InjectionStatus,
}

/// The result of [`inject_requested`].
#[derive(Debug, Clone)]
pub enum Outcome<P> {
    /// The pod did not ask for injection; it must be left untouched.
    NotRequested,
    /// The pod is already injected; nothing changes.
    AlreadyInjected,
    /// The pod was injected.
    Injected(Box<Injected<P>>),
}

/// Injects `obj` when its annotation asks for it, looking the model and its
/// engine up in `namespace`.
pub fn inject_requested<P: PodLike, L: ModelLookup + ?Sized>(
    obj: &P,
    namespace: &str,
    lookup: &L,
    options: &InjectOptions,
) -> Result<Outcome<P>, InjectError> {
    let name = match requested_model(obj.pod_metadata()) {
        Request::NotRequested => return Ok(Outcome::NotRequested),
        Request::AlreadyInjected => return Ok(Outcome::AlreadyInjected),
        Request::Model(name) => name,
    };
    check_model_name(name, namespace)?;
    let model = lookup
        .model(namespace, name)
        .ok_or_else(|| InjectError::UnknownModel {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            available: lookup.model_names(namespace),
        })?;
    let engine_name = &model.spec.engine_ref.name;
    let engine =
        lookup
            .engine(namespace, engine_name)
            .ok_or_else(|| InjectError::MissingEngine {
                namespace: namespace.to_owned(),
                model: name.to_owned(),
                engine: engine_name.clone(),
            })?;
    inject(obj, &model, &engine, options).map(|i| Outcome::Injected(Box::new(i)))
}

/// Injects `model` served by `engine` into `obj` (which must not be injected yet).
pub fn inject<P: PodLike>(
    obj: &P,
    model: &LLMModel,
    engine: &LLMEngine,
    options: &InjectOptions,
) -> Result<Injected<P>, InjectError> {
    let plan = Plan::new(model, engine, options)?;
    // managedFields never change; keep them out of both sides of the diff.
    let before = obj.clone_without_managed_fields();
    let mut after = before.clone();
    let (meta, spec) = after.parts_mut()?;
    let status = mutate(meta, spec, &plan)?;
    let patch = json_patch::diff(&to_json(&before)?, &to_json(&after)?);
    after.parts_mut()?.0.managed_fields = obj.pod_metadata().and_then(|m| m.managed_fields.clone());
    Ok(Injected {
        object: after,
        patch,
        status,
    })
}

fn to_json(value: &impl Serialize) -> Result<serde_json::Value, InjectError> {
    serde_json::to_value(value).map_err(|e| InjectError::Serialize(e.to_string()))
}

/// Applies the plan to a pod's metadata and spec, appending only.
fn mutate(
    meta: &mut ObjectMeta,
    spec: &mut PodSpec,
    plan: &Plan,
) -> Result<InjectionStatus, InjectError> {
    let engine_names: Vec<String> = (0..plan.instances)
        .map(containers::engine_container_name)
        .collect();
    let claim_names: Vec<String> = if plan.claim_template.is_some() {
        (0..plan.instances).map(containers::claim_name).collect()
    } else {
        Vec::new()
    };
    let mut init_names = vec![PULL_CONTAINER.to_owned()];
    init_names.extend(engine_names.iter().cloned());
    if plan.router.is_some() {
        init_names.push(ROUTER_CONTAINER.to_owned());
    }

    check_collisions(spec, plan, &init_names, &claim_names)?;
    check_ports(spec, plan)?;
    if let Some(wanted) = plan.runtime_class {
        match spec.runtime_class_name.as_deref() {
            None => spec.runtime_class_name = Some(wanted.to_owned()),
            Some(existing) if existing == wanted => {}
            Some(existing) => {
                return Err(InjectError::RuntimeClassConflict {
                    pod: existing.to_owned(),
                    engine: plan.engine_name.to_owned(),
                    wanted: wanted.to_owned(),
                });
            }
        }
    }

    let init = spec.init_containers.get_or_insert_with(Vec::new);
    init.push(containers::pull_container(plan));
    init.extend((0..plan.instances).map(|i| containers::engine_container(plan, i)));
    init.extend(containers::router_container(plan));
    spec.volumes
        .get_or_insert_with(Vec::new)
        .push(containers::model_volume(plan));
    if !claim_names.is_empty() {
        spec.resource_claims
            .get_or_insert_with(Vec::new)
            .extend((0..plan.instances).filter_map(|i| containers::pod_claim(plan, i)));
    }
    let wanted_env = user::endpoint_env(plan);
    for container in &mut spec.containers {
        user::add_user_env(container, &wanted_env);
    }

    let status = InjectionStatus {
        model: plan.model_name.to_owned(),
        engine: plan.engine_name.to_owned(),
        ollama_model: plan.ollama_model.to_owned(),
        instances: plan.instances,
        gpus_per_instance: plan.gpus_per_instance,
        init_containers: init_names,
        volumes: vec![MODEL_VOLUME.to_owned()],
        resource_claims: claim_names,
        endpoint: plan.endpoint_url(),
    };
    let status_json =
        serde_json::to_string(&status).map_err(|e| InjectError::Serialize(e.to_string()))?;
    meta.annotations
        .get_or_insert_with(Default::default)
        .insert(STATUS_ANNOTATION.to_owned(), status_json);
    Ok(status)
}

fn check_collisions(
    spec: &PodSpec,
    plan: &Plan,
    init_names: &[String],
    claim_names: &[String],
) -> Result<(), InjectError> {
    let collision = |what: &'static str, name: &str| InjectError::NameCollision {
        what,
        name: name.to_owned(),
        model: plan.model_name.to_owned(),
    };
    let taken = |name: &str| init_names.iter().any(|n| n == name);
    for c in &spec.containers {
        if taken(&c.name) {
            return Err(collision("a container", &c.name));
        }
    }
    for c in spec.init_containers.iter().flatten() {
        if taken(&c.name) {
            return Err(collision("an init container", &c.name));
        }
    }
    for v in spec.volumes.iter().flatten() {
        if v.name == MODEL_VOLUME {
            return Err(collision("a volume", &v.name));
        }
    }
    for c in spec.resource_claims.iter().flatten() {
        if claim_names.contains(&c.name) {
            return Err(collision("a resource claim", &c.name));
        }
    }
    Ok(())
}

/// Engine instances (and the router) listen on the pod's loopback; a user
/// container declaring one of those ports would collide with them.
fn check_ports(spec: &PodSpec, plan: &Plan) -> Result<(), InjectError> {
    let all = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for container in all {
        for port in container.ports.iter().flatten() {
            if let Some(listener) = plan.listener_on(port.container_port) {
                return Err(InjectError::PortInUse {
                    container: container.name.clone(),
                    port: port.container_port,
                    listener,
                    model: plan.model_name.to_owned(),
                    first: plan.port,
                    last: plan.last_port(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn model_names_table() {
        let cases = [
            ("qwen-mp2", true),
            ("a", true),
            ("model.v1", true),
            ("", false),
            ("   ", false),
            ("team-b/qwen", false),
            ("../qwen", false),
            ("Qwen", false),
            ("qwen_mp2", false),
            ("-qwen", false),
            ("qwen-", false),
            ("qwen mp2", false),
            ("qwen..mp2", false),
            ("ｑwen", false),
        ];
        for (name, ok) in cases {
            assert_eq!(check_model_name(name, "ns").is_ok(), ok, "{name:?}");
        }
        assert!(check_model_name(&"a".repeat(254), "ns").is_err());
    }

    #[test]
    fn requested_model_table() {
        let meta = |pairs: &[(&str, &str)]| ObjectMeta {
            annotations: Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        };
        assert_eq!(requested_model(None), Request::NotRequested);
        assert_eq!(
            requested_model(Some(&ObjectMeta::default())),
            Request::NotRequested
        );
        assert_eq!(
            requested_model(Some(&meta(&[("other", "x")]))),
            Request::NotRequested
        );
        assert_eq!(
            requested_model(Some(&meta(&[(MODEL_ANNOTATION, "m")]))),
            Request::Model("m")
        );
        assert_eq!(
            requested_model(Some(&meta(&[
                (MODEL_ANNOTATION, "m"),
                (STATUS_ANNOTATION, "{}")
            ]))),
            Request::AlreadyInjected
        );
        // A status annotation alone (no request) is not a request.
        assert_eq!(
            requested_model(Some(&meta(&[(STATUS_ANNOTATION, "{}")]))),
            Request::NotRequested
        );
    }
}
