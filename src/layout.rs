//! What injection adds to a pod, by name: the containers, volumes, claims,
//! mount paths, the uid they run as, the engine env the injector owns and
//! the loopback ports it takes. One place, read by `inject` (which adds
//! them) and `validate` (which refuses what would collide with them).

/// Name of the init container that pulls the model into the store.
pub const PULL_CONTAINER: &str = "llm-pull";
/// Prefix of the engine sidecars: `llm-engine-0`, `llm-engine-1`, ...
pub const ENGINE_CONTAINER_PREFIX: &str = "llm-engine-";
/// Name of the shared model-store volume.
pub const MODEL_VOLUME: &str = "llm-models";
/// Where the model store is mounted in the injected containers.
pub const MODEL_MOUNT_PATH: &str = "/llm-models";
/// Name of the empty volume mounted where the ServiceAccount token would go.
pub const NO_TOKEN_VOLUME: &str = "llm-no-api-token";
/// The volumes every injection adds, in order (the status annotation lists
/// them; a pod already holding one is refused).
pub const INJECTED_VOLUMES: [&str; 2] = [MODEL_VOLUME, NO_TOKEN_VOLUME];
/// Where the apiserver's ServiceAccount admission mounts the pod's API token.
/// It skips a container that already mounts something here
/// (k8s.io/kubernetes v1.36.3 plugin/pkg/admission/serviceaccount/admission.go
/// lines 444-470, `mountServiceAccountToken`; checked on a real apiserver by
/// tests/e2e), so the injected containers, which need no API access, get this
/// empty directory instead of the token.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Prefix of the per-instance DRA claims: `llm-gpu-0`, ...
pub const CLAIM_PREFIX: &str = "llm-gpu-";
/// Name of the request router sidecar of pods with data parallelism.
pub const ROUTER_CONTAINER: &str = "llm-router";

/// Name of the `llm-router`'s container port when it is exposed on the pod's
/// IP (`routing.expose`).
pub const ROUTER_PORT_NAME: &str = "llm-http";
/// The uid and gid the injected containers run as by default: not root, and
/// not a user of the ollama image (which has none besides root; Ollama needs
/// no account, only a writable `$HOME`, `$TMPDIR` and `$OLLAMA_MODELS`, all
/// on the model store).
pub const INJECTED_UID: i64 = 65532;

/// Environment variables the injector sets on engine containers itself; an
/// engine's `spec.env` may not override them.
pub const RESERVED_ENGINE_ENV: &[&str] = &[
    "OLLAMA_HOST",
    "OLLAMA_MODELS",
    "HOME",
    "TMPDIR",
    "OLLAMA_KEEP_ALIVE",
    "OLLAMA_NOPRUNE",
    "OLLAMA_SCHED_SPREAD",
    "LLM_MODEL",
    "CUDA_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "GPU_DEVICE_ORDINAL",
    "NVIDIA_VISIBLE_DEVICES",
];

/// The last port of the range the containers injected for `instances`
/// engine instances on base port `port` take: the engines take
/// `port..port + instances - 1`; with the `llm-router` (`router`), it and its
/// admin endpoint take the next two ports (an exposed router serves on its
/// own port instead, and the first of the two stays free). (`i64`: it may
/// pass 65535, which validation refuses.)
pub fn last_injected_port(port: i32, instances: i32, router: bool) -> i64 {
    let router_ports = if router { 2 } else { 0 };
    i64::from(port) + i64::from(instances) - 1 + router_ports
}

/// Inference requests one Ollama instance serves at once when
/// `OLLAMA_NUM_PARALLEL` is unset: 1 (Ollama 0.12.6 envconfig/config.go line
/// 244; server/sched.go line 397 takes at least 1).
pub const OLLAMA_DEFAULT_NUM_PARALLEL: i32 = 1;

/// Requests Ollama queues when `OLLAMA_MAX_QUEUE` is unset: 512
/// (envconfig/config.go line 248). The router's queue takes the same bound.
pub const OLLAMA_DEFAULT_MAX_QUEUE: i32 = 512;
