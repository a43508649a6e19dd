//! The containers, volumes and claims the injector adds: `llm-pull`, one
//! `llm-engine-<i>` native sidecar per data-parallel instance, the model
//! store, and the empty directory that keeps the pod's API token out of the
//! injected containers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, ExecAction, PodResourceClaim, Probe,
    ResourceClaim, ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::plan::Plan;
use crate::crd::{Allocation, Vendor};
use crate::layout::{
    CLAIM_PREFIX, ENGINE_CONTAINER_PREFIX, INJECTED_UID, MODEL_MOUNT_PATH, MODEL_VOLUME,
    NO_TOKEN_VOLUME, PULL_CONTAINER, ROUTER_CONTAINER, ROUTER_PORT_NAME, TOKEN_MOUNT_PATH,
};

/// Path of the llm-injector binary in its image (the router image).
const ROUTER_BINARY: &str = "/llm-injector";

/// The pull script: the directories Ollama writes to (on the model store,
/// whose emptyDir is writable by any uid), a private server on the engine's
/// base port (no engine runs yet), `ollama pull`, then stop. Pulling from a
/// postStart hook would race the engine's own server and crash-loop.
const PULL_SCRIPT: &str = r#"set -u
mkdir -p "$HOME" "$TMPDIR" "$OLLAMA_MODELS" || {
  echo "llm-pull: cannot create $HOME, $TMPDIR and $OLLAMA_MODELS on the model store as uid $(id -u): make the store writable by that uid (for a PersistentVolumeClaim: the pod's securityContext.fsGroup)" >&2
  exit 1
}
ollama serve &
server=$!
tries=0
until ollama ps >/dev/null 2>&1; do
  if ! kill -0 "$server" 2>/dev/null; then
    echo "llm-pull: the Ollama server exited before it answered" >&2
    exit 1
  fi
  tries=$((tries + 1))
  if [ "$tries" -gt 120 ]; then
    echo "llm-pull: the Ollama server did not answer within 120s" >&2
    kill "$server" 2>/dev/null
    exit 1
  fi
  sleep 1
done
status=0
ollama pull "$LLM_MODEL" || status=$?
kill "$server" 2>/dev/null
wait "$server" 2>/dev/null
exit "$status"
"#;

/// Startup check: loads the model and passes once it is loaded, for
/// completion and embedding models alike, so the app starts only then.
///
/// It asks `/api/embed` with no input: Ollama v0.12.6 schedules the runner
/// there without requiring a capability (server/routes.go line 653, `[]model.Capability{}`)
/// and answers 200 with no embeddings once the model is loaded (lines 660-663).
/// `/api/generate`, which `ollama run` calls, requires the completion
/// capability first and answers 400 "does not support generate" for
/// embedding models (lines 329-349), so an embedding model never got ready.
/// The ollama CLI has no command that calls `/api/embed`, and the image no
/// curl (Dockerfile: ubuntu:24.04 plus ca-certificates), so bash sends the
/// request itself over `/dev/tcp`. Model names are ASCII without quotes (the
/// LLMModel's `spec.model` pattern), so the JSON needs no escaping.
/// tests/ollama_probe.rs runs this script against a real Ollama server.
pub const LOADED_CHECK: &str = r#"set -u
body="{\"model\":\"$LLM_MODEL\"}"
exec 3<>"/dev/tcp/127.0.0.1/${OLLAMA_HOST##*:}" || exit 1
printf 'POST /api/embed HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' "${#body}" "$body" >&3
IFS= read -r status <&3
case "$status" in
  "HTTP/1."?" 200 "*) exit 0 ;;
esac
echo "llm-engine: loading $LLM_MODEL: $status" >&2
cat <&3 >&2
exit 1
"#;

pub fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// Environment shared by the puller and every engine instance.
fn store_env(plan: &Plan, port: i32) -> Vec<EnvVar> {
    vec![
        env("OLLAMA_HOST", format!("127.0.0.1:{port}")),
        env("OLLAMA_MODELS", format!("{MODEL_MOUNT_PATH}/models")),
        // The server writes its key pair under $HOME/.ollama; the image's
        // HOME is not writable with a read-only root or a non-root user.
        env("HOME", format!("{MODEL_MOUNT_PATH}/home")),
        // The runner writes a temporary file at every model load
        // (runner/ollamarunner/runner.go line 1286, os.CreateTemp("", ...)),
        // and the root filesystem is read-only.
        env("TMPDIR", format!("{MODEL_MOUNT_PATH}/tmp")),
        env("OLLAMA_NOPRUNE", "1"),
        env("LLM_MODEL", plan.ollama_model.as_str()),
    ]
}

fn store_mount() -> Vec<VolumeMount> {
    vec![
        VolumeMount {
            name: MODEL_VOLUME.to_owned(),
            mount_path: MODEL_MOUNT_PATH.to_owned(),
            ..Default::default()
        },
        no_token_mount(),
    ]
}

/// The empty directory over the token path (see [`TOKEN_MOUNT_PATH`]).
fn no_token_mount() -> VolumeMount {
    VolumeMount {
        name: NO_TOKEN_VOLUME.to_owned(),
        mount_path: TOKEN_MOUNT_PATH.to_owned(),
        read_only: Some(true),
        ..Default::default()
    }
}

fn exec_probe(command: &[&str]) -> ExecAction {
    ExecAction {
        command: Some(command.iter().map(|s| (*s).to_owned()).collect()),
    }
}

/// The `llm-pull` init container: no GPU, and `NVIDIA_VISIBLE_DEVICES=void`
/// so a node whose default runtime is nvidia does not hand it every GPU.
/// It gets the engine's `env` too (proxy and CA settings: it is the only
/// container that downloads), and its own resources. Under a classic
/// service-mesh sidecar it runs as the proxy's uid, whose traffic the mesh's
/// redirection leaves alone (see [`Plan::pull_uid`]).
pub fn pull_container(plan: &Plan) -> Container {
    let mut env_vars = store_env(plan, plan.port);
    env_vars.push(env("NVIDIA_VISIBLE_DEVICES", "void"));
    env_vars.extend(plan.engine_env.iter().cloned());
    let mut security_context = plan.security_context.clone();
    if let Some(uid) = plan.pull_uid {
        security_context.run_as_user = Some(uid);
    }
    Container {
        name: PULL_CONTAINER.to_owned(),
        image: Some(plan.image.to_owned()),
        command: Some(vec!["/bin/sh".to_owned(), "-c".to_owned()]),
        args: Some(vec![PULL_SCRIPT.to_owned()]),
        env: Some(env_vars),
        resources: Some(plan.pull_resources.clone()),
        volume_mounts: Some(store_mount()),
        security_context: Some(security_context),
        ..Default::default()
    }
}

/// The native sidecar `llm-engine-<instance>`.
pub fn engine_container(plan: &Plan, instance: i32) -> Container {
    let mut env_vars = store_env(plan, plan.instance_port(instance));
    env_vars.push(env("OLLAMA_KEEP_ALIVE", plan.keep_alive.as_str()));
    if let Some(n) = plan.context_length {
        env_vars.push(env("OLLAMA_CONTEXT_LENGTH", n.to_string()));
    }
    if let Some(n) = plan.parallel_requests {
        env_vars.push(env("OLLAMA_NUM_PARALLEL", n.to_string()));
    }
    if let Some(n) = plan.max_queue {
        env_vars.push(env("OLLAMA_MAX_QUEUE", n.to_string()));
    }
    if plan.gpus_per_instance > 1 {
        // Spread the layers over all GPUs of the instance (model parallelism).
        env_vars.push(env("OLLAMA_SCHED_SPREAD", "1"));
    }
    if let Some(devices) = &plan.devices {
        let name = match plan.vendor {
            Vendor::Amd => Some("ROCR_VISIBLE_DEVICES"),
            Vendor::Nvidia => Some("CUDA_VISIBLE_DEVICES"),
            Vendor::None => None,
        };
        if let Some(name) = name {
            env_vars.push(env(name, devices.join(",")));
        }
    }
    if plan.vendor == Vendor::None {
        env_vars.push(env("NVIDIA_VISIBLE_DEVICES", "void"));
    }
    env_vars.extend(plan.engine_env.iter().cloned());

    Container {
        name: engine_container_name(instance),
        image: Some(plan.image.to_owned()),
        args: Some(vec!["serve".to_owned()]),
        env: Some(env_vars),
        resources: engine_resources(plan, instance),
        volume_mounts: Some(store_mount()),
        restart_policy: Some("Always".to_owned()),
        startup_probe: Some(Probe {
            exec: Some(exec_probe(&["/bin/bash", "-c", LOADED_CHECK])),
            period_seconds: Some(10),
            timeout_seconds: Some(300),
            failure_threshold: Some(120),
            ..Default::default()
        }),
        readiness_probe: Some(Probe {
            exec: Some(exec_probe(&["ollama", "ps"])),
            period_seconds: Some(10),
            timeout_seconds: Some(5),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        liveness_probe: Some(Probe {
            exec: Some(exec_probe(&["ollama", "ps"])),
            period_seconds: Some(20),
            timeout_seconds: Some(10),
            failure_threshold: Some(6),
            ..Default::default()
        }),
        security_context: Some(plan.security_context.clone()),
        ..Default::default()
    }
}

/// The `llm-router` native sidecar, after the engines, when the plan has one:
/// `llm-injector route` in front of the engine instances, with the model's
/// limits (`OLLAMA_NUM_PARALLEL` per instance, the queue), keep-alive floor
/// and affinity. Its probes run the same binary against its loopback admin
/// endpoint.
pub fn router_container(plan: &Plan) -> Option<Container> {
    let router = plan.router.as_ref()?;
    let host = if router.exposed {
        "0.0.0.0"
    } else {
        "127.0.0.1"
    };
    let mut args = vec![
        "route".to_owned(),
        "--listen".to_owned(),
        format!("{host}:{}", router.port),
        "--admin-listen".to_owned(),
        format!("127.0.0.1:{}", router.admin_port),
    ];
    for instance in 0..plan.instances {
        args.push("--backend".to_owned());
        args.push(format!("127.0.0.1:{}", plan.instance_port(instance)));
    }
    args.push(format!("--max-in-flight={}", router.max_in_flight));
    args.push(format!("--max-queue={}", router.max_queue));
    if let Some(floor) = &router.keep_alive_floor {
        args.push(format!("--keep-alive-floor={floor}"));
    }
    if let Some(affinity) = &router.affinity {
        args.push(format!("--affinity={affinity}"));
    }
    args.push(format!("--model-name={}", plan.ollama_model));
    let ports = router.exposed.then(|| {
        vec![ContainerPort {
            name: Some(ROUTER_PORT_NAME.to_owned()),
            container_port: router.port,
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        }]
    });
    let probe = |path: &str, period: i32| Probe {
        exec: Some(exec_probe(&[
            ROUTER_BINARY,
            "probe",
            &format!("http://127.0.0.1:{}{path}", router.admin_port),
        ])),
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        failure_threshold: Some(3),
        ..Default::default()
    };
    let quantity = |q: &str| Quantity(q.to_owned());
    Some(Container {
        name: ROUTER_CONTAINER.to_owned(),
        image: Some(router.image.to_owned()),
        args: Some(args),
        ports,
        env: Some(vec![env("NVIDIA_VISIBLE_DEVICES", "void")]),
        volume_mounts: Some(vec![no_token_mount()]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), quantity("50m")),
                ("memory".to_owned(), quantity("32Mi")),
            ])),
            limits: Some(BTreeMap::from([
                ("cpu".to_owned(), quantity("1")),
                ("memory".to_owned(), quantity("128Mi")),
            ])),
            ..Default::default()
        }),
        restart_policy: Some("Always".to_owned()),
        readiness_probe: Some(probe("/readyz", 5)),
        liveness_probe: Some(probe("/livez", 20)),
        security_context: Some(plan.security_context.clone()),
        ..Default::default()
    })
}

/// The securityContext of the injected containers when the LLMEngine sets
/// none: what Pod Security "restricted" asks of every container (not root,
/// no privilege escalation, no capabilities, the runtime's default seccomp
/// profile), and a read-only root filesystem: Ollama writes only to `$HOME`,
/// `$TMPDIR` and `$OLLAMA_MODELS`, all on the model store.
pub fn restricted_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            add: None,
            drop: Some(vec!["ALL".to_owned()]),
        }),
        read_only_root_filesystem: Some(true),
        run_as_group: Some(INJECTED_UID),
        run_as_non_root: Some(true),
        run_as_user: Some(INJECTED_UID),
        seccomp_profile: Some(SeccompProfile {
            localhost_profile: None,
            type_: "RuntimeDefault".to_owned(),
        }),
        ..Default::default()
    }
}

/// `llm-engine-<instance>`.
pub fn engine_container_name(instance: i32) -> String {
    format!("{ENGINE_CONTAINER_PREFIX}{instance}")
}

/// `llm-gpu-<instance>`, the DRA claim of one instance.
pub fn claim_name(instance: i32) -> String {
    format!("{CLAIM_PREFIX}{instance}")
}

/// The engine's CPU/memory plus this instance's GPUs: a device-plugin limit of
/// `parallelism.model`, or the instance's own DRA claim.
/// Instance 0 also requests the model store's `ephemeral-storage`, so the
/// scheduler places the pod where the store fits (an emptyDir's `sizeLimit`
/// alone is invisible to scheduling).
fn engine_resources(plan: &Plan, instance: i32) -> Option<ResourceRequirements> {
    let mut resources = plan.engine_resources.clone();
    if let (0, Some(size)) = (instance, plan.model_store_request.as_ref()) {
        resources
            .requests
            .get_or_insert_with(BTreeMap::new)
            .entry("ephemeral-storage".to_owned())
            .or_insert_with(|| size.clone());
    }
    match (plan.allocation, plan.resource_name.as_deref()) {
        (Allocation::Dra, _) => {
            resources
                .claims
                .get_or_insert_with(Vec::new)
                .push(ResourceClaim {
                    name: claim_name(instance),
                    request: None,
                });
        }
        (Allocation::DevicePlugin, Some(resource)) if plan.gpus_per_instance > 0 => {
            let gpus = Quantity(plan.gpus_per_instance.to_string());
            resources
                .limits
                .get_or_insert_with(BTreeMap::new)
                .insert(resource.to_owned(), gpus);
        }
        _ => {}
    }
    (resources != ResourceRequirements::default()).then_some(resources)
}

/// The pod-level DRA claim of one instance.
pub fn pod_claim(plan: &Plan, instance: i32) -> Option<PodResourceClaim> {
    let template = plan.claim_template.as_deref()?;
    Some(PodResourceClaim {
        name: claim_name(instance),
        resource_claim_template_name: Some(template.to_owned()),
        ..Default::default()
    })
}

/// The `llm-no-api-token` volume: an empty, read-only-mounted directory of
/// memory that holds nothing.
pub fn no_token_volume() -> Volume {
    use k8s_openapi::api::core::v1::EmptyDirVolumeSource;
    Volume {
        name: NO_TOKEN_VOLUME.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".to_owned()),
            size_limit: Some(Quantity("1Ki".to_owned())),
        }),
        ..Default::default()
    }
}

/// The `llm-models` volume.
pub fn model_volume(plan: &Plan) -> Volume {
    Volume {
        name: MODEL_VOLUME.to_owned(),
        empty_dir: plan.model_store.empty_dir.clone(),
        persistent_volume_claim: plan.model_store.persistent_volume_claim.clone(),
        ..Default::default()
    }
}
