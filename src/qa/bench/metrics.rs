//! The server's own metrics, for the bench report: `GET /metrics` (Prometheus text format)
//! on the server's HTTP address, read before and after the load so that counters show
//! what the run added. A server that answers anything but 200 (404: no endpoint), or
//! does not answer within [`METRICS_WAIT`], has no metrics and the report shows none.
//!
//! A plain HTTP/1.1 GET over TCP, written here: one request per run is not worth an HTTP
//! client crate, and the bench already speaks raw HTTP for its WebSocket handshakes.

use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Longest wait for the whole metrics answer.
pub const METRICS_WAIT: Duration = Duration::from_secs(3);
/// The most of an answer read (a metrics page is a few KiB).
const MAX_BYTES: usize = 4 << 20;
/// Samples kept for the report.
const MAX_SAMPLES: usize = 200;

/// One sample: `name{labels}` and its value.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sample {
    pub name: String,
    pub value: f64,
    /// Its `# TYPE` (counter, gauge, ...), when the page says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Its `# HELP` text, when the page says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// What the server said about itself, after the run, with counters' growth over it.
#[derive(Debug, Clone, Serialize)]
pub struct ServerMetrics {
    /// Where they were read.
    pub url: String,
    /// (sample, its value before the run when it had one).
    pub samples: Vec<(Sample, Option<f64>)>,
}

/// The metrics URL of a WebSocket URL: the same host and port over HTTP, path
/// `/metrics` (`ws://127.0.0.1:7420/rtm/v1` → `http://127.0.0.1:7420/metrics`); none
/// for `wss://` (the bench speaks no TLS).
pub fn metrics_url(ws_url: &str) -> Option<String> {
    let rest = ws_url.strip_prefix("ws://")?;
    let authority = rest.split('/').next()?;
    Some(format!("http://{authority}/metrics"))
}

/// Reads and parses `url` (`http://host:port/path`); `None` when it is not served.
pub async fn read(url: &str) -> Option<Vec<Sample>> {
    let body = tokio::time::timeout(METRICS_WAIT, get(url)).await.ok()??;
    Some(parse(&body))
}

/// Joins the samples read before and after the run.
pub fn compare(url: &str, before: Option<Vec<Sample>>, after: Vec<Sample>) -> ServerMetrics {
    let before = before.unwrap_or_default();
    ServerMetrics {
        url: url.to_string(),
        samples: after
            .into_iter()
            .map(|sample| {
                let earlier = before
                    .iter()
                    .find(|b| b.name == sample.name)
                    .map(|b| b.value);
                (sample, earlier)
            })
            .collect(),
    }
}

async fn get(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest
        .find('/')
        .map_or((rest, "/"), |at| (&rest[..at], &rest[at..]));
    let mut stream = tokio::net::TcpStream::connect(authority).await.ok()?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    stream
        .take(MAX_BYTES as u64)
        .read_to_end(&mut answer)
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.lines().next()?;
    if status.split(' ').nth(1) != Some("200") {
        return None;
    }
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    Some(if chunked {
        unchunk(body)
    } else {
        body.to_string()
    })
}

/// The body of a chunked answer.
fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The samples of a Prometheus text page, with their TYPE and HELP (at most
/// `MAX_SAMPLES`).
pub fn parse(page: &str) -> Vec<Sample> {
    let mut kinds = std::collections::HashMap::new();
    let mut helps = std::collections::HashMap::new();
    let mut samples = Vec::new();
    for line in page.lines().map(str::trim) {
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    kinds.insert(name.to_string(), kind.trim().to_string());
                }
                (Some("HELP"), Some(name), Some(help)) => {
                    helps.insert(name.to_string(), help.trim().to_string());
                }
                _ => {}
            }
            continue;
        }
        // `name{labels} value [timestamp]`; labels may hold spaces inside quotes.
        let split_at = line
            .rfind('}')
            .map_or_else(|| line.find(' '), |at| Some(at + 1));
        let Some(at) = split_at else { continue };
        let (name, rest) = line.split_at(at);
        let Some(value) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        let family = name.split('{').next().unwrap_or(name);
        let base = ["_total", "_sum", "_count", "_bucket"]
            .iter()
            .find_map(|suffix| family.strip_suffix(suffix))
            .filter(|base| kinds.contains_key(*base))
            .unwrap_or(family);
        samples.push(Sample {
            name: name.to_string(),
            value,
            kind: kinds.get(base).cloned(),
            help: helps.get(base).cloned(),
        });
        if samples.len() >= MAX_SAMPLES {
            break;
        }
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prometheus_text() {
        let page = "# HELP rtm_messages_total Messages routed.\n\
                    # TYPE rtm_messages_total counter\n\
                    rtm_messages_total{kind=\"peer\"} 42\n\
                    rtm_connections 7 1700000000\n\
                    garbage line\n";
        let samples = parse(page);
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].name, "rtm_messages_total{kind=\"peer\"}");
        assert!((samples[0].value - 42.0).abs() < 1e-9);
        assert_eq!(samples[0].kind.as_deref(), Some("counter"));
        assert_eq!(samples[0].help.as_deref(), Some("Messages routed."));
        assert_eq!(samples[1].name, "rtm_connections");
        assert_eq!(samples[1].kind, None);
    }

    #[test]
    fn metrics_live_beside_the_websocket() {
        assert_eq!(
            metrics_url("ws://127.0.0.1:7420/rtm/v1").as_deref(),
            Some("http://127.0.0.1:7420/metrics")
        );
        assert_eq!(metrics_url("wss://example:443/rtm/v1"), None);
        assert_eq!(
            unchunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }
}
