//! The OBS settings: the `[obs]` table of `motherstream.toml` and the seed's `OBS_*`
//! variables, combined and validated.

use serde::Deserialize;

use crate::secret::Secret;
use crate::settings::ConfigError;

/// obs-websocket's default port (OBS 28 and later).
pub const DEFAULT_PORT: u16 = 4455;

/// Longest scene or source name accepted; OBS has no limit, but these names end up in every
/// request and log line.
const MAX_NAME_LEN: usize = 256;
/// Most `[[obs.toggle]]` entries: each is two requests on every change.
const MAX_TOGGLES: usize = 32;

/// The `[obs]` table of `motherstream.toml`, as written. Every key is optional; the seed's
/// `OBS_HOST`, `OBS_PORT` and `OBS_PASSWORD` override `host`, `port` and `password`.
///
/// ```toml
/// [obs]
/// host = "127.0.0.1"             # or OBS_HOST; setting a host turns the integration on
/// port = 4455                    # or OBS_PORT
/// password = "…"                 # or OBS_PASSWORD; omit if OBS has authentication off
/// idle_scene = "Intermission"    # program scene while nobody is on air
/// on_air_scene = "Live"          # program scene while a DJ is on air
/// dj_name_source = "DJ Name"     # text source showing the on-air DJ (emptied when idle)
///
/// [[obs.toggle]]                 # a scene item shown only while on air ...
/// source = "Now Live Banner"
/// scene = "Live"
/// on = "on_air"                  # ... or only while idle: on = "idle"
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObsFileConfig {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub password: Option<Secret>,
    pub idle_scene: Option<String>,
    pub on_air_scene: Option<String>,
    pub dj_name_source: Option<String>,
    #[serde(default)]
    pub toggle: Vec<ToggleConfig>,
}

/// One `[[obs.toggle]]`: a scene item shown in one phase and hidden in the other.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToggleConfig {
    /// The source's name (as in OBS's Sources list).
    pub source: String,
    /// The scene that holds it.
    pub scene: String,
    /// When it is shown; hidden otherwise. Default: `on_air`.
    #[serde(default)]
    pub on: ToggleWhen,
}

/// When a toggled scene item is shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToggleWhen {
    /// While a DJ is on air.
    #[default]
    OnAir,
    /// While nobody is on air (the slate is the program).
    Idle,
}

/// The seed's environment variables for OBS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObsEnv {
    pub host: Option<String>,
    pub port: Option<String>,
    pub password: Option<Secret>,
}

impl ObsEnv {
    /// Reads `OBS_HOST`, `OBS_PORT` and `OBS_PASSWORD`.
    pub fn from_process() -> Result<Self, ConfigError> {
        fn var(name: &str) -> Result<Option<String>, ConfigError> {
            match std::env::var(name) {
                Ok(value) => Ok(Some(value)),
                Err(std::env::VarError::NotPresent) => Ok(None),
                Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::new(name, "is not valid UTF-8")),
            }
        }
        Ok(Self { host: var("OBS_HOST")?, port: var("OBS_PORT")?, password: var("OBS_PASSWORD")?.map(Secret::from) })
    }
}

/// A validated OBS configuration: where OBS is and what to do on each phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObsConfig {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) password: Option<Secret>,
    pub(super) idle_scene: Option<String>,
    pub(super) on_air_scene: Option<String>,
    pub(super) dj_name_source: Option<String>,
    pub(super) toggles: Vec<ToggleConfig>,
}

impl ObsConfig {
    /// Combines the `[obs]` table and the environment (which wins) and validates them.
    ///
    /// `Ok(None)`: no host anywhere, so the integration is off. A host without any action is
    /// an error rather than a silent no-op, and so is an `[obs]` table without a host. Errors
    /// name the setting (`OBS_PORT`, `obs.toggle[1].scene`, …) and never contain the password.
    pub fn resolve(file: Option<&ObsFileConfig>, env: &ObsEnv) -> Result<Option<Self>, ConfigError> {
        let empty = ObsFileConfig::default();
        let table = file.unwrap_or(&empty);

        let host = match (&env.host, &table.host) {
            (Some(host), _) => Some(("OBS_HOST", host)),
            (None, Some(host)) => Some(("obs.host", host)),
            (None, None) => None,
        };
        let Some((host_setting, host)) = host else {
            return match file {
                Some(_) => Err(ConfigError::new("obs.host", "missing: set it (or OBS_HOST) to OBS's address")),
                None => Ok(None),
            };
        };
        let host = host.trim();
        if host.is_empty() || host.contains("://") || host.contains(['/', ' ']) {
            return Err(ConfigError::new(
                host_setting,
                format!("`{host}` is not a host name or IP address (e.g. 127.0.0.1, without ws://)"),
            ));
        }
        // The host goes into a `ws://HOST:PORT` URL: an IPv6 address needs brackets there,
        // and anything else with a colon is most likely `host:port`.
        let host = if let Ok(ip) = host.parse::<std::net::Ipv6Addr>() {
            format!("[{ip}]")
        } else if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
            let port_setting = if host_setting == "OBS_HOST" { "OBS_PORT" } else { "obs.port" };
            return Err(ConfigError::new(host_setting, format!("`{host}`: give the port in {port_setting}")));
        } else {
            host.to_owned()
        };

        let port = match (&env.port, table.port) {
            (Some(text), _) => match text.trim().parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => return Err(ConfigError::new("OBS_PORT", format!("`{text}` is not a port number (1-65535)"))),
            },
            (None, Some(0)) => return Err(ConfigError::new("obs.port", "must be 1-65535")),
            (None, Some(port)) => port,
            (None, None) => DEFAULT_PORT,
        };

        // An empty password (`OBS_PASSWORD=` in an env file) counts as not set.
        let password = [&env.password, &table.password].into_iter().flatten().find(|p| !p.is_empty()).cloned();

        let idle_scene = name("obs.idle_scene", table.idle_scene.as_deref())?;
        let on_air_scene = name("obs.on_air_scene", table.on_air_scene.as_deref())?;
        let dj_name_source = name("obs.dj_name_source", table.dj_name_source.as_deref())?;

        if table.toggle.len() > MAX_TOGGLES {
            return Err(ConfigError::new("obs.toggle", format!("at most {MAX_TOGGLES} entries")));
        }
        let mut toggles: Vec<ToggleConfig> = Vec::with_capacity(table.toggle.len());
        for (i, toggle) in table.toggle.iter().enumerate() {
            let source = name(&format!("obs.toggle[{i}].source"), Some(&toggle.source))?.unwrap_or_default();
            let scene = name(&format!("obs.toggle[{i}].scene"), Some(&toggle.scene))?.unwrap_or_default();
            if let Some(first) = toggles.iter().position(|t| t.source == source && t.scene == scene) {
                return Err(ConfigError::new(
                    format!("obs.toggle[{i}]"),
                    format!("`{source}` in `{scene}` is already toggled by obs.toggle[{first}]"),
                ));
            }
            toggles.push(ToggleConfig { source, scene, on: toggle.on });
        }

        if idle_scene.is_none() && on_air_scene.is_none() && dj_name_source.is_none() && toggles.is_empty() {
            return Err(ConfigError::new(
                "obs",
                format!(
                    "{host_setting} is set but nothing is asked of OBS: set obs.idle_scene, obs.on_air_scene, \
                     obs.dj_name_source or add an [[obs.toggle]]"
                ),
            ));
        }

        Ok(Some(Self { host, port, password, idle_scene, on_air_scene, dj_name_source, toggles }))
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// A scene or source name: optional, but not blank and not absurdly long. OBS names may
/// contain anything else, including spaces at the ends, so the name is kept as written.
fn name(setting: &str, value: Option<&str>) -> Result<Option<String>, ConfigError> {
    match value {
        None => Ok(None),
        Some(value) if value.trim().is_empty() => Err(ConfigError::new(setting, "must not be empty")),
        Some(value) if value.len() > MAX_NAME_LEN => {
            Err(ConfigError::new(setting, format!("longer than {MAX_NAME_LEN} bytes")))
        }
        Some(value) => Ok(Some(value.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(toml_text: &str) -> ObsFileConfig {
        #[derive(Deserialize)]
        struct Root {
            obs: ObsFileConfig,
        }
        toml::from_str::<Root>(toml_text).expect("test TOML parses").obs
    }

    fn error(file: Option<&ObsFileConfig>, env: &ObsEnv) -> ConfigError {
        ObsConfig::resolve(file, env).expect_err("configuration is refused")
    }

    #[test]
    fn off_without_a_host() {
        assert_eq!(ObsConfig::resolve(None, &ObsEnv::default()).expect("valid"), None);
    }

    #[test]
    fn full_table_parses_and_validates() {
        let file = table(
            r#"
            [obs]
            host = "10.0.0.5"
            password = "hunter2"
            idle_scene = "Intermission"
            on_air_scene = "Live"
            dj_name_source = "DJ Name"
            [[obs.toggle]]
            source = "Now Live Banner"
            scene = "Live"
            [[obs.toggle]]
            source = "Be right back"
            scene = "Intermission"
            on = "idle"
            "#,
        );
        let config = ObsConfig::resolve(Some(&file), &ObsEnv::default()).expect("valid").expect("on");
        assert_eq!((config.host(), config.port()), ("10.0.0.5", DEFAULT_PORT));
        assert_eq!(config.password.as_ref().map(Secret::expose), Some("hunter2"));
        assert_eq!(config.toggles[0].on, ToggleWhen::OnAir);
        assert_eq!(config.toggles[1].on, ToggleWhen::Idle);
        assert!(!format!("{config:?} {file:?}").contains("hunter2"), "Debug never shows the password");
    }

    #[test]
    fn environment_wins_over_the_table() {
        let file = table("[obs]\nhost = \"a\"\nport = 1\npassword = \"file\"\nidle_scene = \"I\"");
        let env = ObsEnv { host: Some("b".into()), port: Some("4456".into()), password: Some("env".into()) };
        let config = ObsConfig::resolve(Some(&file), &env).expect("valid").expect("on");
        assert_eq!(
            (config.host(), config.port(), config.password.as_ref().map(Secret::expose)),
            ("b", 4456, Some("env"))
        );
        // An empty OBS_PASSWORD (an env file's `OBS_PASSWORD=`) counts as not set.
        let env = ObsEnv { password: Some(Secret::default()), ..Default::default() };
        let config = ObsConfig::resolve(Some(&file), &env).expect("valid").expect("on");
        assert_eq!(config.password.as_ref().map(Secret::expose), Some("file"));
        let file = table("[obs]\nhost = \"a\"\npassword = \"\"\nidle_scene = \"I\"");
        let config = ObsConfig::resolve(Some(&file), &env).expect("valid").expect("on");
        assert_eq!(config.password, None);
    }

    #[test]
    fn errors_name_the_setting() {
        let actions = table("[obs]\nidle_scene = \"I\"");
        assert_eq!(error(Some(&actions), &ObsEnv::default()).setting, "obs.host");

        let env = ObsEnv { host: Some("localhost".into()), ..Default::default() };
        let e = error(None, &env);
        assert_eq!(e.setting, "obs");
        assert!(e.message.contains("OBS_HOST is set"), "{e}");

        let env = ObsEnv { host: Some("ws://x:4455".into()), ..Default::default() };
        assert_eq!(error(Some(&actions), &env).setting, "OBS_HOST");

        let env = ObsEnv { host: Some("obs.lan:4455".into()), ..Default::default() };
        let e = error(Some(&actions), &env);
        assert_eq!(e.setting, "OBS_HOST");
        assert!(e.message.contains("OBS_PORT"), "{e}");
        let env = ObsEnv { host: Some("::1".into()), ..Default::default() };
        let config = ObsConfig::resolve(Some(&actions), &env).expect("valid").expect("on");
        assert_eq!(config.host(), "[::1]", "bracketed for the ws:// URL");

        let env = ObsEnv { host: Some("x".into()), port: Some("70000".into()), ..Default::default() };
        assert_eq!(error(Some(&actions), &env).setting, "OBS_PORT");

        assert_eq!(
            error(Some(&table("[obs]\nhost = \"x\"\nport = 0\nidle_scene = \"I\"")), &ObsEnv::default()).setting,
            "obs.port"
        );
        assert_eq!(
            error(Some(&table("[obs]\nhost = \"x\"\non_air_scene = \" \"")), &ObsEnv::default()).setting,
            "obs.on_air_scene"
        );

        let twice = table(
            "[obs]\nhost = \"x\"\n[[obs.toggle]]\nsource = \"B\"\nscene = \"L\"\n[[obs.toggle]]\nsource = \"B\"\nscene = \"L\"\non = \"idle\"",
        );
        let e = error(Some(&twice), &ObsEnv::default());
        assert_eq!(e.setting, "obs.toggle[1]");
        assert!(e.message.contains("obs.toggle[0]"), "{e}");

        let blank = table("[obs]\nhost = \"x\"\n[[obs.toggle]]\nsource = \"B\"\nscene = \"\"");
        assert_eq!(error(Some(&blank), &ObsEnv::default()).setting, "obs.toggle[0].scene");
    }

    #[test]
    fn unknown_keys_and_values_are_refused_by_the_parser() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Root {
            obs: ObsFileConfig,
        }
        assert!(toml::from_str::<Root>("[obs]\nhots = \"x\"").is_err());
        assert!(
            toml::from_str::<Root>("[obs]\n[[obs.toggle]]\nsource = \"a\"\nscene = \"b\"\non = \"always\"").is_err()
        );
    }
}
