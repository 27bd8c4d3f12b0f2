//! Real RTMP servers as the platforms a destination feeds: nginx with the RTMP module
//! (recording every publish to its own file, and restartable on the same port) and
//! `ffmpeg -listen 1` (which takes exactly one connection and fails if it ends early).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use motherstream::media::flv::FlvTag;

use crate::harness::PATIENCE;

const NGINX_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// A free port on 127.0.0.1 (free when asked; the platform binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Fails under CI when nginx or its RTMP module is missing, like `require_tool`.
pub fn require_nginx_rtmp() -> bool {
    if !crate::harness::require_tool("nginx") {
        return false;
    }
    let found = Path::new(NGINX_MODULE).exists();
    if !found {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            panic!("{NGINX_MODULE} is required under CI (scripts/install-test-deps.sh installs it)");
        }
        eprintln!("skipping: nginx's RTMP module is not installed");
    }
    found
}

/// nginx-rtmp in the foreground, everything (config, pid, logs, recordings) in a tempdir.
pub struct Nginx {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Nginx {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        std::fs::create_dir_all(dir.path().join("rec")).expect("recordings dir");
        let conf = format!(
            "load_module {NGINX_MODULE};\n\
             daemon off;\nmaster_process off;\n\
             pid {root}/nginx.pid;\nerror_log {root}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; \
               application live {{ live on; record all; record_path {root}/rec; record_unique on; }} }} }}\n",
            root = dir.path().display()
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
        let mut nginx = Self { port, dir, child: None };
        nginx.spawn().await;
        nginx
    }

    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }

    async fn spawn(&mut self) {
        let root = self.dir.path();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(root)
            .arg("-c")
            .arg(root.join("nginx.conf"))
            .arg("-e")
            .arg(root.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {}: {}", self.port, self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops nginx the hard way (a platform's crash or network cut: no goodbye to the
    /// publisher), then starts it again on the same port.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Publish requests nginx accepted, from its log: one per connection of a destination.
    pub fn publishes(&self) -> usize {
        self.log().lines().filter(|l| l.contains(" publish: name=")).count()
    }

    /// Waits until nginx has had `n` publishes.
    pub async fn wait_for_publishes(&self, n: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.publishes() < n {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        true
    }

    /// The recordings, one per publish, oldest first.
    pub fn recordings(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("rec"))
            .expect("read recordings")
            .map(|e| e.expect("dir entry").path())
            .collect();
        // Each name ends with the second it started, and a restart takes longer than that.
        files.sort();
        files
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `ffmpeg -listen 1 -i rtmp://… -c copy out.flv`: one connection, recorded.
pub struct FfmpegListener {
    pub port: u16,
    pub out: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl FfmpegListener {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let out = dir.path().join("platform.flv");
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-listen", "1", "-i"])
            .arg(format!("rtmp://127.0.0.1:{port}/live/secret-key"))
            .args(["-c", "copy", "-f", "flv"])
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ffmpeg -listen");
        // It binds only after reading its options; a connection before then is refused.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Self { port, out, child, _dir: dir }
    }

    pub fn url(&self) -> String {
        format!("rtmp://127.0.0.1:{}/live/secret-key", self.port)
    }

    /// Whether ffmpeg still holds its one connection (it exits when that ends).
    pub fn running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// Waits for ffmpeg to finish its file after the stream ended; returns its stderr.
    pub async fn finish(mut self) -> (bool, String, PathBuf, tempfile::TempDir) {
        let deadline = Instant::now() + PATIENCE;
        while self.running() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if self.running() {
            crate::encoders::signal(&self.child, "-INT");
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let _ = self.child.kill();
        let out = self.child.wait_with_output().expect("ffmpeg -listen output");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned(), self.out, self._dir)
    }
}

/// Runs ffmpeg over a whole recording and returns what it reported at `-v error`.
pub fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(path)
        // Each source's own millisecond timestamps, not a constant output rate (two
        // sources' frames may round to one tick, which says nothing about the stream).
        .args(["-fps_mode", "passthrough", "-enc_time_base", "1:1000", "-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let mut errors = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        errors.push_str(&format!("\nffmpeg exited with {}", out.status));
    }
    errors
}

/// A recording's tags, as far as they parse (a platform killed mid-write leaves a
/// truncated last tag, which is not the server's doing).
pub fn read_tags(path: &Path) -> Vec<FlvTag> {
    let data = bytes::Bytes::from(std::fs::read(path).expect("read recording"));
    match motherstream::media::flv::FlvReader::new(data) {
        Ok(reader) => reader.map_while(Result::ok).collect(),
        Err(_) => Vec::new(),
    }
}
