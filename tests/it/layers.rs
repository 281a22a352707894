//! The layering of docs/architecture.md, checked on the sources: every
//! `crate::` path names a top-level module of the same layer or below.
//! (The Burn-free crate's independence from Burn is kept by the compiler;
//! this keeps the order inside each crate.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Layers of the main crate, bottom first (docs/architecture.md).
const MAIN_LAYERS: &[&[&str]] = &[
    &["error", "kernels", "tensorboard"],
    &["data"],
    &["masks", "models"],
    &["training"],
    &["deploy", "report"],
    &["cli", "reproduce"],
];

/// Layers of selmask-wire, bottom first.
const WIRE_LAYERS: &[&[&str]] = &[&["error", "util"], &["dataset", "granularity"], &["artifact"], &["transfer"]];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::<module>` named in `source`, outside comments and test
/// code: a `#[cfg(test)]` module may take its fixtures from any layer (the
/// artifact format's tests build artifacts with the transfer fixtures).
fn crate_paths(source: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (i, line) in source.lines().enumerate() {
        if line == "#[cfg(test)]" {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            // `selmask_wire::...` and `crate::` inside an identifier (e.g.
            // `$crate::`) do not count; only a path starting at `crate`.
            let before = rest[..at].chars().last();
            let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') && !name.is_empty() {
                found.push((i + 1, name));
            }
            rest = after;
        }
    }
    found
}

/// The upward imports of the crate whose sources are in `src`, as
/// `file:line: module -> imported` lines.
fn upward_imports(src: &Path, layers: &[&[&str]]) -> Vec<String> {
    let layer_of: BTreeMap<&str, usize> =
        layers.iter().enumerate().flat_map(|(i, names)| names.iter().map(move |n| (*n, i))).collect();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    assert!(!files.is_empty(), "no sources under {}", src.display());
    let mut bad = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        // Test modules kept in files of their own (`format_tests.rs`,
        // `reproduce/tests.rs`) are test code too.
        if file.file_stem().is_some_and(|s| s == "tests" || s.to_string_lossy().ends_with("_tests")) {
            continue;
        }
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if first == "lib" || first == "main" {
            continue;
        }
        let own = *layer_of
            .get(first.as_str())
            .unwrap_or_else(|| panic!("{}: module '{first}' is in no layer of docs/architecture.md", file.display()));
        for (line, imported) in crate_paths(&std::fs::read_to_string(&file).unwrap()) {
            match layer_of.get(imported.as_str()) {
                Some(&l) if l <= own => {}
                Some(_) => bad.push(format!("{}:{line}: {first} -> {imported}", rel.display())),
                None => bad.push(format!("{}:{line}: {first} -> {imported} (in no layer)", rel.display())),
            }
        }
    }
    bad
}

#[test]
fn no_module_of_the_main_crate_imports_from_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = upward_imports(&src, MAIN_LAYERS);
    assert!(bad.is_empty(), "imports from a higher layer:\n{}", bad.join("\n"));
}

#[test]
fn no_module_of_the_wire_crate_imports_from_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/selmask-wire/src");
    let bad = upward_imports(&src, WIRE_LAYERS);
    assert!(bad.is_empty(), "imports from a higher layer:\n{}", bad.join("\n"));
}

#[test]
fn the_layer_check_sees_an_upward_import() {
    // The check itself can fail: a `data` file naming `crate::training`.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    std::fs::write(
        tmp.path().join("data/mod.rs"),
        "use crate::error::Error;\n// crate::training in a comment is fine\nuse crate::training::run;\n#[cfg(test)]\nmod tests {\n    use crate::cli::Cli;\n}\n",
    )
    .unwrap();
    assert_eq!(upward_imports(tmp.path(), MAIN_LAYERS), vec!["data/mod.rs:3: data -> training".to_string()]);
}
