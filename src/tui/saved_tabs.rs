//! The tabs of the last run, per app and user, as WeeChat and irssi autojoin: read at the
//! first login (the app rejoins the channels and reopens the peer tabs), written whenever
//! the set of open conversations changes. One JSON file in the state directory
//! (`paths::log_dir()/tabs.json`, under `RTM_TUI_HOME` in tests), written whole and
//! renamed into place so a crash never leaves half a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::target::Target;

/// The file, by app and user: `{"app\u{1f}user": [{"channel": "lobby"}, {"peer": "bob"}]}`.
type Saved = BTreeMap<String, Vec<Target>>;

/// Where the tabs are kept.
pub fn default_path() -> PathBuf {
    crate::paths::log_dir().join("tabs.json")
}

/// The key of an app and user (the unit separator appears in neither id).
fn key(app_id: &str, user: &str) -> String {
    format!("{app_id}\u{1f}{user}")
}

fn read(path: &Path) -> Saved {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// The conversations `user` of `app_id` had open last time, in tab order.
pub fn load(path: &Path, app_id: &str, user: &str) -> Vec<Target> {
    read(path).remove(&key(app_id, user)).unwrap_or_default()
}

/// Records the conversations `user` of `app_id` has open now.
pub fn save(path: &Path, app_id: &str, user: &str, tabs: &[Target]) -> std::io::Result<()> {
    let mut saved = read(path);
    if tabs.is_empty() {
        saved.remove(&key(app_id, user));
    } else {
        saved.insert(key(app_id, user), tabs.to_vec());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temporary = path.with_extension("json.new");
    std::fs::write(&temporary, serde_json::to_vec_pretty(&saved)?)?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabs_are_kept_per_app_and_user() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/tabs.json");
        assert!(load(&path, "demo", "alice").is_empty());
        let alice = [Target::Channel("lobby".into()), Target::Peer("bob".into())];
        save(&path, "demo", "alice", &alice).unwrap();
        save(&path, "demo", "bob", &[Target::Channel("dev".into())]).unwrap();
        save(&path, "other", "alice", &[Target::Peer("carol".into())]).unwrap();
        assert_eq!(load(&path, "demo", "alice"), alice);
        assert_eq!(load(&path, "demo", "bob"), [Target::Channel("dev".into())]);
        save(&path, "demo", "alice", &[]).unwrap();
        assert!(load(&path, "demo", "alice").is_empty());
        assert_eq!(
            load(&path, "other", "alice"),
            [Target::Peer("carol".into())]
        );
    }
}
