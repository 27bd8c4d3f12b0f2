//! Account emails through a real SMTP exchange: password reset links (pages and the
//! seed-compatible API), their single use and expiry, the welcome message; and reset links
//! in the log when no SMTP server is configured.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::harness::{Options, PASSWORD, Server};
use crate::smtp_sink::{Received, SmtpSink};

const NEW_PASSWORD: &str = "a brand new passphrase";
const SENT: &str = "If an account exists for that address, we sent a link";

/// A browser without JavaScript: keeps cookies, does not follow redirects, and puts the
/// CSRF cookie's value in every form it posts (as the pages' hidden field does).
struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: Mutex<BTreeMap<String, String>>,
}

struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Browser {
    fn new(server: &Server) -> Self {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { client, base: server.url(""), cookies: Mutex::default() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.lock().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Page {
        let resp = request.header(COOKIE, self.cookie_header()).send().await.expect("request");
        for set in resp.headers().get_all(SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let mut cookies = self.cookies.lock().unwrap();
            if value.is_empty() {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = resp.status().as_u16();
        let location = resp.headers().get(LOCATION).map(|l| l.to_str().unwrap().to_owned());
        Page { status, location, body: resp.text().await.unwrap() }
    }

    async fn get(&self, path: &str) -> Page {
        self.send(self.client.get(format!("{}{path}", self.base))).await
    }

    /// Posts a form; a page must have been loaded first (it sets the CSRF cookie).
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.cookies.lock().unwrap().get("ms_csrf").cloned().expect("load a page before posting");
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf", &csrf));
        self.send(self.client.post(format!("{}{path}", self.base)).form(&form)).await
    }

    /// Asks for a reset link through the page, as a visitor would.
    async fn request_reset(&self, email: &str) {
        let page = self.get("/password-reset").await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("id=\"reset-request\""), "{}", page.body);
        let page = self.post("/password-reset", &[("email", email)]).await;
        assert_eq!((page.status, page.location.as_deref()), (303, Some("/password-reset?sent=1")), "{}", page.body);
        let page = self.get("/password-reset?sent=1").await;
        assert!(page.body.contains("id=\"reset-sent\"") && page.body.contains(SENT), "{}", page.body);
    }
}

/// The reset link in a message's text.
fn reset_link(mail: &Received) -> String {
    let text = mail.part("text/plain");
    let link = text.split_whitespace().find(|w| w.contains("/password-reset/"));
    link.unwrap_or_else(|| panic!("no reset link in:\n{text}")).to_owned()
}

/// The site's public address in these tests (SMTP requires one).
const PUBLIC_URL: &str = "https://radio.example.org";

/// The path of a link to the site (`/password-reset/<token>`), to follow on this server.
fn path_of(link: &str) -> String {
    let path = link.strip_prefix(PUBLIC_URL).unwrap_or_else(|| panic!("{link} is not on {PUBLIC_URL}"));
    path.to_owned()
}

fn with_smtp(sink: &SmtpSink, extra: &str) -> Options {
    let config = format!("{}public_url = \"{PUBLIC_URL}/\"\n{extra}", sink.config());
    Options { config: Some(config), ..Default::default() }
}

#[tokio::test]
async fn a_reset_link_from_the_page_works_once_and_logs_out_everywhere() {
    let sink = SmtpSink::start().await;
    let server = Server::start(with_smtp(&sink, ""));
    server.add_user("Ada", false);

    // A browser logged in as Ada, to see the reset end its session.
    let logged_in = Browser::new(&server);
    logged_in.get("/login").await;
    let page = logged_in.post("/login", &[("username", "ada@example.org"), ("password", PASSWORD)]).await;
    assert_eq!(page.location.as_deref(), Some("/dashboard"), "{}", page.body);
    assert_eq!(logged_in.get("/").await.location.as_deref(), Some("/dashboard"));

    let browser = Browser::new(&server);
    browser.request_reset("ada@example.org").await;
    let mail = sink.wait_for("ada@example.org").await;
    assert_eq!(mail.mail_from, "noreply@example.org");
    assert_eq!(mail.header("Subject").as_deref(), Some("Reset your motherstream password"));
    let message_id = mail.header("Message-ID").unwrap_or_default();
    assert!(message_id.starts_with('<') && message_id.ends_with("@example.org>"), "{}", mail.data);
    let text = mail.part("text/plain");
    assert!(text.contains("expires in 60 minutes") && text.contains("ignore"), "{text}");
    let link = reset_link(&mail);
    let path = path_of(&link);
    assert!(mail.part("text/html").contains(&format!("href=\"{link}\"")), "{}", mail.data);

    let page = browser.get(&path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"reset-form\"") && page.body.contains("id=\"reset-submit\""), "{}", page.body);
    // A password the site refuses does not use the link up.
    let page = browser.post(&path, &[("password", "short")]).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("class=\"error\"") && page.body.contains("id=\"reset-form\""), "{}", page.body);

    let page = browser.post(&path, &[("password", NEW_PASSWORD)]).await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/login?reset=1")), "{}", page.body);
    assert_eq!(server.login_status("ada@example.org", NEW_PASSWORD).await, 200);
    assert_eq!(server.login_status("ada@example.org", PASSWORD).await, 400, "the old password is gone");
    assert_eq!(logged_in.get("/").await.status, 200, "the other browser's session ended");

    // Used: the link is dead, for showing the form and for posting it.
    let page = browser.get(&path).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("class=\"error\"") && !page.body.contains("id=\"reset-form\""), "{}", page.body);
    let page = browser.post(&path, &[("password", "yet another passphrase")]).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("class=\"error\""), "{}", page.body);
    assert_eq!(server.login_status("ada@example.org", NEW_PASSWORD).await, 200);
    assert_eq!(browser.get("/password-reset/not-a-token").await.status, 400);
}

#[tokio::test]
async fn unknown_addresses_get_the_same_answer_and_no_email() {
    let sink = SmtpSink::start().await;
    let server = Server::start(with_smtp(&sink, ""));
    server.add_user("Ada", false);
    let browser = Browser::new(&server);
    browser.request_reset("nobody@example.org").await;
    browser.request_reset("Ada").await; // a DJ name is not an address
    // The sender delivers in order: once Ada's arrives, any earlier one would have too.
    browser.request_reset("ada@example.org").await;
    sink.wait_for("ada@example.org").await;
    let recipients: Vec<Vec<String>> = sink.received().into_iter().map(|m| m.rcpt_to).collect();
    assert_eq!(recipients, [["ada@example.org"]]);
}

#[tokio::test]
async fn a_newer_link_replaces_the_older_and_expired_links_are_refused() {
    let sink = SmtpSink::start().await;
    let server = Server::start(with_smtp(&sink, "password_reset_ttl = 3\n"));
    server.add_user("Ada", false);
    let browser = Browser::new(&server);
    browser.request_reset("ada@example.org").await;
    let first = path_of(&reset_link(&sink.wait_for("ada@example.org").await));
    assert_eq!(browser.get(&first).await.status, 200);
    browser.request_reset("ada@example.org").await;
    let mails = sink.wait_for_count(2).await;
    let second = path_of(&reset_link(&mails[1]));
    assert_ne!(first, second);
    assert_eq!(browser.get(&first).await.status, 400, "the newer link replaced it");
    assert!(mails[1].part("text/plain").contains("expires in 1 minute"));

    // Reset links are stored with whole seconds: a 3 s link lives 2 to 3 s, long enough for
    // the checks above on a loaded machine, and 4 s later it is past.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let page = browser.get(&second).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("class=\"error\""), "{}", page.body);
    let page = browser.post(&second, &[("password", NEW_PASSWORD)]).await;
    assert_eq!(page.status, 400);
    assert_eq!(server.login_status("ada@example.org", PASSWORD).await, 200, "the password did not change");
}

#[tokio::test]
async fn the_seed_api_recovers_and_resets_passwords() {
    let sink = SmtpSink::start().await;
    let server = Server::start(with_smtp(&sink, "[limits]\nsignup_attempts_per_minute = 2\n"));
    server.add_user("Ada", false);
    let answer = json!({ "msg": "If an account exists for that address, we sent a password recovery email" });
    assert_eq!(server.post("/api/v1/password-recovery/nobody@example.org", None, None).await, (200, answer.clone()));
    assert_eq!(server.post("/api/v1/password-recovery/ada@example.org", None, None).await, (200, answer));
    let link = reset_link(&sink.wait_for("ada@example.org").await);
    let token = link.rsplit('/').next().unwrap();

    let (status, body) =
        server.post("/api/v1/reset-password/", None, Some(json!({ "token": token, "new_password": "short" }))).await;
    assert_eq!(status, 400, "{body}");
    let reset = json!({ "token": token, "new_password": NEW_PASSWORD });
    let done = json!({ "msg": "Password updated successfully" });
    assert_eq!(server.post("/api/v1/reset-password/", None, Some(reset.clone())).await, (200, done));
    assert_eq!(server.login_status("ada@example.org", NEW_PASSWORD).await, 200);
    let invalid = (400, json!({ "detail": "Invalid token" }));
    assert_eq!(server.post("/api/v1/reset-password/", None, Some(reset)).await, invalid, "single use");
    let unknown = json!({ "token": "0".repeat(64), "new_password": NEW_PASSWORD });
    assert_eq!(server.post("/api/v1/reset-password/", None, Some(unknown)).await, invalid);

    // The third request of the minute is over the limit (shared with sign-ups).
    let (status, body) = server.post("/api/v1/password-recovery/ada@example.org", None, None).await;
    assert_eq!(status, 429, "{body}");
    assert!(body["detail"].is_string(), "{body}");
}

#[tokio::test]
async fn without_smtp_reset_links_are_logged() {
    let config = "public_url = \"https://radio.example.org/\"\n".to_owned();
    let server = Server::start(Options { config: Some(config), ..Default::default() });
    server.add_user("Ada", false);
    let (status, _) = server.post("/api/v1/password-recovery/ada@example.org", None, None).await;
    assert_eq!(status, 200);
    let marker = "password reset link for Ada (SMTP not configured): https://radio.example.org/password-reset/";
    server.wait_for_log(marker).await;
    let logs = server.logs();
    let token = logs.split(marker).nth(1).unwrap().split_whitespace().next().unwrap();
    let reset = json!({ "token": token, "new_password": NEW_PASSWORD });
    assert_eq!(server.post("/api/v1/reset-password/", None, Some(reset)).await.0, 200);
    assert_eq!(server.login_status("Ada", NEW_PASSWORD).await, 200);
}

#[tokio::test]
async fn signing_up_on_the_page_sends_a_welcome_without_the_stream_key() {
    let sink = SmtpSink::start().await;
    let server = Server::start(with_smtp(&sink, ""));
    server.add_user("Admin", true);
    let browser = Browser::new(&server);
    browser.get("/signup").await;
    let form = [("dj_name", "Zoe"), ("email", "zoe@example.org"), ("password", PASSWORD)];
    let page = browser.post("/signup", &form).await;
    assert_eq!(page.status, 303, "{}", page.body);

    let mail = sink.wait_for("zoe@example.org").await;
    assert_eq!(mail.header("Subject").as_deref(), Some("Welcome to motherstream"));
    let text = mail.part("text/plain");
    assert!(text.contains("Hi Zoe") && text.contains("https://radio.example.org/dashboard"), "{text}");
    let token = server.token("zoe@example.org").await;
    let me = server.get_json_as("/api/v1/users/me", &token).await;
    let key = me["stream_key"].as_str().unwrap();
    assert!(!mail.data.contains(key) && !mail.part("text/html").contains(key), "the stream key was emailed");
}
