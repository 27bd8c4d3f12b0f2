//! Runs the real `motherstream` binary on ephemeral ports with a temporary data dir, creates
//! accounts with its real CLI, and talks to it over real RTMP and HTTP.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_motherstream");
pub const PASSWORD: &str = "correct horse battery";

/// How long tests wait for the server to reach an expected state before failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The command-line options that announce sets on the Discord webhook at `url`.
pub fn discord_args(url: String) -> Vec<String> {
    vec!["--discord-notifications".into(), "true".into(), "--discord-webhook-url".into(), url]
}

/// Server options for one test.
#[derive(Clone)]
pub struct Options {
    pub swap_interval: u64,
    pub grace_period: u64,
    /// Long by default: a test machine under load can pause a test publisher for seconds,
    /// which must not count as a stall unless the test is about stalls.
    pub stall_timeout: u64,
    /// `motherstream.toml` contents, written to the data dir and passed with `--config`.
    pub config: Option<String>,
    pub extra_args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self { swap_interval: 3600, grace_period: 2, stall_timeout: 10, config: None, extra_args: Vec::new() }
    }
}

/// A running server process; killed when dropped.
pub struct Server {
    child: Child,
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    /// Set when the suite runs on Postgres (see `database_url_for`).
    database_url: Option<String>,
    logs: Arc<Mutex<Vec<String>>>,
    options: Options,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    pub fn start(options: Options) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut server = Self::start_in(&dir, options);
        server._tmp = Some(tmp);
        server
    }

    /// Starts a server on an existing data dir (to test restarts).
    pub fn start_in(data_dir: &Path, options: Options) -> Self {
        let database_url = database_url_for(data_dir);
        let mut cmd = Command::new(BIN);
        cmd.arg("serve");
        use_database(&mut cmd, &database_url);
        if let Some(toml) = &options.config {
            let path = data_dir.join("test-config.toml");
            std::fs::write(&path, toml).expect("write config");
            cmd.arg("--config").arg(path);
        }
        cmd.args(["--rtmp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--swap-interval", &options.swap_interval.to_string()])
            .args(["--grace-period", &options.grace_period.to_string()])
            .args(["--stall-timeout", &options.stall_timeout.to_string()])
            .args(&options.extra_args)
            .env("MOTHERSTREAM_LOG", "info")
            .env_remove("JWT_SECRET")
            .current_dir(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn motherstream");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    for (marker, kind) in [("rtmp ingest listening on ", "rtmp"), ("http listening on ", "http")] {
                        if let Some(rest) = line.split(marker).nth(1) {
                            let addr = rest.split_whitespace().next().unwrap_or_default().to_owned();
                            let _ = addr_tx.send((kind, addr));
                        }
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let (mut rtmp, mut http) = (None, None);
        while rtmp.is_none() || http.is_none() {
            match addr_rx.recv_timeout(PATIENCE) {
                Ok(("rtmp", a)) => rtmp = Some(a.parse().expect("rtmp addr")),
                Ok((_, a)) => http = Some(a.parse().expect("http addr")),
                Err(_) => panic!("server did not start; logs:\n{}", logs.lock().unwrap().join("\n")),
            }
        }
        Self {
            child,
            rtmp: rtmp.unwrap(),
            http: http.unwrap(),
            data_dir: data_dir.to_path_buf(),
            database_url,
            logs,
            options,
            _tmp: None,
        }
    }

    /// Kills the process (SIGKILL: nothing gets a chance to clean up) and starts a new one
    /// on the same data dir.
    pub fn restart(mut self) -> Self {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
        let tmp = self._tmp.take();
        let mut next = Self::start_in(&self.data_dir.clone(), self.options.clone());
        next._tmp = tmp;
        next
    }

    /// Sends SIGTERM and waits for a clean exit (status 0).
    pub fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success());
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "exit status {status}; logs:\n{}", self.logs());
                return;
            }
            assert!(Instant::now() < deadline, "server did not exit after SIGTERM; logs:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn rtmp_url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.rtmp)
    }

    /// Creates an account with the real CLI and returns its stream key.
    pub fn add_user(&self, dj_name: &str, admin: bool) -> String {
        let mut cmd = Command::new(BIN);
        cmd.args(["user", "add", "--dj-name", dj_name, "--email"])
            .arg(format!("{}@example.org", dj_name.to_lowercase()))
            .arg("--password-stdin")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        use_database(&mut cmd, &self.database_url);
        if admin {
            cmd.arg("--admin");
        }
        let mut child = cmd.spawn().expect("spawn user add");
        writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
        let out = child.wait_with_output().expect("user add");
        assert!(out.status.success(), "user add failed: {}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8(out.stdout).unwrap();
        stdout.lines().last().expect("key line").trim().to_owned()
    }

    /// Runs a CLI command against this server's data dir.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args).arg("--data-dir").arg(&self.data_dir);
        use_database(&mut cmd, &self.database_url);
        cmd.output().expect("run cli")
    }

    /// The server process, for sampling its memory and open files.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Waits until a log line contains `needle`.
    pub async fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if self.logs.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no log line containing {needle:?}; logs:\n{}", self.logs());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let resp = reqwest::get(self.url(path)).await.expect("GET");
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.expect("json")
    }

    /// GETs JSON with a bearer token.
    pub async fn get_json_as(&self, path: &str, token: &str) -> Value {
        let resp = reqwest::Client::new().get(self.url(path)).bearer_auth(token).send().await.expect("GET");
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.expect("json")
    }

    /// The status of an API login with these credentials.
    pub async fn login_status(&self, login: &str, password: &str) -> u16 {
        let resp = reqwest::Client::new()
            .post(self.url("/api/v1/login/access-token"))
            .form(&[("username", login), ("password", password)])
            .send()
            .await
            .expect("login");
        resp.status().as_u16()
    }

    /// `GET /queue-json` as a list of names.
    pub async fn queue(&self) -> Vec<String> {
        let v = self.get_json("/queue-json").await;
        v["stream_queue"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned()).collect()
    }

    /// Waits until `/queue-json` equals `expected`; returns how long it took.
    pub async fn wait_for_queue(&self, expected: &[&str]) -> Duration {
        let start = Instant::now();
        loop {
            let q = self.queue().await;
            if q == expected {
                return start.elapsed();
            }
            if start.elapsed() > PATIENCE {
                panic!("queue is {q:?}, expected {expected:?}; logs:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Logs in through the login page with `csrf` as the CSRF cookie and field; returns the
    /// session cookie's value.
    pub async fn page_session(&self, login: &str, csrf: &str) -> String {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let resp = client
            .post(self.url("/login"))
            .header("cookie", format!("ms_csrf={csrf}"))
            .form(&[("csrf", csrf), ("username", login), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "page login as {login}");
        resp.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix("ms_session="))
            .map(|c| c.split(';').next().unwrap().to_owned())
            .expect("a session cookie")
    }

    /// Logs in through the API and returns the bearer token.
    pub async fn token(&self, login: &str) -> String {
        self.token_with(login, PASSWORD).await
    }

    /// Logs in with another password than the usual one.
    pub async fn token_with(&self, login: &str, password: &str) -> String {
        let resp = reqwest::Client::new()
            .post(self.url("/api/v1/login/access-token"))
            .form(&[("username", login), ("password", password)])
            .send()
            .await
            .expect("login");
        assert!(resp.status().is_success(), "login {login}: {}", resp.status());
        let v: Value = resp.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// POSTs with an optional bearer token and optional JSON body; returns status and body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut req = reqwest::Client::new().post(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("POST");
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, body)
    }
}

/// A subscriber to `/api/v1/events` that keeps everything it read, to check for secrets.
pub struct Events {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
    /// Every byte read so far.
    pub seen: String,
}

impl Events {
    pub async fn open(server: &Server) -> Self {
        let resp = reqwest::get(server.url("/api/v1/events")).await.expect("GET /api/v1/events");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Self { body: Box::pin(resp.bytes_stream()), buffer: String::new(), seen: String::new() }
    }

    /// Reads events until one of `kind` whose data satisfies `wanted`; returns its data.
    pub async fn next(&mut self, kind: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        use futures_util::StreamExt;
        let deadline = Instant::now() + PATIENCE;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let event = block.lines().find_map(|l| l.strip_prefix("event:")).map(str::trim);
                let data = block.lines().find_map(|l| l.strip_prefix("data:")).map(str::trim);
                if let (Some(event), Some(data)) = (event, data)
                    && event == kind
                {
                    let data: Value = serde_json::from_str(data).expect("event data is JSON");
                    if wanted(&data) {
                        return data;
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = match tokio::time::timeout(left, self.body.next()).await {
                Ok(Some(chunk)) => chunk.expect("event stream"),
                Ok(None) => panic!("the event stream ended while waiting for {kind}"),
                Err(_) => panic!("no matching {kind} event; read:\n{}", self.seen),
            };
            let text = String::from_utf8_lossy(&chunk);
            self.seen.push_str(&text);
            self.buffer.push_str(&text);
        }
    }

    /// Whether the server ends the stream within [`PATIENCE`].
    pub async fn ends(&mut self) -> bool {
        use futures_util::StreamExt;
        let deadline = Instant::now() + PATIENCE;
        while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline.into(), self.body.next()).await {
            if chunk.is_err() {
                return true;
            }
        }
        Instant::now() < deadline
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// With `MOTHERSTREAM_TEST_SERVER_DB=postgres` (CI runs the suite that way too), every test
/// server gets its own schema in the test Postgres; otherwise SQLite in its data dir. The URL
/// is kept in the data dir so that a restarted server finds the same database.
fn database_url_for(data_dir: &Path) -> Option<String> {
    if std::env::var("MOTHERSTREAM_TEST_SERVER_DB").as_deref() != Ok("postgres") {
        return None;
    }
    let marker = data_dir.join("test-database-url");
    if let Ok(url) = std::fs::read_to_string(&marker) {
        return Some(url);
    }
    let admin = std::env::var("MOTHERSTREAM_TEST_POSTGRES").expect(
        "MOTHERSTREAM_TEST_SERVER_DB=postgres needs MOTHERSTREAM_TEST_POSTGRES (scripts/test-postgres.sh start)",
    );
    let schema = format!("server_{:016x}", rand::random::<u64>());
    let out = Command::new("psql")
        .arg(&admin)
        .args(["-X", "-q", "-c", &format!("CREATE SCHEMA {schema}")])
        .output()
        .expect("run psql");
    assert!(out.status.success(), "creating a schema failed: {}", String::from_utf8_lossy(&out.stderr));
    let sep = if admin.contains('?') { '&' } else { '?' };
    let url = format!("{admin}{sep}options[search_path]={schema}");
    std::fs::write(&marker, &url).expect("write the database marker");
    Some(url)
}

/// Points a server or CLI command at the suite's database (and nothing from the outside).
fn use_database(cmd: &mut Command, url: &Option<String>) {
    cmd.env_remove("DB_HOST");
    match url {
        Some(url) => cmd.env("DATABASE_URL", url),
        None => cmd.env_remove("DATABASE_URL"),
    };
}

/// Fails under CI when a tool an interop test needs is missing; elsewhere returns false so
/// the test can be skipped with a note.
pub fn require_tool(tool: &str) -> bool {
    let found = Command::new(tool).arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if !found {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            panic!("{tool} is required under CI (install it: .ci/run does)");
        }
        eprintln!("skipping: {tool} not installed (CI installs it)");
    }
    found
}
