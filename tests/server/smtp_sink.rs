//! A tiny real SMTP server for the tests: enough of RFC 5321 for lettre without TLS or
//! login (greeting, EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT). It keeps every message
//! it receives, envelope and raw data, and decodes their MIME parts for assertions.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::PATIENCE;

/// Longest command or data line read; longer ones end the session (lettre's never are).
const MAX_LINE: u64 = 4096;
/// Largest message kept; a bigger one ends the session.
const MAX_MESSAGE: usize = 1024 * 1024;

/// One message as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// Headers and body, CRLF line endings, dot-stuffing undone.
    pub data: String,
}

pub struct SmtpSink {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the SMTP sink");
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(session(socket, store.clone()));
            }
        });
        Self { port, received }
    }

    /// The server settings (TOML) that send mail here.
    pub fn config(&self) -> String {
        format!(
            "smtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsmtp_tls = \"none\"\n\
             smtp_from = \"motherstream <noreply@example.org>\"\n",
            self.port
        )
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `found` picks something out of the messages received so far.
    async fn wait<T>(&self, what: &str, found: impl Fn(Vec<Received>) -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(result) = found(self.received()) {
                return result;
            }
            assert!(Instant::now() < deadline, "no {what}; received: {:#?}", self.received());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for the first message to `address`.
    pub async fn wait_for(&self, address: &str) -> Received {
        let to = |m: &Received| m.rcpt_to.iter().any(|r| r == address);
        self.wait(&format!("email to {address}"), |all| all.into_iter().find(to)).await
    }

    /// Waits until `n` messages have arrived; returns them all.
    pub async fn wait_for_count(&self, n: usize) -> Vec<Received> {
        self.wait(&format!("{n} emails"), |all| (all.len() >= n).then_some(all)).await
    }
}

async fn session(socket: TcpStream, store: Arc<Mutex<Vec<Received>>>) {
    let (read, mut write) = socket.into_split();
    let mut read = BufReader::new(read);
    let mut mail_from = String::new();
    let mut rcpt_to = Vec::new();
    if write.write_all(b"220 sink ESMTP ready\r\n").await.is_err() {
        return;
    }
    while let Some(line) = read_line(&mut read).await {
        let command = line.to_ascii_uppercase();
        let reply: &[u8] = if command.starts_with("EHLO") || command.starts_with("HELO") {
            b"250 sink\r\n"
        } else if command.starts_with("MAIL FROM:") {
            mail_from = address(&line["MAIL FROM:".len()..]);
            rcpt_to.clear();
            b"250 OK\r\n"
        } else if command.starts_with("RCPT TO:") {
            rcpt_to.push(address(&line["RCPT TO:".len()..]));
            b"250 OK\r\n"
        } else if command == "DATA" {
            if write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await.is_err() {
                return;
            }
            let Some(data) = read_data(&mut read).await else { return };
            let mail = Received { mail_from: mail_from.clone(), rcpt_to: std::mem::take(&mut rcpt_to), data };
            store.lock().unwrap().push(mail);
            b"250 OK queued\r\n"
        } else if command == "RSET" {
            mail_from.clear();
            rcpt_to.clear();
            b"250 OK\r\n"
        } else if command == "NOOP" {
            b"250 OK\r\n"
        } else if command == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"502 command not implemented\r\n"
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// One line without its CRLF; `None` at the end of the connection or for a line too long.
async fn read_line(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<String> {
    let mut line = String::new();
    let n = (&mut *read).take(MAX_LINE).read_line(&mut line).await.ok()?;
    if n == 0 || !line.ends_with('\n') {
        return None;
    }
    Some(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// The message after DATA, up to the line with a single dot.
async fn read_data(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<String> {
    let mut data = String::new();
    loop {
        let line = read_line(read).await?;
        if line == "." {
            return Some(data);
        }
        data.push_str(line.strip_prefix('.').unwrap_or(&line));
        data.push_str("\r\n");
        if data.len() > MAX_MESSAGE {
            return None;
        }
    }
}

/// `<ada@example.org> SIZE=123` → `ada@example.org`.
fn address(arg: &str) -> String {
    let arg = arg.trim();
    match (arg.find('<'), arg.find('>')) {
        (Some(start), Some(end)) if start < end => arg[start + 1..end].to_owned(),
        _ => arg.split_whitespace().next().unwrap_or_default().to_owned(),
    }
}

impl Received {
    /// A header of the message (folded lines joined), e.g. `Subject`.
    pub fn header(&self, name: &str) -> Option<String> {
        header(head(&self.data), name)
    }

    /// The decoded body of the part whose Content-Type starts with `content_type`
    /// (`text/plain`, `text/html`), in a multipart or single-part message.
    pub fn part(&self, content_type: &str) -> String {
        let (head, body) = self.data.split_once("\r\n\r\n").unwrap_or((&self.data, ""));
        let top_type = header(head, "Content-Type").unwrap_or_default();
        let parts: Vec<&str> = match top_type.split_once("boundary=") {
            Some((_, boundary)) => {
                let boundary = boundary.trim_matches('"');
                body.split(&format!("--{boundary}")).skip(1).collect()
            }
            None => vec![self.data.as_str()],
        };
        for part in parts {
            let part = part.trim_start_matches("\r\n");
            let (head, body) = part.split_once("\r\n\r\n").unwrap_or((part, ""));
            if header(head, "Content-Type").is_some_and(|t| t.starts_with(content_type)) {
                return decode(header(head, "Content-Transfer-Encoding").as_deref(), body);
            }
        }
        panic!("no {content_type} part in:\n{}", self.data);
    }
}

fn head(data: &str) -> &str {
    data.split_once("\r\n\r\n").map_or(data, |(head, _)| head)
}

fn header(head: &str, name: &str) -> Option<String> {
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
    })
}

fn decode(encoding: Option<&str>, body: &str) -> String {
    match encoding.map(str::to_ascii_lowercase).as_deref() {
        Some("quoted-printable") => {
            let joined = body.replace("=\r\n", "");
            let bytes = joined.as_bytes();
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                match (bytes[i], bytes.get(i + 1..i + 3)) {
                    (b'=', Some(hex)) => {
                        let hex = std::str::from_utf8(hex).unwrap();
                        out.push(u8::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("bad QP escape ={hex}")));
                        i += 3;
                    }
                    (byte, _) => {
                        out.push(byte);
                        i += 1;
                    }
                }
            }
            String::from_utf8(out).unwrap()
        }
        Some("base64") => {
            let compact: String = body.split_whitespace().collect();
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(compact).unwrap()).unwrap()
        }
        _ => body.to_owned(),
    }
}
