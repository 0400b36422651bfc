//! The TUI's config file: TOML in `paths::config_dir()/config.toml` (or `--config`), with
//! the server(s), colours, keymap overrides, bell and time format. `assets/config.toml` is the commented
//! default and must parse into [`TuiConfig::default`]; a new setting goes in both places.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// The commented default config, shipped in the binary so `--help` users can copy it.
pub const DEFAULT_CONFIG: &str = include_str!("../../assets/config.toml");

/// Everything the config file can set.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TuiConfig {
    /// Ring the terminal bell when someone mentions you.
    pub bell: bool,
    /// Desktop notifications (mentions, peer messages) through the terminal: "auto",
    /// "osc9", "osc777" or "off" (`tui/notify.rs`).
    pub notify: super::notify::NotifyMode,
    /// strftime: %H %M %S %d %m %Y %y %b %a ...
    pub time_format: String,
    /// The time zone of timestamps: empty for the system's, an IANA name, or a fixed
    /// offset like "+02:00" (the older name of the setting, `utc_offset`, still reads).
    #[serde(alias = "utc_offset")]
    pub time_zone: String,
    /// Show the member list in channel tabs when the terminal is wide enough.
    pub members_pane: bool,
    /// Received images: "auto", "halfblocks" or "off" (`tui/pictures.rs`).
    pub images: super::pictures::ImageMode,
    /// Runs of more join/leave lines than this collapse into one.
    pub collapse_joins: usize,
    /// The servers when the command line names none: `server = "URL"` or a list of URLs
    /// (nodes of one service, failed over between). Empty: the default local server.
    #[serde(deserialize_with = "one_or_many")]
    pub server: Vec<String>,
    pub colors: Colors,
    /// Key → action overrides, e.g. `"ctrl-g" = "switcher"`.
    pub keys: BTreeMap<String, String>,
}

/// Colour names (`red`, `lightcyan`, `#ff8800`, ...) for the parts of the screen.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Colors {
    pub accent: String,
    pub own: String,
    pub mention: String,
    pub error: String,
    pub dim: String,
    pub ok: String,
}

impl Default for TuiConfig {
    fn default() -> Self {
        TuiConfig {
            bell: true,
            notify: super::notify::NotifyMode::Auto,
            time_format: "%H:%M".into(),
            time_zone: String::new(),
            members_pane: true,
            images: super::pictures::ImageMode::Auto,
            collapse_joins: 3,
            server: Vec::new(),
            colors: Colors::default(),
            keys: BTreeMap::new(),
        }
    }
}

impl Default for Colors {
    fn default() -> Self {
        Colors {
            accent: "cyan".into(),
            own: "green".into(),
            mention: "yellow".into(),
            error: "red".into(),
            dim: "darkgray".into(),
            ok: "green".into(),
        }
    }
}

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TuiConfigError {
    // The source is printed by the error chain; repeating it here would print it twice.
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad config file {path}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{0}")]
    Invalid(String),
}

impl TuiConfig {
    /// Reads `path`, or the default location when `None`; a missing default file is fine.
    pub fn load(path: Option<&Path>) -> Result<TuiConfig, TuiConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (crate::paths::config_dir().join("config.toml"), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => TuiConfig::parse(&text).map_err(|e| match e {
                TuiConfigError::Parse { source, .. } => TuiConfigError::Parse { path, source },
                other => other,
            }),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                Ok(TuiConfig::default())
            }
            Err(source) => Err(TuiConfigError::Read { path, source }),
        }
    }

    pub fn parse(text: &str) -> Result<TuiConfig, TuiConfigError> {
        let config: TuiConfig = toml::from_str(text).map_err(|e| TuiConfigError::Parse {
            path: PathBuf::new(),
            source: Box::new(e),
        })?;
        config.time_zone()?;
        super::local_time::check_pattern(&config.time_format).map_err(TuiConfigError::Invalid)?;
        Ok(config)
    }

    /// The zone `time_zone` names.
    pub fn time_zone(&self) -> Result<jiff::tz::TimeZone, TuiConfigError> {
        super::local_time::zone(&self.time_zone).map_err(TuiConfigError::Invalid)
    }
}

/// A string (one server, or several separated by commas, as `RTM_SERVER` takes them) or
/// a list of strings.
fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let list = match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(text) => text.split(',').map(str::to_string).collect(),
        OneOrMany::Many(list) => list,
    };
    Ok(list
        .into_iter()
        .map(|server| server.trim().to_string())
        .filter(|server| !server.is_empty())
        .collect())
}

/// Styles for every part of the screen, resolved once from the config (and `NO_COLOR`).
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub accent: Style,
    pub own: Style,
    pub mention: Style,
    pub error: Style,
    pub dim: Style,
    pub ok: Style,
    pub selected: Style,
    pub bold: Style,
    /// URLs in messages: a style no other text has (the underline colour makes sure),
    /// since drawn links are found again by it (`render/links.rs`).
    pub link: Style,
}

impl Theme {
    /// Colours from the config, or a monochrome theme when `monochrome` (NO_COLOR) is set.
    pub fn new(colors: &Colors, monochrome: bool) -> Theme {
        if monochrome {
            return Theme::monochrome();
        }
        let fg = |name: &str| Style::new().fg(name.parse::<Color>().unwrap_or(Color::Reset));
        Theme {
            accent: fg(&colors.accent),
            own: fg(&colors.own),
            mention: fg(&colors.mention).add_modifier(Modifier::BOLD),
            error: fg(&colors.error),
            dim: fg(&colors.dim),
            ok: fg(&colors.ok),
            selected: Style::new().add_modifier(Modifier::REVERSED),
            bold: Style::new().add_modifier(Modifier::BOLD),
            link: fg(&colors.accent)
                .add_modifier(Modifier::UNDERLINED)
                .underline_color(Color::Reset),
        }
    }

    /// No colours: emphasis by bold, underline and reverse video only.
    pub fn monochrome() -> Theme {
        let plain = Style::new();
        Theme {
            accent: plain.add_modifier(Modifier::BOLD),
            own: plain,
            mention: plain.add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            error: plain.add_modifier(Modifier::BOLD),
            dim: plain,
            ok: plain,
            selected: plain.add_modifier(Modifier::REVERSED),
            bold: plain.add_modifier(Modifier::BOLD),
            link: plain
                .add_modifier(Modifier::UNDERLINED)
                .underline_color(Color::Reset),
        }
    }
}

/// True when the `NO_COLOR` convention (no-color.org) asks for no colours.
pub fn no_color_requested() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_default_parses_to_the_built_in_default() {
        assert_eq!(
            TuiConfig::parse(DEFAULT_CONFIG).unwrap(),
            TuiConfig::default()
        );
    }

    #[test]
    fn time_zones_and_formats_are_checked() {
        assert!(TuiConfig::parse("time_zone = \"Europe/Paris\"").is_ok());
        assert!(TuiConfig::parse("utc_offset = \"+02:00\"").is_ok());
        assert!(TuiConfig::parse("time_zone = \"+2:00 please\"").is_err());
        assert!(TuiConfig::parse("time_format = \"%K\"").is_err());
    }

    #[test]
    fn the_server_is_one_url_or_a_list() {
        assert_eq!(
            TuiConfig::parse("server = \"a:1\"").unwrap().server,
            ["a:1"]
        );
        assert_eq!(
            TuiConfig::parse("server = \"a:1, b:2\"").unwrap().server,
            ["a:1", "b:2"]
        );
        let list = TuiConfig::parse("server = [\"ws://a:1/rtm/v1\", \"b:2\"]").unwrap();
        assert_eq!(list.server, ["ws://a:1/rtm/v1", "b:2"]);
        assert!(TuiConfig::parse("server = 7420").is_err());
    }

    #[test]
    fn unknown_settings_are_refused() {
        assert!(TuiConfig::parse("bel = false").is_err());
        assert!(TuiConfig::parse("notify = \"loud\"").is_err());
        assert_eq!(
            TuiConfig::parse("notify = \"osc777\"").unwrap().notify,
            crate::tui::notify::NotifyMode::Osc777
        );
        let c = TuiConfig::parse("bell = false\n[keys]\n\"ctrl-g\" = \"switcher\"").unwrap();
        assert!(!c.bell);
        assert_eq!(c.keys["ctrl-g"], "switcher");
    }
}
