//! The server's metrics (`GET /metrics`), kept with `prometheus-client` and encoded in its
//! text format (OpenMetrics, which Prometheus scrapes).
//!
//! Counters and histograms are bumped where things happen (a request handled in
//! `connection.rs`, a write in its writer, an HTTP call here); gauges of what the server
//! holds (connections, users, channels, queued bytes) and the engine probe are read at
//! scrape time, so nothing is kept up to date between scrapes. A new metric is a field of
//! [`Metrics`], registered in [`Metrics::new`].

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Latency buckets: 50 µs to about 3.3 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

/// A WebSocket request's op and the code it was answered. Labels are static strings and
/// numbers: counting a request allocates nothing.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub op: &'static str,
    pub code: Code,
}

/// A reply code, or `deferred` when the answer comes later (`send_peer`'s, with the ack).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub struct Code(pub Option<u32>);

impl EncodeLabelValue for Code {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        match self.0 {
            Some(code) => write!(encoder, "{code}"),
            None => encoder.write_str("deferred"),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpOnly {
    pub op: &'static str,
}

/// A REST send's kind (`peer`, `channel`) and Agora code.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SendLabels {
    pub op: &'static str,
    pub code: &'static str,
}

/// An HTTP call's route (its pattern, not its ids) and status.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOnly {
    pub route: &'static str,
}

/// Every metric of one server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<OpLabels, Counter>,
    pub request_seconds: Family<OpOnly, Histogram>,
    pub http_requests: Family<RouteLabels, Counter>,
    pub http_seconds: Family<RouteOnly, Histogram>,
    /// Objects (replies and events) and bytes written to WebSocket clients.
    pub objects_out: Counter,
    pub bytes_out: Counter,
    pub writes: Counter,
    /// Writers that gave up on a client that took nothing for the stall time.
    pub stalled_cut_offs: Counter,
    pub connections: Gauge,
    pub apps: Gauge,
    pub users: Gauge,
    pub channels: Gauge,
    pub outbox_bytes: Gauge,
    pub engine_seconds: Histogram,
    pub engine_up: Gauge,
    pub engine_lag: Gauge<i64, AtomicI64>,
    pub engine_queue: Gauge,
    pub rest_sends: Family<SendLabels, Counter<u64, AtomicU64>>,
    /// Bytes of files and images taken in (uploads) and served (downloads).
    pub media_bytes_in: Counter,
    pub media_bytes_out: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rtm");
        let m = Metrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(latency_histogram),
            objects_out: Counter::default(),
            bytes_out: Counter::default(),
            writes: Counter::default(),
            stalled_cut_offs: Counter::default(),
            connections: Gauge::default(),
            apps: Gauge::default(),
            users: Gauge::default(),
            channels: Gauge::default(),
            outbox_bytes: Gauge::default(),
            engine_seconds: latency_histogram(),
            engine_up: Gauge::default(),
            engine_lag: Gauge::default(),
            engine_queue: Gauge::default(),
            rest_sends: Family::default(),
            media_bytes_in: Counter::default(),
            media_bytes_out: Counter::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "requests",
            "WebSocket requests by op and the code answered",
            m.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time to handle a WebSocket request, by op",
            m.request_seconds.clone(),
        );
        r.register(
            "http_requests",
            "HTTP API calls by route and status",
            m.http_requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP API call, by route",
            m.http_seconds.clone(),
        );
        r.register(
            "rest_messages",
            "REST API sends by kind (op) and Agora code",
            m.rest_sends.clone(),
        );
        r.register(
            "media_bytes_in",
            "Bytes of files and images uploaded (whether the upload completed or not)",
            m.media_bytes_in.clone(),
        );
        r.register(
            "media_bytes_out",
            "Bytes of files and images served",
            m.media_bytes_out.clone(),
        );
        r.register(
            "objects_out",
            "Replies and events written to WebSocket clients",
            m.objects_out.clone(),
        );
        r.register(
            "bytes_out",
            "Bytes of WebSocket frames written",
            m.bytes_out.clone(),
        );
        r.register(
            "writes",
            "WebSocket frames written (each a batch)",
            m.writes.clone(),
        );
        r.register(
            "outbox_cut_offs",
            "Connections cut off because the client took nothing for the stall time",
            m.stalled_cut_offs.clone(),
        );
        r.register(
            "connections",
            "TCP connections served (WebSocket and HTTP)",
            m.connections.clone(),
        );
        r.register(
            "apps",
            "Apps whose shared state this node holds (on several nodes: those it serves)",
            m.apps.clone(),
        );
        r.register(
            "users_logged_in",
            "Users logged in to those apps (on any node)",
            m.users.clone(),
        );
        r.register(
            "channels",
            "Channels of those apps with members (or a member count update on its way)",
            m.channels.clone(),
        );
        r.register(
            "outbox_bytes",
            "Bytes queued in all outboxes of this node",
            m.outbox_bytes.clone(),
        );
        r.register(
            "engine_probe_seconds",
            "Latency of a read through the store or engine (scrapes and readiness checks)",
            m.engine_seconds.clone(),
        );
        r.register(
            "engine_up",
            "1 when the store or engine answered the last probe",
            m.engine_up.clone(),
        );
        r.register(
            "engine_lag",
            "Changes appended to the shared stream that this node has not applied yet (several nodes)",
            m.engine_lag.clone(),
        );
        r.register(
            "engine_queue_depth",
            "Commands queued for the store thread (one node) or for Redis (several)",
            m.engine_queue.clone(),
        );
        Metrics { registry, ..m }
    }

    /// A WebSocket request handled in `elapsed`, answered `code` (`None`: later).
    pub fn request(&self, op: &'static str, code: Option<u32>, elapsed: Duration) {
        let code = Code(code);
        self.requests.get_or_create(&OpLabels { op, code }).inc();
        self.request_seconds
            .get_or_create(&OpOnly { op })
            .observe(elapsed.as_secs_f64());
    }

    /// A frame of `objects` objects and `bytes` bytes written to a client.
    pub fn wrote(&self, objects: usize, bytes: usize) {
        self.writes.inc();
        self.objects_out.inc_by(objects as u64);
        self.bytes_out.inc_by(bytes as u64);
    }

    /// The registry in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_in_the_text_format() {
        let metrics = Metrics::new();
        metrics.request("send_peer", Some(0), Duration::from_millis(2));
        metrics.wrote(3, 120);
        let text = metrics.encode();
        assert!(
            text.contains(r#"rtm_requests_total{op="send_peer",code="0"} 1"#),
            "{text}"
        );
        assert!(text.contains("rtm_bytes_out_total 120"), "{text}");
        assert!(
            text.contains("rtm_request_duration_seconds_bucket"),
            "{text}"
        );
    }
}
