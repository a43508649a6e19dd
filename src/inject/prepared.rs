//! What injecting one LLMModel on its LLMEngine adds to any pod, built once
//! per (model, engine, options): the plan, the added containers, volumes and
//! claims as JSON, the user environment and the status annotation; and the
//! patch for each [`PodShape`], built once per shape. Pods of one workload
//! have one shape, so a ReplicaSet's second pod costs a lookup.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation};
use k8s_openapi::api::core::v1::EnvVar;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::containers;
use super::plan::Plan;
use super::shape::{LabelsShape, MetadataShape, PodShape};
use super::user::{self, NO_GPU_ENV};
use super::{EnvAdded, InjectError, InjectOptions, InjectionStatus};
use crate::crd::{LLMEngine, LLMModel};
use crate::layout::INJECTED_VOLUMES;
use crate::{MODEL_LABEL, STATUS_ANNOTATION};

/// How many pod shapes one prepared injection remembers patches for; past
/// that they are forgotten and built again.
const SHAPES_REMEMBERED: usize = 64;

/// A JSON Patch (RFC 6902) of an injection, with its JSON in the form an
/// `AdmissionResponse` carries it (a base64 string), made once.
#[derive(Debug)]
pub struct PodPatch {
    operations: json_patch::Patch,
    /// What it adds, as its status annotation says.
    status: Arc<InjectionStatus>,
    admission: OnceLock<Result<Box<RawValue>, String>>,
}

impl PodPatch {
    fn new(operations: json_patch::Patch, status: Arc<InjectionStatus>) -> Self {
        PodPatch {
            operations,
            status,
            admission: OnceLock::new(),
        }
    }

    /// What the patch adds, as its status annotation says.
    pub fn status(&self) -> &Arc<InjectionStatus> {
        &self.status
    }

    /// The operations.
    pub fn operations(&self) -> &json_patch::Patch {
        &self.operations
    }

    /// The value of `AdmissionResponse.patch`: the patch's JSON in base64,
    /// as a JSON string; an error says why it could not be serialised.
    pub fn admission_value(&self) -> Result<&RawValue, String> {
        self.admission
            .get_or_init(|| {
                let json = serde_json::to_vec(&self.operations).map_err(|e| e.to_string())?;
                let base64 = base64::engine::general_purpose::STANDARD.encode(json);
                serde_json::value::to_raw_value(&base64).map_err(|e| e.to_string())
            })
            .as_deref()
            .map_err(Clone::clone)
    }
}

impl PartialEq for PodPatch {
    fn eq(&self, other: &Self) -> bool {
        self.operations == other.operations
    }
}

/// One LLMModel on its LLMEngine with given options, checked and built.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) plan: Plan,
    /// `llm-pull` (as the plan's own uid), the engines, the router.
    pub(crate) init_containers: Vec<Value>,
    pub(crate) init_names: Vec<String>,
    pub(crate) volumes: Vec<Value>,
    pub(crate) claims: Vec<Value>,
    pub(crate) claim_names: Vec<String>,
    /// What user containers get unless they set it (see [`user::EnvAdditions`]).
    pub(crate) user_env: Vec<EnvVar>,
    pub(crate) user_env_json: Vec<Value>,
    /// The status annotation's parts that do not depend on the pod.
    pub(crate) status: Arc<InjectionStatus>,
    /// The value of the model label: the model's name, when it is a valid
    /// label value (63 characters at most).
    pub(crate) model_label: Option<String>,
    patches: Mutex<HashMap<PodShape, Arc<PodPatch>>>,
}

fn to_json(value: &impl Serialize) -> Result<Value, InjectError> {
    serde_json::to_value(value).map_err(|e| InjectError::Serialize(e.to_string()))
}

fn all_json<T: Serialize>(items: &[T]) -> Result<Vec<Value>, InjectError> {
    items.iter().map(to_json).collect()
}

impl Prepared {
    /// Checks the pair with the validation rules and builds what it adds.
    pub fn new(
        model: &LLMModel,
        engine: &LLMEngine,
        options: &InjectOptions,
    ) -> Result<Self, InjectError> {
        let plan = Plan::new(model, engine, options)?;
        let mut init = vec![containers::pull_container(&plan)];
        init.extend((0..plan.instances).map(|i| containers::engine_container(&plan, i)));
        init.extend(containers::router_container(&plan));
        let init_names: Vec<String> = init.iter().map(|c| c.name.clone()).collect();
        let volumes = [
            containers::model_volume(&plan),
            containers::no_token_volume(),
        ];
        let claims: Vec<_> = (0..plan.instances)
            .filter_map(|i| containers::pod_claim(&plan, i))
            .collect();
        let claim_names: Vec<String> = claims.iter().map(|c| c.name.clone()).collect();
        let user_env = user::endpoint_env(&plan);
        let status = InjectionStatus {
            model: plan.model_name.clone(),
            engine: plan.engine_name.clone(),
            ollama_model: plan.ollama_model.clone(),
            instances: plan.instances,
            gpus_per_instance: plan.gpus_per_instance,
            init_containers: init_names.clone(),
            volumes: INJECTED_VOLUMES.map(str::to_owned).to_vec(),
            resource_claims: claim_names.clone(),
            endpoint: plan.endpoint_url(),
            // What depends on the pod: filled per shape (status_for).
            env: None,
            labels: Vec::new(),
            runtime_class_name: None,
            created: Vec::new(),
        };
        Ok(Prepared {
            init_containers: all_json(&init)?,
            init_names,
            volumes: all_json(&volumes)?,
            claims: all_json(&claims)?,
            claim_names,
            user_env_json: all_json(&user_env)?,
            user_env,
            status: Arc::new(status),
            model_label: (plan.model_name.len() <= 63).then(|| plan.model_name.clone()),
            plan,
            patches: Mutex::new(HashMap::new()),
        })
    }

    /// `llm-pull` running as `uid` (the uid of a classic mesh proxy).
    pub(crate) fn pull_container_as(&self, uid: i64) -> Result<Value, InjectError> {
        let plan = Plan {
            pull_uid: Some(uid),
            ..self.plan.clone()
        };
        to_json(&containers::pull_container(&plan))
    }

    /// The patch that injects a pod of this shape, made once per shape.
    pub(super) fn patch_for(&self, shape: &PodShape) -> Result<Arc<PodPatch>, InjectError> {
        let mut patches = self.patches.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(patch) = patches.get(shape) {
            return Ok(patch.clone());
        }
        let status = Arc::new(self.status_for(shape));
        let status_json =
            serde_json::to_string(&*status).map_err(|e| InjectError::Serialize(e.to_string()))?;
        let patch = Arc::new(PodPatch::new(
            self.build_patch(shape, &status_json)?,
            status,
        ));
        if patches.len() >= SHAPES_REMEMBERED {
            patches.clear();
        }
        patches.insert(shape.clone(), patch.clone());
        Ok(patch)
    }

    /// The status annotation of a pod of this shape: what [`Prepared::new`]
    /// knows, plus what this shape gets (env entries per container, the
    /// label, `runtimeClassName`, the lists and maps created), so that
    /// `uninject` can remove exactly that.
    fn status_for(&self, shape: &PodShape) -> InjectionStatus {
        let (has_metadata, has_annotations, labels) = match shape.metadata {
            MetadataShape::Absent => (false, false, LabelsShape::Absent),
            MetadataShape::Present {
                annotations,
                labels,
            } => (true, annotations, labels),
        };
        let label_added = self.model_label.is_some() && labels != LabelsShape::WithModel;
        let created = [
            ("metadata", !has_metadata),
            ("metadata.annotations", !has_annotations),
            (
                "metadata.labels",
                label_added && labels == LabelsShape::Absent,
            ),
            ("initContainers", shape.init_containers.is_none()),
            ("volumes", shape.volumes.is_none()),
            (
                "resourceClaims",
                !self.claims.is_empty() && shape.resource_claims.is_none(),
            ),
        ];
        InjectionStatus {
            env: Some(
                shape
                    .env
                    .iter()
                    .map(|(index, additions)| EnvAdded {
                        container: *index,
                        names: additions
                            .wanted
                            .iter()
                            .map(|&i| self.user_env[i].name.clone())
                            .chain(additions.no_gpu.then(|| NO_GPU_ENV.0.to_owned()))
                            .collect(),
                        created_list: !additions.had_env,
                    })
                    .collect(),
            ),
            labels: if label_added {
                vec![MODEL_LABEL.to_owned()]
            } else {
                Vec::new()
            },
            runtime_class_name: shape
                .runtime_class
                .is_none()
                .then(|| self.plan.runtime_class.clone())
                .flatten(),
            created: created
                .into_iter()
                .filter(|(_, made)| *made)
                .map(|(what, _)| what.to_owned())
                .collect(),
            ..(*self.status).clone()
        }
    }

    /// `json_patch::diff` of the parts of a pod of this shape that injection
    /// changes, before and after (every other part is equal on both sides
    /// and adds no operation; `tests/patch_equivalence.rs` compares with the
    /// diff of whole pods), then an `add` for each env entry put before a
    /// user container's own (a diff would replace the shifted entries).
    fn build_patch(
        &self,
        shape: &PodShape,
        status_json: &str,
    ) -> Result<json_patch::Patch, InjectError> {
        let label = self.model_label.as_deref();
        let before = shape.touched_json(label);
        let mut after = before.clone();
        let pod = after.as_object_mut().expect("touched_json is an object");
        let meta = pod
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .expect("metadata is an object");
        let mut add = |map: &str, key: &str, value: &str| {
            meta.entry(map)
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("annotations and labels are objects")
                .insert(key.to_owned(), Value::String(value.to_owned()));
        };
        add("annotations", STATUS_ANNOTATION, status_json);
        if let Some(label) = label {
            add("labels", MODEL_LABEL, label);
        }
        let spec = pod
            .get_mut("spec")
            .and_then(Value::as_object_mut)
            .expect("touched_json has a spec");
        let mut init = self.init_containers.clone();
        if let Some(uid) = shape.pull_uid {
            init[0] = self.pull_container_as(uid)?;
        }
        append(spec, "initContainers", init);
        append(spec, "volumes", self.volumes.clone());
        if !self.claims.is_empty() {
            append(spec, "resourceClaims", self.claims.clone());
        }
        if let Some(class) = &self.plan.runtime_class {
            spec.entry("runtimeClassName")
                .or_insert_with(|| Value::String(class.clone()));
        }
        let mut patch = json_patch::diff(&before, &after);
        for (index, additions) in &shape.env {
            let mut path = PointerBuf::new();
            for token in ["spec", "containers"] {
                path.push_back(token);
            }
            path.push_back(*index);
            path.push_back("env");
            let mut values: Vec<Value> = additions
                .wanted
                .iter()
                .map(|&i| self.user_env_json[i].clone())
                .collect();
            if additions.no_gpu {
                values.push(to_json(&containers::env(NO_GPU_ENV.0, NO_GPU_ENV.1))?);
            }
            if !additions.had_env {
                patch.0.push(PatchOperation::Add(AddOperation {
                    path,
                    value: Value::Array(values),
                }));
                continue;
            }
            for (position, value) in values.into_iter().enumerate() {
                let mut at = path.clone();
                at.push_back(position);
                patch
                    .0
                    .push(PatchOperation::Add(AddOperation { path: at, value }));
            }
        }
        Ok(patch)
    }
}

/// Appends `items` to the list `key` of `spec`, creating it when absent.
fn append(spec: &mut Map<String, Value>, key: &str, items: Vec<Value>) {
    match spec.get_mut(key).and_then(Value::as_array_mut) {
        Some(list) => list.extend(items),
        None => {
            spec.insert(key.to_owned(), Value::Array(items));
        }
    }
}

impl MetadataShape {
    /// The metadata's JSON as far as injection touches it; `label` is the
    /// model label's value (what a pod of shape `WithModel` holds).
    fn json(self, label: Option<&str>) -> Option<Value> {
        let MetadataShape::Present {
            annotations,
            labels,
        } = self
        else {
            return None;
        };
        let mut meta = Map::new();
        if annotations {
            meta.insert("annotations".to_owned(), Value::Object(Map::new()));
        }
        let mut label_map = Map::new();
        match (labels, label) {
            (LabelsShape::Absent, _) => {}
            (LabelsShape::WithModel, Some(value)) => {
                label_map.insert(MODEL_LABEL.to_owned(), Value::String(value.to_owned()));
                meta.insert("labels".to_owned(), Value::Object(label_map));
            }
            (LabelsShape::Without | LabelsShape::WithModel, _) => {
                meta.insert("labels".to_owned(), Value::Object(label_map));
            }
        }
        Some(Value::Object(meta))
    }
}

impl PodShape {
    /// The parts of a pod of this shape that injection may change, at their
    /// paths in the pod's JSON: `metadata.annotations` (the user's entries
    /// left out: injection adds a key that is not among them), the lists it
    /// appends to (`initContainers`, `volumes`, `resourceClaims`, their
    /// entries written as `{}`, which keeps the indexes of those after them)
    /// and `runtimeClassName`. A field absent from the pod is absent here.
    fn touched_json(&self, label: Option<&str>) -> Value {
        let kept = |count: usize| Value::Array(vec![Value::Object(Map::new()); count]);
        let mut spec = Map::new();
        for (key, count) in [
            ("initContainers", self.init_containers),
            ("volumes", self.volumes),
            ("resourceClaims", self.resource_claims),
        ] {
            if let Some(count) = count {
                spec.insert(key.to_owned(), kept(count));
            }
        }
        if let Some(class) = &self.runtime_class {
            spec.insert("runtimeClassName".to_owned(), Value::String(class.clone()));
        }
        let mut pod = Map::new();
        if let Some(meta) = self.metadata.json(label) {
            pod.insert("metadata".to_owned(), meta);
        }
        pod.insert("spec".to_owned(), Value::Object(spec));
        Value::Object(pod)
    }
}
