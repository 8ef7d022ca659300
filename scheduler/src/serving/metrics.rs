//! Prometheus metrics of the prediction endpoints (`GET /metrics`): invocations, errors by
//! status and latency per endpoint, variant and version; requests refused while saturated;
//! model swaps.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Labels {
    pub endpoint: String,
    pub variant: String,
    pub version: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub endpoint: String,
    pub variant: String,
    pub version: String,
    pub status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    pub endpoint: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~8 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// The serving metrics and their registry.
pub struct Metrics {
    registry: Registry,
    invocations: Family<Labels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    saturated: Family<EndpointLabel, Counter>,
    swaps: Counter,
    in_flight: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let invocations = Family::<Labels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let latency =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let saturated = Family::<EndpointLabel, Counter>::default();
        let swaps = Counter::default();
        let in_flight = Gauge::default();
        registry.register(
            "invocations",
            "Invocations answered by a model",
            invocations.clone(),
        );
        registry.register(
            "invocation_errors",
            "Invocations answered with an error status",
            errors.clone(),
        );
        registry.register(
            "invocation_latency_seconds",
            "Time from request to response of answered invocations",
            latency.clone(),
        );
        registry.register(
            "invocations_saturated",
            "Invocations refused with 503 because the inference queue was full",
            saturated.clone(),
        );
        registry.register(
            "model_swaps",
            "Model sets swapped in after an endpoint or alias change",
            swaps.clone(),
        );
        registry.register(
            "inference_in_flight",
            "Invocations queued or running",
            in_flight.clone(),
        );
        Self {
            registry,
            invocations,
            errors,
            latency,
            saturated,
            swaps,
            in_flight,
        }
    }
}

impl Metrics {
    pub fn answered(&self, labels: &Labels, took: Duration) {
        self.invocations.get_or_create(labels).inc();
        self.latency
            .get_or_create(labels)
            .observe(took.as_secs_f64());
    }

    pub fn failed(&self, labels: &Labels, status: u16) {
        self.errors
            .get_or_create(&ErrorLabels {
                endpoint: labels.endpoint.clone(),
                variant: labels.variant.clone(),
                version: labels.version.clone(),
                status: status.to_string(),
            })
            .inc();
    }

    pub fn saturated(&self, endpoint: &str) {
        self.saturated
            .get_or_create(&EndpointLabel {
                endpoint: endpoint.to_owned(),
            })
            .inc();
    }

    pub fn swapped(&self) {
        self.swaps.inc();
    }

    pub fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}
