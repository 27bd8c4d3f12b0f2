//! What is posted: queue notices and destination outages turned into messages, with
//! outside text (DJ names, error texts) made unable to format, link or mention.

use std::time::Duration;

use serde::Serialize;

use crate::channel::health::Advice;
use crate::integrations::destination::{DestinationStatus, State};
use crate::queue::engine::Notice;

/// Name the messages are posted under.
const USERNAME: &str = "motherstream";
/// Discord refuses message content longer than this (in characters).
const MAX_CONTENT_CHARS: usize = 2000;
/// Longest destination error quoted in a message: the rest is in the API status.
const MAX_ERROR_CHARS: usize = 300;

/// Discord user ids (snowflakes) are 17 to 20 digits.
const SNOWFLAKE_DIGITS: std::ops::RangeInclusive<usize> = 17..=20;

/// A message ready for the webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub content: String,
    /// The one user the message may ping (a valid snowflake): the DJ who is up next.
    pub mention: Option<String>,
}

#[derive(Serialize)]
struct Payload<'a> {
    content: &'a str,
    username: &'a str,
    allowed_mentions: AllowedMentions<'a>,
}

/// `{"parse": []}`: whatever the text says, nobody is pinged but the `users` listed.
#[derive(Serialize)]
struct AllowedMentions<'a> {
    parse: [&'static str; 0],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    users: &'a [String],
}

/// Whether `id` is a Discord user id: 17 to 20 ASCII digits.
pub fn is_discord_user_id(id: &str) -> bool {
    SNOWFLAKE_DIGITS.contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}

impl Message {
    fn new(content: String) -> Self {
        Self { content: truncate_chars(&content, MAX_CONTENT_CHARS), mention: None }
    }

    /// The JSON body sent to the webhook.
    pub fn to_json(&self) -> Vec<u8> {
        let users = self.mention.as_slice();
        let payload = Payload {
            content: &self.content,
            username: USERNAME,
            allowed_mentions: AllowedMentions { parse: [], users },
        };
        // Serialising plain strings into a Vec cannot fail; fall back to an empty message
        // rather than panic if that ever changes.
        serde_json::to_vec(&payload).unwrap_or_default()
    }
}

/// The message for a queue notice, or `None` for the ones not worth a ping (queue moves,
/// timer and settings changes, grace periods, bookings: the set-level events cover them).
pub fn format_notice(notice: &Notice) -> Option<Message> {
    let content = match notice {
        Notice::OnAir { dj } => format!("🎧 {} is live", escape(&dj.dj_name)),
        Notice::Resumed { dj } => format!("🎧 {} is back on air", escape(&dj.dj_name)),
        Notice::SetEnded { dj, reason } => {
            format!("⏹️ {}'s set ended ({})", escape(&dj.dj_name), escape(&reason.to_string()))
        }
        Notice::TimeWarning { dj, remaining } => {
            format!("⏳ {} has {} left", escape(&dj.dj_name), human_duration(*remaining))
        }
        Notice::Stalled { dj } => format!("⚠️ {}'s stream stalled", escape(&dj.dj_name)),
        Notice::UpNext { dj, on_air_in } => up_next_text(&dj.dj_name, *on_air_in),
        Notice::HandedOver { to, set, .. } => {
            format!("🎛️ {} takes over ({})", escape(&to.dj_name), escape(set))
        }
        Notice::MemberAdded { dj, set } => format!("🤝 {} joins the set: {}", escape(&dj.dj_name), escape(set)),
        Notice::Queued { .. }
        | Notice::MemberLeft { .. }
        | Notice::StandingBy { .. }
        | Notice::LeftQueue { .. }
        | Notice::GraceStarted { .. }
        | Notice::Moved { .. }
        | Notice::TimerChanged { .. }
        | Notice::SettingsChanged { .. }
        | Notice::BookingStarted { .. }
        | Notice::BookingDropped { .. } => return None,
    };
    Some(Message::new(content))
}

fn up_next_text(dj_name: &str, on_air_in: Duration) -> String {
    // The lead's time left, read at a tick: 4:59.8 reads as "5 minutes".
    let minutes = on_air_in.as_secs().div_ceil(60).max(1);
    format!("🔜 {} is up next, on air in about {}", escape(dj_name), human_duration(Duration::from_secs(minutes * 60)))
}

/// The up-next message for a DJ who linked their Discord user id (`mention`, pinged and
/// only them) and whose stream has problems (`advice`, said while there is time to fix
/// them). An id that is not a snowflake is left out rather than trusted.
pub fn format_up_next(dj_name: &str, on_air_in: Duration, mention: Option<&str>, advice: &[Advice]) -> Message {
    let mention = mention.filter(|id| is_discord_user_id(id)).map(str::to_owned);
    let mut content = up_next_text(dj_name, on_air_in);
    if let Some(id) = &mention {
        content = format!("<@{id}> {content}");
    }
    if !advice.is_empty() {
        let checks: Vec<String> =
            advice.iter().map(|a| format!("{}: {}", escape(&a.problem), escape(&a.fix))).collect();
        content.push_str(&format!(". Check your stream: {}", checks.join("; ")));
    }
    Message { mention, ..Message::new(content) }
}

/// `5 minutes`, `1 minute`, `90 seconds`: whole minutes when exact, else seconds.
fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if secs >= 60 && secs.is_multiple_of(60) { plural(secs / 60, "minute") } else { plural(secs, "second") }
}

/// Makes outside text (DJ names, error messages) inert in a Discord message: markdown
/// characters are backslash-escaped (Discord drops a backslash before any punctuation), a
/// zero-width space after `@` breaks `@everyone`/`@here`, and line breaks and other
/// control characters become spaces so the text cannot start a heading or a quote.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '<' | '#' | '-' | '[' | ']' | '(' | ')' | ':' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '@' => out.push_str("@\u{200B}"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `text`, with `…` when something was cut.
pub(super) fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((cut, _)) if text[cut..].chars().nth(1).is_some() => format!("{}…", &text[..cut]),
        _ => text.to_owned(),
    }
}

/// What the previous polls saw of one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Not publishing and never was since the program last went idle: nothing to report.
    NotLive,
    /// Live; `reconnects` as of the last poll, to notice a drop between two polls.
    Live { reconnects: u64 },
    /// Was live, then failed: reported as down, waiting to report it up again.
    Down,
}

/// Turns successive status polls into down/up messages.
///
/// Only a destination that was live and then fails is "down": one that has not managed to
/// connect yet is still starting (its errors are in the API status), and one that went idle
/// simply follows the program. A destination that dropped and came back between two polls
/// is caught by its reconnect counter.
#[derive(Debug, Default)]
pub struct DestinationWatcher {
    seen: Vec<(String, Seen)>,
}

impl DestinationWatcher {
    /// Compares `statuses` with the previous call and returns the messages to send.
    pub fn observe(&mut self, statuses: &[DestinationStatus]) -> Vec<Message> {
        let mut messages = Vec::new();
        let mut next = Vec::with_capacity(statuses.len());
        for status in statuses {
            let before = self.seen.iter().find(|(name, _)| *name == status.name).map_or(Seen::NotLive, |(_, s)| *s);
            let name = escape(&status.name);
            let error = || {
                status
                    .last_error
                    .as_deref()
                    .map_or_else(|| "no error recorded".to_owned(), |e| escape(&truncate_chars(e, MAX_ERROR_CHARS)))
            };
            let after = match (before, status.state) {
                (Seen::Live { reconnects }, State::Live) => {
                    if status.reconnects > reconnects {
                        messages
                            .push(Message::new(format!("📡 Destination {name} dropped and reconnected: {}", error())));
                    }
                    Seen::Live { reconnects: status.reconnects }
                }
                (Seen::Down, State::Live) => {
                    messages.push(Message::new(format!("✅ Destination {name} is back up")));
                    Seen::Live { reconnects: status.reconnects }
                }
                (Seen::NotLive, State::Live) => Seen::Live { reconnects: status.reconnects },
                (Seen::Live { .. }, State::Backoff | State::Connecting) => {
                    messages.push(Message::new(format!("🔴 Destination {name} is down: {}", error())));
                    Seen::Down
                }
                (Seen::Down, State::Backoff | State::Connecting) => Seen::Down,
                // Idle: the program ended; Stopped: shutting down. Neither is an outage, and
                // the next time it goes live is just the program starting again.
                (_, State::Idle | State::Stopped) => Seen::NotLive,
                (Seen::NotLive, State::Backoff | State::Connecting) => Seen::NotLive,
            };
            next.push((status.name.clone(), after));
        }
        self.seen = next;
        messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::engine::{Dj, EndReason};

    fn dj(name: &str) -> Dj {
        Dj { user_id: crate::ids::UserId(1), dj_name: name.to_owned() }
    }

    fn status(name: &str, state: State, reconnects: u64, last_error: Option<&str>) -> DestinationStatus {
        let last_error = last_error.map(str::to_owned);
        DestinationStatus { name: name.to_owned(), state, reconnects, last_error, ..Default::default() }
    }

    #[test]
    fn notice_messages() {
        let text = |n: Notice| format_notice(&n).map(|m| m.content);
        assert_eq!(text(Notice::OnAir { dj: dj("DJ Alice") }).unwrap(), "🎧 DJ Alice is live");
        assert_eq!(
            text(Notice::SetEnded { dj: dj("Bob"), reason: EndReason::SlotElapsed }).unwrap(),
            "⏹️ Bob's set ended (time slot elapsed)"
        );
        assert_eq!(
            text(Notice::TimeWarning { dj: dj("Bob"), remaining: Duration::from_secs(300) }).unwrap(),
            "⏳ Bob has 5 minutes left"
        );
        assert_eq!(
            text(Notice::TimeWarning { dj: dj("Bob"), remaining: Duration::from_secs(60) }).unwrap(),
            "⏳ Bob has 1 minute left"
        );
        assert_eq!(
            text(Notice::TimeWarning { dj: dj("Bob"), remaining: Duration::from_secs(45) }).unwrap(),
            "⏳ Bob has 45 seconds left"
        );
        assert_eq!(text(Notice::Stalled { dj: dj("Bob") }).unwrap(), "⚠️ Bob's stream stalled");
        assert_eq!(
            text(Notice::UpNext { dj: dj("Carol"), on_air_in: Duration::from_millis(299_800) }).unwrap(),
            "🔜 Carol is up next, on air in about 5 minutes"
        );
        assert_eq!(text(Notice::Resumed { dj: dj("Bob") }).unwrap(), "🎧 Bob is back on air");
        assert_eq!(text(Notice::Queued { dj: dj("Bob"), position: 2 }), None);
        assert_eq!(
            text(Notice::HandedOver {
                from: dj("Alice"),
                to: dj("Bob"),
                set: "Alice b2b Bob".to_owned(),
                automatic: false
            })
            .unwrap(),
            "🎛️ Bob takes over (Alice b2b Bob)"
        );
        assert_eq!(
            text(Notice::MemberAdded { dj: dj("Bob"), set: "Alice b2b Bob".to_owned() }).unwrap(),
            "🤝 Bob joins the set: Alice b2b Bob"
        );
        assert_eq!(text(Notice::SettingsChanged { swap_interval: Duration::from_secs(60), block_enabled: true }), None);
    }

    #[test]
    fn names_cannot_format_or_mention() {
        let message = format_notice(&Notice::OnAir { dj: dj("@everyone **big** <@123> [x](http://e)\n# hi") }).unwrap();
        assert!(!message.content.contains("@everyone"), "{}", message.content);
        assert!(!message.content.contains("**"), "{}", message.content);
        assert!(!message.content.contains('\n'));
        assert_eq!(escape("a_b*c"), "a\\_b\\*c");
        assert_eq!(escape("x\\y"), "x\\\\y");
        let json: serde_json::Value = serde_json::from_slice(&message.to_json()).unwrap();
        assert_eq!(json["username"], USERNAME);
        assert_eq!(json["allowed_mentions"]["parse"], serde_json::json!([]));
        assert_eq!(json["content"], message.content.as_str());
    }

    #[test]
    fn the_up_next_message_mentions_only_the_linked_dj_and_says_what_to_fix() {
        let advice = [Advice {
            check: "keyframe_interval",
            problem: "Keyframe interval is 8 s".into(),
            fix: "OBS Settings → Output → Keyframe Interval → 2".into(),
        }];
        let id = "123456789012345678";
        let message = format_up_next("Carol", Duration::from_secs(300), Some(id), &advice);
        assert!(message.content.starts_with("<@123456789012345678> 🔜 Carol is up next"), "{}", message.content);
        assert!(message.content.contains("Keyframe interval is 8 s"), "{}", message.content);
        let json: serde_json::Value = serde_json::from_slice(&message.to_json()).unwrap();
        assert_eq!(json["allowed_mentions"], serde_json::json!({"parse": [], "users": [id]}));

        let plain = format_up_next("Carol", Duration::from_secs(300), None, &[]);
        assert_eq!(plain.content, "🔜 Carol is up next, on air in about 5 minutes");
        let json: serde_json::Value = serde_json::from_slice(&plain.to_json()).unwrap();
        assert_eq!(json["allowed_mentions"], serde_json::json!({"parse": []}));
        let forged = format_up_next("Carol", Duration::from_secs(300), Some("1> @everyone"), &[]);
        assert_eq!(forged.mention, None);
        assert!(!forged.content.contains("<@"), "{}", forged.content);
    }

    #[test]
    fn discord_user_ids_are_17_to_20_digits() {
        assert!(is_discord_user_id("12345678901234567"));
        assert!(is_discord_user_id("12345678901234567890"));
        assert!(!is_discord_user_id("1234567890123456"));
        assert!(!is_discord_user_id("123456789012345678901"));
        assert!(!is_discord_user_id("12345678901234567a"));
        assert!(!is_discord_user_id("+1234567890123456"));
    }

    #[test]
    fn long_content_is_cut() {
        let long = "x".repeat(5000);
        let message = Message::new(long);
        assert_eq!(message.content.chars().count(), MAX_CONTENT_CHARS);
        assert!(message.content.ends_with('…'));
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abcd", 3), "ab…");
        assert_eq!(truncate_chars("ééé", 3), "ééé");
    }

    #[test]
    fn destination_transitions() {
        let mut watcher = DestinationWatcher::default();
        let contents = |w: &mut DestinationWatcher, s: &[DestinationStatus]| -> Vec<String> {
            w.observe(s).into_iter().map(|m| m.content).collect()
        };
        // Starting up and failing before ever being live: not an outage.
        assert!(contents(&mut watcher, &[status("yt", State::Connecting, 0, None)]).is_empty());
        assert!(contents(&mut watcher, &[status("yt", State::Backoff, 0, Some("refused"))]).is_empty());
        assert!(contents(&mut watcher, &[status("yt", State::Live, 1, Some("refused"))]).is_empty());
        let down = contents(&mut watcher, &[status("yt", State::Backoff, 1, Some("reset by peer"))]);
        assert_eq!(down, ["🔴 Destination yt is down: reset by peer"]);
        assert!(contents(&mut watcher, &[status("yt", State::Connecting, 2, Some("reset by peer"))]).is_empty());
        assert_eq!(contents(&mut watcher, &[status("yt", State::Live, 2, None)]), ["✅ Destination yt is back up"]);
        // A drop and reconnect between two polls.
        let blip = contents(&mut watcher, &[status("yt", State::Live, 3, Some("write timed out"))]);
        assert_eq!(blip, ["📡 Destination yt dropped and reconnected: write timed out"]);
        // The program ending is not an outage, nor is the next start.
        assert!(contents(&mut watcher, &[status("yt", State::Idle, 3, None)]).is_empty());
        assert!(contents(&mut watcher, &[status("yt", State::Connecting, 3, None)]).is_empty());
        assert!(contents(&mut watcher, &[status("yt", State::Live, 3, None)]).is_empty());
        // Several destinations are independent.
        let both = [status("yt", State::Live, 3, None), status("tw_1", State::Backoff, 0, Some("x"))];
        assert!(contents(&mut watcher, &both).is_empty());
    }
}
