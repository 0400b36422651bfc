//! Where rtm-tui keeps things on disk: the XDG config, data and state directories.
//!
//! One place decides the paths so that the README, `--help` and the code agree.
//! `RTM_TUI_HOME`, when set, puts all three under one folder (tests and demos use it).

use std::path::PathBuf;

use directories::ProjectDirs;

/// Directory names under the XDG base directories.
const APP_NAME: &str = "rtm-tui";

fn project_dirs() -> Option<ProjectDirs> {
    ProjectDirs::from("", "", APP_NAME)
}

fn home_override(sub: &str) -> Option<PathBuf> {
    std::env::var_os("RTM_TUI_HOME").map(|home| PathBuf::from(home).join(sub))
}

/// Config files: `$XDG_CONFIG_HOME/rtm-tui` (`~/.config/rtm-tui`).
pub fn config_dir() -> PathBuf {
    home_override("config")
        .or_else(|| project_dirs().map(|d| d.config_dir().to_path_buf()))
        .unwrap_or_else(|| PathBuf::from(".rtm-tui/config"))
}

/// Durable server data (the SQLite store): `$XDG_DATA_HOME/rtm-tui` (`~/.local/share/rtm-tui`).
pub fn data_dir() -> PathBuf {
    home_override("data")
        .or_else(|| project_dirs().map(|d| d.data_dir().to_path_buf()))
        .unwrap_or_else(|| PathBuf::from(".rtm-tui/data"))
}

/// Logs: `$XDG_STATE_HOME/rtm-tui` (`~/.local/state/rtm-tui`), else the data dir.
pub fn log_dir() -> PathBuf {
    home_override("state")
        .or_else(|| {
            project_dirs().map(|d| {
                d.state_dir().map_or_else(
                    || d.data_local_dir().join("logs"),
                    std::path::Path::to_path_buf,
                )
            })
        })
        .unwrap_or_else(|| PathBuf::from(".rtm-tui/state"))
}
