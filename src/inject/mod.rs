//! The pure injection core, shared by the webhook and `llm-injector inject`.
//!
//! [`inject`] turns a typed pod or pod template, an `LLMModel` and its
//! `LLMEngine` into the injected object and the RFC 6902 patch between the
//! two (`json_patch::diff` of both serialised from the same typed value, or
//! rather of the parts injection may change: see `touched_json`).
//! [`inject_requested`] adds the opt-in and lookup steps around it;
//! [`inject_requested_patch`] is the same without the injected object, for
//! the webhook, which only answers the patch. Nothing here touches HTTP, TLS,
//! a client or a clock.

mod containers;
mod diff;
mod error;
mod options;
mod plan;
mod typos;
mod user;
pub(crate) mod workload;

use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

pub use crate::layout::{
    CLAIM_PREFIX, ENGINE_CONTAINER_PREFIX, INJECTED_UID, INJECTED_VOLUMES, MODEL_MOUNT_PATH,
    MODEL_VOLUME, NO_TOKEN_VOLUME, PULL_CONTAINER, RESERVED_ENGINE_ENV, ROUTER_CONTAINER,
    TOKEN_MOUNT_PATH, last_injected_port,
};
pub use containers::{LOADED_CHECK, restricted_security_context};
pub use error::InjectError;
pub use options::{DEFAULT_ROUTER_IMAGE, InjectOptions};
pub use plan::{ENGINE_DEFAULT_RESOURCES, PULL_DEFAULT_RESOURCES, Plan, complete_resources};
pub use typos::opt_in_mistakes;
pub use user::{PLACEHOLDER_API_KEY, PROXY_CONTAINERS, requests_gpu};

use crate::crd::{LLMEngine, LLMModel};
use crate::lookup::ModelLookup;
use crate::validate::is_dns_subdomain;
use crate::{MODEL_ANNOTATION, STATUS_ANNOTATION};

/// A Kubernetes object that holds a pod: a `Pod` or a `PodTemplateSpec`.
pub trait PodLike: Serialize + Clone {
    /// The pod's metadata, where the opt-in annotation is read.
    fn pod_metadata(&self) -> Option<&ObjectMeta>;
    /// The pod's spec, if it has one.
    fn pod_spec(&self) -> Option<&PodSpec>;
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
    fn pod_spec(&self) -> Option<&PodSpec> {
        self.spec.as_ref()
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
    fn pod_spec(&self) -> Option<&PodSpec> {
        self.spec.as_ref()
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

/// What the user should know about a pod that is injected as `plan` says
/// and will run, for admission warnings and the CLI's stderr. `spec` is the
/// pod as it came.
fn injection_warnings(spec: &PodSpec, plan: &Plan) -> Vec<String> {
    let mut warnings = Vec::new();
    if spec.host_network == Some(true) {
        warnings.push(format!(
            "spec.hostNetwork is true: the engines of LLMModel {:?} listen on the node's loopback ({}), which the node and every hostNetwork pod on it share; a second such pod on the node cannot start its engines, and the model API is open to the node; drop hostNetwork unless the pod needs it",
            plan.model_name,
            plan.endpoint_url()
        ));
    }
    warnings.extend(user::endpoint_warnings(spec, plan));
    warnings.extend(user::env_from_warnings(spec, plan));
    let defaulted = plan.security_context == containers::restricted_security_context();
    let pod_security = spec.security_context.as_ref();
    if defaulted
        && plan.vendor == crate::crd::Vendor::Amd
        && pod_security
            .and_then(|s| s.supplemental_groups.as_ref())
            .is_none_or(Vec::is_empty)
    {
        warnings.push(format!(
            "the engines of LLMModel {:?} run as uid {uid}, not root, and ROCm nodes give /dev/kfd and /dev/dri/renderD* to the render and video groups (mode 0660): add the node's render and video gids to the pod's spec.securityContext.supplementalGroups, or let the container runtime hand devices to the container's user (containerd and CRI-O: device_ownership_from_security_context = true), or set LLMEngine {:?} spec.securityContext; otherwise Ollama finds no GPU and runs on the CPU",
            plan.model_name,
            plan.engine_name,
            uid = INJECTED_UID,
        ));
    }
    if let Some(claim) = &plan.model_store.persistent_volume_claim
        && plan
            .security_context
            .run_as_user
            .is_some_and(|uid| uid != 0)
        && pod_security.and_then(|s| s.fs_group).is_none()
    {
        warnings.push(format!(
            "llm-pull writes the model store, PersistentVolumeClaim {:?}, as uid {}, and a new volume is usually writable by root only: set the pod's spec.securityContext.fsGroup (for example {}) so Kubernetes makes it group-writable, or the pull fails",
            claim.claim_name,
            plan.security_context.run_as_user.unwrap_or_default(),
            plan.security_context.run_as_group.unwrap_or(INJECTED_UID),
        ));
    }
    warnings
}

/// The uid of a classic (not native) service-mesh sidecar of the pod. Its
/// init container redirects all outbound traffic of the pod to the proxy,
/// which starts only after the init containers, so `llm-pull` could not
/// download; traffic of the proxy's own uid is not redirected (Istio:
/// istio-iptables `--proxy-uid`, "Compatibility with application init
/// containers" in Istio's CNI docs; Linkerd: proxy-init `--proxy-uid`), so
/// `llm-pull` runs as that uid. A proxy that is a native sidecar (an init
/// container with `restartPolicy: Always` before `llm-pull`) is running when
/// `llm-pull` starts and needs nothing.
fn classic_mesh_proxy_uid(spec: &PodSpec) -> Option<i64> {
    let proxy = spec.containers.iter().find(|c| user::is_proxy(c))?;
    let default = if proxy.name == "istio-proxy" {
        1337
    } else {
        2102
    };
    Some(
        proxy
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_user)
            .unwrap_or(default),
    )
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
    /// What the user should know (admission warnings, the CLI's stderr).
    pub warnings: Vec<String>,
}

/// The JSON Patch of an injection without the injected object: what the
/// webhook answers.
#[derive(Debug, Clone)]
pub struct Patched {
    pub patch: json_patch::Patch,
    pub status: InjectionStatus,
    /// What the user should know (admission warnings).
    pub warnings: Vec<String>,
}

/// The result of [`inject_requested_patch`].
#[derive(Debug, Clone)]
pub enum PatchOutcome {
    /// The pod did not ask for injection; it must be left untouched.
    NotRequested,
    /// The pod is already injected; nothing changes.
    AlreadyInjected,
    /// The pod is to be injected with this patch.
    Patched(Box<Patched>),
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
    match resolve(obj, namespace, lookup)? {
        Resolved::NotRequested => Ok(Outcome::NotRequested),
        Resolved::AlreadyInjected => Ok(Outcome::AlreadyInjected),
        Resolved::Model(model, engine) => {
            inject(obj, &model, &engine, options).map(|i| Outcome::Injected(Box::new(i)))
        }
    }
}

/// [`inject_requested`] without the injected object: the same checks, errors
/// and patch, for callers that only need the patch (the webhook).
pub fn inject_requested_patch<P: PodLike, L: ModelLookup + ?Sized>(
    obj: &P,
    namespace: &str,
    lookup: &L,
    options: &InjectOptions,
) -> Result<PatchOutcome, InjectError> {
    match resolve(obj, namespace, lookup)? {
        Resolved::NotRequested => Ok(PatchOutcome::NotRequested),
        Resolved::AlreadyInjected => Ok(PatchOutcome::AlreadyInjected),
        Resolved::Model(model, engine) => {
            inject_patch(obj, &model, &engine, options).map(|p| PatchOutcome::Patched(Box::new(p)))
        }
    }
}

/// What the annotations of a pod ask for, with the model and engine looked up.
enum Resolved {
    NotRequested,
    AlreadyInjected,
    Model(Arc<LLMModel>, Arc<LLMEngine>),
}

fn resolve<P: PodLike, L: ModelLookup + ?Sized>(
    obj: &P,
    namespace: &str,
    lookup: &L,
) -> Result<Resolved, InjectError> {
    let name = match requested_model(obj.pod_metadata()) {
        Request::NotRequested => return Ok(Resolved::NotRequested),
        Request::AlreadyInjected => return Ok(Resolved::AlreadyInjected),
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
    Ok(Resolved::Model(model, engine))
}

/// Injects `model` served by `engine` into `obj` (which must not be injected yet).
pub fn inject<P: PodLike>(
    obj: &P,
    model: &LLMModel,
    engine: &LLMEngine,
    options: &InjectOptions,
) -> Result<Injected<P>, InjectError> {
    let plan = Plan::new(model, engine, options)?;
    let mut after = obj.clone();
    let (meta, spec) = after.parts_mut()?;
    let (status, warnings) = mutate(meta, spec, &plan)?;
    let patch = patch_between(obj, &after)?;
    Ok(Injected {
        object: after,
        patch,
        status,
        warnings,
    })
}

/// [`inject`] without the injected object: the same errors and the same patch.
pub fn inject_patch<P: PodLike>(
    obj: &P,
    model: &LLMModel,
    engine: &LLMEngine,
    options: &InjectOptions,
) -> Result<Patched, InjectError> {
    let plan = Plan::new(model, engine, options)?;
    // managedFields never change and are not part of the patch: not copied.
    let mut after = obj.clone_without_managed_fields();
    let (meta, spec) = after.parts_mut()?;
    let (status, warnings) = mutate(meta, spec, &plan)?;
    let patch = patch_between(obj, &after)?;
    Ok(Patched {
        patch,
        status,
        warnings,
    })
}

/// `json_patch::diff` of `before` and `after` (`after` being `before` as
/// [`mutate`] left it), both serialised without `metadata.managedFields`.
///
/// Only the parts [`mutate`] may change are serialised and diffed (see
/// [`touched_json`]): every other field is equal on both sides, and equal
/// fields add no operation to a diff, so the patch is the same as the diff of
/// the whole objects (`tests/patch_equivalence.rs` checks it). The diff is
/// [`diff::diff`], which moves the added values instead of cloning them.
fn patch_between<P: PodLike>(before: &P, after: &P) -> Result<json_patch::Patch, InjectError> {
    let before_spec = before.pod_spec().ok_or(InjectError::NoPodSpec)?;
    let after_spec = after.pod_spec().ok_or(InjectError::NoPodSpec)?;
    let kept = Kept::of(before_spec);
    let left = touched_json(before.pod_metadata(), before_spec, &kept)?;
    let right = touched_json(after.pod_metadata(), after_spec, &kept)?;
    let mut patch = diff::diff(&left, right);
    add_env_ops(before_spec, after_spec, &mut patch)?;
    Ok(patch)
}

/// `add` operations for the env entries [`mutate`] put before each user
/// container's own (a diff would replace every existing entry instead, as
/// the list shifts): the patch only adds, and never writes a user's value.
fn add_env_ops(
    before: &PodSpec,
    after: &PodSpec,
    patch: &mut json_patch::Patch,
) -> Result<(), InjectError> {
    use json_patch::jsonptr::PointerBuf;
    use json_patch::{AddOperation, PatchOperation};
    for (index, (old, new)) in before.containers.iter().zip(&after.containers).enumerate() {
        if old.env == new.env {
            continue;
        }
        let mut path = PointerBuf::new();
        for token in ["spec", "containers"] {
            path.push_back(token);
        }
        path.push_back(index);
        path.push_back("env");
        let new_env = new.env.as_deref().unwrap_or_default();
        let Some(old_env) = old.env.as_deref() else {
            patch.0.push(PatchOperation::Add(AddOperation {
                path,
                value: to_json(&new_env)?,
            }));
            continue;
        };
        let added = new_env.len().saturating_sub(old_env.len());
        if new_env[added..] != *old_env {
            return Err(InjectError::Serialize(format!(
                "container {:?}: injection changed its env beyond adding entries first",
                new.name
            )));
        }
        for (position, var) in new_env[..added].iter().enumerate() {
            let mut at = path.clone();
            at.push_back(position);
            patch.0.push(PatchOperation::Add(AddOperation {
                path: at,
                value: to_json(var)?,
            }));
        }
    }
    Ok(())
}

/// How many entries of the lists [`mutate`] appends to the pod had before:
/// those entries are never changed.
struct Kept {
    init_containers: usize,
    volumes: usize,
    resource_claims: usize,
}

impl Kept {
    fn of(spec: &PodSpec) -> Self {
        Kept {
            init_containers: spec.init_containers.as_ref().map_or(0, Vec::len),
            volumes: spec.volumes.as_ref().map_or(0, Vec::len),
            resource_claims: spec.resource_claims.as_ref().map_or(0, Vec::len),
        }
    }
}

/// The JSON of the parts of a pod that [`mutate`] may change, at the paths
/// they have in the whole pod's JSON: `metadata.annotations`,
/// `spec.initContainers`, `spec.volumes`,
/// `spec.resourceClaims` and `spec.runtimeClassName` (the containers' env is
/// patched by [`add_env_ops`]). Everything else is
/// left out; so are the first `kept` entries of the lists mutate appends to
/// (each written as `{}`, which keeps the indexes of the entries after them).
/// A field absent from the pod is absent here, as in the pod's JSON.
fn touched_json(
    meta: Option<&ObjectMeta>,
    spec: &PodSpec,
    kept: &Kept,
) -> Result<Value, InjectError> {
    let mut spec_json = Map::new();

    if let Some(init) = &spec.init_containers {
        spec_json.insert(
            "initContainers".to_owned(),
            appended_json(init, kept.init_containers)?,
        );
    }
    if let Some(claims) = &spec.resource_claims {
        spec_json.insert(
            "resourceClaims".to_owned(),
            appended_json(claims, kept.resource_claims)?,
        );
    }
    if let Some(class) = &spec.runtime_class_name {
        spec_json.insert("runtimeClassName".to_owned(), Value::String(class.clone()));
    }
    if let Some(volumes) = &spec.volumes {
        spec_json.insert("volumes".to_owned(), appended_json(volumes, kept.volumes)?);
    }
    let mut pod = Map::new();
    if let Some(meta) = meta {
        let mut meta_json = Map::new();
        if let Some(annotations) = &meta.annotations {
            meta_json.insert("annotations".to_owned(), to_json(annotations)?);
        }
        pod.insert("metadata".to_owned(), Value::Object(meta_json));
    }
    pod.insert("spec".to_owned(), Value::Object(spec_json));
    Ok(Value::Object(pod))
}

/// A list as JSON, its first `kept` entries written as `{}`.
fn appended_json<T: Serialize>(list: &[T], kept: usize) -> Result<Value, InjectError> {
    let kept = kept.min(list.len());
    let mut out = Vec::with_capacity(list.len());
    out.resize_with(kept, || Value::Object(Map::new()));
    for item in &list[kept..] {
        out.push(to_json(item)?);
    }
    Ok(Value::Array(out))
}

fn to_json(value: &impl Serialize) -> Result<serde_json::Value, InjectError> {
    serde_json::to_value(value).map_err(|e| InjectError::Serialize(e.to_string()))
}

/// Applies the plan to a pod's metadata and spec, adding only, and says
/// what the user should know.
fn mutate(
    meta: &mut ObjectMeta,
    spec: &mut PodSpec,
    plan: &Plan,
) -> Result<(InjectionStatus, Vec<String>), InjectError> {
    let plan = &Plan {
        pull_uid: classic_mesh_proxy_uid(spec),
        ..plan.clone()
    };
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
    let warnings = injection_warnings(spec, plan);
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
    spec.volumes.get_or_insert_with(Vec::new).extend([
        containers::model_volume(plan),
        containers::no_token_volume(),
    ]);
    if !claim_names.is_empty() {
        spec.resource_claims
            .get_or_insert_with(Vec::new)
            .extend((0..plan.instances).filter_map(|i| containers::pod_claim(plan, i)));
    }
    let wanted_env = user::endpoint_env(plan);
    for container in spec.containers.iter_mut().filter(|c| !user::is_proxy(c)) {
        user::add_user_env(container, &wanted_env);
    }

    let status = InjectionStatus {
        model: plan.model_name.to_owned(),
        engine: plan.engine_name.to_owned(),
        ollama_model: plan.ollama_model.to_owned(),
        instances: plan.instances,
        gpus_per_instance: plan.gpus_per_instance,
        init_containers: init_names,
        volumes: INJECTED_VOLUMES.map(str::to_owned).to_vec(),
        resource_claims: claim_names,
        endpoint: plan.endpoint_url(),
    };
    let status_json =
        serde_json::to_string(&status).map_err(|e| InjectError::Serialize(e.to_string()))?;
    meta.annotations
        .get_or_insert_with(Default::default)
        .insert(STATUS_ANNOTATION.to_owned(), status_json);
    Ok((status, warnings))
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
        if INJECTED_VOLUMES.contains(&v.name.as_str()) {
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
