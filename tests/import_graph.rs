//! The crate's import graph, read from the source (issue 10): the float64 references, the shared
//! op rules and the model description stay free of the GPU side, and `bench` and `verify` have no
//! import circle between their files.
//!
//! Every `src/**.rs` is read with its comments removed; each `crate::…`, `super::…` and
//! `self::…` path in it (also inside `use crate::{a, b::c}` groups, and the root re-exports such as
//! `crate::GpuTensor`, resolved through `src/lib.rs`) is resolved to a module path. A rule
//! breaks when a file under a guarded folder reaches a forbidden top-level module, or when the
//! files of one folder import each other in a circle. The checks are plain functions over
//! (path, text) pairs, so the tests at the end also run them on made-up sources that break each
//! rule and assert that they are caught.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level modules that make up the GPU side or a command (what the host side must not import).
const GPU_AND_CLI: [&str; 12] =
    ["gpu", "ops", "tensor", "transformer", "bench", "verify", "train", "analysis", "probe", "plot", "tune", "timing"];

/// The guarded folders and what each must not reach: the shared rules under nothing else of
/// the crate's numerics, the model description under no reference, the references under no GPU.
fn forbidden(top: &str) -> Vec<&'static str> {
    let mut out = GPU_AND_CLI.to_vec();
    match top {
        "spec" => out.extend(["reference", "model"]),
        "model" => out.extend(["reference", "fixture"]),
        "reference" => {}
        _ => return Vec::new(),
    }
    out
}

/// Folders whose files must not import each other in a circle.
const NO_CIRCLES: [&str; 2] = ["bench", "verify"];

/// The module path of a source file: `src/a/b.rs` and `src/a/b/mod.rs` are `[a, b]`.
fn module_of(path: &str) -> Vec<String> {
    let rel = path.trim_start_matches("src/").trim_end_matches(".rs");
    let mut parts: Vec<String> = rel.split('/').map(str::to_string).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// The text without `//` comments (doc comments included: their links are not imports) and
/// without the contents of string literals.
fn strip(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let (mut in_str, mut prev) = (false, ' ');
        let mut kept = String::new();
        for (i, c) in line.char_indices() {
            if !in_str && c == '/' && line[i..].starts_with("//") {
                break;
            }
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                kept.push(c);
            }
            prev = c;
        }
        out.push_str(&kept);
        out.push('\n');
    }
    out
}

/// Every path a file names, as module paths from the crate root (`crate::x::y` → `[x, y]`).
fn paths_in(file_module: &[String], text: &str, root_uses: &BTreeMap<String, String>) -> Vec<Vec<String>> {
    let text = strip(text);
    let mut out = Vec::new();
    for (start, _) in text.match_indices("crate::").chain(text.match_indices("super::")).chain(text.match_indices("self::")) {
        let before = text[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &text[start..];
        let head: Vec<&str> = rest.split("::").collect();
        let mut base: Vec<String> = match head[0] {
            "crate" => Vec::new(),
            "self" => file_module.to_vec(),
            _ => file_module[..file_module.len().saturating_sub(1)].to_vec(),
        };
        let mut tail = &rest[head[0].len() + 2..];
        while let Some(t) = tail.strip_prefix("super::") {
            base.pop();
            tail = t;
        }
        let groups: Vec<&str> = match tail.strip_prefix('{') {
            Some(group) => group.split(['}', ';']).next().unwrap_or("").split(',').collect(),
            None => vec![tail],
        };
        for g in groups {
            let segs: Vec<String> = g
                .trim()
                .split("::")
                .map(|s| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>())
                .take_while(|s| !s.is_empty())
                .collect();
            let mut path = base.clone();
            path.extend(segs);
            if let Some(home) = path.first().and_then(|first| root_uses.get(first)) {
                path[0] = home.clone();
            }
            if !path.is_empty() {
                out.push(path);
            }
        }
    }
    out
}

/// `src/lib.rs`'s root re-exports, name → top-level module (`GpuTensor` → `tensor`).
fn root_uses(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in strip(lib).lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else { continue };
        let Some((module, names)) = rest.split_once("::") else { continue };
        for name in names.split([',', '{', '}', ';']).map(str::trim).filter(|n| !n.is_empty()) {
            out.insert(name.to_string(), module.to_string());
        }
    }
    out
}

/// The breaches of the guarded folders' rules: `file: reaches crate::x` lines.
fn forbidden_imports(files: &[(String, String)]) -> Vec<String> {
    let lib = files.iter().find(|(p, _)| p == "src/lib.rs").map_or("", |(_, t)| t.as_str());
    let uses = root_uses(lib);
    let mut out = Vec::new();
    for (path, text) in files {
        let module = module_of(path);
        let Some(top) = module.first() else { continue };
        let banned = forbidden(top);
        for p in paths_in(&module, text, &uses) {
            if banned.contains(&p[0].as_str()) {
                out.push(format!("{path}: reaches crate::{}", p.join("::")));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Import circles between the files of `folder` (its `mod.rs` aside): each as `a -> b -> a`.
fn circles(files: &[(String, String)], folder: &str) -> Vec<String> {
    let lib = files.iter().find(|(p, _)| p == "src/lib.rs").map_or("", |(_, t)| t.as_str());
    let uses = root_uses(lib);
    let leaves: BTreeSet<String> =
        files.iter().map(|(p, _)| module_of(p)).filter(|m| m.len() == 2 && m[0] == folder).map(|m| m[1].clone()).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in files {
        let module = module_of(path);
        if module.len() < 2 || module[0] != folder {
            continue;
        }
        for p in paths_in(&module, text, &uses) {
            if p.len() >= 2 && p[0] == folder && leaves.contains(&p[1]) && p[1] != module[1] {
                edges.entry(module[1].clone()).or_default().insert(p[1].clone());
            }
        }
    }
    let mut out = Vec::new();
    for start in &leaves {
        let mut stack = vec![vec![start.clone()]];
        while let Some(walk) = stack.pop() {
            for next in edges.get(walk.last().unwrap()).into_iter().flatten() {
                if next == start {
                    out.push(format!("{folder}: {} -> {start}", walk.join(" -> ")));
                } else if !walk.contains(next) && next > start {
                    let mut longer = walk.clone();
                    longer.push(next.clone());
                    stack.push(longer);
                }
            }
        }
    }
    out
}

/// Every `.rs` file under `dir`, as (path relative to the crate, text).
fn read_tree(dir: &Path, rel: &str, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let rel = format!("{rel}/{name}");
        if path.is_dir() {
            read_tree(&path, &rel, out);
        } else if name.ends_with(".rs") {
            out.push((rel, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

fn sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    read_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), "src", &mut files);
    assert!(files.iter().any(|(p, _)| p == "src/reference/transformer.rs"), "src/ was not read");
    files
}

#[test]
fn the_host_side_imports_nothing_from_the_gpu_side() {
    let files = sources();
    assert!(files.iter().filter(|(p, _)| p.starts_with("src/model/")).count() >= 4, "src/model/ is missing");
    let bad = forbidden_imports(&files);
    assert!(bad.is_empty(), "imports across the host/GPU line:\n{}", bad.join("\n"));
}

#[test]
fn bench_and_verify_have_no_import_circles() {
    let files = sources();
    for folder in NO_CIRCLES {
        let found = circles(&files, folder);
        assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
    }
}

fn fake(files: &[(&str, &str)]) -> Vec<(String, String)> {
    let lib = "pub mod gpu;\npub use tensor::GpuTensor;\npub use gpu::{Gpu, GpuOptions};\n";
    std::iter::once(("src/lib.rs", lib)).chain(files.iter().copied()).map(|(p, t)| (p.to_string(), t.to_string())).collect()
}

#[test]
fn a_gpu_import_from_the_host_side_is_caught_in_every_spelling() {
    for text in [
        "use crate::gpu::Gpu;",
        "use crate::{error::Error, ops::matmul};",
        "fn f(t: &crate::GpuTensor) {}",
        "use crate::Gpu;",
        "use super::super::super::transformer::Model;",
        "let x = crate::transformer::config::Config::default();",
    ] {
        let found = forbidden_imports(&fake(&[("src/reference/backward/x.rs", text)]));
        assert_eq!(found.len(), 1, "{text:?} was not caught: {found:?}");
    }
    let found = forbidden_imports(&fake(&[("src/model/hooks.rs", "use crate::reference::transformer;")]));
    assert_eq!(found.len(), 1, "{found:?}");
    let found = forbidden_imports(&fake(&[("src/spec/attention.rs", "use crate::model::config::Config;")]));
    assert_eq!(found.len(), 1, "{found:?}");
}

#[test]
fn comments_strings_and_allowed_imports_are_not_breaches() {
    let text = "//! See [`crate::transformer`].\nuse crate::error::Result; // crate::gpu\nuse crate::spec::gelu::Gelu;\nlet s = \"crate::ops\";\nuse crate::model::hooks::Names;\n";
    assert_eq!(forbidden_imports(&fake(&[("src/reference/x.rs", text)])), Vec::<String>::new());
    assert_eq!(forbidden_imports(&fake(&[("src/bench/x.rs", "use crate::gpu::Gpu;")])), Vec::<String>::new());
}

#[test]
fn an_import_circle_is_caught() {
    let files = fake(&[
        ("src/verify/checks.rs", "fn f() { super::transformer::check(); }"),
        ("src/verify/transformer.rs", "use crate::verify::checks::CHECKS;"),
        ("src/verify/mod.rs", "mod checks; mod transformer;"),
    ]);
    assert_eq!(circles(&files, "verify"), ["verify: checks -> transformer -> checks"]);
    let files = fake(&[
        ("src/bench/cases.rs", "use super::kernels::prepare;"),
        ("src/bench/kernels.rs", "use super::transformer::prepare;"),
        ("src/bench/transformer.rs", "use super::cases::{Case, inputs};"),
    ]);
    assert_eq!(circles(&files, "bench").len(), 1);
    let files = fake(&[("src/bench/cases.rs", "use super::transformer::prepare;"), ("src/bench/transformer.rs", "use super::run::Work;")]);
    assert_eq!(circles(&files, "bench"), Vec::<String>::new());
}
