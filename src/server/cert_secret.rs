//! Self-managed certificates (`serve --tls-secret`), the pattern of Kyverno
//! and Gatekeeper: the CA and the serving certificate live in a Secret of the
//! server's namespace, every replica serves what the Secret holds (watched,
//! swapped in without a restart), and the elected replica keeps the Secret
//! valid ([`super::cert_rotation`] decides when) and writes its CA bundle
//! into the `caBundle` of the server's own webhook configurations.
//!
//! No chart value or manifest holds certificate bytes, so a GitOps render is
//! the same every time. Writes use the objects' `resourceVersion`: a
//! replica that lost the race re-reads on its next check.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};

use super::cert_rotation::{Policy, Step, Stored, apply, plan};
use super::tls::{CertResolver, parse_pair};

/// The Secret's keys: `tls.crt`/`tls.key` as a `kubernetes.io/tls` Secret,
/// `ca.crt` as cert-manager writes it, and the CA's key.
const TLS_CRT: &str = "tls.crt";
const TLS_KEY: &str = "tls.key";
const CA_CRT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";

/// A webhook configuration whose `caBundle` the server keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookConfiguration {
    Mutating(String),
    Validating(String),
}

impl WebhookConfiguration {
    /// `mutatingwebhookconfigurations/NAME` or `validatingwebhookconfigurations/NAME`
    /// (kubectl's resource/name; `mutating/NAME` and `validating/NAME` too).
    pub fn parse(text: &str) -> Result<Self, String> {
        let wrong = || {
            format!(
                "{text:?} is not mutatingwebhookconfigurations/NAME or validatingwebhookconfigurations/NAME"
            )
        };
        let (kind, name) = text.split_once('/').ok_or_else(wrong)?;
        if name.is_empty() || name.contains('/') {
            return Err(wrong());
        }
        match kind.to_ascii_lowercase().as_str() {
            "mutatingwebhookconfigurations" | "mutatingwebhookconfiguration" | "mutating" => {
                Ok(WebhookConfiguration::Mutating(name.to_owned()))
            }
            "validatingwebhookconfigurations" | "validatingwebhookconfiguration" | "validating" => {
                Ok(WebhookConfiguration::Validating(name.to_owned()))
            }
            _ => Err(wrong()),
        }
    }
}

impl fmt::Display for WebhookConfiguration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebhookConfiguration::Mutating(name) => {
                write!(f, "mutatingwebhookconfigurations/{name}")
            }
            WebhookConfiguration::Validating(name) => {
                write!(f, "validatingwebhookconfigurations/{name}")
            }
        }
    }
}

/// How the certificates are managed.
#[derive(Debug, Clone)]
pub struct ManagedCerts {
    /// Name of the Secret.
    pub secret: String,
    /// Its namespace; `None`: the client's (in a pod, the pod's own).
    pub namespace: Option<String>,
    pub policy: Policy,
    /// The configurations whose `caBundle` is kept.
    pub webhooks: Vec<WebhookConfiguration>,
    /// How often the elected replica checks the Secret and the bundles.
    pub check_interval: Duration,
}

/// The Secret's certificates, if it holds all four keys as UTF-8.
fn stored(secret: &Secret) -> Option<Stored> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| String::from_utf8(data.get(key)?.0.clone()).ok();
    Some(Stored {
        ca_bundle: text(CA_CRT)?,
        ca_key: text(CA_KEY)?,
        tls_crt: text(TLS_CRT)?,
        tls_key: text(TLS_KEY)?,
    })
}

/// `secret` with `stored` as its data.
fn fill(secret: &mut Secret, stored: &Stored) {
    secret.type_ = Some("kubernetes.io/tls".to_owned());
    secret.data = Some(
        [
            (CA_CRT, &stored.ca_bundle),
            (CA_KEY, &stored.ca_key),
            (TLS_CRT, &stored.tls_crt),
            (TLS_KEY, &stored.tls_key),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), ByteString(value.clone().into_bytes())))
        .collect(),
    );
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl ManagedCerts {
    fn secrets(&self, client: &Client) -> Api<Secret> {
        match &self.namespace {
            Some(namespace) => Api::namespaced(client.clone(), namespace),
            None => Api::default_namespaced(client.clone()),
        }
    }

    fn secret_ref(&self, client: &Client) -> String {
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        format!("secret {namespace}/{}", self.secret)
    }

    /// The pair to serve at start-up: the Secret's, the Secret created
    /// first if there is none (any replica may: creation is atomic, a
    /// replica that loses reads the winner's).
    pub async fn initial_pair(
        &self,
        client: &Client,
    ) -> Result<rustls::sign::CertifiedKey, String> {
        let api = self.secrets(client);
        let what = self.secret_ref(client);
        let secret = match api.get_opt(&self.secret).await {
            Ok(Some(secret)) => secret,
            Ok(None) => self.create(client, &api).await?,
            Err(e) => return Err(format!("cannot read {what}: {e}")),
        };
        let stored = stored(&secret).ok_or_else(|| {
            format!("{what} lacks one of {CA_CRT}, {CA_KEY}, {TLS_CRT}, {TLS_KEY}")
        })?;
        parse_pair(
            stored.tls_crt.as_bytes(),
            stored.tls_key.as_bytes(),
            &format!("{what} {TLS_CRT}"),
            &format!("{what} {TLS_KEY}"),
        )
        .map_err(|e| e.to_string())
    }

    /// Creates the Secret with a new CA and serving certificate, owned by
    /// the first webhook configuration that exists (deleted with it, as on
    /// `helm uninstall`); a replica that lost the race reads the winner's.
    async fn create(&self, client: &Client, api: &Api<Secret>) -> Result<Secret, String> {
        let what = self.secret_ref(client);
        let step = plan(now(), None, &self.policy, true);
        let new = apply(&step, now(), None, &self.policy)
            .map_err(|e| e.to_string())?
            .ok_or("nothing to create")?;
        let mut secret = Secret {
            metadata: ObjectMeta {
                name: Some(self.secret.clone()),
                labels: Some(
                    [(
                        "app.kubernetes.io/managed-by".to_owned(),
                        "llm-injector".to_owned(),
                    )]
                    .into(),
                ),
                owner_references: self.owner(client).await.map(|owner| vec![owner]),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        };
        fill(&mut secret, &new);
        match api.create(&PostParams::default(), &secret).await {
            Ok(created) => {
                tracing::info!(secret = %what, "created the CA and serving certificate");
                Ok(created)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => api
                .get(&self.secret)
                .await
                .map_err(|e| format!("cannot read {what}: {e}")),
            Err(e) => Err(format!("cannot create {what}: {e}")),
        }
    }

    /// An owner reference to the first configuration that can be read.
    async fn owner(&self, client: &Client) -> Option<OwnerReference> {
        for webhook in &self.webhooks {
            let owner = match webhook {
                WebhookConfiguration::Mutating(name) => {
                    owner_of(
                        Api::<MutatingWebhookConfiguration>::all(client.clone()),
                        name,
                    )
                    .await
                }
                WebhookConfiguration::Validating(name) => {
                    owner_of(
                        Api::<ValidatingWebhookConfiguration>::all(client.clone()),
                        name,
                    )
                    .await
                }
            };
            if owner.is_some() {
                return owner;
            }
        }
        None
    }

    /// Serves what the Secret holds, swapping a new pair in as soon as the
    /// watch sees it (every replica; a broken pair is refused and logged).
    pub async fn follow(self: Arc<Self>, client: Client, resolver: Arc<CertResolver>) {
        let what = self.secret_ref(&client);
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.secret));
        let mut last: Option<(String, String)> = None;
        let mut stream = watcher(self.secrets(&client), config)
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(event) = stream.next().await {
            let secret = match event {
                Ok(secret) => secret,
                Err(error) => {
                    tracing::warn!(secret = %what, %error, "watch failed; retrying with backoff");
                    continue;
                }
            };
            let Some(stored) = stored(&secret) else {
                continue;
            };
            let pair = (stored.tls_crt, stored.tls_key);
            if last.as_ref() == Some(&pair) {
                continue;
            }
            match parse_pair(pair.0.as_bytes(), pair.1.as_bytes(), TLS_CRT, TLS_KEY) {
                Ok(key) => {
                    // The first event is the pair served since start-up.
                    if last.is_some() {
                        tracing::info!(secret = %what, "serving certificate rotated");
                    }
                    resolver.replace(key);
                    last = Some(pair);
                }
                Err(error) => tracing::error!(
                    secret = %what,
                    %error,
                    "new serving certificate refused; still serving the previous one"
                ),
            }
        }
    }

    /// Keeps the Secret valid and the bundles written, every
    /// `check_interval` (on the elected replica only).
    pub async fn maintain(self: Arc<Self>, client: Client) {
        let mut ticks = tokio::time::interval(self.check_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = self.check(&client).await {
                tracing::error!(%error, "certificate check failed; retrying at the next one");
            }
        }
    }

    /// One check: the Secret's bundle published; then at most one change
    /// to the Secret.
    pub async fn check(&self, client: &Client) -> Result<(), String> {
        let api = self.secrets(client);
        let what = self.secret_ref(client);
        let secret = match api
            .get_opt(&self.secret)
            .await
            .map_err(|e| format!("cannot read {what}: {e}"))?
        {
            Some(secret) => secret,
            None => self.create(client, &api).await?,
        };
        let current = stored(&secret);
        let mut published = true;
        if let Some(current) = &current {
            for webhook in &self.webhooks {
                match self.publish(client, webhook, &current.ca_bundle).await {
                    Ok(Published::Already) => {}
                    Ok(Published::Missing) => {
                        tracing::warn!(configuration = %webhook, "not found: no caBundle to keep");
                    }
                    Ok(Published::Written) => {
                        tracing::info!(configuration = %webhook, "caBundle written");
                        published = false;
                    }
                    Err(error) => {
                        tracing::warn!(configuration = %webhook, %error, "cannot write the caBundle");
                        published = false;
                    }
                }
            }
        }
        let step = plan(now(), current.as_ref(), &self.policy, published);
        let Some(new) = apply(&step, now(), current.as_ref(), &self.policy)
            .map_err(|e| format!("{what}: {e}"))?
        else {
            return Ok(());
        };
        let mut updated = secret;
        fill(&mut updated, &new);
        // The resourceVersion read above: a concurrent write makes this a
        // conflict, and the next check starts again from what is there.
        api.replace(&self.secret, &PostParams::default(), &updated)
            .await
            .map_err(|e| format!("cannot update {what} ({}): {e}", describe(&step)))?;
        tracing::info!(secret = %what, change = %describe(&step), "certificates updated");
        Ok(())
    }

    async fn publish(
        &self,
        client: &Client,
        webhook: &WebhookConfiguration,
        bundle: &str,
    ) -> Result<Published, kube::Error> {
        match webhook {
            WebhookConfiguration::Mutating(name) => {
                publish_into::<MutatingWebhookConfiguration>(client, name, bundle).await
            }
            WebhookConfiguration::Validating(name) => {
                publish_into::<ValidatingWebhookConfiguration>(client, name, bundle).await
            }
        }
    }
}

/// A webhook configuration: the `caBundle` of each of its webhooks.
trait CaBundles {
    fn ca_bundles(&mut self) -> Vec<&mut Option<ByteString>>;
}

impl CaBundles for MutatingWebhookConfiguration {
    fn ca_bundles(&mut self) -> Vec<&mut Option<ByteString>> {
        let webhooks = self.webhooks.iter_mut().flatten();
        webhooks.map(|w| &mut w.client_config.ca_bundle).collect()
    }
}

impl CaBundles for ValidatingWebhookConfiguration {
    fn ca_bundles(&mut self) -> Vec<&mut Option<ByteString>> {
        let webhooks = self.webhooks.iter_mut().flatten();
        webhooks.map(|w| &mut w.client_config.ca_bundle).collect()
    }
}

/// What [`publish_into`] found.
enum Published {
    Already,
    Written,
    Missing,
}

/// Sets every webhook's `caBundle` of configuration `name` to `bundle`,
/// writing only if one differs.
async fn publish_into<K>(
    client: &Client,
    name: &str,
    bundle: &str,
) -> Result<Published, kube::Error>
where
    K: Resource<DynamicType = ()>
        + CaBundles
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + fmt::Debug,
{
    let api = Api::<K>::all(client.clone());
    let Some(mut config) = api.get_opt(name).await? else {
        return Ok(Published::Missing);
    };
    let wanted = ByteString(bundle.as_bytes().to_vec());
    let mut changed = false;
    for ca_bundle in config.ca_bundles() {
        if ca_bundle.as_ref() != Some(&wanted) {
            *ca_bundle = Some(wanted.clone());
            changed = true;
        }
    }
    if !changed {
        return Ok(Published::Already);
    }
    api.replace(name, &PostParams::default(), &config).await?;
    Ok(Published::Written)
}

async fn owner_of<K>(api: Api<K>, name: &str) -> Option<OwnerReference>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + fmt::Debug,
{
    let object = api.get_opt(name).await.ok().flatten()?;
    Some(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: object.name_any(),
        uid: object.uid()?,
        ..OwnerReference::default()
    })
}

fn describe(step: &Step) -> String {
    match step {
        Step::Keep => "none".to_owned(),
        Step::Create { reason } => format!("new CA and serving certificate: {reason}"),
        Step::RotateCa { reason } => format!("new CA added to the bundle: {reason}"),
        Step::IssueLeaf { reason } => format!("new serving certificate: {reason}"),
        Step::Prune { expired } => format!("{expired} expired CA(s) removed from the bundle"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_configurations_parse_as_kubectl_names_them() {
        let cases = [
            (
                "mutatingwebhookconfigurations/llm-injector",
                Ok(WebhookConfiguration::Mutating("llm-injector".to_owned())),
            ),
            (
                "validating/x",
                Ok(WebhookConfiguration::Validating("x".to_owned())),
            ),
            (
                "ValidatingWebhookConfiguration/x",
                Ok(WebhookConfiguration::Validating("x".to_owned())),
            ),
            ("llm-injector", Err(())),
            ("mutating/", Err(())),
            ("mutating/a/b", Err(())),
            ("secrets/x", Err(())),
        ];
        for (text, expected) in cases {
            let got = WebhookConfiguration::parse(text);
            assert_eq!(got.clone().map_err(|_| ()), expected, "{text}");
            if let Ok(parsed) = got {
                assert_eq!(WebhookConfiguration::parse(&parsed.to_string()), Ok(parsed));
            } else {
                assert!(got.unwrap_err().contains(text), "{text}");
            }
        }
    }
}
