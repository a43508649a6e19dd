//! The control plane the suite runs against: etcd, kube-apiserver and
//! kube-controller-manager built from k8s.io/kubernetes (tests/controlplane),
//! started on 127.0.0.1 ports of the kernel's choice in a fresh directory,
//! and stopped again when [`ControlPlane`] is dropped, also when a check
//! panics. Every child also gets `PR_SET_PDEATHSIG`, so a suite killed
//! outright (SIGKILL, CI's timeout) takes its processes with it.

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::kubectl::Kubectl;

/// The binaries the suite needs, in one directory.
pub const BINARIES: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kubectl",
];

/// The controllers of kube-controller-manager the suite needs: service
/// accounts and their tokens (the ServiceAccount admission plugin refuses pods
/// until `default` exists), namespaces, the workload controllers that make
/// pods (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob), garbage collection (owner references)
/// and the root CA ConfigMap the token volume projects.
const CONTROLLERS: &str = "serviceaccount-controller,serviceaccount-token-controller,\
namespace-controller,deployment-controller,replicaset-controller,statefulset-controller,\
daemonset-controller,job-controller,cronjob-controller,garbage-collector-controller,root-ca-certificate-publisher-controller";

/// Finds the control plane's binaries: the directory `build.sh` prints,
/// which builds them into the cache on first use (or takes
/// `KUBEBUILDER_ASSETS`). `LLM_INJECTOR_CONTROLPLANE` names a ready
/// directory and skips build.sh, as .ci/run does after its own build step.
pub fn binaries(root: &Path) -> Result<PathBuf, String> {
    let dir = match std::env::var_os("LLM_INJECTOR_CONTROLPLANE") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let script = root.join("tests/controlplane/build.sh");
            eprintln!(
                "e2e: {} (builds the control plane once; about 20 min cold)",
                script.display()
            );
            let out = Command::new(&script)
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
            if !out.status.success() {
                return Err(format!("{} failed ({})", script.display(), out.status));
            }
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    let missing: Vec<_> = BINARIES
        .iter()
        .filter(|name| !is_executable(&dir.join(name)))
        .collect();
    if missing.is_empty() {
        Ok(dir)
    } else {
        Err(format!(
            "{} has no executable {:?}: run tests/controlplane/build.sh, or point \
             LLM_INJECTOR_CONTROLPLANE at a directory holding {BINARIES:?}",
            dir.display(),
            missing
        ))
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A port on 127.0.0.1 that was free a moment ago. The kernel picks it; the
/// process that gets it binds it a few milliseconds later. If another process
/// takes it in between, the start fails with a message naming the port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A child process that is stopped (SIGTERM, then SIGKILL after 5 s) when
/// dropped, with its output in `log`.
pub struct Process {
    pub name: String,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Process {
    pub fn start(name: &str, command: &mut Command, log: PathBuf) -> Result<Self, String> {
        let out = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: prctl is async-signal-safe; nothing else runs in the child
        // between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {name} ({:?}): {e}", command.get_program()))?;
        Ok(Process {
            name: name.to_string(),
            log,
            child: Some(child),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// An error if the process has exited, with the end of its log and, when
    /// the log says so, which port was taken.
    pub fn check_running(&mut self) -> Result<(), String> {
        let Some(child) = self.child.as_mut() else {
            return Err(format!("{} was stopped", self.name));
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.exited(status)),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    fn exited(&self, status: std::process::ExitStatus) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let hint = if log.contains("address already in use") {
            "\n  a port it was given is taken by another process on 127.0.0.1 \
             (`ss -ltnp` names it); run the suite again for other ports"
        } else {
            ""
        };
        format!(
            "{} exited ({status}); the end of {}:\n    {}{hint}",
            self.name,
            self.log.display(),
            tail.join("\n    ")
        )
    }

    /// Kills the process at once (SIGKILL): it cleans nothing up, as when a
    /// node dies.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process: SIGTERM, and SIGKILL if it is still there after
    /// 5 seconds.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// etcd, kube-apiserver and kube-controller-manager, running, with a
/// kubeconfig for a `system:masters` user.
pub struct ControlPlane {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub bin_dir: PathBuf,
    // Dropped in reverse order of start: controller-manager, apiserver, etcd.
    processes: Vec<Process>,
}

impl ControlPlane {
    /// Starts the three processes in `dir` and waits until the apiserver is
    /// ready and the `default` ServiceAccount of `default` exists.
    pub fn start(bin_dir: &Path, dir: &Path) -> Result<Self, String> {
        let started = Instant::now();
        let certs = llm_injector::server::tls::generate(
            "kube-apiserver",
            &["127.0.0.1".into(), "localhost".into()],
            llm_injector::server::tls::Validity::default(),
        )
        .map_err(|e| e.to_string())?;
        let write = |name: &str, text: &str| -> Result<PathBuf, String> {
            let path = dir.join(name);
            fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(path)
        };
        let ca = write("ca.crt", &certs.ca_pem)?;
        let cert = write("apiserver.crt", &certs.cert_pem)?;
        let key = write("apiserver.key", &certs.key_pem)?;
        // The ServiceAccount token signing key (ECDSA P-256, PKCS#8) and its
        // public half, which the apiserver verifies tokens with.
        let sa_keys = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let sa_key = write("sa.key", &sa_keys.serialize_pem())?;
        let sa_pub = write("sa.pub", &sa_keys.public_key_pem())?;
        let token = format!("{:032x}", rand_u128());
        let tokens = write(
            "tokens.csv",
            &format!("{token},e2e-admin,e2e-admin,system:masters\n"),
        )?;

        // LLM_INJECTOR_E2E_API_PORT pins the apiserver's port (to reach it
        // by hand while the suite runs); otherwise the kernel picks.
        let api_port = match std::env::var("LLM_INJECTOR_E2E_API_PORT") {
            Ok(port) => port
                .parse()
                .map_err(|_| format!("LLM_INJECTOR_E2E_API_PORT={port:?} is not a port number"))?,
            Err(_) => free_port(),
        };
        let (etcd_port, etcd_peer_port) = (free_port(), free_port());
        let kubeconfig = write(
            "kubeconfig",
            &format!(
                "apiVersion: v1\nkind: Config\n\
                 clusters: [{{name: e2e, cluster: {{server: \"https://127.0.0.1:{api_port}\", certificate-authority: \"{}\"}}}}]\n\
                 users: [{{name: e2e, user: {{token: \"{token}\"}}}}]\n\
                 contexts: [{{name: e2e, context: {{cluster: e2e, user: e2e}}}}]\n\
                 current-context: e2e\n",
                ca.display()
            ),
        )?;
        let mut plane = ControlPlane {
            dir: dir.to_path_buf(),
            kubeconfig,
            bin_dir: bin_dir.to_path_buf(),
            processes: Vec::new(),
        };

        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        plane.processes.push(Process::start(
            "etcd",
            Command::new(bin_dir.join("etcd"))
                .arg(format!("--data-dir={}", dir.join("etcd").display()))
                .arg(format!("--listen-client-urls={etcd_url}"))
                .arg(format!("--advertise-client-urls={etcd_url}"))
                .arg(format!(
                    "--listen-peer-urls=http://127.0.0.1:{etcd_peer_port}"
                ))
                .arg(format!(
                    "--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer_port}"
                ))
                .arg(format!(
                    "--initial-cluster=default=http://127.0.0.1:{etcd_peer_port}"
                ))
                .arg("--unsafe-no-fsync")
                .arg("--log-level=warn"),
            dir.join("etcd.log"),
        )?);
        plane.processes.push(Process::start(
            "kube-apiserver",
            Command::new(bin_dir.join("kube-apiserver"))
                .arg(format!("--etcd-servers={etcd_url}"))
                .arg(format!("--secure-port={api_port}"))
                .arg("--bind-address=127.0.0.1")
                .arg("--advertise-address=127.0.0.1")
                .arg(format!(
                    "--cert-dir={}",
                    dir.join("apiserver-certs").display()
                ))
                .arg(format!("--tls-cert-file={}", cert.display()))
                .arg(format!("--tls-private-key-file={}", key.display()))
                .arg(format!("--token-auth-file={}", tokens.display()))
                .arg("--authorization-mode=RBAC")
                .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
                .arg(format!("--service-account-key-file={}", sa_pub.display()))
                .arg(format!(
                    "--service-account-signing-key-file={}",
                    sa_key.display()
                ))
                .arg("--service-cluster-ip-range=10.96.0.0/16")
                .arg("--v=1"),
            dir.join("kube-apiserver.log"),
        )?);
        let kubectl = plane.kubectl();
        plane.wait("kube-apiserver /readyz", Duration::from_secs(90), || {
            kubectl.run(&["get", "--raw", "/readyz"], None).ok()
        })?;
        plane.processes.push(Process::start(
            "kube-controller-manager",
            Command::new(bin_dir.join("kube-controller-manager"))
                .arg(format!("--kubeconfig={}", plane.kubeconfig.display()))
                .arg(format!("--controllers={CONTROLLERS}"))
                .arg(format!(
                    "--service-account-private-key-file={}",
                    sa_key.display()
                ))
                .arg(format!("--root-ca-file={}", ca.display()))
                .arg("--leader-elect=false")
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--secure-port={}", free_port()))
                .arg("--concurrent-deployment-syncs=2")
                .arg("--v=1"),
            dir.join("kube-controller-manager.log"),
        )?);
        plane.wait(
            "the default ServiceAccount (controller-manager)",
            Duration::from_secs(60),
            || {
                kubectl
                    .run(&["get", "serviceaccount", "default", "-n", "default"], None)
                    .ok()
            },
        )?;
        eprintln!(
            "e2e: control plane up in {:.1} s: kube-apiserver on 127.0.0.1:{api_port}, etcd {etcd_port}, pids {:?}",
            started.elapsed().as_secs_f64(),
            plane.processes.iter().map(Process::pid).collect::<Vec<_>>()
        );
        Ok(plane)
    }

    pub fn kubectl(&self) -> Kubectl {
        Kubectl::new(self.bin_dir.join("kubectl"), self.kubeconfig.clone())
    }

    /// Polls `ready` every 200 ms until it gives Some, failing early when a
    /// control plane process has exited.
    fn wait<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> Option<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + timeout;
        loop {
            for process in &mut self.processes {
                process.check_running()?;
            }
            if let Some(value) = ready() {
                return Ok(value);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{what} not ready after {} s; logs in {}",
                    timeout.as_secs(),
                    self.dir.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Errors if a process has exited since the start.
    pub fn check_running(&mut self) -> Result<(), String> {
        self.processes
            .iter_mut()
            .try_for_each(Process::check_running)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        while let Some(mut process) = self.processes.pop() {
            process.stop();
        }
    }
}

/// 128 random bits from the kernel, for the admin token.
fn rand_u128() -> u128 {
    let mut bytes = [0u8; 16];
    let file = fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    file.expect("read /dev/urandom");
    u128::from_le_bytes(bytes)
}
