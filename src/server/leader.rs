//! Leader election for the status controller: of all the replicas of
//! `serve`, the one holding a `coordination.k8s.io` Lease writes status; the
//! webhook serves on every replica whatever the Lease says.
//!
//! The Lease is kept by `kube-lease-manager` (server-side apply, renewed a
//! third of the lease duration before it expires). A replica that stops
//! cleanly releases the Lease, so another takes over at once; a killed one
//! is replaced once its Lease expires, within the lease duration of its last
//! renewal (plus up to a second's random delay the crate adds against
//! collisions).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::task::JoinHandle;

use super::Metrics;

/// How the replicas elect the one that writes status.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    /// Name of the Lease.
    pub lease_name: String,
    /// Namespace of the Lease; `None`: the client's (in a pod, the pod's own).
    pub namespace: Option<String>,
    /// This replica's name in the Lease's `holderIdentity`, unique among replicas.
    pub identity: String,
    /// How long a Lease holds without renewal.
    pub lease_duration: Duration,
}

impl LeaderElection {
    /// The defaults: Lease `llm-injector-status`, 15 s (as
    /// kube-controller-manager's), identity from [`default_identity`].
    pub fn new() -> Self {
        LeaderElection {
            lease_name: "llm-injector-status".to_owned(),
            namespace: None,
            identity: default_identity(),
            lease_duration: Duration::from_secs(15),
        }
    }
}

impl Default for LeaderElection {
    fn default() -> Self {
        Self::new()
    }
}

/// `POD_NAME` (the chart sets it from the downward API), else the host name,
/// then the process id: two replicas on one host differ.
pub fn default_identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "llm-injector".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Whole seconds of the Lease and of the renewal margin (a third of it, at
/// least one second, less than the lease).
fn lease_seconds(duration: Duration) -> (u64, u64) {
    let lease = duration.as_secs().max(2);
    (lease, (lease / 3).max(1))
}

/// Runs `work` while this replica holds the Lease: started when it is
/// acquired, aborted when it is lost. When `stop` resolves, `work` is
/// aborted and the Lease released, so that another replica takes over
/// without waiting for it to expire.
pub async fn run_while_leader<W, F>(
    client: Client,
    election: LeaderElection,
    metrics: Arc<Metrics>,
    work: W,
    stop: impl Future<Output = ()>,
) where
    W: Fn() -> F,
    F: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(stop);
    let manager = tokio::select! {
        manager = build(client, &election) => manager,
        () = &mut stop => return,
    };
    let (mut leading, keeper) = manager.watch().await;
    let mut running: Option<JoinHandle<()>> = None;
    loop {
        tokio::select! {
            () = &mut stop => break,
            changed = leading.changed() => {
                if changed.is_err() {
                    tracing::error!("the Lease keeper stopped; no longer leading");
                    break;
                }
                let leader = *leading.borrow_and_update();
                metrics.set_leader(leader);
                if leader {
                    tracing::info!(identity = %election.identity, lease = %election.lease_name, "acquired the Lease: writing status");
                    if running.is_none() {
                        running = Some(tokio::spawn(work()));
                    }
                } else {
                    tracing::info!(identity = %election.identity, lease = %election.lease_name, "lost the Lease: no longer writing status");
                    if let Some(task) = running.take() {
                        task.abort();
                    }
                }
            }
        }
    }
    if let Some(task) = running.take() {
        task.abort();
    }
    metrics.set_leader(false);
    // Closing the channel makes the keeper release the Lease and return.
    drop(leading);
    match keeper.await {
        Ok(Ok(_)) => tracing::info!(lease = %election.lease_name, "released the Lease"),
        Ok(Err(error)) => tracing::warn!(%error, "cannot release the Lease"),
        Err(error) => tracing::warn!(%error, "the Lease keeper failed"),
    }
}

/// The Lease manager, retried (1 s doubling to 30 s) until the Lease can be
/// read or created: the apiserver may be unreachable or RBAC missing.
async fn build(client: Client, election: &LeaderElection) -> LeaseManager {
    let namespace = election
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let (lease, grace) = lease_seconds(election.lease_duration);
    let mut wait = Duration::from_secs(1);
    loop {
        let built = LeaseManagerBuilder::new(client.clone(), &election.lease_name)
            .with_namespace(&namespace)
            .with_identity(&election.identity)
            .with_duration(lease)
            .with_grace(grace)
            .build()
            .await;
        match built {
            Ok(manager) => {
                tracing::info!(
                    lease = %election.lease_name, %namespace, identity = %election.identity,
                    lease_seconds = lease, "waiting for the Lease to write status"
                );
                return manager;
            }
            Err(error) => {
                tracing::warn!(
                    %error, lease = %election.lease_name, %namespace,
                    "cannot use the Lease (get/create coordination.k8s.io leases); retrying in {wait:?}"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_and_renewal_margin() {
        for (duration, expected) in [
            (15, (15, 5)),
            (30, (30, 10)),
            (2, (2, 1)),
            (1, (2, 1)),
            (0, (2, 1)),
            (4, (4, 1)),
        ] {
            let (lease, grace) = lease_seconds(Duration::from_secs(duration));
            assert_eq!((lease, grace), expected, "{duration} s");
            // kube-lease-manager panics unless 0 < grace < lease.
            assert!(0 < grace && grace < lease);
        }
    }

    #[test]
    fn identities_differ_by_process() {
        let identity = default_identity();
        assert!(identity.ends_with(&format!("-{}", std::process::id())));
        assert!(identity.len() > 2);
    }
}
