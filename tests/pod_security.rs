//! Pod Security Standards (https://kubernetes.io/docs/concepts/security/pod-security-standards/):
//! every container the injector adds meets "baseline", and with an engine
//! whose `securityContext` has restricted values the injected containers meet
//! "restricted". The checks below implement the standard's controls for the
//! fields a pod spec can carry (Linux pods, policy version 1.33).

mod support;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, PodSpec, SecurityContext};
use llm_injector::crd::{LLMEngine, LLMModel};
use llm_injector::{Catalog, Injector, ModelLookup, Outcome};

const INJECTED: [&str; 2] = ["llm-pull", "llm-"];

/// Capabilities "baseline" allows to be added.
const BASELINE_CAPS: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
const SELINUX_TYPES: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// Violations of "baseline" by one container (pod-level controls: `pod_baseline`).
fn container_baseline(c: &Container) -> Vec<String> {
    let mut v = Vec::new();
    let Some(sc) = &c.security_context else {
        return port_violations(c);
    };
    if sc.privileged == Some(true) {
        v.push(format!("{}: privileged", c.name));
    }
    if sc.windows_options.as_ref().and_then(|w| w.host_process) == Some(true) {
        v.push(format!("{}: hostProcess", c.name));
    }
    for cap in sc.capabilities.iter().flat_map(|c| c.add.iter().flatten()) {
        if !BASELINE_CAPS.contains(&cap.as_str()) {
            v.push(format!("{}: adds capability {cap}", c.name));
        }
    }
    if let Some(se) = &sc.se_linux_options
        && (!SELINUX_TYPES.contains(&se.type_.as_deref().unwrap_or(""))
            || se.user.is_some()
            || se.role.is_some())
    {
        v.push(format!("{}: SELinux options", c.name));
    }
    if sc.proc_mount.as_deref().is_some_and(|p| p != "Default") {
        v.push(format!("{}: procMount", c.name));
    }
    if sc
        .seccomp_profile
        .as_ref()
        .is_some_and(|s| s.type_ == "Unconfined")
    {
        v.push(format!("{}: seccomp Unconfined", c.name));
    }
    if sc
        .app_armor_profile
        .as_ref()
        .is_some_and(|a| a.type_ == "Unconfined")
    {
        v.push(format!("{}: AppArmor Unconfined", c.name));
    }
    v.extend(port_violations(c));
    v
}

fn port_violations(c: &Container) -> Vec<String> {
    c.ports
        .iter()
        .flatten()
        .filter(|p| p.host_port.is_some_and(|h| h != 0))
        .map(|p| format!("{}: hostPort {:?}", c.name, p.host_port))
        .collect()
}

/// Violations of "baseline" by the pod-level fields.
fn pod_baseline(spec: &PodSpec) -> Vec<String> {
    let mut v = Vec::new();
    for (flag, name) in [
        (spec.host_network, "hostNetwork"),
        (spec.host_pid, "hostPID"),
        (spec.host_ipc, "hostIPC"),
    ] {
        if flag == Some(true) {
            v.push(name.to_owned());
        }
    }
    for volume in spec.volumes.iter().flatten() {
        if volume.host_path.is_some() {
            v.push(format!("volume {}: hostPath", volume.name));
        }
    }
    if let Some(sc) = &spec.security_context {
        for sysctl in sc.sysctls.iter().flatten() {
            if !SAFE_SYSCTLS.contains(&sysctl.name.as_str()) {
                v.push(format!("sysctl {}", sysctl.name));
            }
        }
        if sc
            .seccomp_profile
            .as_ref()
            .is_some_and(|s| s.type_ == "Unconfined")
        {
            v.push("pod seccomp Unconfined".to_owned());
        }
    }
    v
}

/// Violations of "restricted" (on top of baseline) by one container, given the pod's securityContext.
fn container_restricted(c: &Container, pod: Option<&PodSecurityContext>) -> Vec<String> {
    let mut v = container_baseline(c);
    let sc = c.security_context.clone().unwrap_or_default();
    if sc.allow_privilege_escalation != Some(false) {
        v.push(format!("{}: allowPrivilegeEscalation is not false", c.name));
    }
    let non_root = sc.run_as_non_root.or(pod.and_then(|p| p.run_as_non_root));
    if non_root != Some(true) {
        v.push(format!("{}: runAsNonRoot is not true", c.name));
    }
    if sc.run_as_user.or(pod.and_then(|p| p.run_as_user)) == Some(0) {
        v.push(format!("{}: runAsUser 0", c.name));
    }
    let seccomp = sc
        .seccomp_profile
        .as_ref()
        .or(pod.and_then(|p| p.seccomp_profile.as_ref()))
        .map(|s| s.type_.as_str());
    if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
        v.push(format!(
            "{}: seccompProfile is not RuntimeDefault or Localhost",
            c.name
        ));
    }
    let caps = sc.capabilities.unwrap_or_default();
    if !caps.drop.iter().flatten().any(|d| d == "ALL") {
        v.push(format!("{}: capabilities do not drop ALL", c.name));
    }
    for cap in caps.add.iter().flatten() {
        if cap != "NET_BIND_SERVICE" {
            v.push(format!("{}: adds capability {cap}", c.name));
        }
    }
    v
}

/// Violations of "restricted" by the pod-level fields.
fn pod_restricted(spec: &PodSpec) -> Vec<String> {
    let mut v = pod_baseline(spec);
    for volume in spec.volumes.iter().flatten() {
        let allowed = volume.config_map.is_some()
            || volume.csi.is_some()
            || volume.downward_api.is_some()
            || volume.empty_dir.is_some()
            || volume.ephemeral.is_some()
            || volume.persistent_volume_claim.is_some()
            || volume.projected.is_some()
            || volume.secret.is_some();
        if !allowed {
            v.push(format!("volume {}: type not allowed", volume.name));
        }
    }
    v
}

fn injected_containers(spec: &PodSpec) -> Vec<&Container> {
    spec.init_containers
        .iter()
        .flatten()
        .filter(|c| INJECTED.iter().any(|p| c.name.starts_with(p)))
        .collect()
}

fn catalog() -> Catalog {
    support::server::golden_catalog()
}

fn pod(namespace: &str, model: &str, security: Option<PodSecurityContext>) -> Pod {
    Pod {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("p".into()),
            namespace: Some(namespace.into()),
            annotations: Some(BTreeMap::from([(
                llm_injector::MODEL_ANNOTATION.to_owned(),
                model.to_owned(),
            )])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("ghcr.io/example/app:1".into()),
                ..Default::default()
            }],
            security_context: security,
            ..Default::default()
        }),
        status: None,
    }
}

fn inject(pod: &Pod, catalog: &Catalog) -> PodSpec {
    let namespace = pod.metadata.namespace.clone().unwrap();
    match Injector::default().inject(pod, &namespace, catalog) {
        Ok(Outcome::Injected(injected)) => injected.apply(pod).unwrap().spec.unwrap(),
        other => panic!("not injected: {other:?}"),
    }
}

/// Every model of the example catalog: injected containers meet baseline.
#[test]
fn injected_containers_meet_baseline() {
    let catalog = catalog();
    let mut checked = 0;
    for model in [
        "llama-cpu",
        "qwen-gpu1",
        "qwen-mp2",
        "qwen-2x2",
        "llama-amd",
    ] {
        let spec = inject(&pod("team-a", model, None), &catalog);
        let mut violations = pod_baseline(&spec);
        for c in injected_containers(&spec) {
            violations.extend(container_baseline(c));
            checked += 1;
        }
        assert!(violations.is_empty(), "{model}: {violations:?}");
    }
    assert!(checked >= 11, "checked {checked} containers");
}

/// With an engine whose securityContext is restricted, every injected
/// container and the pod-level fields injection adds meet restricted.
#[test]
fn restricted_engine_gives_restricted_containers() {
    let catalog = catalog();
    // The restricted engine of the test catalog, served with data parallelism
    // so the router is checked too.
    let mut catalog = catalog;
    let engine: LLMEngine = (*catalog.engine("default", "restricted").unwrap()).clone();
    let mut model: LLMModel = (*catalog.model("default", "secure").unwrap()).clone();
    model.metadata.name = Some("secure-dp".into());
    model.spec.parallelism.data = 2;
    catalog.insert_model(model);
    catalog.insert_engine(engine);
    for name in ["secure", "secure-dp"] {
        let spec = inject(&pod("default", name, None), &catalog);
        let mut violations = pod_restricted(&spec);
        let injected = injected_containers(&spec);
        assert_eq!(
            injected.len(),
            if name == "secure" { 2 } else { 4 },
            "{name}"
        );
        for c in injected {
            violations.extend(container_restricted(c, spec.security_context.as_ref()));
        }
        assert!(violations.is_empty(), "{name}: {violations:?}");
    }
}

/// The checks themselves catch what they are meant to catch.
#[test]
fn checks_catch_violations() {
    let bad = Container {
        name: "bad".into(),
        security_context: Some(SecurityContext {
            privileged: Some(true),
            capabilities: Some(k8s_openapi::api::core::v1::Capabilities {
                add: Some(vec!["SYS_ADMIN".into()]),
                drop: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(container_baseline(&bad).len(), 2);
    let plain = Container {
        name: "plain".into(),
        ..Default::default()
    };
    assert!(container_baseline(&plain).is_empty());
    assert_eq!(container_restricted(&plain, None).len(), 4);
    let spec = PodSpec {
        host_network: Some(true),
        volumes: Some(vec![k8s_openapi::api::core::v1::Volume {
            name: "root".into(),
            host_path: Some(Default::default()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    assert_eq!(pod_baseline(&spec).len(), 2);
    assert_eq!(pod_restricted(&spec).len(), 3);
}
