//! Issue 14: the layers the crate documentation promises are checked here.
//!
//! The table in `src/lib.rs`'s crate doc is the rule: its rows are the
//! layers from the bottom up, and each row names the modules (or, for a
//! module that mixes, the items) that belong to it. Every `crate::` and
//! `super::` path in the library's code must lead to a layer no higher than
//! the one of the module that names it, and no two top-level modules may
//! depend on each other, whatever their layers. In the binary, a command's
//! module (`src/cli/echo.rs`...) may use the shared ones (`args`, `output`,
//! `run`) but no other command's.
//!
//! Paths are read from the source text, with group imports expanded; test
//! code (`#[cfg(test)]` and below, `tests.rs` files) and comments are left
//! out. A path that names an item through a module's re-export is charged to
//! that module.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The documented layers, bottom first: (name, module paths).
fn layers() -> Vec<(String, Vec<String>)> {
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    let rows: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//! | "))
        .filter(|row| !row.starts_with("layer") && !row.starts_with("---"))
        .collect();
    assert!(rows.len() >= 5, "the layer table in src/lib.rs is missing: {rows:?}");
    rows.iter()
        .map(|row| {
            let cells: Vec<&str> = row.split(" | ").collect();
            // Every code span of the modules cell names a module or an item.
            let modules = cells[1]
                .split('`')
                .skip(1)
                .step_by(2)
                .map(|path| path.trim_start_matches("crate::").to_owned())
                .collect();
            (cells[0].to_owned(), modules)
        })
        .collect()
}

/// Every `.rs` file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// `src/transfer/driver/mod.rs` → `transfer::driver`; `src/net.rs` → `net`.
fn module_of(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The code of `text` without comments and without its inline test module
/// (`#[cfg(test)]` over `mod tests {`, at the end by custom).
fn code(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].starts_with("mod ") && w[1].ends_with('{'))
        .unwrap_or(lines.len());
    lines[..end].iter().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Every path starting with `crate::` or `super::` in `code`, with group
/// imports (`crate::a::{b, c::d}`) expanded.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let Some(rest) = code.get(i..) else {
            i += 1;
            continue;
        };
        let starts = (rest.starts_with("crate::") || rest.starts_with("super::"))
            && (i == 0
                || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':'));
        if !starts {
            i += 1;
            continue;
        }
        let (found, used) = expand(rest);
        out.extend(found);
        i += used.max(1);
    }
    out
}

/// The paths one path expression at the start of `text` stands for, and
/// how many bytes it took.
fn expand(text: &str) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    let mut i = 0;
    loop {
        let word: String = text[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if word.is_empty() {
            break;
        }
        i += word.len();
        prefix.push(word);
        if text[i..].starts_with("::{") {
            i += 3;
            let mut out = Vec::new();
            loop {
                let inner = text[i..].trim_start_matches([' ', '\n', ',']);
                i = text.len() - inner.len();
                if inner.starts_with('}') || inner.is_empty() {
                    return (out, i + 1);
                }
                let (found, used) = expand(inner);
                let used = used.max(1);
                for path in found {
                    out.push(
                        prefix.iter().cloned().chain(path.into_iter().filter(|p| p != "self")).collect(),
                    );
                }
                i += used;
            }
        }
        if text[i..].starts_with("::") {
            i += 2;
        } else {
            break;
        }
    }
    (vec![prefix], i)
}

/// `crate::a::b` or `super::b` from `module`, as a path from the crate root.
fn resolve(module: &[String], path: &[String]) -> Vec<String> {
    let mut base: Vec<String> = module.to_vec();
    let mut rest = path;
    if rest.first().is_some_and(|p| p == "crate") {
        base.clear();
        rest = &rest[1..];
    }
    while rest.first().is_some_and(|p| p == "super") {
        base.pop();
        rest = &rest[1..];
    }
    base.extend(rest.iter().cloned());
    base
}

/// The layer of `path`: its longest prefix in the table.
fn layer_of(table: &[(String, Vec<String>)], path: &[String]) -> Option<(usize, String)> {
    let joined = path.join("::");
    table
        .iter()
        .enumerate()
        .flat_map(|(layer, (_, modules))| modules.iter().map(move |m| (layer, m)))
        .filter(|(_, m)| joined == **m || joined.starts_with(&format!("{m}::")))
        .max_by_key(|(_, m)| m.len())
        .map(|(layer, m)| (layer, m.clone()))
}

/// Test-only files: `tests.rs`, and modules declared under `#[cfg(test)]`.
fn is_test_file(file: &Path) -> bool {
    if file.file_name().is_some_and(|n| n == "tests.rs") {
        return true;
    }
    let name = file.file_stem().unwrap().to_string_lossy();
    let parent_dir = file.parent().unwrap();
    let parent = ["mod.rs", "lib.rs"].iter().map(|f| parent_dir.join(f)).find(|p| p.exists());
    let parent = parent.or_else(|| Some(parent_dir.with_extension("rs")).filter(|p| p.exists()));
    parent.is_some_and(|p| fs::read_to_string(p).unwrap().contains(&format!("#[cfg(test)]\nmod {name};")))
}

#[test]
fn every_module_uses_only_its_own_layer_and_those_below() {
    let table = layers();
    let mut violations = Vec::new();
    let mut depends: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files(&src()) {
        let module = module_of(&file);
        if module[0] == "cli" || module[0] == "main" || module[0] == "lib" || is_test_file(&file) {
            continue;
        }
        let Some((own, own_entry)) = layer_of(&table, &module) else {
            violations.push(format!(
                "{}: module {} is in no layer of src/lib.rs's table",
                file.display(),
                module.join("::")
            ));
            continue;
        };
        for path in paths(&code(&fs::read_to_string(&file).unwrap())) {
            let target = resolve(&module, &path);
            if target.is_empty()
                || target[0] == module[0] && target.len() < module.len() && module.starts_with(&target)
            {
                // A module's own ancestors: its facade, re-exporting what it holds.
                continue;
            }
            let Some((layer, entry)) = layer_of(&table, &target) else { continue };
            if target[0] != module[0] {
                depends.entry(module[0].clone()).or_default().insert(target[0].clone());
            }
            if layer > own {
                violations.push(format!(
                    "{}: {} ({}, {}) uses {} ({}, {})",
                    file.display(),
                    module.join("::"),
                    own_entry,
                    table[own].0,
                    path.join("::"),
                    entry,
                    table[layer].0
                ));
            }
        }
    }
    for (from, targets) in &depends {
        for to in targets {
            if depends.get(to).is_some_and(|back| back.contains(from)) && from < to {
                violations.push(format!("{from} and {to} depend on each other"));
            }
        }
    }
    assert!(violations.is_empty(), "layer violations:\n{}", violations.join("\n"));
}

/// The shared modules of the binary: argument parsers, output, the service runner.
const SHARED_CLI: [&str; 3] = ["args", "output", "run"];

#[test]
fn commands_do_not_use_each_other() {
    let mut violations = Vec::new();
    for file in files(&src().join("cli")) {
        let module = module_of(&file);
        if module.len() < 2 || module[1] == "mod" || SHARED_CLI.contains(&module[1].as_str()) {
            continue;
        }
        for path in paths(&code(&fs::read_to_string(&file).unwrap())) {
            let target = resolve(&module, &path);
            let other_command = target.len() >= 2 && target[0] == "cli" && target[1] != module[1];
            if other_command && !SHARED_CLI.contains(&target[1].as_str()) {
                violations.push(format!("{}: uses {}", file.display(), target.join("::")));
            }
        }
    }
    assert!(violations.is_empty(), "commands using each other:\n{}", violations.join("\n"));
}

#[test]
fn the_checker_reads_paths_as_rust_does() {
    let found = paths("use crate::net::{self, Transport};\nlet x = super::super::a::B::new();");
    let found: Vec<String> = found.iter().map(|p| p.join("::")).collect();
    assert_eq!(found, ["crate::net", "crate::net::Transport", "super::super::a::B::new"]);
    let module = vec!["transfer".to_owned(), "driver".to_owned(), "recv".to_owned()];
    assert_eq!(resolve(&module, &["super".into(), "LookFirst".into()]), ["transfer", "driver", "LookFirst"]);
    assert_eq!(module_of(&src().join("transfer/driver/mod.rs")), ["transfer", "driver"]);
}

/// The modules allowed `unsafe` code: at most one small module per OS
/// interface that no well-kept crate wraps safely. Each one is listed here
/// (and allows `unsafe_code` at its declaration), and every `unsafe` in it
/// carries a `// SAFETY:` comment on the lines just above.
const UNSAFE_ALLOWED: &[&str] = &["lab::tcp_info", "impair::tun::device", "sniff::capture::ring"];

#[test]
fn unsafe_code_lives_only_in_its_listed_modules_each_block_justified() {
    let mut violations = Vec::new();
    for file in files(&src()) {
        let module = module_of(&file).join("::");
        let text = fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let uses_unsafe =
                ["unsafe {", "unsafe fn", "unsafe impl", "unsafe extern"].iter().any(|u| code.contains(u));
            if !uses_unsafe {
                continue;
            }
            if !UNSAFE_ALLOWED.contains(&module.as_str()) {
                violations.push(format!("{}:{}: unsafe outside the allowed modules", file.display(), n + 1));
            } else if !lines[n.saturating_sub(4)..n].iter().any(|l| l.trim_start().starts_with("// SAFETY:"))
            {
                violations.push(format!(
                    "{}:{}: unsafe without a // SAFETY: comment above",
                    file.display(),
                    n + 1
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    let main = fs::read_to_string(src().join("main.rs")).unwrap();
    assert!(main.contains("#![forbid(unsafe_code)]"), "the binary forbids unsafe code outright");
}
