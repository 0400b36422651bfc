//! Agora's official token builders, run as the real packages: npm `agora-token` under
//! node and PyPI `agora-token-builder` under python3, to mint tokens with them (the
//! interop tests and the server's login tests).
//!
//! `.ci/test` installs the packages into `target/interop/` and passes their paths in
//! `RTM_INTEROP_NODE_PATH` (a `node_modules` dir) and `RTM_INTEROP_PYTHONPATH`; without
//! those variables the same default paths are tried. When a tool is missing, the test
//! fails under `CI=true` and is skipped with a printed reason otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One language runtime with the official builder package on its module path.
pub struct Builder {
    program: &'static str,
    path_var: &'static str,
    module_path: PathBuf,
    extension: &'static str,
}

/// Node with the npm `agora-token` package, or `None` (test skipped) if not installed.
pub fn node() -> Option<Builder> {
    find(
        Builder {
            program: "node",
            path_var: "NODE_PATH",
            module_path: module_path("RTM_INTEROP_NODE_PATH", "node/node_modules"),
            extension: "js",
        },
        "agora-token",
    )
}

/// Python 3 with the PyPI `agora-token-builder` package, or `None` (test skipped).
pub fn python() -> Option<Builder> {
    find(
        Builder {
            program: "python3",
            path_var: "PYTHONPATH",
            module_path: module_path("RTM_INTEROP_PYTHONPATH", "py"),
            extension: "py",
        },
        "agora_token_builder",
    )
}

fn module_path(var: &str, default_under_interop: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/interop")
                .join(default_under_interop)
        },
        PathBuf::from,
    )
}

fn find(builder: Builder, package: &str) -> Option<Builder> {
    let runs = Command::new(builder.program)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    let problem = if !runs {
        format!("`{}` does not run", builder.program)
    } else if !builder.module_path.join(package).is_dir() {
        format!(
            "the package {package} is not installed in {}",
            builder.module_path.display()
        )
    } else {
        return Some(builder);
    };
    let reason = format!("{problem}; `.ci/test` installs Agora's token builders");
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true, so the interop tests must run: {reason}"
    );
    eprintln!("skipping an interop test: {reason}");
    None
}

impl Builder {
    /// Runs `script` from a temp dir and returns its standard output's lines (the tokens).
    pub fn run(&self, script: &str) -> Vec<String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join(format!("mint.{}", self.extension));
        std::fs::write(&file, script).expect("write the script");
        let output = Command::new(self.program)
            .arg(&file)
            .current_dir(dir.path())
            .env(self.path_var, &self.module_path)
            .output()
            .expect("start the builder");
        assert!(
            output.status.success(),
            "{} failed on\n{script}\n{}",
            self.program,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("tokens are ASCII")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Runs a script that prints exactly one token.
    pub fn token(&self, script: &str) -> String {
        let lines = self.run(script);
        assert_eq!(lines.len(), 1, "expected one token, got {lines:?}");
        let token = lines.into_iter().next().unwrap_or_default();
        assert!(
            token.starts_with("006") || token.starts_with("007"),
            "the builder printed {token:?}, not a token (bad app id or certificate?)"
        );
        token
    }
}

/// A string literal for the scripts (JSON strings are valid JS and Python literals).
pub fn literal(text: &str) -> String {
    serde_json::to_string(text).expect("strings serialize")
}
