//! The pure injection core, shared by the webhook and `llm-injector inject`.
//!
//! An [`Injector`] answers, for a typed pod or pod template, whether it asks
//! for an LLMModel and, if it does, the RFC 6902 patch that injects it
//! ([`Outcome`]); callers that want the injected object apply the patch
//! ([`Injection::apply`]), as Istio's `kube-inject` does. What a model adds
//! is built once per (model, engine, options) and the patch once per
//! shape of pod, so the pods of one workload cost a lookup each. Nothing
//! here touches HTTP, TLS, a client or a clock.
//!
//! ```
//! use llm_injector::inject::{Injector, Outcome};
//! use llm_injector::Catalog;
//! use llm_injector::yaml::read_documents;
//! use k8s_openapi::api::core::v1::Pod;
//!
//! let yaml = r#"
//! apiVersion: llm.injector.dev/v1alpha1
//! kind: LLMEngine
//! metadata: {name: ollama-cpu}
//! spec: {runtime: Ollama, accelerator: {vendor: None}}
//! ---
//! apiVersion: llm.injector.dev/v1alpha1
//! kind: LLMModel
//! metadata: {name: qwen}
//! spec: {engineRef: {name: ollama-cpu}, model: "qwen3:0.6b"}
//! "#;
//! let mut catalog = Catalog::new();
//! catalog.add_documents(&read_documents("catalog.yaml", yaml).unwrap(), "default").unwrap();
//! let pod: Pod = serde_json::from_value(serde_json::json!({
//!     "metadata": {"name": "chat", "annotations": {"llm.injector.dev/model": "qwen"}},
//!     "spec": {"containers": [{"name": "app", "image": "chat:1"}]},
//! })).unwrap();
//!
//! let injector = Injector::default();
//! let Outcome::Injected(injection) = injector.inject(&pod, "default", &catalog).unwrap() else {
//!     panic!("the pod asks for qwen");
//! };
//! let injected = injection.apply(&pod).unwrap();
//! let init = injected.spec.unwrap().init_containers.unwrap();
//! assert_eq!(init[0].name, "llm-pull");
//! assert_eq!(init[1].name, "llm-engine-0");
//! assert_eq!(injection.status.endpoint, "http://127.0.0.1:11434");
//! ```

mod containers;
mod error;
mod options;
mod plan;
mod prepared;
mod shape;
mod typos;
pub mod uninject;
mod user;
pub(crate) mod workload;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{EnvVar, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use crate::layout::{
    CLAIM_PREFIX, ENGINE_CONTAINER_PREFIX, INJECTED_UID, INJECTED_VOLUMES, MODEL_MOUNT_PATH,
    MODEL_VOLUME, NO_TOKEN_VOLUME, PULL_CONTAINER, RESERVED_ENGINE_ENV, ROUTER_CONTAINER,
    TOKEN_MOUNT_PATH, last_injected_port,
};
pub(crate) use containers::env as container_env;
pub use containers::{LOADED_CHECK, restricted_security_context};
pub use error::{InjectError, pod_denial};
pub(crate) use error::{SHOWN_CHARS, shown};
pub use options::{DEFAULT_ROUTER_IMAGE, InjectOptions};
pub(crate) use plan::Plan;
pub use plan::{ENGINE_DEFAULT_RESOURCES, PULL_DEFAULT_RESOURCES};
pub use prepared::PodPatch;
pub use typos::opt_in_mistakes;
pub(crate) use user::{
    ENDPOINT_NAMES, GPU_RESOURCE_PREFIXES, GPU_RESOURCE_SUFFIX, NO_GPU_ENV, PROXY_DEFAULT_UIDS,
    endpoint_warnings, env_from_warnings, local_addresses,
};
pub use user::{PLACEHOLDER_API_KEY, PROXY_CONTAINERS, requests_gpu};

use crate::crd::{LLMEngine, LLMModel};
use crate::lookup::ModelLookup;
use crate::validate::is_dns_subdomain;
use crate::{MODEL_ANNOTATION, MODEL_LABEL, STATUS_ANNOTATION};
pub(crate) use prepared::Prepared;
use shape::PodShape;

/// A Kubernetes object that holds a pod: a `Pod` or a `PodTemplateSpec`.
pub trait PodLike: Serialize + DeserializeOwned {
    /// The pod's metadata, where the opt-in annotation is read.
    fn pod_metadata(&self) -> Option<&ObjectMeta>;
    /// The pod's spec, if it has one.
    fn pod_spec(&self) -> Option<&PodSpec>;
}

impl PodLike for Pod {
    fn pod_metadata(&self) -> Option<&ObjectMeta> {
        Some(&self.metadata)
    }
    fn pod_spec(&self) -> Option<&PodSpec> {
        self.spec.as_ref()
    }
}

impl PodLike for PodTemplateSpec {
    fn pod_metadata(&self) -> Option<&ObjectMeta> {
        self.metadata.as_ref()
    }
    fn pod_spec(&self) -> Option<&PodSpec> {
        self.spec.as_ref()
    }
}

/// What the annotations of a pod ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request<'a> {
    /// No `llm.injector.dev/model` annotation: leave the pod alone.
    NotRequested,
    /// The pod already carries `llm.injector.dev/status`: injection happened.
    AlreadyInjected,
    /// Inject the named LLMModel.
    Model(&'a str),
}

/// Reads the opt-in annotation from a pod's metadata.
fn requested_model(meta: Option<&ObjectMeta>) -> Request<'_> {
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
pub(crate) fn check_model_name(value: &str, namespace: &str) -> Result<(), InjectError> {
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
/// pod as it came; user containers get `user_env`.
fn injection_warnings(spec: &PodSpec, plan: &Plan, user_env: &[EnvVar]) -> Vec<String> {
    let mut warnings = Vec::new();
    if spec.host_network == Some(true) {
        warnings.push(host_network_warning(plan));
    }
    warnings.extend(user::endpoint_warnings(spec, plan));
    warnings.extend(user::env_from_warnings(spec, plan, user_env));
    let pod_security = spec.security_context.as_ref();
    if let Some(warning) = amd_groups_warning(plan)
        && pod_security
            .and_then(|s| s.supplemental_groups.as_ref())
            .is_none_or(Vec::is_empty)
    {
        warnings.push(warning);
    }
    if let Some(warning) = fs_group_warning(plan)
        && pod_security.and_then(|s| s.fs_group).is_none()
    {
        warnings.push(warning);
    }
    warnings
}

/// The warning for a pod with `hostNetwork: true`.
pub(crate) fn host_network_warning(plan: &Plan) -> String {
    let exposed = match &plan.router {
        Some(router) if router.exposed => format!(
            "; routing.expose also makes the llm-router listen on every address of the node at port {}, open to the node's network",
            router.port
        ),
        _ => String::new(),
    };
    format!(
        "spec.hostNetwork is true: the engines of LLMModel {:?} listen on the node's loopback ({}), which the node and every hostNetwork pod on it share; a second such pod on the node cannot start its engines, and the model API is open to the node{exposed}; drop hostNetwork unless the pod needs it",
        plan.model_name,
        plan.endpoint_url()
    )
}

/// The warning for a pod without `spec.securityContext.supplementalGroups`,
/// when the plan's engines need the ROCm device groups (AMD, the default
/// non-root security context).
pub(crate) fn amd_groups_warning(plan: &Plan) -> Option<String> {
    let defaulted = plan.security_context == containers::restricted_security_context();
    (defaulted && plan.vendor == crate::crd::Vendor::Amd).then(|| format!(
        "the engines of LLMModel {:?} run as uid {uid}, not root, and ROCm nodes give /dev/kfd and /dev/dri/renderD* to the render and video groups (mode 0660): add the node's render and video gids to the pod's spec.securityContext.supplementalGroups, or let the container runtime hand devices to the container's user (containerd and CRI-O: device_ownership_from_security_context = true), or set LLMEngine {:?} spec.securityContext; otherwise Ollama finds no GPU and runs on the CPU",
        plan.model_name,
        plan.engine_name,
        uid = INJECTED_UID,
    ))
}

/// The warning for a pod without `spec.securityContext.fsGroup`, when
/// `llm-pull` writes a PersistentVolumeClaim as a non-root uid.
pub(crate) fn fs_group_warning(plan: &Plan) -> Option<String> {
    let claim = plan.model_store.persistent_volume_claim.as_ref()?;
    let uid = plan.security_context.run_as_user.filter(|uid| *uid != 0)?;
    Some(format!(
        "llm-pull writes the model store, PersistentVolumeClaim {:?}, as uid {uid}, and a new volume is usually writable by root only: set the pod's spec.securityContext.fsGroup (for example {}) so Kubernetes makes it group-writable, or the pull fails",
        claim.claim_name,
        plan.security_context.run_as_group.unwrap_or(INJECTED_UID),
    ))
}

/// The warning for every pod of a model whose name no label value can hold.
pub(crate) fn long_name_warning(plan: &Plan) -> String {
    format!(
        "LLMModel {:?} has a name longer than 63 characters, which no label value can hold, so the pod carries no {MODEL_LABEL} label and selectors by model miss it: give the model a shorter name",
        plan.model_name
    )
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
    let default = PROXY_DEFAULT_UIDS
        .iter()
        .find(|(name, _)| *name == proxy.name)
        .map_or(INJECTED_UID, |(_, uid)| *uid);
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
    /// The env entries put before user containers' own, per container;
    /// `None` in annotations written before this was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvAdded>>,
    /// The labels added (the model label, unless the pod had it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The `runtimeClassName` set (only where the pod had none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
    /// What injection created, being absent from the pod: any of
    /// `metadata`, `metadata.annotations`, `metadata.labels`,
    /// `initContainers`, `volumes`, `resourceClaims`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<String>,
}

/// The env entries injection put before one user container's own.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EnvAdded {
    /// The container's index in `spec.containers`.
    pub container: usize,
    /// The names of the entries added.
    pub names: Vec<String>,
    /// Whether the container had no `env` list before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub created_list: bool,
}

/// An injection: the patch and what it adds.
#[derive(Debug, Clone)]
pub struct Injection {
    /// The JSON Patch that injects the pod (shared by every pod of its shape).
    pub patch: Arc<PodPatch>,
    /// What the patch adds, as the status annotation says (for this pod's
    /// shape: the env entries per container, label, lists created).
    pub status: Arc<InjectionStatus>,
    /// What the user should know (admission warnings, the CLI's stderr).
    pub warnings: Vec<String>,
}

impl Injection {
    /// `obj` with the patch applied: the injected pod.
    pub fn apply<P: PodLike>(&self, obj: &P) -> Result<P, InjectError> {
        let mut json =
            serde_json::to_value(obj).map_err(|e| InjectError::Serialize(e.to_string()))?;
        self.apply_json(&mut json)?;
        serde_json::from_value(json).map_err(|e| InjectError::Serialize(e.to_string()))
    }

    /// Applies the patch to the pod's JSON as written, so fields the typed
    /// API does not know survive.
    pub fn apply_json(&self, json: &mut serde_json::Value) -> Result<(), InjectError> {
        json_patch::patch(json, self.patch.operations())
            .map_err(|e| InjectError::Serialize(format!("the patch does not apply: {e}")))
    }
}

/// What [`Injector::inject`] decided.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// No `llm.injector.dev/model` annotation: the pod must be left untouched.
    NotRequested,
    /// The pod already carries `llm.injector.dev/status`: nothing changes.
    AlreadyInjected,
    /// The pod is to be injected with this patch.
    Injected(Injection),
}

/// How many (namespace, model) pairs an [`Injector`] remembers the prepared
/// injection of; past that they are forgotten and built again.
const MODELS_REMEMBERED: usize = 1024;

/// The one entry point of injection: the deployment's options, and what each
/// model adds, built once per version of the model and its engine.
#[derive(Debug, Default)]
pub struct Injector {
    options: InjectOptions,
    prepared: Mutex<HashMap<(String, String), PreparedEntry>>,
}

/// A prepared injection and the objects it was made from. Holding the
/// objects keeps their addresses from being reused, so a pointer compare
/// tells whether the lookup still returns those versions.
#[derive(Debug)]
struct PreparedEntry {
    model: Arc<LLMModel>,
    engine: Arc<LLMEngine>,
    prepared: Arc<Prepared>,
}

impl Injector {
    /// An injector with these options.
    pub fn new(options: InjectOptions) -> Self {
        Injector {
            options,
            prepared: Mutex::default(),
        }
    }

    /// The options it injects with.
    pub fn options(&self) -> &InjectOptions {
        &self.options
    }

    /// Decides `obj`: left alone unless its annotation names an LLMModel of
    /// `namespace` (looked up with its engine in `lookup`), else the patch
    /// that injects it, or why it cannot be injected.
    pub fn inject<P: PodLike, L: ModelLookup + ?Sized>(
        &self,
        obj: &P,
        namespace: &str,
        lookup: &L,
    ) -> Result<Outcome, InjectError> {
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
        let engine = engine_of(lookup, namespace, name, &model)?;
        let prepared = self.prepared(namespace, model, engine)?;
        let spec = obj.pod_spec().ok_or(InjectError::NoPodSpec)?;
        inject_prepared(obj.pod_metadata(), spec, &prepared).map(Outcome::Injected)
    }

    /// The prepared injection of `model` on `engine`, built unless the same
    /// versions of both were prepared before.
    fn prepared(
        &self,
        namespace: &str,
        model: Arc<LLMModel>,
        engine: Arc<LLMEngine>,
    ) -> Result<Arc<Prepared>, InjectError> {
        let key = (
            namespace.to_owned(),
            model.metadata.name.clone().unwrap_or_default(),
        );
        let remembered = |cache: &HashMap<_, PreparedEntry>| {
            cache.get(&key).and_then(|entry| {
                (Arc::ptr_eq(&entry.model, &model) && Arc::ptr_eq(&entry.engine, &engine))
                    .then(|| entry.prepared.clone())
            })
        };
        if let Some(prepared) = remembered(&self.lock()) {
            return Ok(prepared);
        }
        // Built outside the lock: a concurrent review of another model does
        // not wait for this one.
        let prepared = Arc::new(Prepared::new(&model, &engine, &self.options)?);
        let mut cache = self.lock();
        if cache.len() >= MODELS_REMEMBERED {
            cache.clear();
        }
        cache.insert(
            key,
            PreparedEntry {
                model,
                engine,
                prepared: prepared.clone(),
            },
        );
        Ok(prepared)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), PreparedEntry>> {
        self.prepared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The LLMEngine `model` (named `name`, in `namespace`) names, looked up in
/// `lookup`, or the error injection gives when it does not exist.
pub(crate) fn engine_of<L: ModelLookup + ?Sized>(
    lookup: &L,
    namespace: &str,
    name: &str,
    model: &LLMModel,
) -> Result<Arc<LLMEngine>, InjectError> {
    let engine = &model.spec.engine_ref.name;
    lookup
        .engine(namespace, engine)
        .ok_or_else(|| InjectError::MissingEngine {
            namespace: namespace.to_owned(),
            model: name.to_owned(),
            engine: engine.clone(),
        })
}

/// Injects `model` served by `engine` into `obj` (which must ask for no
/// other model and not be injected yet), without a lookup or memory of
/// earlier calls: what [`Injector::inject`] does for a model it finds.
pub fn inject<P: PodLike>(
    obj: &P,
    model: &LLMModel,
    engine: &LLMEngine,
    options: &InjectOptions,
) -> Result<Injection, InjectError> {
    let prepared = Prepared::new(model, engine, options)?;
    let spec = obj.pod_spec().ok_or(InjectError::NoPodSpec)?;
    inject_prepared(obj.pod_metadata(), spec, &prepared)
}

/// The checks against the pod, its warnings and its patch.
fn inject_prepared(
    meta: Option<&ObjectMeta>,
    spec: &PodSpec,
    prepared: &Prepared,
) -> Result<Injection, InjectError> {
    let plan = &prepared.plan;
    check_collisions(spec, plan, &prepared.init_names, &prepared.claim_names)?;
    check_ports(spec, plan)?;
    if let (Some(wanted), Some(existing)) = (&plan.runtime_class, &spec.runtime_class_name)
        && wanted != existing
    {
        return Err(InjectError::RuntimeClassConflict {
            pod: existing.clone(),
            engine: plan.engine_name.clone(),
            wanted: wanted.clone(),
        });
    }
    let label = meta
        .and_then(|m| m.labels.as_ref())
        .and_then(|l| l.get(MODEL_LABEL));
    if let Some(value) = label
        && Some(value.as_str()) != prepared.model_label.as_deref()
    {
        return Err(InjectError::LabelConflict {
            label: MODEL_LABEL,
            value: value.clone(),
            model: plan.model_name.clone(),
        });
    }
    let pull_uid = classic_mesh_proxy_uid(spec);
    let mut warnings = injection_warnings(spec, plan, &prepared.user_env);
    if prepared.model_label.is_none() {
        warnings.push(long_name_warning(plan));
    }
    let shape = PodShape::of(meta, spec, &prepared.user_env, pull_uid);
    let patch = prepared.patch_for(&shape)?;
    Ok(Injection {
        status: patch.status().clone(),
        patch,
        warnings,
    })
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
