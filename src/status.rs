//! The status of LLMModels and LLMEngines, as a pure function of what a
//! controller sees: the object, the engine a model names (if it exists), the
//! pods that use the model, the status written before (whose transition times
//! are kept) and the time now. The controller only watches and writes; every
//! decision is here, tested with tables.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{LLMEngine, LLMEngineStatus, LLMModel, LLMModelStatus, PodCounts};
use crate::inject::InjectError;
use crate::nodes::NodeGpus;
use crate::validate::{MemoryFit, Report, memory_fit, validate_engine, validate_model_on};
use crate::{MODEL_ANNOTATION, STATUS_ANNOTATION};

/// The condition that says a model's LLMEngine exists.
pub const ENGINE_FOUND: &str = "EngineFound";
/// The condition that says the validation rules pass.
pub const VALID: &str = "Valid";
/// The condition that says at least one pod using the model is ready.
pub const READY: &str = "Ready";
/// The condition that says one instance of the model fits its GPUs' memory.
pub const FITS: &str = "Fits";

/// What the status needs of one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodFacts {
    /// The pod's `Ready` condition is true.
    pub ready: bool,
}

impl PodFacts {
    /// The facts of `pod` if it carries the injection of LLMModel `model`:
    /// it asks for the model and carries a status annotation (whatever that
    /// says: one edited by hand still marks an injected pod).
    pub fn of(pod: &Pod, model: &str) -> Option<PodFacts> {
        let annotations = pod.metadata.annotations.as_ref()?;
        if annotations.get(MODEL_ANNOTATION).map(String::as_str) != Some(model)
            || !annotations.contains_key(STATUS_ANNOTATION)
        {
            return None;
        }
        Some(PodFacts {
            ready: is_ready(pod),
        })
    }
}

/// Whether `pod`'s `Ready` condition is true.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// A condition's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    True,
    False,
    Unknown,
}

impl State {
    fn of(ok: bool) -> Self {
        if ok { State::True } else { State::False }
    }

    fn as_str(self) -> &'static str {
        match self {
            State::True => "True",
            State::False => "False",
            State::Unknown => "Unknown",
        }
    }
}

/// Builds conditions for one generation, keeping the transition time of each
/// whose status did not change.
struct Conditions<'a> {
    previous: &'a [Condition],
    generation: Option<i64>,
    now: &'a Time,
    out: Vec<Condition>,
}

impl Conditions<'_> {
    fn set(&mut self, type_: &str, state: State, reason: &str, message: String) {
        self.out.push(next_condition(
            self.previous,
            Condition {
                type_: type_.to_owned(),
                status: state.as_str().to_owned(),
                reason: reason.to_owned(),
                message,
                observed_generation: self.generation,
                last_transition_time: self.now.clone(),
            },
        ));
    }
}

/// `next` keeping the `lastTransitionTime` of the condition of its type in
/// `previous` when that one has the same status (the time is when the
/// status last changed, not when the condition was last written).
pub fn next_condition(previous: &[Condition], mut next: Condition) -> Condition {
    if let Some(same) = previous
        .iter()
        .find(|c| c.type_ == next.type_ && c.status == next.status)
    {
        next.last_transition_time = same.last_transition_time.clone();
    }
    next
}

/// The message of the first error of `report`, as the webhook words it.
fn first_error(kind: &'static str, name: &str, report: Report) -> Option<String> {
    report.errors.into_iter().next().map(|violation| {
        InjectError::Invalid {
            kind,
            name: name.to_owned(),
            violation,
        }
        .to_string()
    })
}

/// The status of `model`, whose `spec.engineRef` found `engine` (or
/// nothing: then `elsewhere` lists the other namespaces that hold an
/// LLMEngine of that name), used by `pods`, in a cluster of `nodes` (whose
/// GPU labels tell the `Fits` condition the GPUs' memory when the engine
/// does not).
pub fn model_status(
    model: &LLMModel,
    engine: Option<&LLMEngine>,
    elsewhere: &[String],
    pods: &[PodFacts],
    previous: Option<&LLMModelStatus>,
    now: &Time,
    nodes: &[NodeGpus],
) -> LLMModelStatus {
    let name = model.metadata.name.as_deref().unwrap_or_default();
    let namespace = model.metadata.namespace.as_deref().unwrap_or_default();
    let engine_name = &model.spec.engine_ref.name;
    let generation = model.metadata.generation;
    let mut conditions = Conditions {
        previous: previous.map_or(&[], |p| &p.conditions),
        generation,
        now,
        out: Vec::new(),
    };
    match engine {
        Some(_) => conditions.set(
            ENGINE_FOUND,
            State::True,
            "EngineFound",
            format!("LLMEngine {engine_name:?} exists in namespace {namespace:?}"),
        ),
        None => {
            let (reason, fix) = match elsewhere {
                [] => (
                    "EngineNotFound",
                    "create it or point engineRef at an existing one".to_owned(),
                ),
                namespaces => (
                    "EngineInOtherNamespace",
                    format!(
                        "an LLMEngine of that name exists in namespace {}, but engineRef names an engine of the model's own namespace: create (or copy) the engine in {namespace:?}, or move the model next to the engine",
                        namespaces
                            .iter()
                            .map(|n| format!("{n:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            };
            let consequence = match pods.len() {
                0 => "pods asking for this model are refused meanwhile".to_owned(),
                n => format!(
                    "the {n} pod(s) already injected keep running; new pods asking for this model are refused meanwhile"
                ),
            };
            conditions.set(
                ENGINE_FOUND,
                State::False,
                reason,
                format!(
                    "spec.engineRef.name: LLMEngine {engine_name:?} does not exist in namespace {namespace:?}; {fix} ({consequence})"
                ),
            );
        }
    }
    match engine {
        None => conditions.set(
            VALID,
            State::Unknown,
            "EngineNotFound",
            format!("the model cannot be checked without its LLMEngine {engine_name:?}"),
        ),
        Some(engine) => {
            let engine_error = first_error(
                "LLMEngine",
                engine.metadata.name.as_deref().unwrap_or_default(),
                validate_engine(engine),
            );
            let report = validate_model_on(model, engine);
            let warnings = report.warnings.len();
            match engine_error.or_else(|| first_error("LLMModel", name, report)) {
                Some(message) => conditions.set(
                    VALID,
                    State::False,
                    "Invalid",
                    format!("{message} (pods asking for this model are refused)"),
                ),
                None => conditions.set(
                    VALID,
                    State::True,
                    "Valid",
                    match warnings {
                        0 => format!("the validation rules pass on LLMEngine {engine_name:?}"),
                        n => format!(
                            "the validation rules pass on LLMEngine {engine_name:?}, with {n} warning(s): `llm-injector validate` lists them"
                        ),
                    },
                ),
            }
        }
    }
    let (state, reason, message) = match engine.map(|e| memory_fit(&model.spec, e, nodes)) {
        None => (
            State::Unknown,
            "EngineNotFound",
            format!("the model's GPUs are unknown without its LLMEngine {engine_name:?}"),
        ),
        Some(MemoryFit::NotChecked(m)) => (State::Unknown, "NotChecked", m),
        Some(MemoryFit::Unknown(m)) => (State::Unknown, "FactsUnknown", m),
        Some(MemoryFit::Fits(m)) => (State::True, "Fits", m),
        Some(MemoryFit::Offloads(m)) => (State::False, "OffloadsToCpu", m),
        Some(MemoryFit::DoesNotFit(m)) => (State::False, "ExceedsGpuMemory", m),
    };
    conditions.set(FITS, state, reason, message);
    let counts = PodCounts {
        injected: count(pods.len()),
        ready: count(pods.iter().filter(|p| p.ready).count()),
    };
    let (ready, reason, message) = match counts {
        PodCounts { injected: 0, .. } => (
            false,
            "NoPods",
            format!(
                "no pod uses the model yet: pods ask for it with the annotation {MODEL_ANNOTATION}: {name}"
            ),
        ),
        PodCounts { ready: 0, injected } => (
            false,
            "PodsNotReady",
            format!("none of the {injected} pod(s) using the model is ready"),
        ),
        PodCounts { ready, injected } => (
            true,
            "PodsReady",
            format!("{ready} of the {injected} pod(s) using the model are ready"),
        ),
    };
    conditions.set(READY, State::of(ready), reason, message);

    let instances = model.spec.parallelism.data;
    let gpus_per_instance = engine.map(|e| model.spec.effective_gpus(e.spec.accelerator.vendor));
    LLMModelStatus {
        observed_generation: generation,
        conditions: conditions.out,
        instances: Some(instances),
        gpus_per_instance,
        gpus_per_pod: gpus_per_instance.map(|g| g.saturating_mul(instances)),
        vendor: engine.map(|e| e.spec.accelerator.vendor),
        endpoint_port: engine.map(|e| model.spec.endpoint_port(e.spec.port)),
        pods: Some(counts),
    }
}

/// The status of `engine`, named by `models` (the LLMModels of its namespace
/// whose `engineRef` names it).
pub fn engine_status(
    engine: &LLMEngine,
    models: &[String],
    previous: Option<&LLMEngineStatus>,
    now: &Time,
) -> LLMEngineStatus {
    let name = engine.metadata.name.as_deref().unwrap_or_default();
    let mut conditions = Conditions {
        previous: previous.map_or(&[], |p| &p.conditions),
        generation: engine.metadata.generation,
        now,
        out: Vec::new(),
    };
    match first_error("LLMEngine", name, validate_engine(engine)) {
        Some(message) => conditions.set(
            VALID,
            State::False,
            "Invalid",
            format!("{message} (pods asking for its models are refused)"),
        ),
        None => conditions.set(
            VALID,
            State::True,
            "Valid",
            "the validation rules pass".to_owned(),
        ),
    }
    let mut models = models.to_vec();
    models.sort();
    models.dedup();
    LLMEngineStatus {
        observed_generation: engine.metadata.generation,
        conditions: conditions.out,
        max_devices_per_instance: Some(engine.spec.effective_max_devices()),
        models,
    }
}

/// The conditions of `next` whose status differs from `previous` (or that
/// are new): what deserves a Kubernetes Event.
pub fn transitions<'a>(previous: &[Condition], next: &'a [Condition]) -> Vec<&'a Condition> {
    next.iter()
        .filter(|c| {
            previous
                .iter()
                .find(|p| p.type_ == c.type_)
                .is_none_or(|p| p.status != c.status)
        })
        .collect()
}

/// The transitions that deserve a Kubernetes Event: every change of a
/// condition to `True` or `False` (`Unknown` follows from another condition
/// that has its own Event); on an object's first status only what is
/// `False`, but `Ready` (no pod is how every model begins).
pub fn noteworthy<'a>(previous: &[Condition], next: &'a [Condition]) -> Vec<&'a Condition> {
    transitions(previous, next)
        .into_iter()
        .filter(|c| match c.status.as_str() {
            "True" => !previous.is_empty(),
            "False" => !previous.is_empty() || c.type_ != READY,
            _ => false,
        })
        .collect()
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    fn time(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    fn engine(spec: serde_json::Value) -> LLMEngine {
        serde_json::from_value(json!({
            "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMEngine",
            "metadata": {"name": "gpu", "namespace": "team-a", "generation": 3},
            "spec": spec,
        }))
        .unwrap()
    }

    fn nvidia() -> LLMEngine {
        engine(
            json!({"runtime": "Ollama", "accelerator": {"vendor": "NVIDIA", "maxDevicesPerInstance": 2}}),
        )
    }

    fn model(parallelism: serde_json::Value) -> LLMModel {
        serde_json::from_value(json!({
            "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMModel",
            "metadata": {"name": "qwen", "namespace": "team-a", "generation": 7},
            "spec": {"engineRef": {"name": "gpu"}, "model": "qwen3:8b", "parallelism": parallelism},
        }))
        .unwrap()
    }

    fn condition<'a>(status: &'a LLMModelStatus, type_: &str) -> &'a Condition {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("no {type_} condition"))
    }

    #[test]
    fn model_status_table() {
        let (ready, not_ready) = (PodFacts { ready: true }, PodFacts { ready: false });
        // (what, model, engine, pods, [EngineFound, Valid, Ready], reasons, shape)
        type Shape = (Option<i32>, Option<i32>, Option<i32>, Option<i32>);
        type Case = (
            &'static str,
            LLMModel,
            Option<LLMEngine>,
            Vec<PodFacts>,
            [&'static str; 3],
            [&'static str; 3],
            Shape,
        );
        let cases: Vec<Case> = vec![
            (
                "one GPU, defaulted, no pods",
                model(json!({})),
                Some(nvidia()),
                vec![],
                ["True", "True", "False"],
                ["EngineFound", "Valid", "NoPods"],
                (Some(1), Some(1), Some(1), Some(11434)),
            ),
            (
                "2x2 behind the router, one of two pods ready",
                model(json!({"data": 2, "model": 2})),
                Some(nvidia()),
                vec![ready, not_ready],
                ["True", "True", "True"],
                ["EngineFound", "Valid", "PodsReady"],
                (Some(2), Some(2), Some(4), Some(11436)),
            ),
            (
                "more GPUs than the engine allows",
                model(json!({"model": 4})),
                Some(nvidia()),
                vec![not_ready],
                ["True", "False", "False"],
                ["EngineFound", "Invalid", "PodsNotReady"],
                (Some(1), Some(4), Some(4), Some(11434)),
            ),
            (
                "engine deleted while a pod runs",
                model(json!({})),
                None,
                vec![ready],
                ["False", "Unknown", "True"],
                ["EngineNotFound", "EngineNotFound", "PodsReady"],
                (Some(1), None, None, None),
            ),
            (
                "CPU engine",
                model(json!({})),
                Some(engine(
                    json!({"runtime": "Ollama", "accelerator": {"vendor": "None"}}),
                )),
                vec![],
                ["True", "True", "False"],
                ["EngineFound", "Valid", "NoPods"],
                (Some(1), Some(0), Some(0), Some(11434)),
            ),
        ];
        let now = time(1_000);
        for (what, model, engine, pods, states, reasons, shape) in cases {
            let status = model_status(&model, engine.as_ref(), &[], &pods, None, &now, &[]);
            for ((type_, state), reason) in
                [ENGINE_FOUND, VALID, READY].iter().zip(states).zip(reasons)
            {
                let c = condition(&status, type_);
                assert_eq!(
                    (c.status.as_str(), c.reason.as_str()),
                    (state, reason),
                    "{what}: {type_}: {}",
                    c.message
                );
                assert_eq!(c.observed_generation, Some(7), "{what}");
                assert!(!c.message.is_empty(), "{what}: {type_}");
            }
            assert_eq!(
                (
                    status.instances,
                    status.gpus_per_instance,
                    status.gpus_per_pod,
                    status.endpoint_port
                ),
                shape,
                "{what}"
            );
            assert_eq!(status.observed_generation, Some(7));
            assert_eq!(
                status.pods,
                Some(PodCounts {
                    injected: pods.len() as i32,
                    ready: pods.iter().filter(|p| p.ready).count() as i32
                }),
                "{what}"
            );
        }
    }

    #[test]
    fn invalid_carries_the_webhooks_message() {
        let model = model(json!({"model": 4}));
        let engine = nvidia();
        let status = model_status(&model, Some(&engine), &[], &[], None, &time(0), &[]);
        let valid = condition(&status, VALID);
        let webhook = crate::inject::inject(
            &Pod::default(),
            &model,
            &engine,
            &crate::InjectOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            valid.message.starts_with(&webhook),
            "{} / {webhook}",
            valid.message
        );
        assert!(condition(&status, ENGINE_FOUND).message.contains("\"gpu\""));
        let missing = model_status(&model, None, &[], &[], None, &time(0), &[]);
        let found = condition(&missing, ENGINE_FOUND);
        assert!(
            found
                .message
                .contains("does not exist in namespace \"team-a\""),
            "{}",
            found.message
        );
    }

    #[test]
    fn a_missing_engine_says_where_it_is_and_what_happens_to_pods() {
        let model = model(json!({}));
        let running = [PodFacts { ready: true }, PodFacts { ready: false }];
        /// (what, namespaces holding an engine of that name, pods, reason, fragments)
        type Case<'a> = (
            &'a str,
            &'a [String],
            &'a [PodFacts],
            &'a str,
            &'a [&'a str],
        );
        let cases: [Case; 4] = [
            (
                "nowhere, no pods",
                &[],
                &[],
                "EngineNotFound",
                &[
                    "spec.engineRef.name: LLMEngine \"gpu\" does not exist in namespace \"team-a\"",
                    "create it or point engineRef at an existing one",
                    "pods asking for this model are refused meanwhile",
                ],
            ),
            (
                "deleted while pods run",
                &[],
                &running,
                "EngineNotFound",
                &[
                    "the 2 pod(s) already injected keep running; new pods asking for this model are refused",
                ],
            ),
            (
                "in another namespace",
                &["team-b".to_owned()],
                &[],
                "EngineInOtherNamespace",
                &[
                    "exists in namespace \"team-b\", but engineRef names an engine of the model's own namespace",
                    "create (or copy) the engine in \"team-a\"",
                ],
            ),
            (
                "in two other namespaces",
                &["team-b".to_owned(), "team-c".to_owned()],
                &[],
                "EngineInOtherNamespace",
                &["namespace \"team-b\", \"team-c\""],
            ),
        ];
        for (what, elsewhere, pods, reason, fragments) in cases {
            let status = model_status(&model, None, elsewhere, pods, None, &time(0), &[]);
            let found = condition(&status, ENGINE_FOUND);
            assert_eq!(
                (found.status.as_str(), found.reason.as_str()),
                ("False", reason),
                "{what}"
            );
            for fragment in fragments {
                assert!(
                    found.message.contains(fragment),
                    "{what}: {}",
                    found.message
                );
            }
            // Ready still follows the pods: they run without their engine object.
            let ready = condition(&status, READY);
            assert_eq!(
                ready.status,
                if pods.iter().any(|p| p.ready) {
                    "True"
                } else {
                    "False"
                },
                "{what}"
            );
        }
    }

    #[test]
    fn fits_follows_the_memory_check() {
        let llama = |engine_memory: Option<&str>| {
            let model: LLMModel = serde_json::from_value(json!({
                "apiVersion": "llm.injector.dev/v1alpha1", "kind": "LLMModel",
                "metadata": {"name": "llama", "namespace": "team-a", "generation": 1},
                "spec": {"engineRef": {"name": "gpu"}, "model": "llama3.1:8b"},
            }))
            .unwrap();
            let engine = engine(json!({"runtime": "Ollama", "accelerator": {
                "vendor": "NVIDIA", "memoryPerDevice": engine_memory}}));
            (model, engine)
        };
        // (engine's memoryPerDevice, engine exists, Fits, reason, a fragment)
        let cases = [
            (Some("24Gi"), true, "True", "Fits", "needs ~5.8 GiB"),
            (
                Some("4Gi"),
                true,
                "False",
                "OffloadsToCpu",
                "20 of its 33 layers",
            ),
            (None, true, "Unknown", "NotChecked", "memoryPerDevice"),
            (
                Some("24Gi"),
                false,
                "Unknown",
                "EngineNotFound",
                "without its LLMEngine",
            ),
        ];
        for (memory, exists, state, reason, fragment) in cases {
            let (model, engine) = llama(memory);
            let engine = exists.then_some(&engine);
            let status = model_status(&model, engine, &[], &[], None, &time(0), &[]);
            let fits = condition(&status, FITS);
            assert_eq!(
                (fits.status.as_str(), fits.reason.as_str()),
                (state, reason),
                "{memory:?}: {}",
                fits.message
            );
            assert!(fits.message.contains(fragment), "{}", fits.message);
            // Offloading is a warning: the model stays Valid.
            if exists {
                assert_eq!(condition(&status, VALID).status, "True");
            }
        }
    }

    #[test]
    fn transition_times_move_only_with_the_status() {
        let model = model(json!({}));
        let engine = nvidia();
        let first = model_status(&model, Some(&engine), &[], &[], None, &time(10), &[]);
        // Later, the same state: every transition time is kept.
        let same = model_status(
            &model,
            Some(&engine),
            &[],
            &[],
            Some(&first),
            &time(20),
            &[],
        );
        assert_eq!(same, first);
        assert!(transitions(&first.conditions, &same.conditions).is_empty());
        // A pod becomes ready: only Ready moves, and it is the one transition.
        let pods = [PodFacts { ready: true }];
        let ready = model_status(
            &model,
            Some(&engine),
            &[],
            &pods,
            Some(&same),
            &time(30),
            &[],
        );
        assert_eq!(condition(&ready, READY).last_transition_time, time(30));
        assert_eq!(condition(&ready, VALID).last_transition_time, time(10));
        let moved: Vec<&str> = transitions(&same.conditions, &ready.conditions)
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(moved, [READY]);
        // The engine goes away: EngineFound and Valid move.
        let gone = model_status(&model, None, &[], &pods, Some(&ready), &time(40), &[]);
        let moved: Vec<&str> = transitions(&ready.conditions, &gone.conditions)
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(moved, [ENGINE_FOUND, VALID]);
        // Everything is new the first time.
        assert_eq!(transitions(&[], &first.conditions).len(), 4);
    }

    #[test]
    fn events_on_what_changed_and_what_is_wrong() {
        let model = model(json!({}));
        let engine = nvidia();
        let gpu_hungry = self::model(json!({"model": 4}));
        let ready = [PodFacts { ready: true }];
        let status = |model: &LLMModel, engine: Option<&LLMEngine>, pods: &[PodFacts]| {
            model_status(model, engine, &[], pods, None, &time(0), &[]).conditions
        };
        let fine = status(&model, Some(&engine), &[]);
        let missing = status(&model, None, &[]);
        let serving = status(&model, Some(&engine), &ready);
        let invalid = status(&gpu_hungry, Some(&engine), &[]);
        let none: &[Condition] = &[];
        /// (what, before, after, the (type, status) that get an Event)
        type Case<'a> = (
            &'a str,
            &'a [Condition],
            &'a [Condition],
            &'a [(&'a str, &'a str)],
        );
        let cases: [Case; 7] = [
            ("a new model that is fine", none, &fine, &[]),
            (
                "a new model without its engine (Valid Unknown follows)",
                none,
                &missing,
                &[(ENGINE_FOUND, "False")],
            ),
            ("a new invalid model", none, &invalid, &[(VALID, "False")]),
            ("nothing changed", &fine, &fine, &[]),
            (
                "its first pod is ready",
                &fine,
                &serving,
                &[(READY, "True")],
            ),
            (
                "the engine appears",
                &missing,
                &fine,
                &[(ENGINE_FOUND, "True"), (VALID, "True")],
            ),
            (
                "the engine goes while pods run",
                &serving,
                &status(&model, None, &ready),
                &[(ENGINE_FOUND, "False")],
            ),
        ];
        for (what, before, after, expected) in cases {
            let got: Vec<(&str, &str)> = noteworthy(before, after)
                .iter()
                .map(|c| (c.type_.as_str(), c.status.as_str()))
                .collect();
            assert_eq!(got, expected, "{what}");
        }
    }

    #[test]
    fn engine_status_table() {
        let cases = [
            (
                json!({"runtime": "Ollama", "accelerator": {"vendor": "NVIDIA"}}),
                "True",
                Some(8),
            ),
            (
                json!({"runtime": "Ollama", "accelerator": {"vendor": "None"}}),
                "True",
                Some(0),
            ),
            (
                json!({"runtime": "Ollama", "accelerator": {"vendor": "NVIDIA", "maxDevicesPerInstance": 2}}),
                "True",
                Some(2),
            ),
            (
                json!({"runtime": "Ollama", "port": 65535, "accelerator": {"vendor": "NVIDIA"}, "image": "ollama/ollama:0.12.6-rocm"}),
                "False",
                Some(8),
            ),
        ];
        for (spec, valid, max) in cases {
            let engine = engine(spec.clone());
            let status = engine_status(
                &engine,
                &["b".to_owned(), "a".to_owned(), "b".to_owned()],
                None,
                &time(0),
            );
            let condition = &status.conditions[0];
            assert_eq!(
                (condition.type_.as_str(), condition.status.as_str()),
                (VALID, valid),
                "{spec}: {}",
                condition.message
            );
            assert_eq!(status.max_devices_per_instance, max, "{spec}");
            assert_eq!(status.models, ["a", "b"]);
            assert_eq!(status.observed_generation, Some(3));
        }
    }

    #[test]
    fn pods_are_counted_by_their_injection() {
        let pod = |annotations: serde_json::Value, ready: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": "p", "annotations": annotations},
                "status": {"conditions": [{"type": "Ready", "status": ready}]},
            }))
            .unwrap()
        };
        let injected = json!({MODEL_ANNOTATION: "qwen", STATUS_ANNOTATION: "{}"});
        let cases = [
            (
                pod(injected.clone(), "True"),
                Some(PodFacts { ready: true }),
            ),
            (
                pod(injected.clone(), "False"),
                Some(PodFacts { ready: false }),
            ),
            // A status annotation edited by hand still marks an injected pod.
            (
                pod(
                    json!({MODEL_ANNOTATION: "qwen", STATUS_ANNOTATION: "not json"}),
                    "True",
                ),
                Some(PodFacts { ready: true }),
            ),
            // Asked for but never injected (refused, or created before the webhook).
            (pod(json!({MODEL_ANNOTATION: "qwen"}), "True"), None),
            (
                pod(
                    json!({MODEL_ANNOTATION: "other", STATUS_ANNOTATION: "{}"}),
                    "True",
                ),
                None,
            ),
            (Pod::default(), None),
        ];
        for (pod, expected) in cases {
            assert_eq!(
                PodFacts::of(&pod, "qwen"),
                expected,
                "{:?}",
                pod.metadata.annotations
            );
        }
    }
}
