//! A fake OBS: an obs-websocket v5 server over a real websocket on 127.0.0.1.
//!
//! It speaks the protocol as obs-websocket does — Hello (op 0) with an authentication
//! challenge when a password is set, Identify (op 1) checked against
//! base64(sha256(base64(sha256(password + salt)) + challenge)) and answered with Identified
//! (op 2) or a close with 4009, Request (op 6) answered with RequestResponse (op 7) — and
//! keeps a small model of a studio (scenes, text inputs, scene items) so a test can check
//! what OBS would show, not only what was asked. Every request is recorded.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

// obs-websocket's close codes and request status codes used here.
const CLOSE_MESSAGE_DECODE_ERROR: u16 = 4002;
const CLOSE_NOT_IDENTIFIED: u16 = 4007;
const CLOSE_AUTHENTICATION_FAILED: u16 = 4009;
const CLOSE_UNSUPPORTED_RPC_VERSION: u16 = 4010;
const STATUS_SUCCESS: u16 = 100;
const STATUS_UNKNOWN_REQUEST_TYPE: u16 = 204;
const STATUS_MISSING_REQUEST_FIELD: u16 = 300;
const STATUS_RESOURCE_NOT_FOUND: u16 = 600;

/// The studio a fake OBS starts with.
#[derive(Clone, Debug)]
pub struct Studio {
    pub password: Option<String>,
    pub scenes: Vec<String>,
    /// Text inputs (sources) by name.
    pub inputs: Vec<String>,
    /// (scene, source) pairs; all start hidden.
    pub items: Vec<(String, String)>,
}

impl Studio {
    /// Scenes `Intermission` (on program) and `Live`; text input `DJ Name`; items
    /// `Now Live Banner` in `Live` and `Be Right Back` in `Intermission`.
    pub fn standard(password: Option<&str>) -> Self {
        Self {
            password: password.map(str::to_owned),
            scenes: vec!["Intermission".into(), "Live".into()],
            inputs: vec!["DJ Name".into()],
            items: vec![
                ("Live".into(), "Now Live Banner".into()),
                ("Intermission".into(), "Be Right Back".into()),
                ("Live".into(), "DJ Name".into()),
            ],
        }
    }
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub kind: String,
    pub data: Value,
}

/// What the fake OBS shows and has seen.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub scenes: Vec<String>,
    pub program_scene: String,
    /// Text of each input.
    pub texts: HashMap<String, String>,
    /// (scene, source, id, enabled).
    pub items: Vec<(String, String, i64, bool)>,
    pub requests: Vec<Recorded>,
    pub connections: usize,
    pub identified: usize,
    pub auth_failures: usize,
}

impl Model {
    fn new(studio: &Studio) -> Self {
        Self {
            scenes: studio.scenes.clone(),
            program_scene: studio.scenes.first().cloned().unwrap_or_default(),
            texts: studio.inputs.iter().map(|name| (name.clone(), String::new())).collect(),
            items: studio
                .items
                .iter()
                .enumerate()
                .map(|(i, (scene, source))| (scene.clone(), source.clone(), 10 + i as i64, false))
                .collect(),
            ..Self::default()
        }
    }

    pub fn text(&self, input: &str) -> Option<&str> {
        self.texts.get(input).map(String::as_str)
    }

    pub fn shown(&self, scene: &str, source: &str) -> bool {
        self.items.iter().any(|(s, n, _, enabled)| s == scene && n == source && *enabled)
    }

    /// Requests of `kind`, in order.
    pub fn of_kind(&self, kind: &str) -> Vec<&Recorded> {
        self.requests.iter().filter(|r| r.kind == kind).collect()
    }

    /// Requests that change something (everything but the GetVersion checks).
    pub fn actions(&self) -> Vec<&Recorded> {
        self.requests.iter().filter(|r| r.kind != "GetVersion").collect()
    }
}

struct Shared {
    password: Option<String>,
    model: Mutex<Model>,
    /// While set, requests are read but never answered (a hung OBS).
    silent: AtomicBool,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub struct FakeObs {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl FakeObs {
    pub async fn start(studio: Studio) -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("address"), studio).await
    }

    /// Listens on `addr` (to come back on the port of a stopped fake: an OBS restart).
    pub async fn start_on(addr: SocketAddr, studio: Studio) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind the fake OBS");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            password: studio.password.clone(),
            model: Mutex::new(Model::new(&studio)),
            silent: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Self { addr, shared, accept }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn model(&self) -> Model {
        self.shared.model().clone()
    }

    pub fn add_scene(&self, scene: &str) {
        self.shared.model().scenes.push(scene.to_owned());
    }

    pub fn set_silent(&self, silent: bool) {
        self.shared.silent.store(silent, Ordering::SeqCst);
    }

    /// Waits until `check` holds, and returns the model then; panics with the model after
    /// `patience`.
    pub async fn wait_until(&self, patience: Duration, what: &str, check: impl Fn(&Model) -> bool) -> Model {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let model = self.model();
            if check(&model) {
                return model;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("fake OBS: timed out waiting for {what}; model: {model:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops like a crashed OBS: the listener and every connection go away at once.
    pub async fn crash(self) -> SocketAddr {
        self.accept.abort();
        let _ = self.accept.await;
        let connections = std::mem::take(&mut *self.shared.connections.lock().unwrap_or_else(PoisonError::into_inner));
        for connection in connections {
            connection.abort();
            let _ = connection.await;
        }
        self.addr
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((stream, _)) = listener.accept().await {
        shared.model().connections += 1;
        let task = tokio::spawn(serve(stream, shared.clone()));
        let mut connections = shared.connections.lock().unwrap_or_else(PoisonError::into_inner);
        connections.retain(|task| !task.is_finished());
        connections.push(task);
    }
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
    let challenge = random_token();
    let salt = random_token();
    let mut hello = json!({ "obsWebSocketVersion": "5.5.4", "rpcVersion": 1 });
    if shared.password.is_some() {
        hello["authentication"] = json!({ "challenge": challenge, "salt": salt });
    }
    if send(&mut ws, 0, hello).await.is_err() {
        return;
    }

    // Identify must come first.
    let Some(identify) = next_json(&mut ws).await else { return };
    let Some(identify) = identify else {
        return close(&mut ws, CLOSE_MESSAGE_DECODE_ERROR, "Unable to decode the message.").await;
    };
    if identify["op"] != 1 {
        return close(&mut ws, CLOSE_NOT_IDENTIFIED, "You must identify before sending other messages.").await;
    }
    let data = &identify["d"];
    if data["rpcVersion"].as_u64().is_none_or(|v| v > 1) {
        return close(&mut ws, CLOSE_UNSUPPORTED_RPC_VERSION, "Unsupported RPC version.").await;
    }
    if let Some(password) = &shared.password {
        let expected = auth_string(password, &salt, &challenge);
        if data["authentication"].as_str() != Some(expected.as_str()) {
            shared.model().auth_failures += 1;
            return close(&mut ws, CLOSE_AUTHENTICATION_FAILED, "Authentication failed.").await;
        }
    }
    shared.model().identified += 1;
    if send(&mut ws, 2, json!({ "negotiatedRpcVersion": 1 })).await.is_err() {
        return;
    }

    while let Some(message) = next_json(&mut ws).await {
        let Some(message) = message else {
            return close(&mut ws, CLOSE_MESSAGE_DECODE_ERROR, "Unable to decode the message.").await;
        };
        if message["op"] != 6 {
            continue; // Reidentify and batches are not used by the code under test.
        }
        let request = &message["d"];
        let kind = request["requestType"].as_str().unwrap_or_default().to_owned();
        let id = request["requestId"].clone();
        let data = request.get("requestData").cloned().unwrap_or(Value::Null);
        let (code, comment, response) = {
            let mut model = shared.model();
            model.requests.push(Recorded { kind: kind.clone(), data: data.clone() });
            handle(&mut model, &kind, &data)
        };
        if shared.silent.load(Ordering::SeqCst) {
            continue;
        }
        let mut status = json!({ "result": code == STATUS_SUCCESS, "code": code });
        if let Some(comment) = comment {
            status["comment"] = json!(comment);
        }
        let mut answer = json!({ "requestType": kind, "requestId": id, "requestStatus": status });
        if let Some(response) = response {
            answer["responseData"] = response;
        }
        if send(&mut ws, 7, answer).await.is_err() {
            return;
        }
    }
}

/// Answers one request: (status code, comment, response data).
fn handle(model: &mut Model, kind: &str, data: &Value) -> (u16, Option<String>, Option<Value>) {
    let field = |name: &str| data[name].as_str().map(str::to_owned);
    let missing =
        |name: &str| (STATUS_MISSING_REQUEST_FIELD, Some(format!("Your request is missing the `{name}` field.")), None);
    let not_found = |what: &str, name: &str| {
        (STATUS_RESOURCE_NOT_FOUND, Some(format!("No {what} was found by the name of `{name}`.")), None)
    };
    match kind {
        "GetVersion" => (
            STATUS_SUCCESS,
            None,
            Some(json!({
                "obsVersion": "31.0.2",
                "obsWebSocketVersion": "5.5.4",
                "rpcVersion": 1,
                "availableRequests": ["GetVersion", "SetCurrentProgramScene", "SetInputSettings",
                                      "GetSceneItemId", "SetSceneItemEnabled"],
                "supportedImageFormats": ["png"],
                "platform": "debian",
                "platformDescription": "fake obs-websocket for tests",
            })),
        ),
        "SetCurrentProgramScene" => {
            let Some(scene) = field("sceneName") else { return missing("sceneName") };
            if !model.scenes.contains(&scene) {
                return not_found("scene", &scene);
            }
            model.program_scene = scene;
            (STATUS_SUCCESS, None, None)
        }
        "SetInputSettings" => {
            let Some(input) = field("inputName") else { return missing("inputName") };
            let Some(settings) = data["inputSettings"].as_object() else { return missing("inputSettings") };
            let Some(text) = model.texts.get_mut(&input) else { return not_found("source", &input) };
            if let Some(new) = settings.get("text").and_then(Value::as_str) {
                *text = new.to_owned();
            }
            (STATUS_SUCCESS, None, None)
        }
        "GetSceneItemId" => {
            let Some(scene) = field("sceneName") else { return missing("sceneName") };
            let Some(source) = field("sourceName") else { return missing("sourceName") };
            if !model.scenes.contains(&scene) {
                return not_found("scene", &scene);
            }
            match model.items.iter().find(|(s, n, _, _)| *s == scene && *n == source) {
                Some((_, _, id, _)) => (STATUS_SUCCESS, None, Some(json!({ "sceneItemId": id }))),
                None => not_found("scene item", &source),
            }
        }
        "SetSceneItemEnabled" => {
            let Some(scene) = field("sceneName") else { return missing("sceneName") };
            let Some(id) = data["sceneItemId"].as_i64() else { return missing("sceneItemId") };
            let Some(enabled) = data["sceneItemEnabled"].as_bool() else { return missing("sceneItemEnabled") };
            match model.items.iter_mut().find(|(s, _, i, _)| *s == scene && *i == id) {
                Some(item) => {
                    item.3 = enabled;
                    (STATUS_SUCCESS, None, None)
                }
                None => not_found("scene item", &id.to_string()),
            }
        }
        other => (STATUS_UNKNOWN_REQUEST_TYPE, Some(format!("Your request type `{other}` is not valid.")), None),
    }
}

/// obs-websocket's authentication string.
pub fn auth_string(password: &str, salt: &str, challenge: &str) -> String {
    let secret = BASE64.encode(Sha256::digest(format!("{password}{salt}")));
    BASE64.encode(Sha256::digest(format!("{secret}{challenge}")))
}

fn random_token() -> String {
    BASE64.encode(rand::random::<[u8; 24]>())
}

/// The next text message as JSON: `None` when the connection ended, `Some(None)` when the
/// message was not JSON. Pings and pongs are skipped.
async fn next_json(ws: &mut WebSocketStream<TcpStream>) -> Option<Option<Value>> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(text)) => return Some(serde_json::from_str(text.as_str()).ok()),
            Ok(Message::Binary(bytes)) => return Some(serde_json::from_slice(&bytes).ok()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

async fn send(ws: &mut WebSocketStream<TcpStream>, op: u8, data: Value) -> Result<(), ()> {
    let text = json!({ "op": op, "d": data }).to_string();
    ws.send(Message::text(text)).await.map_err(|_| ())
}

async fn close(ws: &mut WebSocketStream<TcpStream>, code: u16, reason: &str) {
    let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
    let _ = ws.close(Some(frame)).await;
    // Let the close handshake finish so the client reads the code, as from real OBS.
    let _ = tokio::time::timeout(Duration::from_secs(1), async { while ws.next().await.is_some() {} }).await;
}
