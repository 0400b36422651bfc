//! The arrows of the README's "Layout", checked on the sources: `tui → client → protocol`,
//! `qa → client → protocol`, `server → protocol`, `server → token`. A backward import
//! fails here with the file and line, so the layering stays visible as the code grows.
//! Also: the rooms a client application builds (`protocol`, `token`, `client`, with
//! `default-features = false`) name no optional crate; inside the server, the engine
//! names nothing of the hub above it; and no two files of `src/` import each other.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A room and the paths it must not name.
struct Rule {
    room: &'static str,
    /// Lists of paths, concatenated (rooms share some).
    forbidden: &'static [&'static [&'static str]],
}

/// What the pure rooms (`protocol`, `token`) must not name: no runtime, no other room.
const PURE: &[&str] = &[
    "tokio",
    "crate::server",
    "crate::client",
    "crate::tui",
    "crate::qa",
];

const RULES: &[Rule] = &[
    Rule {
        room: "src/protocol",
        forbidden: &[PURE, &["std::net", "std::fs"]],
    },
    Rule {
        room: "src/token",
        forbidden: &[PURE],
    },
    Rule {
        room: "src/client",
        forbidden: &[&["crate::server", "crate::tui", "crate::qa"]],
    },
    Rule {
        room: "src/server",
        forbidden: &[&["crate::client", "crate::tui", "crate::qa"]],
    },
    Rule {
        // The engine sits below the hub: it drives it through `engine::Node`.
        room: "src/server/engine",
        forbidden: &[&[
            "crate::server::hub",
            "super::hub",
            "super::super::hub",
            "super::super::super::hub",
        ]],
    },
    Rule {
        room: "src/tui",
        // The server it starts in-process comes from the binary (`tui::local_server`).
        forbidden: &[&["crate::server", "crate::qa"]],
    },
    Rule {
        room: "src/qa",
        // Everything the QA kit does must work against any server at any URL.
        forbidden: &[&["crate::tui", "crate::server"]],
    },
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.to_path_buf());
        }
        return;
    }
    let Ok(entries) = fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        rust_files(&entry.path(), out);
    }
}

/// The modules a `use` line names: `use crate::{client, server::Hub}` names
/// `crate::client` and `crate::server`; `use super::super::server::X` is not resolved
/// (rooms are found by their `crate::` paths, which the rules name).
fn named_paths(line: &str) -> Vec<String> {
    let code = line.trim_start();
    let mut paths = vec![code.to_string()];
    if let Some(rest) = code
        .strip_prefix("use crate::{")
        .or_else(|| code.strip_prefix("pub use crate::{"))
    {
        for part in rest.trim_end_matches(['}', ';']).split(',') {
            paths.push(format!("crate::{}", part.trim()));
        }
    }
    paths
}

fn is_code(line: &str) -> bool {
    let trimmed = line.trim_start();
    !(trimmed.starts_with("//") || trimmed.starts_with('*'))
}

/// The lines of `room`'s files that name one of `forbidden`, as `file:line: what`; panics
/// if the room has no Rust files.
fn forbidden_uses(room: &str, forbidden: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join(room), &mut files);
    // A rule over a room that moved would pass by checking nothing.
    assert!(!files.is_empty(), "room {room} has no Rust files");
    let mut violations = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            if !is_code(line) {
                continue;
            }
            for needle in forbidden {
                let hit = named_paths(line).iter().any(|path| {
                    path.contains(&format!("{needle}::"))
                        || path == needle
                        || path.contains(&format!("use {needle}"))
                        || path.contains(&format!("{needle} ")) && path.starts_with("use ")
                });
                if hit {
                    violations.push(format!(
                        "{relative}:{}: {room} must not use {needle}: {}",
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    violations
}

#[test]
fn imports_point_one_way() {
    let violations: Vec<String> = RULES
        .iter()
        .flat_map(|rule| forbidden_uses(rule.room, &rule.forbidden.concat()))
        .collect();
    assert!(
        violations.is_empty(),
        "backward imports:\n{}",
        violations.join("\n")
    );
}

/// The rooms built with `default-features = false`: what a client application gets.
const LIBRARY_ROOMS: &[&str] = &["src/protocol", "src/token", "src/client"];

/// The optional dependencies of `Cargo.toml` (the ones a feature turns on), spelled as in
/// code (`tokio-util` is `tokio_util`).
fn optional_crates() -> Vec<String> {
    let manifest = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .expect("Cargo.toml");
    manifest
        .lines()
        .filter(|line| line.contains("optional = true"))
        .filter_map(|line| line.split_once('='))
        .map(|(name, _)| name.trim().replace('-', "_"))
        .collect()
}

/// `cargo build --lib --no-default-features` (in `.ci/run`) is the real check; this one
/// fails at once, with the line, when the client starts to need SQLite, ratatui or clap.
#[test]
fn the_library_rooms_use_no_optional_crate() {
    let optional = optional_crates();
    for expected in [
        "rusqlite",
        "redis",
        "ratatui",
        "crossterm",
        "clap",
        "hdrhistogram",
    ] {
        assert!(
            optional.iter().any(|name| name == expected),
            "{expected} is no longer optional: {optional:?}"
        );
    }
    let forbidden: Vec<&str> = optional.iter().map(String::as_str).collect();
    let violations: Vec<String> = LIBRARY_ROOMS
        .iter()
        .flat_map(|room| forbidden_uses(room, &forbidden))
        .collect();
    assert!(
        violations.is_empty(),
        "the library without default features would need an optional crate:\n{}",
        violations.join("\n")
    );
}

#[test]
fn protocol_room_exists() {
    // Guards against the rule above passing because a room moved.
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/protocol/mod.rs")
        .is_file());
}

/// The items of a feature in `Cargo.toml` (`tui = [ "a", "b" ]`, over several lines).
fn feature_items(feature: &str) -> Vec<String> {
    let manifest = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .expect("Cargo.toml");
    let start = manifest
        .find(&format!("\n{feature} = ["))
        .unwrap_or_else(|| panic!("no feature {feature} in Cargo.toml"));
    let list = &manifest[start..];
    let list = &list[list.find('[').unwrap() + 1..list.find(']').unwrap()];
    list.lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .flat_map(|line| line.split(','))
        .map(|item| item.trim().trim_matches('"').to_string())
        .filter(|item| !item.is_empty())
        .collect()
}

/// The chat client builds without the server (its in-process server comes from the
/// binary): `cargo check --no-default-features --features tui` in `.ci/run` is the real
/// check; this one names the line at once.
#[test]
fn the_chat_client_does_not_bring_the_server() {
    let tui = feature_items("tui");
    assert!(tui.iter().any(|item| item == "dep:ratatui"), "{tui:?}");
    for server_only in ["server", "dep:rusqlite", "dep:redis", "dep:hyper"] {
        assert!(
            !tui.iter().any(|item| item == server_only),
            "the tui feature brings {server_only}: {tui:?}"
        );
    }
}

/// The module path of a file under `src/` (`src/client/media/mod.rs` is `client::media`,
/// `src/tui/job.rs` is `tui::job`, `src/lib.rs` the crate's root, ``).
fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// The file a path names from module `from`: `crate::`, `super::` and `self::` paths
/// resolved to the longest module with a file; `None` for other crates' paths.
fn resolve(from: &str, path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut segments = path.split("::");
    let mut base: Vec<&str> = match segments.next()? {
        "crate" => Vec::new(),
        "self" => from.split("::").filter(|s| !s.is_empty()).collect(),
        "super" => {
            let mut base: Vec<&str> = from.split("::").filter(|s| !s.is_empty()).collect();
            base.pop();
            base
        }
        _ => return None,
    };
    for segment in segments {
        if segment == "super" {
            base.pop();
        } else {
            base.push(segment);
        }
    }
    while !base.is_empty() {
        let candidate = base.join("::");
        if modules.contains(&candidate) {
            return Some(candidate);
        }
        base.pop();
    }
    None
}

/// Each file of `src/` (by module path) and the files its code names (docs and tests
/// aside; a module naming its own parent or child is how Rust modules work, not a circle).
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeMap<String, PathBuf> = files
        .into_iter()
        .map(|f| (module_of(f.strip_prefix(&src).unwrap()), f))
        .collect();
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let text = fs::read_to_string(file).unwrap();
        let code = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default();
        let mut named = BTreeSet::new();
        for line in code.lines().filter(|line| is_code(line)) {
            for start in line.match_indices(['c', 's']).map(|(i, _)| i) {
                if start > 0
                    && matches!(line.as_bytes()[start - 1], b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_')
                {
                    continue;
                }
                let path: String = line[start..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                if !path.contains("::") {
                    continue;
                }
                let Some(target) = resolve(module, path.trim_end_matches(':'), &names) else {
                    continue;
                };
                let family = |a: &str, b: &str| a.is_empty() || b.starts_with(&format!("{a}::"));
                if target != *module && !family(&target, module) && !family(module, &target) {
                    named.insert(target);
                }
            }
        }
        graph.insert(module.clone(), named);
    }
    graph
}

/// The files that reach each other through imports (Tarjan's strongly connected
/// components of more than one file).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        circles: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            for w in self.graph.get(v).into_iter().flatten() {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w.as_str()]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w.as_str()) {
                    let low = self.low[v].min(self.index[w.as_str()]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let at = self.stack.iter().rposition(|s| *s == v).unwrap();
                let component: Vec<String> = self.stack.drain(at..).map(str::to_string).collect();
                if component.len() > 1 {
                    self.circles.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        circles: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.circles
}

/// No two files import each other, directly or round a longer loop: a file can be read
/// (and changed) knowing only what it names.
#[test]
fn no_files_import_each_other() {
    let graph = import_graph();
    // The check sees real imports: the client's handle names its shared state.
    assert!(
        graph["client::handle"].contains("client::shared"),
        "{graph:?}"
    );
    let found = circles(&graph);
    assert!(found.is_empty(), "files that import each other: {found:?}");
}

#[test]
fn a_circle_is_found() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", &["b"][..]),
        ("b", &["c"]),
        ("c", &["a"]),
        ("d", &["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.iter().map(ToString::to_string).collect()))
    .collect();
    assert_eq!(circles(&graph), [["a", "b", "c"]]);
}

/// Each type name means one thing in the crate: no two `struct`, `enum`, `trait`, `union`
/// or `type` items of `src/` (tests aside; associated types are not items) share a name, so
/// a reader who meets one knows which room it belongs to.
#[test]
fn no_two_types_share_a_name() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut defined: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        let code = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default();
        for (number, line) in code.lines().enumerate() {
            let indented = line.starts_with(' ');
            let mut words = line.split_whitespace().skip_while(|w| w.starts_with("pub"));
            let (Some(kind), Some(name)) = (words.next(), words.next()) else {
                continue;
            };
            // `type X = ...;` indented is an associated type (or a local alias).
            let item = matches!(kind, "struct" | "enum" | "trait" | "union")
                || (kind == "type" && !indented);
            let name: String = name
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if item && name.starts_with(char::is_uppercase) {
                let place = format!(
                    "{}:{}",
                    file.strip_prefix(&src).unwrap().display(),
                    number + 1
                );
                defined.entry(name).or_default().push(place);
            }
        }
    }
    // The check sees items: the protocol's Request is one.
    assert!(defined.contains_key("Request"), "{defined:?}");
    let shared: Vec<_> = defined
        .iter()
        .filter(|(_, places)| places.len() > 1)
        .collect();
    assert!(
        shared.is_empty(),
        "type names defined more than once: {shared:?}"
    );
}
