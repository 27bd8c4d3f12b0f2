//! Counters shared across the server, and the Prometheus text format.
//!
//! Most metrics are state (publishers, queue, destinations) and are read from the owners of
//! that state at scrape time, so nothing is counted twice. What only exists as a flow —
//! bytes in and out, HTTP requests — is counted here with atomics.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Song recognition requests and what became of them, for `/metrics`.
#[derive(Debug, Default)]
pub struct RecognitionCounters {
    pub requests: AtomicU64,
    pub failures: AtomicU64,
    pub no_match: AtomicU64,
    pub recognised: AtomicU64,
    pub low_confidence: AtomicU64,
    pub kept_dj_track: AtomicU64,
    pub unchanged: AtomicU64,
}

impl RecognitionCounters {
    /// `(outcome, count)` for every outcome of a request.
    pub fn outcomes(&self) -> [(&'static str, u64); 6] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("failed", get(&self.failures)),
            ("no_match", get(&self.no_match)),
            ("recognised", get(&self.recognised)),
            ("low_confidence", get(&self.low_confidence)),
            ("kept_dj_track", get(&self.kept_dj_track)),
            ("unchanged", get(&self.unchanged)),
        ]
    }
}

/// Flow counters, shared by ingest and HTTP.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes received from RTMP peers (publishers mostly).
    pub rtmp_bytes_in: AtomicU64,
    /// Bytes sent to RTMP peers (players mostly).
    pub rtmp_bytes_out: AtomicU64,
    /// Bytes of program sent to HTTP-FLV viewers.
    pub http_flv_bytes_out: AtomicU64,
    /// Song recognition requests and what became of them.
    pub recognition: RecognitionCounters,
    /// HTTP requests by route template and status; routes are the router's finite set.
    http_requests: Mutex<BTreeMap<(String, u16), u64>>,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn count_request(&self, route: &str, status: u16) {
        let mut requests = self.http_requests.lock().unwrap_or_else(|p| p.into_inner());
        *requests.entry((route.to_owned(), status)).or_default() += 1;
    }

    pub fn http_requests(&self) -> Vec<((String, u16), u64)> {
        let requests = self.http_requests.lock().unwrap_or_else(|p| p.into_inner());
        requests.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// Builds a Prometheus text exposition (format 0.0.4).
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts a metric family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        self
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }

    /// Adds a sample; label values are escaped as the format requires.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape_label(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
        self
    }

    pub fn finish(self) -> String {
        self.text
    }
}

fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format_with_escaped_labels() {
        let mut e = Exposition::default();
        e.family("ms_up", "gauge", "Whether it is up.").sample("ms_up", &[("dj", "A \"B\"\\C\n")], 1.0);
        e.family("ms_total", "counter", "A counter.").sample("ms_total", &[], 42.0);
        assert_eq!(
            e.finish(),
            "# HELP ms_up Whether it is up.\n# TYPE ms_up gauge\nms_up{dj=\"A \\\"B\\\"\\\\C\\n\"} 1\n\
             # HELP ms_total A counter.\n# TYPE ms_total counter\nms_total 42\n"
        );
    }

    #[test]
    fn requests_are_counted_by_route_and_status() {
        let c = Counters::default();
        c.count_request("/healthz", 200);
        c.count_request("/healthz", 200);
        c.count_request("/api/v1/queue/skip", 401);
        assert_eq!(c.http_requests(), [(("/api/v1/queue/skip".to_owned(), 401), 1), (("/healthz".to_owned(), 200), 2)]);
    }
}
