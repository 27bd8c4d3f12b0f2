//! Email: the welcome message, password reset links and "you're up next" (for DJs who asked
//! for it), over SMTP.
//!
//! ```text
//! handlers ─▶ Mailer::welcome / password_reset ─▶ outbox (bounded, drops oldest) ─▶ sender ─▶ SMTP server
//!             (builds the message, never waits)                                     (timeouts, retries)
//! ```
//!
//! A request never waits for the mail server: messages are formatted in the handler and
//! queued; one task sends them. Every wait is bounded: SMTP commands time out, a whole
//! delivery attempt too, a message is tried [`ATTEMPTS`] times (only the first failure of
//! a permanent refusal, as retrying a 5xx cannot help), and the outbox holds
//! [`OUTBOX_CAPACITY`] messages. At shutdown the sender stops taking new messages and
//! delivers what is queued within the server's shutdown grace.
//!
//! Without SMTP configured nothing is sent and reset links are written to the log, so an
//! organiser can still hand them out. The SMTP password never reaches the logs.

use std::sync::Arc;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use minijinja::HtmlEscape;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::delivery::{Attempts, Outbox, Pushed};
use super::{error_chain, shutdown_requested};
use crate::auth::random_hex;
use crate::channel::health::Advice;
use crate::secret::Secret;
use crate::settings::ConfigError;
use crate::store::User;

/// Messages waiting for the sender; beyond this the oldest is dropped with a warning (a
/// dead mail server must not make the server buffer without bound, and the message just
/// asked for is the one a user is waiting for).
const OUTBOX_CAPACITY: usize = 64;
/// Delivery attempts per message.
const ATTEMPTS: u32 = 3;
/// One SMTP command (connecting included) may take this long.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// One whole delivery attempt (connect, TLS, login, send) may take this long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Wait before the second attempt; doubled before the next.
const FIRST_RETRY: Duration = Duration::from_secs(2);

const SUBJECT_RESET: &str = "Reset your motherstream password";
const SUBJECT_WELCOME: &str = "Welcome to motherstream";
const SUBJECT_UP_NEXT: &str = "You're up next on motherstream";

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (submission, port 587).
    StartTls,
    /// TLS from the first byte (submissions, port 465).
    Tls,
    /// No encryption: only for a relay on the same host or in tests.
    None,
}

/// A validated SMTP configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// Login, if the server wants one: (username, password).
    pub credentials: Option<(String, Secret)>,
    /// Sender of every message (`motherstream <noreply@example.org>`).
    pub from: Mailbox,
}

/// The raw SMTP settings, from flags, environment or file (empty counts as unset).
#[derive(Debug, Default, Clone, Copy)]
pub struct SmtpSettings<'a> {
    pub host: Option<&'a str>,
    pub port: Option<u16>,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub from: Option<&'a str>,
    pub tls: Option<&'a str>,
}

impl SmtpConfig {
    /// Validates the settings: `Ok(None)` when no SMTP host is set (emails are not sent).
    /// Errors name the setting and never contain the password.
    pub fn parse(raw: SmtpSettings<'_>) -> Result<Option<Self>, ConfigError> {
        let set = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        let (username, password, from) = (set(raw.username), raw.password.filter(|p| !p.is_empty()), set(raw.from));
        let Some(host) = set(raw.host) else {
            if username.is_some() || password.is_some() || from.is_some() {
                return Err(ConfigError::new(
                    "--smtp-host",
                    "must be set when --smtp-from, --smtp-username or --smtp-password is",
                ));
            }
            return Ok(None);
        };
        if host.contains("://") || host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') {
            return Err(ConfigError::new("--smtp-host", format!("`{host}` is not a host name like smtp.example.org")));
        }
        let tls = match set(raw.tls).as_deref() {
            None | Some("starttls") => SmtpTls::StartTls,
            Some("tls") => SmtpTls::Tls,
            Some("none") => SmtpTls::None,
            Some(other) => {
                return Err(ConfigError::new(
                    "--smtp-tls",
                    format!("`{other}` is not a TLS mode (use starttls, tls or none)"),
                ));
            }
        };
        let port = match raw.port {
            Some(0) => return Err(ConfigError::new("--smtp-port", "must be a port number from 1 to 65535")),
            Some(port) => port,
            None if tls == SmtpTls::Tls => 465,
            None => 587,
        };
        let credentials = match (username, password) {
            (Some(user), Some(pass)) => Some((user, Secret::from(pass))),
            (None, None) => None,
            (Some(_), None) => return Err(ConfigError::new("--smtp-password", "must be set with --smtp-username")),
            (None, Some(_)) => return Err(ConfigError::new("--smtp-username", "must be set with --smtp-password")),
        };
        let Some(from) = from else {
            return Err(ConfigError::new(
                "--smtp-from",
                "must be set when --smtp-host is (e.g. \"motherstream <noreply@example.org>\")",
            ));
        };
        let from = from.parse::<Mailbox>().map_err(|_| {
            ConfigError::new(
                "--smtp-from",
                format!("`{from}` is not an address like \"motherstream <noreply@example.org>\""),
            )
        })?;
        Ok(Some(Self { host, port, tls, credentials, from }))
    }
}

/// What the messages say besides the user's own details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    /// The site's address without a trailing slash (`https://radio.example.org`), for the
    /// dashboard link of the welcome message.
    pub public_url: Option<String>,
    /// How long a reset link stays valid (the message says so).
    pub reset_ttl: Duration,
}

/// A formatted message on its way to the sender.
struct Outgoing {
    /// `welcome` or `password reset`, for the log.
    kind: &'static str,
    dj_name: String,
    envelope: Envelope,
    raw: Vec<u8>,
}

/// Sends account emails. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Mailer {
    smtp: Option<Smtp>,
    settings: MailSettings,
}

#[derive(Clone, Debug)]
struct Smtp {
    from: Mailbox,
    outbox: Arc<Outbox<Outgoing>>,
}

/// Attempts and waits of the sender (shortened by the tests).
#[derive(Debug, Clone, Copy)]
struct Retry {
    attempts: u32,
    first_retry: Duration,
    attempt_timeout: Duration,
}

const RETRY: Retry = Retry { attempts: ATTEMPTS, first_retry: FIRST_RETRY, attempt_timeout: ATTEMPT_TIMEOUT };

impl Mailer {
    /// A mailer that only logs reset links.
    pub fn log_only(settings: MailSettings) -> Self {
        Self { smtp: None, settings }
    }

    /// Starts the sender task for `config`. It runs until `shutdown`, then delivers what is
    /// queued and ends. Fails (naming the setting) when the TLS set-up for the host fails.
    pub fn spawn(
        config: &SmtpConfig,
        settings: MailSettings,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(Self, JoinHandle<()>), ConfigError> {
        Self::spawn_with(config, settings, shutdown, RETRY)
    }

    fn spawn_with(
        config: &SmtpConfig,
        settings: MailSettings,
        shutdown: watch::Receiver<bool>,
        retry: Retry,
    ) -> Result<(Self, JoinHandle<()>), ConfigError> {
        let transport = transport(config, retry.attempt_timeout.min(COMMAND_TIMEOUT))?;
        let outbox = Arc::new(Outbox::new(OUTBOX_CAPACITY));
        let task = tokio::spawn(send_all(transport, outbox.clone(), shutdown, retry));
        Ok((Self { smtp: Some(Smtp { from: config.from.clone(), outbox }), settings }, task))
    }

    /// Greets a new DJ (only when SMTP is configured).
    pub fn welcome(&self, user: &User) {
        let Some(smtp) = &self.smtp else { return };
        let (text, html) = welcome_body(&user.dj_name, self.settings.public_url.as_deref());
        smtp.queue("welcome", user, SUBJECT_WELCOME, text, html);
    }

    /// Delivers a password reset link (to the log when SMTP is not configured).
    pub fn password_reset(&self, user: &User, link: &str) {
        let Some(smtp) = &self.smtp else {
            tracing::info!("password reset link for {} (SMTP not configured): {link}", user.dj_name);
            return;
        };
        let (text, html) = reset_body(&user.dj_name, link, self.settings.reset_ttl);
        smtp.queue("password reset", user, SUBJECT_RESET, text, html);
    }
}

impl Mailer {
    /// Tells a DJ who asked for it that they are next, with what is wrong with their stream
    /// while there is time to fix it (only when SMTP is configured).
    pub fn up_next(&self, user: &User, on_air_in: Duration, advice: &[Advice]) {
        let Some(smtp) = &self.smtp else { return };
        let (text, html) = up_next_body(&user.dj_name, on_air_in, advice, self.settings.public_url.as_deref());
        smtp.queue("up next", user, SUBJECT_UP_NEXT, text, html);
    }
}

impl Smtp {
    /// Formats a message and hands it to the sender without waiting.
    fn queue(&self, kind: &'static str, user: &User, subject: &str, text: String, html: String) {
        let message = user
            .email
            .parse()
            .map_err(|e: lettre::address::AddressError| e.to_string())
            .map(|address| Mailbox::new(Some(user.dj_name.clone()), address))
            .and_then(|to| {
                // Not every submission server adds a Message-ID, and spam filters score its
                // absence; the sender's domain is a better right-hand side than our host name.
                Message::builder()
                    .message_id(Some(format!("<{}@{}>", random_hex(16), self.from.email.domain())))
                    .from(self.from.clone())
                    .to(to)
                    .subject(subject)
                    .multipart(MultiPart::alternative_plain_html(text, html))
                    .map_err(|e| e.to_string())
            });
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!("cannot write the {kind} email to {}: {e}", user.dj_name);
                return;
            }
        };
        let outgoing = Outgoing {
            kind,
            dj_name: user.dj_name.clone(),
            envelope: message.envelope().clone(),
            raw: message.formatted(),
        };
        match self.outbox.push(outgoing) {
            Pushed::Queued => tracing::debug!("{kind} email to {} queued", user.dj_name),
            Pushed::DroppedOldest { oldest, .. } => {
                tracing::warn!(
                    "email outbox full ({OUTBOX_CAPACITY} waiting): dropped the oldest, the {} email to {}",
                    oldest.kind,
                    oldest.dj_name
                )
            }
            Pushed::Closed(_) => {
                tracing::warn!("email sender stopped: dropped the {kind} email to {}", user.dj_name)
            }
        }
    }
}

fn transport(
    config: &SmtpConfig,
    command_timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, ConfigError> {
    let tls_parameters = || {
        TlsParameters::new(config.host.clone())
            .map_err(|e| ConfigError::new("--smtp-host", format!("cannot set up TLS for {}: {e}", config.host)))
    };
    let tls = match config.tls {
        SmtpTls::StartTls => Tls::Required(tls_parameters()?),
        SmtpTls::Tls => Tls::Wrapper(tls_parameters()?),
        SmtpTls::None => Tls::None,
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.as_str())
        .port(config.port)
        .tls(tls)
        .timeout(Some(command_timeout));
    if let Some((user, password)) = &config.credentials {
        if config.tls == SmtpTls::None {
            tracing::warn!("smtp_tls = none: the SMTP password goes over the network unencrypted");
        }
        builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
    }
    Ok(builder.build())
}

/// The sender: one message at a time, in order, until shutdown and the outbox is drained.
async fn send_all(
    transport: AsyncSmtpTransport<Tokio1Executor>,
    outbox: Arc<Outbox<Outgoing>>,
    mut shutdown: watch::Receiver<bool>,
    retry: Retry,
) {
    let stopping = async {
        shutdown_requested(&mut shutdown).await;
        // What is queued still goes out; `pop` ends once it is drained.
        outbox.close();
    };
    let sending = async {
        while let Some(outgoing) = outbox.pop().await {
            deliver(&transport, &outgoing, retry).await;
        }
    };
    tokio::join!(stopping, sending);
}

/// Tries to deliver one message, retrying failures that may pass.
async fn deliver(transport: &AsyncSmtpTransport<Tokio1Executor>, email: &Outgoing, retry: Retry) {
    let mut attempts = Attempts::new(retry.attempts, retry.first_retry, retry.first_retry * 4);
    loop {
        let error =
            match tokio::time::timeout(retry.attempt_timeout, transport.send_raw(&email.envelope, &email.raw)).await {
                Ok(Ok(_)) => {
                    tracing::info!("sent the {} email to {}", email.kind, email.dj_name);
                    return;
                }
                Ok(Err(e)) if e.is_permanent() => {
                    tracing::warn!(
                        "the mail server refused the {} email to {}: {}",
                        email.kind,
                        email.dj_name,
                        error_chain(&e)
                    );
                    return;
                }
                Ok(Err(e)) => error_chain(&e),
                Err(_) => format!("no answer within {:?}", retry.attempt_timeout),
            };
        let Some(delay) = attempts.failed() else {
            tracing::warn!(
                "giving up on the {} email to {} after {} attempts: {error}",
                email.kind,
                email.dj_name,
                attempts.made()
            );
            return;
        };
        tracing::warn!(
            "sending the {} email to {} failed (attempt {} of {}, next in {delay:?}): {error}",
            email.kind,
            email.dj_name,
            attempts.made(),
            attempts.max()
        );
        tokio::time::sleep(delay).await;
    }
}

/// `90 s` → "2 minutes": what the message promises, rounded up.
fn minutes(ttl: Duration) -> String {
    match ttl.as_secs().div_ceil(60) {
        1 => "1 minute".to_owned(),
        n => format!("{n} minutes"),
    }
}

/// A value for a double-quoted HTML attribute. Only `&` and `"` matter there; minijinja's
/// escaper would also turn every `/` of a URL into `&#x2f;`, which is valid but looks like
/// the obfuscation spam filters score against.
fn attribute(value: &str) -> String {
    value.replace('&', "&amp;").replace('"', "&quot;")
}

/// Plain text and HTML of the reset message.
fn reset_body(dj_name: &str, link: &str, ttl: Duration) -> (String, String) {
    let expiry = minutes(ttl);
    let text = format!(
        "Hi {dj_name},\n\n\
         someone (hopefully you) asked to reset the password of your motherstream account.\n\
         Open this link to choose a new one:\n\n\
         {link}\n\n\
         The link works once and expires in {expiry}. If you did not ask for it, ignore this\n\
         email: your password stays as it is.\n"
    );
    let (name, link) = (HtmlEscape(dj_name), attribute(link));
    let html = format!(
        "<p>Hi {name},</p>\n\
         <p>someone (hopefully you) asked to reset the password of your motherstream account.</p>\n\
         <p><a href=\"{link}\">Choose a new password</a></p>\n\
         <p>The link works once and expires in {expiry}. If you did not ask for it, ignore this email: \
         your password stays as it is.</p>\n"
    );
    (text, html)
}

/// Plain text and HTML of the welcome message. The stream key is a secret and stays out of
/// email: the message says where to find it.
fn welcome_body(dj_name: &str, public_url: Option<&str>) -> (String, String) {
    let (where_text, where_html) = match public_url {
        Some(url) => {
            let link = format!("{url}/dashboard");
            let html = format!("<a href=\"{}\">open your dashboard</a>", attribute(&link));
            (link, html)
        }
        None => {
            ("Log in on the site and open Dashboard.".to_owned(), "log in on the site and open Dashboard".to_owned())
        }
    };
    let text = format!(
        "Hi {dj_name},\n\n\
         your motherstream account is ready. Your dashboard shows the server URL and your\n\
         stream key with copy buttons, and how to set up OBS:\n\n\
         {where_text}\n\n\
         Keep the stream key to yourself: anyone who has it can stream as you. If it leaks,\n\
         make a new one in Settings.\n\n\
         See you on air!\n"
    );
    let html = format!(
        "<p>Hi {},</p>\n\
         <p>your motherstream account is ready. Your dashboard shows the server URL and your stream key with \
         copy buttons, and how to set up OBS: {where_html}.</p>\n\
         <p>Keep the stream key to yourself: anyone who has it can stream as you. If it leaks, make a new one in \
         Settings.</p>\n\
         <p>See you on air!</p>\n",
        HtmlEscape(dj_name)
    );
    (text, html)
}

/// Plain text and HTML of the up-next message.
fn up_next_body(dj_name: &str, on_air_in: Duration, advice: &[Advice], public_url: Option<&str>) -> (String, String) {
    // The lead's time left, read at a tick: 4:59.8 reads as "5 minutes".
    let when = minutes(on_air_in);
    let mut text = format!("Hi {dj_name},\n\nyou're up next: on air in about {when}. Keep streaming from OBS.\n");
    let mut html = format!(
        "<p>Hi {},</p>\n<p>you're up next: on air in about {when}. Keep streaming from OBS.</p>\n",
        HtmlEscape(dj_name)
    );
    if !advice.is_empty() {
        text.push_str("\nYour stream needs a look before then:\n");
        html.push_str("<p>Your stream needs a look before then:</p>\n<ul>\n");
        for a in advice {
            text.push_str(&format!("- {}: {}\n", a.problem, a.fix));
            html.push_str(&format!("<li><strong>{}</strong>: {}</li>\n", HtmlEscape(&a.problem), HtmlEscape(&a.fix)));
        }
        html.push_str("</ul>\n");
    }
    if let Some(url) = public_url {
        let link = format!("{url}/dashboard");
        text.push_str(&format!("\nYour dashboard: {link}\n"));
        html.push_str(&format!("<p><a href=\"{}\">Open your dashboard</a></p>\n", attribute(&link)));
    }
    (text, html)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    fn settings(host: Option<&'static str>, from: Option<&'static str>) -> SmtpSettings<'static> {
        SmtpSettings { host, from, ..Default::default() }
    }

    #[test]
    fn smtp_is_off_without_a_host_and_defaults_to_starttls_on_587() {
        assert_eq!(SmtpConfig::parse(SmtpSettings::default()).unwrap(), None);
        let c = SmtpConfig::parse(settings(Some("smtp.example.org"), Some("radio <noreply@example.org>")))
            .unwrap()
            .unwrap();
        assert_eq!((c.host.as_str(), c.port, c.tls), ("smtp.example.org", 587, SmtpTls::StartTls));
        assert_eq!(c.from.email.to_string(), "noreply@example.org");
        assert_eq!(c.credentials, None);
        let tls = SmtpSettings { tls: Some("tls"), ..settings(Some("smtp.example.org"), Some("a@example.org")) };
        assert_eq!(SmtpConfig::parse(tls).unwrap().unwrap().port, 465, "implicit TLS has its own port");
    }

    #[test]
    fn bad_smtp_settings_name_the_setting_and_never_show_the_password() {
        let base = settings(Some("smtp.example.org"), Some("a@example.org"));
        let cases = [
            (SmtpSettings { host: None, ..base }, "--smtp-host"),
            (SmtpSettings { host: Some("smtp://smtp.example.org"), ..base }, "--smtp-host"),
            (SmtpSettings { from: None, ..base }, "--smtp-from"),
            (SmtpSettings { from: Some("not an address"), ..base }, "--smtp-from"),
            (SmtpSettings { tls: Some("ssl"), ..base }, "--smtp-tls"),
            (SmtpSettings { port: Some(0), ..base }, "--smtp-port"),
            (SmtpSettings { username: Some("me"), ..base }, "--smtp-password"),
            (SmtpSettings { password: Some("hunter22"), ..base }, "--smtp-username"),
        ];
        for (raw, setting) in cases {
            let e = SmtpConfig::parse(raw).unwrap_err();
            assert_eq!(e.setting, setting, "{e}");
            assert!(!e.to_string().contains("hunter22"), "{e}");
        }
        let with_login = SmtpSettings { username: Some("me"), password: Some("hunter22"), ..base };
        let c = SmtpConfig::parse(with_login).unwrap().unwrap();
        assert_eq!(c.credentials, Some(("me".to_owned(), Secret::from("hunter22"))));
        assert!(!format!("{c:?}").contains("hunter22"), "{c:?}");
    }

    #[test]
    fn the_reset_message_has_the_link_and_its_expiry_and_escapes_html() {
        let link = "https://radio.example.org/password-reset/abc123";
        let (text, html) = reset_body("<b>Ada</b>", link, Duration::from_secs(3600));
        assert!(text.contains(&format!("\n{link}\n")), "{text}");
        assert!(text.contains("expires in 60 minutes"), "{text}");
        assert!(text.contains("ignore"), "{text}");
        assert!(html.contains(&format!("href=\"{link}\"")), "{html}");
        assert!(html.contains("&lt;b&gt;Ada&lt;") && !html.contains("<b>Ada"), "{html}");
        assert_eq!(attribute("https://x.org/?a=1&b=\"2\""), "https://x.org/?a=1&amp;b=&quot;2&quot;");
        assert_eq!(minutes(Duration::from_secs(1)), "1 minute");
        assert_eq!(minutes(Duration::from_secs(90)), "2 minutes");
    }

    #[test]
    fn the_welcome_message_links_the_dashboard_but_never_holds_a_key() {
        let (text, html) = welcome_body("Ada", Some("https://radio.example.org"));
        assert!(text.contains("https://radio.example.org/dashboard"), "{text}");
        assert!(html.contains("href=\"https://radio.example.org/dashboard\""), "{html}");
        assert!(text.contains("stream key"), "{text}");
        let (text, _) = welcome_body("Ada", None);
        assert!(text.contains("Log in on the site"), "{text}");
    }

    fn user() -> User {
        User {
            id: 1,
            dj_name: "Ada".into(),
            email: "ada@example.org".into(),
            password_hash: String::new(),
            timezone: "UTC".into(),
            stream_key: "k".into(),
            is_active: true,
            is_admin: false,
            profile_picture: None,
            created_at: 0,
            token_version: 0,
            up_next_email: false,
            discord_user_id: None,
        }
    }

    #[test]
    fn the_up_next_message_says_when_and_what_to_fix() {
        let advice = [Advice {
            check: "keyframe_interval",
            problem: "Keyframe interval is 8 s".into(),
            fix: "OBS Settings → Output → Keyframe Interval → 2 <Advanced>".into(),
        }];
        let (text, html) = up_next_body("Ada", Duration::from_millis(299_800), &advice, Some("https://r.example"));
        assert!(text.contains("on air in about 5 minutes"), "{text}");
        assert!(text.contains("- Keyframe interval is 8 s: OBS Settings → Output → Keyframe Interval → 2"), "{text}");
        assert!(text.contains("https://r.example/dashboard"), "{text}");
        assert!(html.contains("&lt;Advanced&gt;") && !html.contains("<Advanced>"), "{html}");
        let (text, html) = up_next_body("Ada", Duration::from_secs(60), &[], None);
        assert!(text.contains("on air in about 1 minute.") && !text.contains("needs a look"), "{text}");
        assert!(!html.contains("<ul>"), "{html}");
    }

    /// A mail server that answers every connection with `greeting` and hangs up; returns
    /// its config and the count of connections.
    async fn hanging_up_server(greeting: &'static str) -> (SmtpConfig, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = socket.write_all(greeting.as_bytes()).await;
            }
        });
        let config = SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::None,
            credentials: None,
            from: "motherstream <noreply@example.org>".parse().unwrap(),
        };
        (config, connections)
    }

    const FAST: Retry =
        Retry { attempts: 3, first_retry: Duration::from_millis(10), attempt_timeout: Duration::from_secs(5) };

    /// Sends one reset email and waits for the sender to finish with it (shutdown drains
    /// the outbox, then the task ends).
    async fn send_one(config: &SmtpConfig) {
        let (stop, shutdown) = watch::channel(false);
        let settings = MailSettings { public_url: None, reset_ttl: Duration::from_secs(60) };
        let (mailer, task) = Mailer::spawn_with(config, settings, shutdown, FAST).unwrap();
        mailer.password_reset(&user(), "http://x/password-reset/t");
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap();
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_email_not_the_new_one() {
        let outbox = Arc::new(Outbox::new(OUTBOX_CAPACITY));
        let from: Mailbox = "motherstream <noreply@example.org>".parse().unwrap();
        let smtp = Smtp { from, outbox: outbox.clone() };
        let settings = MailSettings { public_url: None, reset_ttl: Duration::from_secs(60) };
        let mailer = Mailer { smtp: Some(smtp), settings };
        for i in 0..=OUTBOX_CAPACITY {
            mailer.password_reset(&User { dj_name: format!("dj{i}"), ..user() }, "http://x/password-reset/t");
        }
        assert_eq!(outbox.dropped(), 1);
        assert_eq!(outbox.try_pop().map(|o| o.dj_name), Some("dj1".to_owned()), "dj0's went");
        let newest = std::iter::from_fn(|| outbox.try_pop()).last().map(|o| o.dj_name);
        assert_eq!(newest, Some(format!("dj{OUTBOX_CAPACITY}")));
    }

    #[tokio::test]
    async fn transient_failures_are_retried_up_to_the_limit() {
        let (config, connections) = hanging_up_server("421 try later\r\n").await;
        send_one(&config).await;
        assert_eq!(connections.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_permanent_refusal_is_not_retried() {
        let (config, connections) = hanging_up_server("554 no mail for you\r\n").await;
        send_one(&config).await;
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }
}
