//! A fake Discord webhook: records every request and answers from a script (204 once the
//! script is used up).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Path of the fake webhook; the last segment plays the token.
pub const PATH: &str = "/api/webhooks/42/t0ken-s3cret";

/// How a scripted request is answered.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 204 No Content, as Discord answers a webhook post without `?wait=true`.
    NoContent,
    /// Any status with a JSON body.
    Status(u16, &'static str),
    /// 429 with `retry_after` (seconds) in the body and/or a `Retry-After` header.
    RateLimited { body_secs: Option<f64>, header: Option<&'static str> },
    /// Never answers.
    Hang,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub content_type: Option<String>,
    pub json: serde_json::Value,
    pub at: Instant,
}

impl Recorded {
    pub fn content(&self) -> &str {
        self.json["content"].as_str().unwrap_or_default()
    }
}

struct Shared {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    count: watch::Sender<usize>,
}

pub struct Webhook {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Webhook {
    pub async fn start(script: impl IntoIterator<Item = Reply>) -> Self {
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into_iter().collect()),
            requests: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let app = Router::new().route("/{*rest}", post(hook)).with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self { addr, shared, server }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}{PATH}", self.addr.port())
    }

    /// Waits (with a generous limit) until at least `n` requests have arrived.
    pub async fn wait_requests(&self, n: usize, patience: Duration) -> Vec<Recorded> {
        let mut count = self.shared.count.subscribe();
        let arrived = tokio::time::timeout(patience, count.wait_for(|c| *c >= n)).await;
        let requests = self.requests();
        assert!(arrived.is_ok(), "expected {n} requests, got {}: {requests:#?}", requests.len());
        requests
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().expect("lock").clone()
    }

    pub fn contents(&self) -> Vec<String> {
        self.requests().iter().map(|r| r.content().to_owned()).collect()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn hook(State(shared): State<Arc<Shared>>, uri: axum::http::Uri, headers: HeaderMap, body: Bytes) -> Response {
    let recorded = Recorded {
        path: uri.path().to_owned(),
        content_type: headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned),
        json: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        at: Instant::now(),
    };
    shared.requests.lock().expect("lock").push(recorded);
    shared.count.send_modify(|c| *c += 1);
    let reply = shared.script.lock().expect("lock").pop_front().unwrap_or(Reply::NoContent);
    match reply {
        Reply::NoContent => StatusCode::NO_CONTENT.into_response(),
        Reply::Status(code, body) => {
            let status = StatusCode::from_u16(code).expect("status");
            (status, [("content-type", "application/json")], body).into_response()
        }
        Reply::RateLimited { body_secs, header } => {
            let body = match body_secs {
                Some(secs) => {
                    format!(r#"{{"message": "You are being rate limited.", "retry_after": {secs}, "global": false}}"#)
                }
                None => r#"{"message": "You are being rate limited."}"#.to_owned(),
            };
            let mut response =
                (StatusCode::TOO_MANY_REQUESTS, [("content-type", "application/json")], body).into_response();
            if let Some(value) = header {
                response.headers_mut().insert("retry-after", value.parse().expect("header"));
            }
            response
        }
        Reply::Hang => std::future::pending().await,
    }
}
