//! Headless Chromium driven over WebDriver (a real chromedriver), for the browser tests.
//!
//! Every browser process hangs off one chromedriver started in its own process group, so that
//! a test that panics halfway (no async drop, no clean session close) still leaves no browser
//! behind: dropping the [`Driver`] kills the whole group.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::harness::PATIENCE;

/// Window sizes the pages are checked at.
#[derive(Clone, Copy, Debug)]
pub enum Viewport {
    /// 1280x900: a laptop.
    Desktop,
    /// 390x844, emulated as a touch-screen phone so that the pages' viewport meta and media
    /// queries apply as they would on one; in dark mode, as many phones are at night, so that
    /// both of the pages' themes are exercised (desktops get the light one).
    Phone,
}

/// What to read from the elements a wait looks at.
#[derive(Clone, Copy, Debug)]
pub enum Read<'a> {
    /// The rendered text (what a user sees; hidden elements read as empty).
    Text,
    Attr(&'a str),
    /// A computed style property.
    Css(&'a str),
}

/// A running chromedriver; killed with every browser it started when dropped.
pub struct Driver {
    child: Child,
    url: String,
    chromium: PathBuf,
    // Profiles live here rather than in chromedriver's own temp dirs, which a killed
    // chromedriver would leave behind in /tmp. Dropped after the processes are killed.
    dir: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver, or returns `None` (test skipped with a note) when Chromium or
    /// chromedriver is not installed. Under CI a missing browser fails the test instead.
    pub async fn start() -> Option<Self> {
        let chromium = ["chromium", "chromium-browser", "google-chrome-stable", "google-chrome"]
            .iter()
            .find_map(|name| find_in_path(name));
        let chromedriver = find_in_path("chromedriver");
        let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
            if under_ci() {
                panic!("chromium and chromedriver are required under CI (scripts/install-test-deps.sh installs them)");
            }
            eprintln!("skipping: chromium or chromedriver not installed (scripts/install-test-deps.sh installs them)");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir for the browser");
        // The port is picked by binding and releasing it, so another process may take it in
        // between; chromedriver then exits at once and the next attempt gets another port.
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
            let log_path = dir.path().join(format!("chromedriver-{port}.log"));
            let log = std::fs::File::create(&log_path).expect("chromedriver log");
            let mut child = Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log)
                .process_group(0)
                .spawn()
                .expect("spawn chromedriver");
            let url = format!("http://127.0.0.1:{port}");
            match wait_ready(&mut child, &url).await {
                Ok(()) => return Some(Self { child, url, chromium, dir }),
                Err(why) => {
                    kill_group(&mut child);
                    failures.push(format!("{why}\n{}", std::fs::read_to_string(&log_path).unwrap_or_default()));
                }
            }
        }
        panic!("chromedriver did not start:\n{}", failures.join("\n---\n"));
    }

    /// Opens a browser with a fresh profile of its own: two sessions share no cookies, like
    /// two people on two machines. `label` names it in failure messages.
    pub async fn session(&self, label: &str, base_url: &str, viewport: Viewport) -> Browser {
        let profile = tempfile::tempdir_in(self.dir.path()).expect("profile dir");
        let (width, height) = match viewport {
            Viewport::Desktop => (1280, 900),
            Viewport::Phone => (390, 844),
        };
        let mut args = vec![
            "--headless=new".to_owned(),
            // Containers often give /dev/shm only 64 MB, which Chromium outgrows and crashes.
            "--disable-dev-shm-usage".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
            "--lang=en-US".to_owned(),
            "--no-first-run".to_owned(),
            "--no-default-browser-check".to_owned(),
            "--hide-scrollbars".to_owned(),
        ];
        // Chromium refuses to start its sandbox as root (CI containers run as root).
        if is_root() {
            args.push("--no-sandbox".to_owned());
        }
        if let Viewport::Phone = viewport {
            args.push("--force-dark-mode".to_owned());
        }
        let mut options = json!({ "binary": self.chromium, "args": args });
        if let Viewport::Phone = viewport {
            options["mobileEmulation"] = json!({
                "deviceMetrics": { "width": width, "height": height, "pixelRatio": 2, "mobile": true, "touch": true },
            });
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".to_owned(), options);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("browser {label}: no session: {e}"));
        if let Viewport::Desktop = viewport {
            // Headless Chromium still counts room for tabs and toolbars in the window size;
            // grow the window by that much so that the page itself gets the full size.
            let frame = client
                .execute(
                    "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]",
                    vec![],
                )
                .await
                .unwrap_or_else(|e| panic!("browser {label}: window size: {e}"));
            let extra = |i: usize| frame[i].as_u64().and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
            client
                .set_window_size(width + extra(0), height + extra(1))
                .await
                .unwrap_or_else(|e| panic!("browser {label}: window size: {e}"));
        }
        Browser {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            label: label.to_owned(),
            _profile: profile,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// One browser (its own window, profile and cookies) on the server under test.
pub struct Browser {
    client: Client,
    base_url: String,
    label: String,
    // Deleted when the browser is dropped, after `close` has made it quit.
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Navigates to a path of the server and waits for the page to load.
    pub async fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base_url);
        if let Err(e) = self.client.goto(&url).await {
            panic!("browser {}: cannot open {url}: {e}", self.label);
        }
    }

    /// Navigates to a full URL (another site, a `data:` page).
    pub async fn goto_url(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            panic!("browser {}: cannot open {url}: {e}", self.label);
        }
    }

    /// Makes the page's first frame the one later commands act on.
    pub async fn enter_first_frame(&self) {
        if let Err(e) = self.client.enter_frame(0).await {
            panic!("{}", self.failure(&format!("no frame to enter: {e}")).await);
        }
    }

    /// The path of the current page (after any redirect).
    pub async fn path(&self) -> String {
        self.client.current_url().await.map(|u| u.path().to_owned()).unwrap_or_default()
    }

    /// Waits until the browser shows the page at `path` (query string ignored), e.g. after
    /// a form's redirect.
    pub async fn wait_path(&self, path: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let current = self.path().await;
            if current == path {
                return;
            }
            if Instant::now() > deadline {
                panic!("{}", self.failure(&format!("expected to be on {path}, still on {current}")).await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types into the (first) element matching `css`, replacing what it held.
    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.element(css).await;
        let typed = async {
            field.clear().await?;
            field.send_keys(value).await
        };
        if let Err(e) = typed.await {
            panic!("{}", self.failure(&format!("cannot type into {css}: {e}")).await);
        }
    }

    pub async fn click(&self, css: &str) {
        let target = self.element(css).await;
        if let Err(e) = target.click().await {
            panic!("{}", self.failure(&format!("cannot click {css}: {e}")).await);
        }
    }

    /// Waits for an element to exist (a page still loading, or rendered by script).
    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                return element;
            }
            if Instant::now() > deadline {
                panic!("{}", self.failure(&format!("no element {css}")).await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the first element matching `css` exists and what `read` gets from it
    /// satisfies `ok`; returns that value.
    pub async fn wait_for(&self, css: &str, read: Read<'_>, within: Duration, ok: impl Fn(&str) -> bool) -> String {
        let mut values = self.wait_for_all(css, read, within, |v| v.first().is_some_and(|first| ok(first))).await;
        values.swap_remove(0)
    }

    /// Waits until the values read from all elements matching `css`, in document order,
    /// satisfy `ok`; returns them.
    pub async fn wait_for_all(
        &self,
        css: &str,
        read: Read<'_>,
        within: Duration,
        ok: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            // An element replaced by a live update between finding and reading it is not an
            // error: the next poll reads its successor.
            let last = match self.read_all(css, read).await {
                Ok(values) if ok(&values) => return values,
                Ok(values) => format!("{values:?}"),
                Err(e) => format!("error: {e}"),
            };
            if Instant::now() > deadline {
                let what =
                    format!("{css} ({read:?}) did not reach the expected state within {within:?}; last read: {last}");
                panic!("{}", self.failure(&what).await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn read_all(&self, css: &str, read: Read<'_>) -> Result<Vec<String>, fantoccini::error::CmdError> {
        let mut values = Vec::new();
        for element in self.client.find_all(Locator::Css(css)).await? {
            values.push(match read {
                Read::Text => element.text().await?,
                Read::Attr(name) => element.attr(name).await?.unwrap_or_default(),
                Read::Css(name) => element.css_value(name).await?,
            });
        }
        Ok(values)
    }

    /// [`Self::wait_for`] the element's text, with the suite's usual patience.
    pub async fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait_for(css, Read::Text, PATIENCE, ok).await
    }

    /// [`Self::wait_for`] one of the element's attributes, with the suite's usual patience.
    pub async fn wait_attr(&self, css: &str, attr: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait_for(css, Read::Attr(attr), PATIENCE, ok).await
    }

    /// Waits until at least one element matches `css`.
    pub async fn wait_present(&self, css: &str) {
        self.element(css).await;
    }

    /// Fails unless no element matches `css` now.
    pub async fn assert_absent(&self, css: &str) {
        let found = self.client.find_all(Locator::Css(css)).await.map(|v| v.len()).unwrap_or(0);
        if found > 0 {
            panic!("{}", self.failure(&format!("{css} should not be on this page ({found} found)")).await);
        }
    }

    /// Runs `script` in the page (WebDriver's synchronous execute) and returns its value.
    pub async fn execute(&self, script: &str) -> serde_json::Value {
        match self.client.execute(script, vec![]).await {
            Ok(value) => value,
            Err(e) => panic!("{}", self.failure(&format!("script failed: {e}\n{script}")).await),
        }
    }

    /// The current page's markup as the browser has it now (scripts' changes included).
    pub async fn source(&self) -> String {
        match self.client.source().await {
            Ok(html) => html,
            Err(e) => panic!("{}", self.failure(&format!("no page source: {e}")).await),
        }
    }

    /// Saves what the window shows as `<target dir>/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = match self.client.screenshot().await {
            Ok(png) => png,
            Err(e) => panic!("{}", self.failure(&format!("screenshot {name}: {e}")).await),
        };
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot ({}): {}", self.label, path.display());
        path
    }

    /// A screenshot of a transparent overlay as OBS would show it, over a dark backdrop
    /// standing in for the video (a plain screenshot would show white text on white). The
    /// backdrop is removed again, so later checks see the page as served.
    pub async fn screenshot_over_video(&self, name: &str) -> PathBuf {
        let set = |background: &'static str| async move {
            let script = "document.documentElement.style.background = arguments[0]";
            if let Err(e) = self.client.execute(script, vec![background.into()]).await {
                panic!("{}", self.failure(&format!("backdrop for {name}: {e}")).await);
            }
        };
        set("repeating-conic-gradient(#2a2f3b 0% 25%, #1b1e26 0% 50%) 50% / 32px 32px").await;
        let path = self.screenshot(name).await;
        set("").await;
        path
    }

    /// Ends the session (the browser quits and its profile is deleted).
    pub async fn close(self) {
        if let Err(e) = self.client.close().await {
            panic!("browser {}: closing the session failed: {e}", self.label);
        }
    }

    /// `what` went wrong, with where the browser is and what the page says, which is usually
    /// enough to see why a page did not do what the test expected.
    async fn failure(&self, what: &str) -> String {
        let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_else(|e| format!("? ({e})"));
        let text = match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_else(|e| format!("? ({e})")),
            Err(e) => format!("? ({e})"),
        };
        format!("browser {}: {what}\n  at {url}\n  page text:\n{text}", self.label)
    }
}

/// Screenshots go next to the build (`<target>/screenshots`), where CI can keep them.
pub fn screenshot_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("screenshots")
}

async fn wait_ready(child: &mut Child, url: &str) -> Result<(), String> {
    let deadline = Instant::now() + PATIENCE;
    let status = format!("{url}/status");
    while Instant::now() < deadline {
        if let Some(exit) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("chromedriver exited: {exit}"));
        }
        if let Ok(resp) = reqwest::get(&status).await
            && let Ok(body) = resp.json::<serde_json::Value>().await
            && body["value"]["ready"] == true
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("chromedriver not ready in time".to_owned())
}

/// Kills chromedriver and every browser it started: they share its process group, whose id
/// is chromedriver's pid (`process_group(0)`).
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
    let _ = child.kill();
    let _ = child.wait();
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}

fn is_root() -> bool {
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
