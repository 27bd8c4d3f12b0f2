//! Typed configuration: command-line flags > environment > `motherstream.toml` > defaults.
//!
//! Every setting is defined once, in [`Settings`]: the same struct is the command line (clap:
//! a flag and an environment variable, for the settings that have them) and the file (serde:
//! every key optional, unknown keys refused). [`Settings::layered`] puts the flags over the
//! file key by key, so a new setting is one field there, plus its validation in
//! [`Config::resolve`], which fills in the defaults. Any problem becomes a [`ConfigError`]
//! whose message names the setting, so `main` can print one line and exit with status 2.

pub mod seed_env;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::channel::profile::AAC_SAMPLE_RATES;
use crate::channel::{ChannelConfig, ChannelProfile, OffProfilePolicy};
use crate::hls::HlsConfig;
use crate::integrations::destination::{Destination, DestinationConfig};
use crate::integrations::discord::DiscordConfig;
use crate::integrations::email::{SmtpConfig, SmtpSettings};
use crate::integrations::obs::{ObsConfig, ObsEnv, ObsFileConfig};
use crate::integrations::recognition::{RecognitionConfig, RecognitionFileConfig};
use crate::limits::Limits;
use crate::recorder::RecorderConfig;
pub use crate::settings::ConfigError;
use crate::settings::{parse_truthy, redact_url, seconds, socket_addr};
use crate::store::{DatabaseLocation, StoreConfig};
use crate::web::MetricsAccess;

/// The sample configuration shipped with the project. A test loads it, so the documented
/// defaults cannot drift from the real ones.
pub const SAMPLE_CONFIG: &str = include_str!("../../motherstream.example.toml");

/// Default file looked up in the working directory when `--config` is not given.
const DEFAULT_CONFIG_FILE: &str = "motherstream.toml";

/// Options shared by every subcommand that touches the data directory or database.
#[derive(Debug, Clone, Default, Args)]
pub struct StoreArgs {
    /// Directory for the database, the generated JWT secret and other state.
    #[arg(long, env = "MOTHERSTREAM_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// Database URL (`sqlite://…` or `postgres://…`); default: SQLite in the data dir.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// TOML configuration file (default: ./motherstream.toml if it exists).
    #[arg(long, env = "MOTHERSTREAM_CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

/// The settings of `motherstream serve`, as flags (each also readable from the environment)
/// and as keys of `motherstream.toml` (see `motherstream.example.toml`). Every field is
/// optional: unset means the layer below decides, and the defaults are applied last. Fields
/// marked `#[arg(skip)]` exist in the file only (sections, lists of tables, rare switches).
#[derive(Debug, Clone, Default, PartialEq, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// RTMP listen address.
    #[arg(long, env = "MOTHERSTREAM_RTMP_LISTEN")]
    pub rtmp_listen: Option<String>,

    /// HTTP listen address.
    #[arg(long, env = "MOTHERSTREAM_HTTP_LISTEN")]
    pub http_listen: Option<String>,

    /// Length of a DJ's set in seconds.
    #[arg(long, env = "MOTHERSTREAM_SWAP_INTERVAL")]
    pub swap_interval: Option<u64>,

    /// Seconds a dropped lead keeps their slot while they reconnect.
    #[arg(long, env = "MOTHERSTREAM_GRACE_PERIOD")]
    pub grace_period: Option<u64>,

    /// Seconds without media after which a publisher counts as stalled.
    #[arg(long, env = "MOTHERSTREAM_STALL_TIMEOUT")]
    pub stall_timeout: Option<u64>,

    /// Log format: `text` or `json`.
    #[arg(long, env = "MOTHERSTREAM_LOG_FORMAT")]
    pub log_format: Option<String>,

    /// Platform to relay the program to (`rtmp://…` or `rtmps://…`, with the stream key);
    /// repeat for several.
    #[arg(long = "destination", env = "MOTHERSTREAM_DESTINATIONS", value_delimiter = ',', value_parser = DestinationEntry::from_flag)]
    pub destinations: Option<Vec<DestinationEntry>>,

    /// Extra CA certificates (PEM) trusted for `rtmps://` destinations.
    #[arg(skip)]
    pub destination_ca_file: Option<PathBuf>,

    /// Directory for recordings (setting it turns set recording on).
    #[arg(long, env = "RECORD_DIR")]
    pub record_dir: Option<PathBuf>,

    /// Record each set (the seed's RECORD_STREAM; any of 1/true/yes/on).
    #[arg(long = "record", env = "RECORD_STREAM", value_parser = parse_truthy, num_args = 0..=1, default_missing_value = "true")]
    pub record_sets: Option<bool>,

    /// Also record the program, to `record_dir/program/`.
    #[arg(skip)]
    pub record_program: Option<bool>,

    /// What the program shows when nobody is on air: `slate` or `disconnect`.
    #[arg(long, env = "MOTHERSTREAM_IDLE")]
    pub idle: Option<String>,

    /// An FLV file to loop as the idle slate instead of the built-in one.
    #[arg(long, env = "MOTHERSTREAM_SLATE")]
    pub slate: Option<PathBuf>,

    /// The RTMP server URL shown to DJs (`rtmp://stream.example.org:1935/live`); default:
    /// the host of the web page with the RTMP port.
    #[arg(long, env = "MOTHERSTREAM_PUBLIC_RTMP_URL")]
    pub public_rtmp_url: Option<String>,

    /// Discord webhook for announcements (a secret: its value is never printed).
    #[arg(long, env = "DISCORD_WEBHOOK_URL", hide_env_values = true)]
    pub discord_webhook_url: Option<String>,

    /// Turns Discord announcements on (the seed's TOGGLE_DISCORD_NOTIFICATIONS).
    #[arg(long = "discord-notifications", env = "TOGGLE_DISCORD_NOTIFICATIONS")]
    #[serde(default, deserialize_with = "bool_or_text")]
    pub discord_notifications: Option<String>,

    /// SMTP server for account emails (welcome, password reset); without one, reset links
    /// are written to the log.
    #[arg(long, env = "MOTHERSTREAM_SMTP_HOST")]
    pub smtp_host: Option<String>,

    /// SMTP port (default 587, or 465 with `--smtp-tls tls`).
    #[arg(long, env = "MOTHERSTREAM_SMTP_PORT")]
    pub smtp_port: Option<u16>,

    /// SMTP login name.
    #[arg(long, env = "MOTHERSTREAM_SMTP_USERNAME")]
    pub smtp_username: Option<String>,

    /// SMTP password (a secret: prefer the environment; its value is never printed).
    #[arg(long, env = "MOTHERSTREAM_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<String>,

    /// Sender of the emails, e.g. `motherstream <noreply@example.org>`.
    #[arg(long, env = "MOTHERSTREAM_SMTP_FROM")]
    pub smtp_from: Option<String>,

    /// `starttls` (default), `tls` (TLS from the start) or `none` (local relays only).
    #[arg(long, env = "MOTHERSTREAM_SMTP_TLS")]
    pub smtp_tls: Option<String>,

    /// The site's public address (e.g. `https://radio.example.org`), base of the links in
    /// emails; unset, links follow the Host header of the request.
    #[arg(long, env = "MOTHERSTREAM_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Seconds a password reset link stays valid.
    #[arg(long, env = "MOTHERSTREAM_PASSWORD_RESET_TTL")]
    pub password_reset_ttl: Option<u64>,

    /// Serve `/metrics` on this address only (e.g. `127.0.0.1:9100`), not on the HTTP one.
    #[arg(long, env = "MOTHERSTREAM_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,

    /// A secret `/metrics` scrapers must send as `Authorization: Bearer <token>`.
    #[arg(long, env = "MOTHERSTREAM_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Where the data lives; on the command line, the global `--data-dir`.
    #[arg(skip)]
    pub data_dir: Option<PathBuf>,

    /// The database; on the command line, the global `--database-url`.
    #[arg(skip)]
    pub database_url: Option<String>,

    /// Refuse the DJ whose set just ended if they would go straight back on air.
    #[arg(skip)]
    pub block_toggle: Option<bool>,

    /// Reverse proxies (addresses or CIDR networks) whose `X-Forwarded-For` is believed.
    #[arg(skip)]
    pub trusted_proxies: Option<Vec<String>>,

    /// `[obs]`: OBS automation.
    #[arg(skip)]
    #[serde(default, skip_serializing)]
    pub obs: Option<ObsFileConfig>,

    /// `[recognition]`: song recognition; off when absent.
    #[arg(skip)]
    #[serde(default, skip_serializing)]
    pub recognition: Option<RecognitionFileConfig>,

    /// `[channel]`: the channel profile.
    #[arg(skip)]
    #[serde(default, skip_serializing)]
    pub channel: Option<FileChannel>,

    /// The section `[channel]` replaced; still read, as the channel profile.
    #[arg(skip)]
    #[serde(default, skip_serializing)]
    pub expected_profile: Option<ExpectedProfile>,

    /// `[limits]`: bounds against misbehaving peers.
    #[arg(skip)]
    #[serde(default, skip_serializing)]
    pub limits: FileLimits,

    /// `[hls]`: the program as HLS, for the watch page and CDNs.
    #[arg(skip)]
    #[serde(default, skip_serializing)]
    pub hls: HlsConfig,

    /// `[timetable]`: booked slots.
    #[arg(skip)]
    #[serde(default, skip_serializing)]
    pub timetable: TimetableConfig,
}

/// `[timetable]` in the configuration file (docs/timetable.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimetableConfig {
    /// Whether DJs may ask for a slot (an admin approves it); only admins book otherwise.
    pub requests: bool,
    /// How long a booked slot waits for its DJ before the booking is dropped.
    pub booking_grace_seconds: u64,
}

impl Default for TimetableConfig {
    fn default() -> Self {
        Self { requests: false, booking_grace_seconds: 600 }
    }
}

impl Settings {
    /// `flags` over the file's `table`, key by key; sections merge key by key too. The flags
    /// are serialised first, and an unset `Option` leaves no key, so only what was given on
    /// the command line (or in the environment) wins.
    pub fn layered(mut table: toml::Table, flags: &Settings) -> Result<Self, ConfigError> {
        let flags = toml::Table::try_from(flags).map_err(|e| ConfigError::new("flags", e.to_string()))?;
        overlay(&mut table, flags);
        toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| ConfigError::new("--config", e.message()))
    }
}

/// Writes `top` over `base`; tables merge, anything else replaces. (A dedicated crate such as
/// figment would do this and no more for us: the file is already parsed by `toml`, and clap
/// already reads flags and environment.)
fn overlay(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(below)), toml::Value::Table(above)) => overlay(below, above),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The file says `discord_notifications = true`; flags and the seed's environment say `1`,
/// `yes`… Both reach the same parser as text.
fn bool_or_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Switch {
        Bool(bool),
        Text(String),
    }
    Ok(Option::<Switch>::deserialize(deserializer)?.map(|switch| match switch {
        Switch::Bool(on) => on.to_string(),
        Switch::Text(text) => text,
    }))
}

/// `[channel]`: the channel profile and what to do with DJs who differ from it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileChannel {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u8>,
    /// `allow`, `slate` or `transcode`.
    pub off_profile: Option<String>,
    /// kbit/s of transcoded video.
    pub transcode_video_bitrate: Option<u32>,
    pub ffmpeg: Option<String>,
}

/// The old `[expected_profile]` section: its picture and sound settings are read as the
/// channel profile; its codecs can only be the channel's (H.264 and AAC).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExpectedProfile {
    /// `h264`, `hevc`, `av1`…
    pub video_codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
    /// `aac`, `opus`…
    pub audio_codec: Option<String>,
    pub sample_rate: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub max_publishers_per_ip: Option<usize>,
    pub max_players_per_ip: Option<usize>,
    pub handshake_timeout: Option<u64>,
    pub idle_timeout: Option<u64>,
    pub max_message_size: Option<usize>,
    pub publish_attempts_per_minute: Option<u32>,
    pub login_attempts_per_minute: Option<u32>,
    pub signup_attempts_per_minute: Option<u32>,
    pub login_failures_per_account: Option<u32>,
    pub login_failure_window: Option<u64>,
    pub http_max_connections: Option<usize>,
    pub http_max_connections_per_ip: Option<usize>,
    pub http_header_timeout: Option<u64>,
    pub http_request_timeout: Option<u64>,
    pub max_event_streams_per_ip: Option<usize>,
    pub max_flv_viewers_per_ip: Option<usize>,
    pub max_body_bytes: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The fully resolved configuration of `motherstream serve`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub store: StoreConfig,
    pub rtmp_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub swap_interval: Duration,
    pub grace_period: Duration,
    pub stall_timeout: Duration,
    pub block_toggle: bool,
    pub log_format: LogFormat,
    pub limits: Limits,
    /// Platforms the program is relayed to (validated).
    pub destinations: Vec<DestinationConfig>,
    /// Extra CA certificates (PEM) trusted for `rtmps://` destinations.
    pub destination_ca_file: Option<PathBuf>,
    pub idle: IdleSetting,
    pub recording: RecorderConfig,
    /// The channel profile and the off-profile policy.
    pub channel: ChannelConfig,
    /// The RTMP server URL shown to DJs, if it is not the web host's.
    pub public_rtmp_url: Option<String>,
    /// Announcements to a Discord webhook, if configured and turned on.
    pub discord: Option<DiscordConfig>,
    /// OBS automation, if an OBS host is configured.
    pub obs: Option<ObsConfig>,
    /// Song recognition of the on-air audio, when configured.
    pub recognition: Option<RecognitionConfig>,
    /// Account emails over SMTP, if an SMTP host is configured.
    pub smtp: Option<SmtpConfig>,
    /// The site's address without a trailing slash, for links in emails.
    pub public_url: Option<String>,
    /// How long a password reset link stays valid.
    pub password_reset_ttl: Duration,
    /// Who may read `/metrics`, and where.
    pub metrics: MetricsAccess,
    /// Peers whose `X-Forwarded-For` names the client; nobody's by default.
    pub trusted_proxies: Vec<IpNet>,
    /// The program as HLS (`[hls]`).
    pub hls: HlsConfig,
    /// Booked slots (`[timetable]`).
    pub timetable: TimetableConfig,
}

/// What the program shows when nobody is on air.
#[derive(Debug, Clone, PartialEq)]
pub enum IdleSetting {
    /// The built-in slate, or a user FLV.
    Slate(Option<PathBuf>),
    Disconnect,
}

impl Config {
    /// Layers flags/env over the config file over the defaults, and validates.
    pub fn resolve(store: &StoreArgs, flags: &Settings) -> Result<Self, ConfigError> {
        let settings = Settings::layered(load_file(store.config.as_deref())?, flags)?;
        Self::from_settings(
            store,
            settings,
            flags.destinations.is_some(),
            &EnvDb::from_process(),
            &ObsEnv::from_process()?,
        )
    }

    /// `destinations_from_flags`: whether the destinations were given as `--destination`,
    /// so an error names the flag rather than the file's key.
    fn from_settings(
        store: &StoreArgs,
        s: Settings,
        destinations_from_flags: bool,
        env_db: &EnvDb,
        obs_env: &ObsEnv,
    ) -> Result<Self, ConfigError> {
        let store_config = StoreConfig::from_layers(store, &s, env_db)?;
        let defaults = Limits::default();
        let fl = &s.limits;
        let limits = Limits {
            max_connections: positive(
                "limits.max_connections",
                fl.max_connections.unwrap_or(defaults.max_connections),
            )?,
            max_connections_per_ip: positive(
                "limits.max_connections_per_ip",
                fl.max_connections_per_ip.unwrap_or(
                    fl.max_publishers_per_ip.unwrap_or(defaults.max_publishers_per_ip)
                        + fl.max_players_per_ip.unwrap_or(defaults.max_players_per_ip),
                ),
            )?,
            max_publishers_per_ip: positive(
                "limits.max_publishers_per_ip",
                fl.max_publishers_per_ip.unwrap_or(defaults.max_publishers_per_ip),
            )?,
            max_players_per_ip: positive(
                "limits.max_players_per_ip",
                fl.max_players_per_ip.unwrap_or(defaults.max_players_per_ip),
            )?,
            handshake_timeout: seconds("limits.handshake_timeout", fl.handshake_timeout, defaults.handshake_timeout)?,
            idle_timeout: seconds("limits.idle_timeout", fl.idle_timeout, defaults.idle_timeout)?,
            max_message_size: positive(
                "limits.max_message_size",
                fl.max_message_size.unwrap_or(defaults.max_message_size),
            )?,
            publish_attempts_per_minute: positive(
                "limits.publish_attempts_per_minute",
                fl.publish_attempts_per_minute.unwrap_or(defaults.publish_attempts_per_minute),
            )?,
            login_attempts_per_minute: positive(
                "limits.login_attempts_per_minute",
                fl.login_attempts_per_minute.unwrap_or(defaults.login_attempts_per_minute),
            )?,
            signup_attempts_per_minute: positive(
                "limits.signup_attempts_per_minute",
                fl.signup_attempts_per_minute.unwrap_or(defaults.signup_attempts_per_minute),
            )?,
            login_failures_per_account: positive(
                "limits.login_failures_per_account",
                fl.login_failures_per_account.unwrap_or(defaults.login_failures_per_account),
            )?,
            login_failure_window: seconds(
                "limits.login_failure_window",
                fl.login_failure_window,
                defaults.login_failure_window,
            )?,
            http_max_connections: positive(
                "limits.http_max_connections",
                fl.http_max_connections.unwrap_or(defaults.http_max_connections),
            )?,
            http_max_connections_per_ip: positive(
                "limits.http_max_connections_per_ip",
                fl.http_max_connections_per_ip.unwrap_or(defaults.http_max_connections_per_ip),
            )?,
            http_header_timeout: seconds(
                "limits.http_header_timeout",
                fl.http_header_timeout,
                defaults.http_header_timeout,
            )?,
            http_request_timeout: seconds(
                "limits.http_request_timeout",
                fl.http_request_timeout,
                defaults.http_request_timeout,
            )?,
            max_event_streams_per_ip: positive(
                "limits.max_event_streams_per_ip",
                fl.max_event_streams_per_ip.unwrap_or(defaults.max_event_streams_per_ip),
            )?,
            max_flv_viewers_per_ip: positive(
                "limits.max_flv_viewers_per_ip",
                fl.max_flv_viewers_per_ip.unwrap_or(defaults.max_flv_viewers_per_ip),
            )?,
            max_body_bytes: positive("limits.max_body_bytes", fl.max_body_bytes.unwrap_or(defaults.max_body_bytes))?,
        };

        let data_dir = store_config.data_dir.clone();
        let config = Self {
            store: store_config,
            rtmp_listen: socket_addr("--rtmp-listen", s.rtmp_listen.as_ref(), "0.0.0.0:1935")?,
            http_listen: socket_addr("--http-listen", s.http_listen.as_ref(), "0.0.0.0:8080")?,
            swap_interval: seconds("--swap-interval", s.swap_interval, Duration::from_secs(3600))?,
            grace_period: seconds("--grace-period", s.grace_period, Duration::from_secs(10))?,
            stall_timeout: seconds("--stall-timeout", s.stall_timeout, Duration::from_secs(10))?,
            block_toggle: s.block_toggle.unwrap_or(false),
            log_format: match s.log_format.as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(ConfigError::new(
                        "--log-format",
                        format!("`{other}` is not a log format (use `text` or `json`)"),
                    ));
                }
            },
            limits,
            destinations: {
                let entries = s.destinations.clone().unwrap_or_default();
                let configs: Vec<DestinationConfig> =
                    entries.into_iter().enumerate().map(|(i, e)| e.into_config(i)).collect();
                // Validated here so a bad URL stops start-up with the setting named.
                Destination::parse_all(&configs).map_err(|e| {
                    if destinations_from_flags { ConfigError::new("--destination", e.message) } else { e }
                })?;
                configs
            },
            destination_ca_file: s.destination_ca_file.clone(),
            public_rtmp_url: match s.public_rtmp_url.clone() {
                Some(url) if !(url.starts_with("rtmp://") || url.starts_with("rtmps://")) => {
                    return Err(ConfigError::new(
                        "--public-rtmp-url",
                        format!("`{url}` must start with rtmp:// or rtmps://"),
                    ));
                }
                url => url.map(|u| u.trim_end_matches('/').to_owned()),
            },
            idle: match s.idle.as_deref() {
                None | Some("slate") => IdleSetting::Slate(s.slate.clone()),
                Some("disconnect") => IdleSetting::Disconnect,
                Some(other) => {
                    return Err(ConfigError::new(
                        "--idle",
                        format!("`{other}` is not an idle mode (use `slate` or `disconnect`)"),
                    ));
                }
            },
            recording: {
                let explicit_dir = s.record_dir.clone();
                RecorderConfig {
                    sets: s.record_sets.unwrap_or(explicit_dir.is_some()),
                    program: s.record_program.unwrap_or(false),
                    dir: explicit_dir.unwrap_or_else(|| data_dir.join("recordings")),
                }
            },
            channel: channel(s.channel.as_ref(), s.expected_profile.as_ref())?,
            discord: {
                let url = s.discord_webhook_url.as_deref();
                DiscordConfig::parse(url, s.discord_notifications.as_deref())?.filter(|d| d.enabled)
            },
            obs: ObsConfig::resolve(s.obs.as_ref(), obs_env)?,
            recognition: RecognitionConfig::resolve(s.recognition.as_ref())?,
            smtp: SmtpConfig::parse(SmtpSettings {
                host: s.smtp_host.as_deref(),
                port: s.smtp_port,
                username: s.smtp_username.as_deref(),
                password: s.smtp_password.as_deref(),
                from: s.smtp_from.as_deref(),
                tls: s.smtp_tls.as_deref(),
            })?,
            public_url: public_url(s.public_url.as_deref())?,
            trusted_proxies: trusted_proxies(s.trusted_proxies.as_deref().unwrap_or_default())?,
            hls: s.hls,
            timetable: s.timetable,
            password_reset_ttl: seconds("--password-reset-ttl", s.password_reset_ttl, Duration::from_secs(3600))?,
            metrics: MetricsAccess::resolve(s.metrics_listen.as_ref(), s.metrics_token.as_ref())?,
        };
        if config.smtp.is_some() && config.public_url.is_none() {
            // Otherwise links in emails would follow the Host header a client sends, and a
            // forged one would point a victim's reset link at someone else's site.
            return Err(ConfigError::new(
                "--public-url",
                "required when SMTP is configured (the site's address, e.g. https://radio.example.org), \
                 so links in emails never depend on what a client sends",
            ));
        }
        Ok(config)
    }
}

/// A destination as written in the configuration: a bare URL, or a named one
/// (`[[destinations]] name = "youtube", url = "rtmp://…"`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum DestinationEntry {
    Url(String),
    Named(DestinationConfig),
}

impl DestinationEntry {
    /// `--destination URL` or `--destination NAME=URL`.
    fn from_flag(arg: &str) -> Result<Self, String> {
        Ok(match arg.split_once('=') {
            Some((name, url)) if !name.contains([':', '/']) => {
                Self::Named(DestinationConfig { name: name.to_owned(), url: url.to_owned() })
            }
            _ => Self::Url(arg.to_owned()),
        })
    }

    fn into_config(self, index: usize) -> DestinationConfig {
        match self {
            Self::Url(url) => DestinationConfig { name: format!("destination-{}", index + 1), url },
            Self::Named(config) => config,
        }
    }
}

impl StoreConfig {
    /// Resolves only what the user-management subcommands need.
    pub fn resolve(store: &StoreArgs) -> Result<Self, ConfigError> {
        let file = Settings::layered(load_file(store.config.as_deref())?, &Settings::default())?;
        Self::from_layers(store, &file, &EnvDb::from_process())
    }

    fn from_layers(store: &StoreArgs, file: &Settings, env_db: &EnvDb) -> Result<Self, ConfigError> {
        let data_dir =
            store.data_dir.clone().or_else(|| file.data_dir.clone()).unwrap_or_else(|| PathBuf::from("./data"));
        if data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("--data-dir", "must not be empty"));
        }
        let url = match store.database_url.clone().or_else(|| env_db.url()).or_else(|| file.database_url.clone()) {
            Some(url) => url,
            None => format!("sqlite://{}", data_dir.join("motherstream.db").display()),
        };
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::new(
                "DATABASE_URL",
                format!("unsupported database URL `{}` (use sqlite://PATH or postgres://…)", redact_url(&url)),
            ));
        }
        Ok(Self { data_dir, database: DatabaseLocation { url } })
    }
}

/// The seed's `DB_HOST`/`DB_PORT`/`DB_USER`/`DB_PASSWORD`/`DB_NAME` variables, which select
/// Postgres when `DB_HOST` is set and `DATABASE_URL` is not.
#[derive(Debug, Default, Clone)]
struct EnvDb {
    host: Option<String>,
    port: Option<String>,
    user: Option<String>,
    password: Option<String>,
    name: Option<String>,
}

impl EnvDb {
    fn from_process() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            host: var("DB_HOST"),
            port: var("DB_PORT"),
            user: var("DB_USER"),
            password: var("DB_PASSWORD"),
            name: var("DB_NAME"),
        }
    }

    fn url(&self) -> Option<String> {
        let host = self.host.as_ref()?;
        let port = self.port.as_deref().unwrap_or("5432");
        let name = self.name.as_deref().unwrap_or("motherstream");
        let auth = match (&self.user, &self.password) {
            (Some(u), Some(p)) => format!("{}:{}@", percent_encode(u), percent_encode(p)),
            (Some(u), None) => format!("{}@", percent_encode(u)),
            _ => String::new(),
        };
        Some(format!("postgres://{auth}{host}:{port}/{name}"))
    }
}

/// Encodes the characters that would break a URL's userinfo part.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The file's table, checked against [`Settings`] so a mistake is reported with the file's
/// name and the key at fault (an empty table when the default file does not exist).
fn load_file(explicit: Option<&Path>) -> Result<toml::Table, ConfigError> {
    let (path, required) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(toml::Table::new());
        }
        Err(e) => {
            return Err(ConfigError::new("--config", format!("cannot read {}: {e}", path.display())));
        }
    };
    parse_file(&text).map_err(|e| ConfigError::new("--config", format!("{}: {e}", path.display())))
}

fn parse_file(text: &str) -> Result<toml::Table, String> {
    toml::from_str::<Settings>(text).map_err(|e| e.message().to_owned())?;
    toml::from_str(text).map_err(|e| e.message().to_owned())
}

/// `--public-url`: an `http(s)://` address without query or fragment; returned without a
/// trailing slash, so paths can be appended.
fn public_url(value: Option<&str>) -> Result<Option<String>, ConfigError> {
    let Some(raw) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let bad = |why: &str| ConfigError::new("--public-url", format!("`{raw}` {why} (e.g. https://radio.example.org)"));
    let url = reqwest::Url::parse(raw).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad("must be an http:// or https:// address"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not have a query, fragment or login"));
    }
    Ok(Some(url.as_str().trim_end_matches('/').to_owned()))
}

/// `[channel]`, or the old `[expected_profile]` read as one (not both: which would win?).
fn channel(file: Option<&FileChannel>, legacy: Option<&ExpectedProfile>) -> Result<ChannelConfig, ConfigError> {
    let section = match (file, legacy) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "expected_profile",
                "replaced by [channel]: move its settings there and remove [expected_profile]",
            ));
        }
        (Some(channel), None) => channel.clone(),
        (None, Some(old)) => {
            for (key, value, want) in
                [("video_codec", &old.video_codec, ["h264", "avc"]), ("audio_codec", &old.audio_codec, ["aac", "aac"])]
            {
                if let Some(value) = value
                    && !want.iter().any(|w| value.eq_ignore_ascii_case(w))
                {
                    return Err(ConfigError::new(
                        format!("expected_profile.{key}"),
                        format!("`{value}`: the channel's codecs are H.264 and AAC (use [channel])"),
                    ));
                }
            }
            FileChannel {
                width: old.width,
                height: old.height,
                fps: old.fps,
                sample_rate: old.sample_rate,
                ..Default::default()
            }
        }
        (None, None) => FileChannel::default(),
    };
    let defaults = ChannelProfile::default();
    let size = |key: &str, value: Option<u32>, default: u32| match value.unwrap_or(default) {
        v if (16..=4096).contains(&v) && v % 2 == 0 => Ok(v),
        v => Err(ConfigError::new(format!("channel.{key}"), format!("{v} must be an even number from 16 to 4096"))),
    };
    let fps = section.fps.unwrap_or(defaults.fps);
    if !(fps.is_finite() && (1.0..=120.0).contains(&fps)) {
        return Err(ConfigError::new("channel.fps", format!("{fps} must be from 1 to 120")));
    }
    let sample_rate = section.sample_rate.unwrap_or(defaults.sample_rate);
    if !AAC_SAMPLE_RATES.contains(&sample_rate) {
        return Err(ConfigError::new(
            "channel.sample_rate",
            format!("{sample_rate} Hz is not an AAC sample rate (use 48000 or 44100)"),
        ));
    }
    let channels = section.channels.unwrap_or(defaults.channels);
    if !(1..=2).contains(&channels) {
        return Err(ConfigError::new("channel.channels", format!("{channels}: use 1 (mono) or 2 (stereo)")));
    }
    let profile = ChannelProfile {
        width: size("width", section.width, defaults.width)?,
        height: size("height", section.height, defaults.height)?,
        fps,
        sample_rate,
        channels,
    };
    let off_profile = match section.off_profile.as_deref() {
        None | Some("allow") => OffProfilePolicy::Allow,
        Some("slate") => OffProfilePolicy::Slate,
        Some("transcode") => OffProfilePolicy::Transcode,
        Some(other) => {
            return Err(ConfigError::new(
                "channel.off_profile",
                format!("`{other}` is not a policy (use `allow`, `slate` or `transcode`)"),
            ));
        }
    };
    let transcode_video_kbps = match section.transcode_video_bitrate {
        None => profile.default_video_kbps(),
        Some(kbps) if (100..=50_000).contains(&kbps) => kbps,
        Some(kbps) => {
            return Err(ConfigError::new(
                "channel.transcode_video_bitrate",
                format!("{kbps} kbit/s must be from 100 to 50000"),
            ));
        }
    };
    let ffmpeg = match section.ffmpeg {
        Some(path) if path.trim().is_empty() => return Err(ConfigError::new("channel.ffmpeg", "must not be empty")),
        Some(path) => path,
        None => "ffmpeg".to_owned(),
    };
    Ok(ChannelConfig { profile, off_profile, transcode_video_kbps, ffmpeg })
}

/// `trusted_proxies`: each entry a network (`127.0.0.1/32`, `fd00::/8`) or a single address.
fn trusted_proxies(entries: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    entries
        .iter()
        .map(|entry| {
            let entry = entry.trim();
            entry.parse::<IpNet>().or_else(|_| entry.parse::<IpAddr>().map(IpNet::from)).map_err(|_| {
                ConfigError::new(
                    "trusted_proxies",
                    format!("`{entry}` is not an address or a network (e.g. \"127.0.0.1/32\")"),
                )
            })
        })
        .collect()
}

fn positive<T: PartialEq + Default>(setting: &str, value: T) -> Result<T, ConfigError> {
    if value == T::default() { Err(ConfigError::new(setting, "must be greater than 0")) } else { Ok(value) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::email::SmtpTls;

    fn resolve(store: StoreArgs, flags: Settings, file: &str, env: EnvDb) -> Result<Config, ConfigError> {
        let file = parse_file(file).map_err(|e| ConfigError::new("--config", e))?;
        let from_flags = flags.destinations.is_some();
        Config::from_settings(&store, Settings::layered(file, &flags)?, from_flags, &env, &ObsEnv::default())
    }

    #[test]
    fn one_definition_is_flags_and_file_with_flags_winning_key_by_key() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            settings: Settings,
        }
        let flags = Cli::try_parse_from(["ms", "--swap-interval", "60", "--destination", "yt=rtmp://h/app/k"])
            .unwrap()
            .settings;
        let file = "swap_interval = 10\ngrace_period = 5\ndiscord_notifications = false\n\
                    destinations = [\"rtmp://file/app/k\"]\n[limits]\nmax_connections = 7\n";
        let c = resolve(StoreArgs::default(), flags, file, EnvDb::default()).unwrap();
        assert_eq!(c.swap_interval, Duration::from_secs(60), "the flag wins");
        assert_eq!(c.grace_period, Duration::from_secs(5), "the file's other keys stay");
        assert_eq!(c.limits.max_connections, 7, "sections only the file has stay");
        let names: Vec<&str> = c.destinations.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["yt"], "a list given as flags replaces the file's");

        let switched = "discord_webhook_url = \"https://discord.com/api/webhooks/1/t\"\ndiscord_notifications = true";
        let c = resolve(StoreArgs::default(), Settings::default(), switched, EnvDb::default()).unwrap();
        assert!(c.discord.is_some(), "the file's boolean reaches the same parser as the flag's text");
    }

    #[test]
    fn defaults_without_any_configuration() {
        let c = resolve(StoreArgs::default(), Settings::default(), "", EnvDb::default()).unwrap();
        assert_eq!(c.rtmp_listen, "0.0.0.0:1935".parse().unwrap());
        assert_eq!(c.http_listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.store.data_dir, PathBuf::from("./data"));
        assert_eq!(c.store.database.url, "sqlite://./data/motherstream.db");
        assert_eq!(c.swap_interval, Duration::from_secs(3600));
        assert_eq!(c.grace_period, Duration::from_secs(10));
        assert_eq!(c.stall_timeout, Duration::from_secs(10));
        assert_eq!(c.limits, Limits::default());
    }

    #[test]
    fn sample_config_documents_the_defaults() {
        let sample = resolve(StoreArgs::default(), Settings::default(), SAMPLE_CONFIG, EnvDb::default()).unwrap();
        let defaults = resolve(StoreArgs::default(), Settings::default(), "", EnvDb::default()).unwrap();
        assert_eq!(sample, defaults);
    }

    #[test]
    fn flags_override_file_and_file_overrides_defaults() {
        let serve = Settings { swap_interval: Some(60), ..Default::default() };
        let c =
            resolve(StoreArgs::default(), serve, "swap_interval = 120\ngrace_period = 3\n", EnvDb::default()).unwrap();
        assert_eq!(c.swap_interval, Duration::from_secs(60));
        assert_eq!(c.grace_period, Duration::from_secs(3));
    }

    #[test]
    fn seed_db_variables_select_postgres_unless_database_url_is_set() {
        let env = EnvDb {
            host: Some("db".into()),
            user: Some("ms".into()),
            password: Some("p@ss:word".into()),
            name: Some("streams".into()),
            port: None,
        };
        let c = resolve(StoreArgs::default(), Settings::default(), "", env.clone()).unwrap();
        assert_eq!(c.store.database.url, "postgres://ms:p%40ss%3Aword@db:5432/streams");
        let store = StoreArgs { database_url: Some("sqlite://x.db".into()), ..Default::default() };
        let c = resolve(store, Settings::default(), "", env).unwrap();
        assert_eq!(c.store.database.url, "sqlite://x.db");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let serve = Settings { rtmp_listen: Some("nope".into()), ..Default::default() };
        let e = resolve(StoreArgs::default(), serve, "", EnvDb::default()).unwrap_err();
        assert_eq!(e.setting, "--rtmp-listen");

        let e = resolve(StoreArgs::default(), Settings::default(), "swap_interval = 0", EnvDb::default()).unwrap_err();
        assert_eq!(e.setting, "--swap-interval");

        let e = resolve(StoreArgs::default(), Settings::default(), "colour = 1", EnvDb::default()).unwrap_err();
        assert_eq!(e.setting, "--config");
        assert!(e.message.contains("colour"), "{e}");

        let store = StoreArgs { database_url: Some("mysql://u:secret@h/db".into()), ..Default::default() };
        let e = resolve(store, Settings::default(), "", EnvDb::default()).unwrap_err();
        assert_eq!(e.setting, "DATABASE_URL");
        assert!(!e.message.contains("secret"), "{e}");
    }

    #[test]
    fn hls_section() {
        let c = resolve(StoreArgs::default(), Settings::default(), "", EnvDb::default()).unwrap();
        assert_eq!(
            c.hls,
            HlsConfig {
                enabled: true,
                segment_seconds: 2,
                window: 6,
                low_latency: false,
                previews: 4,
                always_on: false
            }
        );
        let file = "[hls]\nlow_latency = true\nwindow = 10\n";
        let c = resolve(StoreArgs::default(), Settings::default(), file, EnvDb::default()).unwrap();
        assert_eq!(
            c.hls,
            HlsConfig {
                enabled: true,
                segment_seconds: 2,
                window: 10,
                low_latency: true,
                previews: 4,
                always_on: false
            }
        );
        let typo = "[hls]\nsegment_secs = 4\n";
        assert!(resolve(StoreArgs::default(), Settings::default(), typo, EnvDb::default()).is_err());
    }

    #[test]
    fn destinations_recording_and_idle() {
        let serve = Settings {
            destinations: Some(vec![DestinationEntry::Url("rtmp://a.rtmp.youtube.com/live2/secret-key".into())]),
            record_dir: Some("/rec".into()),
            idle: Some("disconnect".into()),
            ..Default::default()
        };
        let c = resolve(StoreArgs::default(), serve, "", EnvDb::default()).unwrap();
        assert_eq!(c.destinations.len(), 1);
        assert_eq!(c.idle, IdleSetting::Disconnect);
        assert_eq!(c.recording, RecorderConfig { dir: "/rec".into(), sets: true, program: false });

        assert_eq!(c.destinations[0].name, "destination-1");
        let bad = Settings {
            destinations: Some(vec![DestinationEntry::Url("http://x/app/secret-key".into())]),
            ..Default::default()
        };
        let e = resolve(StoreArgs::default(), bad, "", EnvDb::default()).unwrap_err();
        assert_eq!(e.setting, "--destination");
        assert!(!e.message.contains("secret-key"), "{e}");
        let named = Settings {
            destinations: Some(vec![DestinationEntry::from_flag("yt=rtmp://h/app/k").unwrap()]),
            ..Default::default()
        };
        let c = resolve(StoreArgs::default(), named, "", EnvDb::default()).unwrap();
        assert_eq!(c.destinations[0].name, "yt");
        let file = "destinations = [\"rtmp://h/app/k\", { name = \"tw\", url = \"rtmps://h/app/k2\" }]";
        let c = resolve(StoreArgs::default(), Settings::default(), file, EnvDb::default()).unwrap();
        let names: Vec<&str> = c.destinations.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["destination-1", "tw"]);

        let c = resolve(StoreArgs::default(), Settings::default(), "record_program = true", EnvDb::default()).unwrap();
        assert_eq!(c.recording, RecorderConfig { dir: "./data/recordings".into(), sets: false, program: true });
    }

    #[test]
    fn metrics_access_is_open_by_default_and_validated() {
        let c = resolve(StoreArgs::default(), Settings::default(), "", EnvDb::default()).unwrap();
        assert_eq!(c.metrics, MetricsAccess::default());
        let file = "metrics_listen = \"127.0.0.1:9100\"\nmetrics_token = \"0123456789abcdef0123\"\n";
        let c = resolve(StoreArgs::default(), Settings::default(), file, EnvDb::default()).unwrap();
        assert_eq!(c.metrics.listen, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(c.metrics.token.as_deref(), Some("0123456789abcdef0123"));
        assert!(!format!("{c:?}").contains("0123456789abcdef0123"), "the token stays out of debug output");
        for (bad, setting) in [
            ("metrics_token = \"short\"", "--metrics-token"),
            ("metrics_token = \"0123456789 abcdef0123\"", "--metrics-token"),
            ("metrics_listen = \"localhost\"", "--metrics-listen"),
        ] {
            let e = resolve(StoreArgs::default(), Settings::default(), bad, EnvDb::default()).unwrap_err();
            assert_eq!(e.setting, setting, "{bad}");
            assert!(!e.message.contains("0123456789"), "{e}");
        }
    }

    #[test]
    fn email_settings_layer_and_validate() {
        let c = resolve(StoreArgs::default(), Settings::default(), "", EnvDb::default()).unwrap();
        assert_eq!((c.smtp.as_ref(), c.public_url.as_deref()), (None, None));
        assert_eq!(c.password_reset_ttl, Duration::from_secs(3600));

        let file = "smtp_host = \"mail.example.org\"\nsmtp_from = \"radio <noreply@example.org>\"\n\
                    smtp_port = 2525\npublic_url = \"https://radio.example.org/\"\npassword_reset_ttl = 600\n";
        let serve = Settings {
            smtp_tls: Some("tls".into()),
            smtp_username: Some("radio".into()),
            smtp_password: Some("s3cret-pass".into()),
            ..Default::default()
        };
        let c = resolve(StoreArgs::default(), serve, file, EnvDb::default()).unwrap();
        let smtp = c.smtp.unwrap();
        assert_eq!((smtp.host.as_str(), smtp.port, smtp.tls), ("mail.example.org", 2525, SmtpTls::Tls));
        assert_eq!(smtp.credentials.map(|(user, _)| user).as_deref(), Some("radio"));
        assert_eq!(c.public_url.as_deref(), Some("https://radio.example.org"), "trailing slash dropped");
        assert_eq!(c.password_reset_ttl, Duration::from_secs(600));

        let sub_path = Settings { public_url: Some("http://example.org/radio/".into()), ..Default::default() };
        let c = resolve(StoreArgs::default(), sub_path, "", EnvDb::default()).unwrap();
        assert_eq!(c.public_url.as_deref(), Some("http://example.org/radio"));
        for bad in ["radio.example.org", "ftp://radio.example.org", "https://radio.example.org/?x=1"] {
            let serve = Settings { public_url: Some(bad.into()), ..Default::default() };
            let e = resolve(StoreArgs::default(), serve, "", EnvDb::default()).unwrap_err();
            assert_eq!(e.setting, "--public-url", "{bad}: {e}");
        }
        let e = resolve(StoreArgs::default(), Settings::default(), "smtp_from = \"a@example.org\"", EnvDb::default())
            .unwrap_err();
        assert_eq!(e.setting, "--smtp-host");
        let no_site = "smtp_host = \"mail.example.org\"\nsmtp_from = \"a@example.org\"";
        let e = resolve(StoreArgs::default(), Settings::default(), no_site, EnvDb::default()).unwrap_err();
        assert_eq!(e.setting, "--public-url", "links in emails must not follow the Host header");
        let e =
            resolve(StoreArgs::default(), Settings::default(), "password_reset_ttl = 0", EnvDb::default()).unwrap_err();
        assert_eq!(e.setting, "--password-reset-ttl");
    }

    #[test]
    fn channel_profile_defaults_layers_and_validates() {
        let c = resolve(StoreArgs::default(), Settings::default(), "", EnvDb::default()).unwrap();
        assert_eq!(c.channel, ChannelConfig::default());
        assert_eq!(c.channel.profile.describe(), "1280x720, 30 fps, 48 kHz stereo");
        assert_eq!(c.channel.off_profile, OffProfilePolicy::Allow);

        let file = "[channel]\nwidth = 1920\nheight = 1080\nfps = 60\nsample_rate = 44100\nchannels = 1\n\
                    off_profile = \"transcode\"\ntranscode_video_bitrate = 6000\nffmpeg = \"/opt/ffmpeg\"\n";
        let c = resolve(StoreArgs::default(), Settings::default(), file, EnvDb::default()).unwrap();
        let want = ChannelProfile { width: 1920, height: 1080, fps: 60.0, sample_rate: 44100, channels: 1 };
        assert_eq!(c.channel.profile, want);
        assert_eq!(c.channel.off_profile, OffProfilePolicy::Transcode);
        assert_eq!((c.channel.transcode_video_kbps, c.channel.ffmpeg.as_str()), (6000, "/opt/ffmpeg"));

        for (bad, setting) in [
            ("[channel]\nwidth = 1281", "channel.width"),
            ("[channel]\nfps = 0", "channel.fps"),
            ("[channel]\nsample_rate = 47000", "channel.sample_rate"),
            ("[channel]\nchannels = 6", "channel.channels"),
            ("[channel]\noff_profile = \"drop\"", "channel.off_profile"),
            ("[channel]\nframerate = 30", "--config"),
        ] {
            let e = resolve(StoreArgs::default(), Settings::default(), bad, EnvDb::default()).unwrap_err();
            assert_eq!(e.setting, setting, "{bad}: {e}");
        }
    }

    #[test]
    fn the_old_expected_profile_section_still_loads_as_the_channel_profile() {
        let old = "[expected_profile]\nvideo_codec = \"h264\"\nwidth = 1920\nheight = 1080\nfps = 25\n\
                   audio_codec = \"aac\"\nsample_rate = 44100\n";
        let c = resolve(StoreArgs::default(), Settings::default(), old, EnvDb::default()).unwrap();
        let want = ChannelProfile { width: 1920, height: 1080, fps: 25.0, sample_rate: 44100, channels: 2 };
        assert_eq!(c.channel.profile, want);
        let hevc = "[expected_profile]\nvideo_codec = \"hevc\"";
        let e = resolve(StoreArgs::default(), Settings::default(), hevc, EnvDb::default()).unwrap_err();
        assert_eq!(e.setting, "expected_profile.video_codec");
        let both = "[expected_profile]\nwidth = 1920\n[channel]\nwidth = 1280";
        let e = resolve(StoreArgs::default(), Settings::default(), both, EnvDb::default()).unwrap_err();
        assert!(e.message.contains("[channel]"), "{e}");
    }

    #[test]
    fn trusted_proxies_are_explicit_and_rtmp_roles_are_capped_apart() {
        let c = resolve(StoreArgs::default(), Settings::default(), "", EnvDb::default()).unwrap();
        assert!(c.trusted_proxies.is_empty(), "no proxy is trusted unless configured");
        assert_eq!((c.limits.max_publishers_per_ip, c.limits.max_players_per_ip), (8, 64));
        assert_eq!(c.limits.max_connections_per_ip, 72, "all of both roles fit by default");

        let file = "trusted_proxies = [\"127.0.0.1/32\", \"::1\", \"10.0.0.0/8\"]\n\
                    [limits]\nmax_publishers_per_ip = 2\nmax_players_per_ip = 5\nhttp_header_timeout = 3\n";
        let c = resolve(StoreArgs::default(), Settings::default(), file, EnvDb::default()).unwrap();
        let nets: Vec<String> = c.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["127.0.0.1/32", "::1/128", "10.0.0.0/8"]);
        assert_eq!(c.limits.max_connections_per_ip, 7);
        assert_eq!(c.limits.http_header_timeout, Duration::from_secs(3));

        let e = resolve(StoreArgs::default(), Settings::default(), "trusted_proxies = [\"nginx\"]", EnvDb::default())
            .unwrap_err();
        assert_eq!(e.setting, "trusted_proxies");
    }
}
