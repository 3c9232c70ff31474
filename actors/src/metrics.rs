//! The daemon's Prometheus metrics (OpenMetrics text exposition via `prometheus-client`):
//! recorded by the supervisor and the auditor, rendered by the HTTP layer.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabel {
    what: &'static str,
}

/// Every metric of the daemon; cheap to share (`Arc`).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    sessions: Family<StatusLabel, Counter>,
    execution_seconds: Histogram,
    end_to_end_seconds: Histogram,
    fuel_consumed: Counter,
    pending_executions: Gauge,
    open_sessions: Gauge,
    refused: Family<RefusedLabel, Counter>,
    log_leaves: Gauge,
    checkpoint_size: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("wasm_hypervisor");
        // 100 µs to ~100 s: from a trivial program to the longest timeout.
        let seconds = || Histogram::new(exponential_buckets(0.0001, 4.0, 11));
        let metrics = Self {
            sessions: Family::default(),
            execution_seconds: seconds(),
            end_to_end_seconds: seconds(),
            fuel_consumed: Counter::default(),
            pending_executions: Gauge::default(),
            open_sessions: Gauge::default(),
            refused: Family::default(),
            log_leaves: Gauge::default(),
            checkpoint_size: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "sessions",
            "Consumed sessions by how they ended (the status, or unseal_failed/internal)",
            metrics.sessions.clone(),
        );
        registry.register(
            "execution_seconds",
            "Wall time of executions in the sandbox",
            metrics.execution_seconds.clone(),
        );
        registry.register(
            "end_to_end_seconds",
            "Time from a session's consumption to its durable result",
            metrics.end_to_end_seconds.clone(),
        );
        registry.register(
            "fuel_consumed",
            "Fuel consumed by all executions",
            metrics.fuel_consumed.clone(),
        );
        registry.register(
            "pending_executions",
            "Executions running or queued for a worker",
            metrics.pending_executions.clone(),
        );
        registry.register(
            "open_sessions",
            "Sessions announced and not yet executed",
            metrics.open_sessions.clone(),
        );
        registry.register(
            "admissions_refused",
            "Requests refused with 503, by what was refused",
            metrics.refused.clone(),
        );
        registry.register(
            "audit_log_leaves",
            "Leaves in the audit log",
            metrics.log_leaves.clone(),
        );
        registry.register(
            "audit_checkpoint_size",
            "Tree size of the latest signed checkpoint",
            metrics.checkpoint_size.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    /// One consumed session ended; `status` is its §7 status or its log outcome.
    pub(crate) fn session_ended(&self, status: &'static str, end_to_end: Duration) {
        self.sessions.get_or_create(&StatusLabel { status }).inc();
        self.end_to_end_seconds.observe(end_to_end.as_secs_f64());
    }

    pub(crate) fn executed(&self, duration: Duration, fuel: u64) {
        self.execution_seconds.observe(duration.as_secs_f64());
        self.fuel_consumed.inc_by(fuel);
    }

    pub(crate) fn set_pending_executions(&self, pending: usize) {
        self.pending_executions
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
    }

    pub(crate) fn set_open_sessions(&self, open: usize) {
        self.open_sessions
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    /// Counts a refusal: `what` is `sessions` or `executions` (the supervisor's), or
    /// `connections`, `proxy_header`, `body_bytes` or `rate` (the listeners').
    pub fn refused(&self, what: &'static str) {
        self.refused.get_or_create(&RefusedLabel { what }).inc();
    }

    pub(crate) fn log_grew(&self, leaves: u64) {
        let leaves = i64::try_from(leaves).unwrap_or(i64::MAX);
        self.log_leaves.set(leaves);
        self.checkpoint_size.set(leaves);
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_was_recorded() {
        let metrics = Metrics::default();
        metrics.session_ended("ok", Duration::from_millis(3));
        metrics.session_ended("ok", Duration::from_millis(5));
        metrics.executed(Duration::from_millis(2), 1234);
        metrics.refused("sessions");
        metrics.log_grew(42);
        let text = metrics.render();
        assert!(
            text.contains("wasm_hypervisor_sessions_total{status=\"ok\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("wasm_hypervisor_fuel_consumed_total 1234"),
            "{text}"
        );
        assert!(
            text.contains("wasm_hypervisor_admissions_refused_total{what=\"sessions\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("wasm_hypervisor_audit_log_leaves 42"),
            "{text}"
        );
        assert!(
            text.contains("wasm_hypervisor_end_to_end_seconds_count 2"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
