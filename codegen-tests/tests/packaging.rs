//! Every crate packages on its own (`cargo package --workspace --no-verify` passes): no source
//! file reaches into another crate's directory with `#[path = "../.."]`, which packaging
//! cannot follow. Shared code is a crate of its own (`flowgate-interval`).

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_crate_includes_files_of_another() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for krate in ["interval", "macros-core", "macros", "runtime", "examples", "benches", "codegen-tests"] {
        rust_files(&root.join(krate).join("src"), &mut files);
    }
    assert!(files.len() > 20, "found the sources");
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.lines().any(|l| l.trim_start().starts_with("#[path") && l.contains(".."))
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "files with #[path] outside their crate: {offenders:?}");
}
