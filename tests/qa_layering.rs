//! The QA kit's arrows (style.md): `qa → client → protocol`; it must never reach into the
//! server, so that everything it does works against any server at any URL.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn qa_never_imports_the_server_or_the_tui() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/qa"),
        &mut files,
    );
    assert!(files.len() > 5, "{files:?}");
    for file in files {
        let source = std::fs::read_to_string(&file).expect("read source");
        for forbidden in [
            "crate::server",
            "rtm::server",
            "crate::tui",
            "super::super::server",
        ] {
            assert!(
                !source.contains(forbidden),
                "{} uses {forbidden}",
                file.display()
            );
        }
    }
}
