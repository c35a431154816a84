//! The admin API's own counters: connections held and refused, requests
//! turned away before a handler ran.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Why a request was turned away (the `reason` label).
#[derive(Debug, Clone, Copy)]
pub enum Rejected {
    /// No token, an unknown token, or changes disabled.
    Unauthorized,
    /// The body is over `max_body_bytes`.
    BodyTooLarge,
    /// The request took longer than `request_timeout`.
    RequestTimeout,
    /// The request head took longer than `header_timeout`.
    HeaderTimeout,
}

/// Why a connection was closed at once (the `reason` label).
#[derive(Debug, Clone, Copy)]
pub enum Refused {
    MaxConnections,
    MaxPerSource,
}

pub struct AdminMetrics {
    open: Gauge,
    refused: [Counter; 2],
    rejected: [Counter; 4],
    accept_errors: Counter,
}

impl AdminMetrics {
    pub fn register(registry: &mut Registry) -> AdminMetrics {
        let open = Gauge::default();
        registry.register(
            "admin_connections",
            "Admin API connections open now",
            open.clone(),
        );
        let refused: Family<Vec<(&'static str, &'static str)>, Counter> = Family::default();
        registry.register(
            "admin_connections_refused",
            "Admin API connections closed at once, by the limit they hit (max_connections, max_per_source)",
            refused.clone(),
        );
        let rejected: Family<Vec<(&'static str, &'static str)>, Counter> = Family::default();
        registry.register(
            "admin_requests_rejected",
            "Admin API requests turned away, by reason (unauthorized, body_too_large, request_timeout, header_timeout)",
            rejected.clone(),
        );
        let accept_errors = Counter::default();
        registry.register(
            "admin_accept_errors",
            "Errors accepting admin API connections (e.g. out of file descriptors)",
            accept_errors.clone(),
        );
        let by = |family: &Family<Vec<(&'static str, &'static str)>, Counter>, r: &'static str| {
            family.get_or_create(&vec![("reason", r)]).clone()
        };
        AdminMetrics {
            open,
            refused: [
                by(&refused, "max_connections"),
                by(&refused, "max_per_source"),
            ],
            rejected: [
                by(&rejected, "unauthorized"),
                by(&rejected, "body_too_large"),
                by(&rejected, "request_timeout"),
                by(&rejected, "header_timeout"),
            ],
            accept_errors,
        }
    }

    pub fn opened(&self) {
        self.open.inc();
    }

    pub fn closed(&self) {
        self.open.dec();
    }

    pub fn refused(&self, why: Refused) {
        self.refused[why as usize].inc();
    }

    pub fn rejected(&self, why: Rejected) {
        self.rejected[why as usize].inc();
    }

    pub fn accept_error(&self) {
        self.accept_errors.inc();
    }
}
