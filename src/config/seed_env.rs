//! The original motherstream's environment names, so an operator can switch by keeping their
//! `.envrc`: the SMTP names are read as aliases of ours, and every other name we no longer
//! read earns one warning line at start-up saying what replaced it (silently ignoring a
//! setting someone relied on is how a migration goes wrong unnoticed).
//!
//! The names we still read under the same spelling (`DB_*`, `OBS_*`, `JWT_SECRET`,
//! `SENTRY_DSN`, `DISCORD_WEBHOOK_URL`, `TOGGLE_DISCORD_NOTIFICATIONS`, `RECORD_DIR`,
//! `RECORD_STREAM`) are handled where the rest of the configuration is. `docs/migrating.md`
//! maps all of them.

use std::collections::BTreeMap;

use super::{ConfigError, Settings};

/// Environment variables by name; only those with a UTF-8 name and value.
pub type Env = BTreeMap<String, String>;

pub fn from_process() -> Env {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
}

/// The original's variables that nothing here reads, and what to do instead.
const RETIRED: &[(&str, &str)] = &[
    (
        "HOST",
        "motherstream is the RTMP server now; set MOTHERSTREAM_RTMP_LISTEN (where it listens) and \
         MOTHERSTREAM_PUBLIC_RTMP_URL (the address DJs are shown)",
    ),
    ("NGINX_RTMP_PORT", "no nginx-rtmp any more; set MOTHERSTREAM_RTMP_LISTEN (e.g. 0.0.0.0:1935)"),
    ("RTMP_HOST", "no separate RTMP server any more; set MOTHERSTREAM_RTMP_LISTEN"),
    ("RTMP_PORT", "no separate RTMP server any more; set MOTHERSTREAM_RTMP_LISTEN"),
    ("PUBLIC_RTMP_PORT", "set MOTHERSTREAM_PUBLIC_RTMP_URL (e.g. rtmp://radio.example.org:1935/live)"),
    ("RTMP_RECORD_HOST", "sets are recorded in-process; set RECORD_DIR and RECORD_STREAM"),
    ("RTMP_RECORD_PORT", "sets are recorded in-process; set RECORD_DIR and RECORD_STREAM"),
    ("ORYX_HOST", "no SRS/Oryx any more; platforms are MOTHERSTREAM_DESTINATIONS"),
    ("ORYX_PORT", "no SRS/Oryx any more; platforms are MOTHERSTREAM_DESTINATIONS"),
    ("SRS_AUTHORIZATION_BEARER", "no SRS callbacks any more; stream keys are checked in-process"),
    ("STAT_PORT", "statistics are GET /api/v1/status and GET /metrics on MOTHERSTREAM_HTTP_LISTEN"),
    ("DEBUG_PORT", "there is no debugpy; set MOTHERSTREAM_LOG (e.g. debug) for more detail"),
    ("SSH_PORT", "it only served the original's deploy scripts; see docs/deployment.md"),
    ("VITE_API_URL", "the web UI is served by the same process; set MOTHERSTREAM_PUBLIC_URL for links in emails"),
    ("DOMAIN", "set MOTHERSTREAM_PUBLIC_URL (e.g. https://radio.example.org)"),
    ("ALLOWED_ORIGINS", "the web UI is served from the same origin as the API, so there is no CORS to configure"),
    (
        "SHAZAMING",
        "song recognition is the [recognition] section of motherstream.toml (AudD); DJs can still announce tracks",
    ),
    (
        "SHAZAM_RTMP_URL",
        "song recognition ([recognition] in motherstream.toml) listens to the program itself, no RTMP URL needed",
    ),
];

/// The original's SMTP names and ours, which win when both are set.
const SMTP_ALIASES: &[(&str, &str)] = &[
    ("SMTP_SERVER", "MOTHERSTREAM_SMTP_HOST"),
    ("SMTP_PORT", "MOTHERSTREAM_SMTP_PORT"),
    ("SMTP_USER", "MOTHERSTREAM_SMTP_USERNAME"),
    ("SMTP_PASSWORD", "MOTHERSTREAM_SMTP_PASSWORD"),
    ("SMTP_FROM_EMAIL", "MOTHERSTREAM_SMTP_FROM"),
];

fn get<'a>(env: &'a Env, name: &str) -> Option<&'a str> {
    env.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
}

/// One line per original variable that is set but not read (values are never included:
/// some are secrets).
pub fn warnings(env: &Env) -> Vec<String> {
    let retired = RETIRED
        .iter()
        .filter(|(name, _)| get(env, name).is_some())
        .map(|(name, instead)| format!("{name} is set but no longer read: {instead}"));
    let shadowed = SMTP_ALIASES
        .iter()
        .filter(|(seed, ours)| get(env, seed).is_some() && get(env, ours).is_some())
        .map(|(seed, ours)| format!("{seed} is set but ignored: {ours} is set and takes precedence"));
    retired.chain(shadowed).collect()
}

/// Fills the SMTP settings that neither a flag nor our own variable gave from the original's
/// names. Port 465 means TLS from the start (as it does everywhere), and without
/// `SMTP_FROM_EMAIL` a login that is an address is the sender, as mail providers expect.
pub fn apply_smtp_aliases(env: &Env, args: &mut Settings) -> Result<(), ConfigError> {
    let owned = |name| get(env, name).map(|v| v.trim().to_owned());
    if args.smtp_host.is_none() {
        args.smtp_host = owned("SMTP_SERVER");
    }
    if args.smtp_port.is_none()
        && let Some(port) = get(env, "SMTP_PORT")
    {
        let port: u16 = port
            .trim()
            .parse()
            .map_err(|_| ConfigError::new("SMTP_PORT", format!("`{port}` is not a port number from 1 to 65535")))?;
        args.smtp_port = Some(port);
        if port == 465 && args.smtp_tls.is_none() {
            args.smtp_tls = Some("tls".into());
        }
    }
    if args.smtp_username.is_none() {
        args.smtp_username = owned("SMTP_USER");
    }
    if args.smtp_password.is_none() {
        args.smtp_password = get(env, "SMTP_PASSWORD").map(str::to_owned);
    }
    if args.smtp_from.is_none() {
        args.smtp_from = owned("SMTP_FROM_EMAIL").or_else(|| owned("SMTP_USER").filter(|user| user.contains('@')));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn each_retired_variable_that_is_set_gets_one_line_naming_its_replacement() {
        let lines = warnings(&env(&[
            ("NGINX_RTMP_PORT", "1935"),
            ("STAT_PORT", "8080"),
            ("SRS_AUTHORIZATION_BEARER", "s3cret-bearer"),
            ("DEBUG_PORT", ""),
            ("OBS_HOST", "localhost"),
            ("DB_HOST", "db"),
            ("PATH", "/usr/bin"),
        ]));
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(
            lines[0].starts_with("NGINX_RTMP_PORT is set but no longer read")
                && lines[0].contains("MOTHERSTREAM_RTMP_LISTEN")
        );
        assert!(lines[1].starts_with("SRS_AUTHORIZATION_BEARER is set but no longer read"));
        assert!(lines[2].starts_with("STAT_PORT is set but no longer read") && lines[2].contains("/metrics"));
        assert!(lines.iter().all(|l| !l.contains("s3cret-bearer")), "values are never printed");
    }

    #[test]
    fn nothing_to_say_for_a_clean_environment_or_for_names_still_read() {
        let still_read = [
            "DB_HOST",
            "DB_PORT",
            "DB_USER",
            "DB_PASSWORD",
            "DB_NAME",
            "OBS_HOST",
            "OBS_PORT",
            "OBS_PASSWORD",
            "JWT_SECRET",
            "SENTRY_DSN",
            "DISCORD_WEBHOOK_URL",
            "TOGGLE_DISCORD_NOTIFICATIONS",
            "RECORD_DIR",
            "RECORD_STREAM",
            "SMTP_SERVER",
            "SMTP_PORT",
            "SMTP_USER",
            "SMTP_PASSWORD",
            "SMTP_FROM_EMAIL",
        ];
        assert!(warnings(&Env::new()).is_empty());
        let all: Vec<(&str, &str)> = still_read.iter().map(|n| (*n, "x")).collect();
        assert_eq!(warnings(&env(&all)), Vec::<String>::new());
    }

    #[test]
    fn an_original_smtp_name_shadowed_by_ours_is_reported() {
        let lines =
            warnings(&env(&[("SMTP_SERVER", "old.example.org"), ("MOTHERSTREAM_SMTP_HOST", "new.example.org")]));
        assert_eq!(lines, ["SMTP_SERVER is set but ignored: MOTHERSTREAM_SMTP_HOST is set and takes precedence"]);
    }

    #[test]
    fn the_originals_smtp_names_fill_what_ours_left_unset() {
        let seed = env(&[
            ("SMTP_SERVER", "smtp.gmail.com"),
            ("SMTP_PORT", "465"),
            ("SMTP_USER", "radio@example.org"),
            ("SMTP_PASSWORD", " pass word "),
        ]);
        let mut args = Settings::default();
        apply_smtp_aliases(&seed, &mut args).unwrap();
        assert_eq!(args.smtp_host.as_deref(), Some("smtp.gmail.com"));
        assert_eq!(args.smtp_port, Some(465));
        assert_eq!(args.smtp_tls.as_deref(), Some("tls"), "465 is TLS from the start");
        assert_eq!(args.smtp_username.as_deref(), Some("radio@example.org"));
        assert_eq!(args.smtp_password.as_deref(), Some(" pass word "), "a password is taken as is");
        assert_eq!(args.smtp_from.as_deref(), Some("radio@example.org"), "the login address sends");

        // Ours (flag or MOTHERSTREAM_SMTP_*) win; SMTP_FROM_EMAIL is the sender when given.
        let mut args =
            Settings { smtp_host: Some("mail.example.org".into()), smtp_port: Some(587), ..Settings::default() };
        let mut with_from = seed.clone();
        with_from.insert("SMTP_FROM_EMAIL".into(), "noreply@example.org".into());
        apply_smtp_aliases(&with_from, &mut args).unwrap();
        assert_eq!((args.smtp_host.as_deref(), args.smtp_port), (Some("mail.example.org"), Some(587)));
        assert_eq!(args.smtp_tls, None, "our port, our TLS default");
        assert_eq!(args.smtp_from.as_deref(), Some("noreply@example.org"));

        // A login that is not an address is no sender.
        let mut args = Settings::default();
        apply_smtp_aliases(&env(&[("SMTP_SERVER", "relay"), ("SMTP_USER", "radio")]), &mut args).unwrap();
        assert_eq!(args.smtp_from, None);
    }

    #[test]
    fn a_bad_smtp_port_names_the_originals_variable() {
        let err = apply_smtp_aliases(&env(&[("SMTP_PORT", "smtp")]), &mut Settings::default()).unwrap_err();
        assert_eq!(err.setting, "SMTP_PORT");
        assert!(err.message.contains("`smtp`"), "{err}");
    }
}
