//! Prometheus metrics of the admission server, served on the admin port.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReviewLabels {
    webhook: &'static str,
    kind: String,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    webhook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    webhook: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CatalogLabels {
    kind: &'static str,
}

/// The server's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reviews: Family<ReviewLabels, Counter>,
    rejected: Family<RejectLabels, Counter>,
    latency: Family<WebhookLabels, Histogram, fn() -> Histogram>,
    catalog: Family<CatalogLabels, Gauge>,
    catalog_reloads: Family<ReloadLabels, Counter>,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    leader: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

fn reconcile_histogram() -> Histogram {
    // 1 ms .. ~16 s
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~0.8 s
    Histogram::new(exponential_buckets(0.00005, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::with_certificate_expiry(Gauge::default())
    }
}

impl Metrics {
    /// The metrics, with the serving certificate's expiry read from
    /// `certificate_expiry` (the gauge [`super::tls::CertResolver`] keeps).
    pub fn with_certificate_expiry(certificate_expiry: Gauge) -> Self {
        let mut registry = Registry::with_prefix("llm_injector");
        let reviews = Family::<ReviewLabels, Counter>::default();
        let rejected = Family::<RejectLabels, Counter>::default();
        let latency = Family::<WebhookLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let catalog = Family::<CatalogLabels, Gauge>::default();
        let catalog_reloads = Family::<ReloadLabels, Counter>::default();
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let reconcile_duration =
            Family::<KindLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                reconcile_histogram,
            );
        registry.register(
            "admission_reviews",
            "AdmissionReviews answered, by webhook, object kind, operation and outcome (allowed, patched, denied)",
            reviews.clone(),
        );
        registry.register(
            "admission_bad_requests",
            "Requests answered with an HTTP error instead of a review (4xx for a bad request, 500 when the answer cannot be encoded), by webhook and reason",
            rejected.clone(),
        );
        registry.register(
            "admission_review_duration_seconds",
            "Time to decode, decide and encode one AdmissionReview",
            latency.clone(),
        );
        registry.register(
            "catalog_objects",
            "LLMEngine and LLMModel objects the server knows, by kind",
            catalog.clone(),
        );
        registry.register(
            "catalog_reloads",
            "Changes of the --catalog files seen, by result (reloaded, or refused and the previous catalog kept)",
            catalog_reloads.clone(),
        );
        registry.register(
            "status_reconciles",
            "Status reconciles of LLMModels and LLMEngines, by kind and result (written, unchanged, gone: deleted meanwhile, or error)",
            reconciles.clone(),
        );
        registry.register(
            "status_reconcile_duration_seconds",
            "Time to compute and write one object's status, by kind",
            reconcile_duration.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "status_leader",
            "1 while this replica holds the status controller's Lease and writes status, else 0",
            leader.clone(),
        );
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "When the serving certificate expires, in seconds since the Unix epoch (0 before one is served); alert on it minus time() as with cert-manager's certmanager_certificate_expiration_timestamp_seconds",
            certificate_expiry,
        );
        Metrics {
            registry,
            reviews,
            rejected,
            latency,
            catalog,
            catalog_reloads,
            reconciles,
            reconcile_duration,
            leader,
        }
    }

    /// Counts one answered review and its latency.
    pub fn review(
        &self,
        webhook: &'static str,
        kind: &str,
        operation: &'static str,
        outcome: &'static str,
        seconds: f64,
    ) {
        self.reviews
            .get_or_create(&ReviewLabels {
                webhook,
                kind: kind.to_owned(),
                operation,
                outcome,
            })
            .inc();
        self.latency
            .get_or_create(&WebhookLabels { webhook })
            .observe(seconds);
    }

    /// Counts one request refused with HTTP 4xx.
    pub fn bad_request(&self, webhook: &'static str, reason: &'static str) {
        self.rejected
            .get_or_create(&RejectLabels { webhook, reason })
            .inc();
    }

    /// Records the catalog sizes (set at every scrape).
    pub fn catalog_sizes(&self, engines: usize, models: usize) {
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.catalog
            .get_or_create(&CatalogLabels { kind: "LLMEngine" })
            .set(as_i64(engines));
        self.catalog
            .get_or_create(&CatalogLabels { kind: "LLMModel" })
            .set(as_i64(models));
    }

    /// Counts one change of the catalog files: `reloaded` or `refused`.
    pub fn catalog_reload(&self, result: &'static str) {
        self.catalog_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
    }

    /// Counts one status reconcile of `kind` and its duration.
    pub fn reconcile(&self, kind: &'static str, result: &'static str, seconds: f64) {
        self.reconciles
            .get_or_create(&ReconcileLabels { kind, result })
            .inc();
        self.reconcile_duration
            .get_or_create(&KindLabels { kind })
            .observe(seconds);
    }

    /// Whether this replica leads the status controller.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
