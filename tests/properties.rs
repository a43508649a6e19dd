//! Property tests of the injection core over generated pods, engines and models:
//! it never panics, only pods that ask are touched, the patch is append-only
//! and turns the input into the output, and injecting twice changes nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, Pod, PodSpec, ResourceRequirements, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use llm_injector::crd::{
    Accelerator, Affinity, Allocation, DraAllocation, EngineRef, Expose, LLMEngine, LLMEngineSpec,
    LLMModel, LLMModelSpec, Parallelism, RouterMode, Routing, Serving, Vendor,
};
use llm_injector::{
    Catalog, InjectOptions, Injector, MODEL_ANNOTATION, ModelLookup, Outcome, STATUS_ANNOTATION,
};
use proptest::prelude::*;

const NAMESPACES: [&str; 2] = ["team-a", "team-b"];
const MODEL_NAMES: [&str; 4] = ["m0", "m1", "m2", "m3"];

fn env_var() -> impl Strategy<Value = EnvVar> {
    (
        prop::sample::select(vec![
            "OLLAMA_HOST",
            "LLM_MODEL",
            "LLM_BASE_URL",
            "NVIDIA_VISIBLE_DEVICES",
            "MODE",
            "CUDA_VISIBLE_DEVICES",
        ]),
        "[a-z0-9:/.]{0,12}",
    )
        .prop_map(|(name, value)| EnvVar {
            name: name.to_owned(),
            value: Some(value),
            value_from: None,
        })
}

fn container(name: String) -> impl Strategy<Value = Container> {
    (
        prop::option::of(prop::collection::vec(env_var(), 0..4)),
        prop::option::of(prop::sample::select(vec![
            "nvidia.com/gpu",
            "amd.com/gpu",
            "cpu",
            "example.com/fpga",
        ])),
        prop::option::weighted(
            0.3,
            prop::sample::select(vec![80, 8080, 11434, 11435, 11437, 21434]),
        ),
        prop::option::of(Just("Always".to_owned())),
    )
        .prop_map(move |(env, resource, port, restart)| Container {
            name: name.clone(),
            image: Some("ghcr.io/example/app:1".to_owned()),
            env,
            resources: resource.map(|r| ResourceRequirements {
                limits: Some(BTreeMap::from([(r.to_owned(), Quantity("1".to_owned()))])),
                ..Default::default()
            }),
            ports: port.map(|p| {
                vec![ContainerPort {
                    container_port: p,
                    ..Default::default()
                }]
            }),
            restart_policy: restart,
            ..Default::default()
        })
}

fn containers(
    prefix: &'static str,
    range: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<Container>> {
    prop::collection::vec((any::<bool>(), 0u8..8), range).prop_flat_map(move |specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (reserved, n))| {
                // Now and then a name the injector reserves.
                let name = if reserved && n == 0 && i == 0 {
                    "llm-pull".to_owned()
                } else {
                    format!("{prefix}{i}")
                };
                container(name)
            })
            .collect::<Vec<_>>()
    })
}

fn pod() -> impl Strategy<Value = Pod> {
    (
        prop::option::weighted(
            0.9,
            prop_oneof![
                8 => prop::sample::select(MODEL_NAMES.to_vec()),
                1 => prop::sample::select(vec!["missing", "team-a/m0", "", "UPPER", "../m0"]),
            ],
        ),
        prop::bool::weighted(0.05),
        prop_oneof![9 => Just(NAMESPACES[0]), 1 => Just(NAMESPACES[1])],
        containers("c", 1..4),
        prop::option::of(containers("init", 0..3)),
        prop::option::of(prop::collection::vec(
            prop_oneof![10 => prop::sample::select(vec!["data", "cache"]), 1 => Just("llm-models")],
            0..3,
        )),
        prop::option::weighted(0.2, prop::sample::select(vec!["nvidia", "kata"])),
    )
        .prop_map(
            |(model, injected, namespace, containers, init, volumes, runtime_class)| {
                let mut annotations =
                    BTreeMap::from([("example.com/keep".to_owned(), "yes".to_owned())]);
                if let Some(model) = model {
                    annotations.insert(MODEL_ANNOTATION.to_owned(), model.to_owned());
                }
                if injected {
                    annotations.insert(STATUS_ANNOTATION.to_owned(), "{}".to_owned());
                }
                Pod {
                    metadata: ObjectMeta {
                        name: Some("p".to_owned()),
                        namespace: Some(namespace.to_owned()),
                        annotations: Some(annotations),
                        ..Default::default()
                    },
                    spec: Some(PodSpec {
                        containers,
                        init_containers: init,
                        volumes: volumes.map(|names| {
                            let mut seen = Vec::new();
                            names
                                .into_iter()
                                .filter(|n| {
                                    let fresh = !seen.contains(n);
                                    seen.push(*n);
                                    fresh
                                })
                                .map(|n| Volume {
                                    name: n.to_owned(),
                                    ..Default::default()
                                })
                                .collect()
                        }),
                        runtime_class_name: runtime_class.map(str::to_owned),
                        ..Default::default()
                    }),
                    status: None,
                }
            },
        )
}

fn engine(name: String) -> impl Strategy<Value = LLMEngine> {
    (
        prop::sample::select(vec![Vendor::None, Vendor::Nvidia, Vendor::Amd]),
        prop::option::of(1i32..9),
        prop_oneof![8 => Just(11434), 1 => Just(8000), 1 => Just(65533)],
        any::<bool>(),
        prop::option::of(Just("nvidia".to_owned())),
    )
        .prop_map(move |(vendor, max, port, dra, runtime_class)| {
            let gpu = vendor != Vendor::None;
            LLMEngine::new(
                &name,
                LLMEngineSpec {
                    runtime: Default::default(),
                    image: None,
                    port,
                    accelerator: Accelerator {
                        vendor,
                        allocation: if gpu && dra {
                            Allocation::Dra
                        } else {
                            Allocation::DevicePlugin
                        },
                        dra: (gpu && dra).then(|| DraAllocation {
                            resource_claim_template_name: "gpus".to_owned(),
                        }),
                        resource_name: None,
                        max_devices_per_instance: max.filter(|_| gpu),
                        runtime_class_name: runtime_class.filter(|_| gpu),
                        memory_per_device: None,
                    },
                    resources: None,
                    pull_resources: None,
                    model_store: None,
                    env: Vec::new(),
                    security_context: None,
                },
            )
        })
}

fn model(name: &'static str) -> impl Strategy<Value = LLMModel> {
    (
        prop_oneof![20 => prop::sample::select(vec!["e0", "e1", "e2"]), 1 => Just("missing")],
        prop::option::weighted(0.5, 0i32..5),
        prop_oneof![10 => 1i32..4, 1 => Just(0)],
        prop::option::weighted(
            0.3,
            prop::collection::vec(prop::sample::select(vec!["0", "1", "2", "3"]), 0..3),
        ),
        prop::option::of(1i32..8),
        // The router's settings: none, always, exposed (on a free port or
        // on an engine's), with an affinity.
        prop::option::weighted(0.3, (0u8..4, prop::bool::ANY)),
    )
        .prop_map(move |(engine, model, data, devices, parallel, routing)| {
            let mut m = LLMModel::new(
                name,
                LLMModelSpec {
                    model: "qwen3:8b".to_owned(),
                    engine_ref: EngineRef {
                        name: engine.to_owned(),
                    },
                    parallelism: Parallelism { model, data },
                    devices: devices.map(|d| {
                        let mut d: Vec<String> = d.into_iter().map(str::to_owned).collect();
                        d.dedup();
                        d
                    }),
                    serving: parallel.map(|n| Serving {
                        parallel_requests: Some(n),
                        ..Default::default()
                    }),
                    client_env: Vec::new(),
                    routing: routing.map(|(shape, affinity)| Routing {
                        router: (shape == 1).then_some(RouterMode::Always),
                        expose: match shape {
                            2 => Some(Expose { port: None }),
                            3 => Some(Expose { port: Some(11435) }),
                            _ => None,
                        },
                        client_keep_alive: None,
                        affinity: affinity.then(|| Affinity {
                            header: Some("x-session-id".to_owned()),
                            prompt_prefix_bytes: None,
                        }),
                    }),
                    facts: None,
                },
            );
            m.metadata.namespace = Some("team-a".to_owned());
            m
        })
}

fn catalog() -> impl Strategy<Value = Catalog> {
    (
        (
            engine("e0".into()),
            engine("e1".into()),
            engine("e2".into()),
        ),
        (
            model(MODEL_NAMES[0]),
            model(MODEL_NAMES[1]),
            model(MODEL_NAMES[2]),
            model(MODEL_NAMES[3]),
        ),
    )
        .prop_map(|((e0, e1, e2), (m0, m1, m2, m3))| {
            let mut catalog = Catalog::new();
            for mut e in [e0, e1, e2] {
                e.metadata.namespace = Some("team-a".to_owned());
                catalog.insert_engine(e);
            }
            for m in [m0, m1, m2, m3] {
                catalog.insert_model(m);
            }
            catalog
        })
}

/// The injector every case uses (see `injection_invariants`).
fn shared_injector() -> &'static Injector {
    static INJECTOR: std::sync::OnceLock<Injector> = std::sync::OnceLock::new();
    INJECTOR.get_or_init(Injector::default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn injection_invariants(pod in pod(), catalog in catalog()) {
        let namespace = pod.metadata.namespace.clone().unwrap();
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        // One injector for every case: what it remembers of earlier cases'
        // catalogs must never leak into this one's patch.
        let injector = shared_injector();
        let result = injector.inject(&pod, &namespace, &catalog);
        match result {
            Ok(Outcome::NotRequested) => prop_assert!(!annotations.contains_key(MODEL_ANNOTATION)),
            Ok(Outcome::AlreadyInjected) => prop_assert!(annotations.contains_key(STATUS_ANNOTATION)),
            Ok(Outcome::Injected(injected)) => {
                prop_assert!(annotations.contains_key(MODEL_ANNOTATION));
                // The patch applies, and is the one made afresh for this pod
                // (the injector's memory of models and pod shapes changes nothing) ...
                let injected_pod = injected.apply(&pod).expect("patch applies");
                let model = catalog.model(&namespace, &annotations[MODEL_ANNOTATION]).unwrap();
                let engine = catalog.engine(&namespace, &model.spec.engine_ref.name).unwrap();
                let fresh = llm_injector::inject::inject(&pod, &model, &engine, &InjectOptions::default())
                    .expect("injects afresh too");
                prop_assert_eq!(fresh.patch.operations(), injected.patch.operations());
                prop_assert_eq!(&fresh.warnings, &injected.warnings);
                // ... and only ever adds: nothing of the user's is replaced or removed.
                for op in injected.patch.operations().iter() {
                    prop_assert!(matches!(op, json_patch::PatchOperation::Add(_)), "not an add: {:?}", op);
                }
                // User containers keep their env entries, in order, after the injected ones.
                let after = injected_pod.spec.as_ref().unwrap();
                for (before, after) in pod.spec.as_ref().unwrap().containers.iter().zip(&after.containers) {
                    let old = before.env.clone().unwrap_or_default();
                    let new = after.env.clone().unwrap_or_default();
                    prop_assert_eq!(&new[new.len() - old.len()..], &old[..]);
                }
                // Injecting again changes nothing.
                let again = injector.inject(&injected_pod, &namespace, &catalog);
                prop_assert!(matches!(again, Ok(Outcome::AlreadyInjected)));
                // GPU containers never get NVIDIA_VISIBLE_DEVICES; AMD engines never get CUDA_*.
                for c in after.init_containers.iter().flatten().filter(|c| c.name.starts_with("llm-engine-")) {
                    let names: Vec<&str> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
                    let gpu = llm_injector::inject::requests_gpu(c);
                    prop_assert!(!(gpu && names.contains(&"NVIDIA_VISIBLE_DEVICES")));
                    if names.contains(&"ROCR_VISIBLE_DEVICES") {
                        prop_assert!(!names.iter().any(|n| n.starts_with("CUDA_")));
                    }
                }
            }
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }
}
