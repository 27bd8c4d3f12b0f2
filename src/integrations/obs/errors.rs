//! Telling a refusal (OBS answered with an error: retry later) from a lost connection
//! (reconnect), and error texts short enough for a log line.

use obws::client::HandshakeError;

use crate::integrations::error_chain;

/// Longest error text kept for a log line (OBS's comments and socket errors are short; this
/// only guards against a hostile peer).
const MAX_ERROR_LEN: usize = 512;
/// Close code with which obs-websocket rejects a wrong or missing password.
const CLOSE_AUTHENTICATION_FAILED: u16 = 4009;

/// Why a request did not work.
pub(super) enum Failure {
    /// OBS answered with an error (no such scene, …): the connection is fine.
    Refused(String),
    /// The connection is broken, or OBS did not answer in time: reconnect.
    Connection(String),
}

pub(super) fn classify(error: obws::error::Error) -> Failure {
    match error {
        obws::error::Error::Api { code, message } => {
            let why = match message {
                Some(message) => format!("{code:?}: {message}"),
                None => format!("{code:?}"),
            };
            Failure::Refused(truncate(why))
        }
        other => Failure::Connection(chain(&other)),
    }
}

pub(super) fn describe_connect_error(error: &obws::error::Error) -> String {
    if let obws::error::Error::Handshake(HandshakeError::ConnectionClosed(Some(details))) = error
        && u16::from(details.code) == CLOSE_AUTHENTICATION_FAILED
    {
        return truncate(format!(
            "OBS refused the password ({}): set OBS_PASSWORD (or obs.password) to the one in OBS → Tools → \
                 WebSocket Server Settings",
            details.reason
        ));
    }
    chain(error)
}

/// The error and its causes on one line, shortened: obws's own messages are generic
/// ("failed to connect"), the cause says what happened ("Connection refused").
fn chain(error: &dyn std::error::Error) -> String {
    truncate(error_chain(error))
}

fn truncate(mut text: String) -> String {
    if text.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let cut = truncate("é".repeat(MAX_ERROR_LEN));
        assert!(cut.len() <= MAX_ERROR_LEN + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }
}
